-- wsp cluster presence, one script so every change is atomic.
-- KEYS[1] = "<prefix>:clients" (every key shares the "{prefix}" hash tag: one slot in Redis Cluster)
-- ARGV[1] = operation, ARGV[2..] = its arguments. The key prefix is KEYS[1] minus ":clients".
local p = string.sub(KEYS[1], 1, -9)
local op = ARGV[1]

local function drop_uid(id, uid)
  redis.call('SREM', p .. ':uid:' .. uid, id)
  if redis.call('SCARD', p .. ':uid:' .. uid) == 0 then redis.call('SREM', p .. ':uids', uid) end
end

local function drop_channel(id, ch)
  redis.call('SREM', p .. ':ch:' .. ch, id)
  redis.call('SREM', p .. ':cch:' .. id, ch)
  if redis.call('SCARD', p .. ':ch:' .. ch) == 0 then redis.call('SREM', p .. ':chs', ch) end
end

local function remove(id)
  local owner = redis.call('HGET', KEYS[1], id)
  if not owner then return {} end
  redis.call('HDEL', KEYS[1], id)
  redis.call('SREM', p .. ':node:' .. owner .. ':clients', id)
  local uid = redis.call('HGET', p .. ':cuid', id)
  if uid then
    redis.call('HDEL', p .. ':cuid', id)
    drop_uid(id, uid)
  end
  local chs = redis.call('SMEMBERS', p .. ':cch:' .. id)
  for _, ch in ipairs(chs) do drop_channel(id, ch) end
  redis.call('DEL', p .. ':cch:' .. id, p .. ':info:' .. id)
  return chs
end

if op == 'claim' then
  -- claim(id, node): 1 when the id is now ours, 0 when a live node holds it.
  local id, node = ARGV[2], ARGV[3]
  local owner = redis.call('HGET', KEYS[1], id)
  if owner and owner ~= node then
    if redis.call('EXISTS', p .. ':alive:' .. owner) == 1 then return 0 end
    remove(id) -- a ghost of a dead node
  end
  redis.call('HSET', KEYS[1], id, node)
  redis.call('SADD', p .. ':node:' .. node .. ':clients', id)
  return 1
elseif op == 'remove' then
  return remove(ARGV[2])
elseif op == 'join' then
  local id, ch = ARGV[2], ARGV[3]
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return 0 end
  redis.call('SADD', p .. ':ch:' .. ch, id)
  redis.call('SADD', p .. ':cch:' .. id, ch)
  redis.call('SADD', p .. ':chs', ch)
  return 1
elseif op == 'leave' then
  drop_channel(ARGV[2], ARGV[3])
  return 1
elseif op == 'bind' then
  local id, uid = ARGV[2], ARGV[3]
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return 0 end
  local old = redis.call('HGET', p .. ':cuid', id)
  if old and old ~= uid then drop_uid(id, old) end
  redis.call('HSET', p .. ':cuid', id, uid)
  redis.call('SADD', p .. ':uid:' .. uid, id)
  redis.call('SADD', p .. ':uids', uid)
  return 1
elseif op == 'unbind' then
  local id, uid = ARGV[2], ARGV[3]
  if redis.call('HGET', p .. ':cuid', id) == uid then
    redis.call('HDEL', p .. ':cuid', id)
    drop_uid(id, uid)
  end
  return 1
elseif op == 'info' then
  -- info(id, k1, v1, k2, v2...): replaces the whole info.
  local id = ARGV[2]
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return 0 end
  redis.call('DEL', p .. ':info:' .. id)
  for i = 3, #ARGV, 2 do redis.call('HSET', p .. ':info:' .. id, ARGV[i], ARGV[i + 1]) end
  return 1
elseif op == 'footprint' then
  -- footprint(id, ch or ''): nil when the id is not online, else {channels it is in, 1 when it
  -- is in ch, its info as a flat list}: what a node checks before sending a change there.
  local id, ch = ARGV[2], ARGV[3]
  if redis.call('HEXISTS', KEYS[1], id) == 0 then return false end
  local member = 0
  if ch ~= '' then member = redis.call('SISMEMBER', p .. ':cch:' .. id, ch) end
  return { redis.call('SCARD', p .. ':cch:' .. id), member, redis.call('HGETALL', p .. ':info:' .. id) }
elseif op == 'reap' then
  -- reap(node): removes every client of a dead node; returns how many.
  local node = ARGV[2]
  local ids = redis.call('SMEMBERS', p .. ':node:' .. node .. ':clients')
  local n = 0
  for _, id in ipairs(ids) do
    if redis.call('HGET', KEYS[1], id) == node then
      remove(id)
      n = n + 1
    end
  end
  redis.call('DEL', p .. ':node:' .. node .. ':clients')
  redis.call('SREM', p .. ':nodes', node)
  return n
elseif op == 'uids_by_channel' then
  local ids = redis.call('SMEMBERS', p .. ':ch:' .. ARGV[2])
  local seen, out = {}, {}
  for _, id in ipairs(ids) do
    local uid = redis.call('HGET', p .. ':cuid', id)
    if uid and not seen[uid] then
      seen[uid] = true
      table.insert(out, uid)
    end
  end
  return out
end
return redis.error_reply('wsp presence: unknown op ' .. tostring(op))
