-- wsp cluster channel history: one script, so assigning an offset, keeping the message and
-- publishing it happen at once, and every node sees a channel's messages in offset order.
-- KEYS[1] = "<prefix>:clients" (the "{prefix}" hash tag: every key, and every history topic,
-- sits in one slot of a Redis Cluster). ARGV[1] = operation.
--
-- Per channel: "<p>:hm:<ch>" a hash {epoch, top}; "<p>:h:<ch>" a stream of {t = ms, m = the
-- message as published}, entry id "<offset>-1". A new epoch starts whenever the meta hash is
-- missing (first use, expiry, or a Redis that lost its data).
local p = string.sub(KEYS[1], 1, -9)
local op = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The channel's epoch and newest offset; with `create`, a new epoch when there is none.
local function meta(ch, create, meta_ttl)
  local mk = p .. ':hm:' .. ch
  local epoch = redis.call('HGET', mk, 'epoch')
  if not epoch then
    if not create then return nil, 0 end
    local t = redis.call('TIME')
    local n = redis.call('INCR', p .. ':hepochs')
    epoch = string.format('%x%05x%x', tonumber(t[1]), tonumber(t[2]), n)
    redis.call('DEL', p .. ':h:' .. ch)
    redis.call('HSET', mk, 'epoch', epoch, 'top', 0)
  end
  if meta_ttl then redis.call('PEXPIRE', mk, meta_ttl) end
  return epoch, tonumber(redis.call('HGET', mk, 'top'))
end

-- Kept messages of a stream from `first` (an XRANGE bound) on, at most `count`, younger than
-- `ttl` ms, oldest first. An entry holds its message (`m`), or for a send to several channels
-- the id of the one copy they share (`r`: the key "<p>:hb:<id>"); a shared copy that expired
-- is a gap, as a trimmed entry is.
local function kept(ch, first, last, count, ttl, reverse)
  local sk = p .. ':h:' .. ch
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
      elseif f[j] == 'm' then m = f[j + 1]
      elseif f[j] == 'r' then m = redis.call('GET', p .. ':hb:' .. f[j + 1]) end
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
  -- publish(size, ttl_ms, meta_ttl_ms, 'PUBLISH'|'SPUBLISH', topic_prefix, all_topic, envelope,
  -- ch...): the positions, as JSON. The message goes out once, whatever the number of
  -- channels: to the channel's topic for one channel, to `all_topic` (which every node
  -- follows) for several; and it is stored once: in the stream for one channel, as one shared
  -- copy that each channel's stream entry names for several. So what Redis takes in is linear
  -- in the send's size.
  local size, ttl, mttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local cmd, tp, all, env = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  local chans = {}
  for i = 9, #ARGV do chans[#chans + 1] = ARGV[i] end
  local pos = {}
  for i, ch in ipairs(chans) do
    local epoch = meta(ch, true, mttl)
    local top = redis.call('HINCRBY', p .. ':hm:' .. ch, 'top', 1)
    pos[i] = { channel = ch, offset = top, epoch = epoch }
  end
  local now = now_ms()
  local msg = 'H' .. cjson.encode({ positions = pos, time = now }) .. '\n' .. env
  if #chans == 1 then
    local sk = p .. ':h:' .. chans[1]
    redis.call('XADD', sk, 'MAXLEN', size, pos[1].offset .. '-1', 't', now, 'm', msg)
    redis.call('PEXPIRE', sk, ttl)
    redis.call(cmd, tp .. chans[1], msg)
  else
    local id = redis.call('INCR', p .. ':hbodies')
    redis.call('SET', p .. ':hb:' .. id, msg, 'PX', ttl)
    for i, ch in ipairs(chans) do
      local sk = p .. ':h:' .. ch
      redis.call('XADD', sk, 'MAXLEN', size, pos[i].offset .. '-1', 't', now, 'r', id)
      redis.call('PEXPIRE', sk, ttl)
    end
    redis.call(cmd, all, msg)
  end
  return cjson.encode(pos)
elseif op == 'read' then
  -- read(ch, after or '', size, ttl_ms, meta_ttl_ms): {epoch, top, messages after `after`}.
  -- Creates the epoch, so a quiet channel has one to recover against.
  local ch, after, size, ttl, mttl = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  local epoch, top = meta(ch, true, mttl)
  local out = {}
  if after ~= '' then out = kept(ch, '(' .. after .. '-1', '+', size, ttl, false) end
  return { epoch, top, out }
elseif op == 'last' then
  -- last(ch, count, ttl_ms): {epoch or false, top, the newest `count` messages oldest first}.
  local ch, count, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local epoch, top = meta(ch, false, nil)
  if not epoch then return { false, 0, {} } end
  return { epoch, top, kept(ch, '-', '+', count, ttl, true) }
end
return redis.error_reply('unknown history operation ' .. tostring(op))
