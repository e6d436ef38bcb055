-- wsp cluster channel history (key scheme 2): one script per channel, so assigning an offset,
-- keeping the message and publishing it happen at once, and every node sees a channel's
-- messages in offset order. Every key it touches is one of KEYS, in the channel's slot of a
-- Redis Cluster, and so is the topic it publishes on (ARGV): KEYS[1] = "P:hm:{t}:<ch>" a hash
-- {epoch, top}, KEYS[2] = "P:h:{t}:<ch>" a stream of {t = ms, m = the message as published},
-- entry id "<offset>-1". A new epoch starts whenever the meta hash is missing (first use,
-- expiry, or a Redis that lost its data). ARGV[1] = operation.
local mk, sk = KEYS[1], KEYS[2]
local op = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The channel's epoch and newest offset; with `nonce`, a new epoch when there is none (the
-- time and the node's random nonce: unique without a shared counter).
local function meta(nonce, meta_ttl)
  local epoch = redis.call('HGET', mk, 'epoch')
  if not epoch then
    if not nonce then return nil, 0 end
    local t = redis.call('TIME')
    epoch = string.format('%x%05x', tonumber(t[1]), tonumber(t[2])) .. nonce
    redis.call('DEL', sk)
    redis.call('HSET', mk, 'epoch', epoch, 'top', 0)
  end
  if meta_ttl then redis.call('PEXPIRE', mk, meta_ttl) end
  return epoch, tonumber(redis.call('HGET', mk, 'top'))
end

-- Kept messages from `first` (an XRANGE bound) on, at most `count`, younger than `ttl` ms,
-- oldest first.
local function kept(first, last, count, ttl, reverse)
  local entries
  if reverse then
    entries = redis.call('XREVRANGE', sk, last, first, 'COUNT', count)
  else
    entries = redis.call('XRANGE', sk, first, last, 'COUNT', count)
  end
  local now = now_ms()
  local out = {}
  for _, e in ipairs(entries) do
    local f, ts, m = e[2], nil, nil
    for j = 1, #f, 2 do
      if f[j] == 't' then ts = tonumber(f[j + 1])
      elseif f[j] == 'm' then m = f[j + 1] end
    end
    if ts and m and now - ts <= ttl then out[#out + 1] = m end
  end
  if reverse then
    local r = {}
    for i = #out, 1, -1 do r[#r + 1] = out[i] end
    out = r
  end
  return out
end

if op == 'publish' then
  -- publish(size, ttl_ms, meta_ttl_ms, 'PUBLISH'|'SPUBLISH', topic, nonce, index or '',
  -- earlier positions as JSON, channel, envelope): this channel's position, as JSON.
  -- A send to several channels runs this once per channel, in the send's order, each time
  -- with the positions the earlier channels gave: copy i carries the positions of channels
  -- 0..=i, and a member gets only the copy of the LAST of the send's channels it is in (which
  -- carries every position it needs).
  local size, ttl, mttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local cmd, topic, nonce, index = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  local ch, env = ARGV[10], ARGV[11]
  local pos = cjson.decode(ARGV[9])
  local epoch = meta(nonce, mttl)
  local top = redis.call('HINCRBY', mk, 'top', 1)
  local mine = { channel = ch, offset = top, epoch = epoch }
  pos[#pos + 1] = mine
  local now = now_ms()
  local stamp = { positions = pos, time = now }
  if index ~= '' then stamp.index = tonumber(index) end
  local msg = 'H' .. cjson.encode(stamp) .. '\n' .. env
  redis.call('XADD', sk, 'MAXLEN', size, top .. '-1', 't', now, 'm', msg)
  redis.call('PEXPIRE', sk, ttl)
  redis.call(cmd, topic, msg)
  return cjson.encode(mine)
elseif op == 'read' then
  -- read(after or '', size, ttl_ms, meta_ttl_ms, nonce): {epoch, top, messages after
  -- `after`}. Creates the epoch, so a quiet channel has one to recover against.
  local after, size, ttl, mttl, nonce = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
  local epoch, top = meta(nonce, mttl)
  local out = {}
  if after ~= '' then out = kept('(' .. after .. '-1', '+', size, ttl, false) end
  return { epoch, top, out }
elseif op == 'last' then
  -- last(count, ttl_ms): {epoch or false, top, the newest `count` messages oldest first}.
  local count, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
  local epoch, top = meta(nil, nil)
  if not epoch then return { false, 0, {} } end
  return { epoch, top, kept('-', '+', count, ttl, true) }
end
return redis.error_reply('unknown history operation ' .. tostring(op))
