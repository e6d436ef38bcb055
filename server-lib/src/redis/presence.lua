-- wsp cluster presence (key scheme 2): the changes to ONE client's keys, each atomic. Every
-- key it touches is one of KEYS, all three in the client's slot of a Redis Cluster:
-- KEYS[1] = "P:c:{t}:<id>" (hash: node, uid), KEYS[2] = "P:cch:{t}:<id>" (its channels),
-- KEYS[3] = "P:info:{t}:<id>". ARGV[1] = operation, ARGV[2..] = its arguments.
-- What belongs to other slots (a channel's members, a uid's clients, a node's sets) the node
-- changes with single commands before or after (redis/presence.rs says in which order).
local c, cch, info = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]

if op == 'claim' then
  -- claim(node): '' when the id is now this node's, else the node that holds it.
  local node = ARGV[2]
  local owner = redis.call('HGET', c, 'node')
  if owner and owner ~= node then return owner end
  redis.call('HSET', c, 'node', node)
  return ''
elseif op == 'remove' then
  -- remove(node or ''): drops the client's keys (only if `node` still owns it, when given);
  -- returns false when it did not, else {uid or '', channel...} to clean up elsewhere.
  local node = ARGV[2]
  local owner = redis.call('HGET', c, 'node')
  if not owner or (node ~= '' and owner ~= node) then return false end
  local out = { redis.call('HGET', c, 'uid') or '' }
  for _, ch in ipairs(redis.call('SMEMBERS', cch)) do out[#out + 1] = ch end
  redis.call('DEL', c, cch, info)
  return out
elseif op == 'join' then
  if redis.call('EXISTS', c) == 0 then return 0 end
  redis.call('SADD', cch, ARGV[2])
  return 1
elseif op == 'leave' then
  return redis.call('SREM', cch, ARGV[2])
elseif op == 'bind' then
  -- bind(uid): false when the client is not online, else its previous uid or ''.
  if redis.call('EXISTS', c) == 0 then return false end
  local old = redis.call('HGET', c, 'uid') or ''
  redis.call('HSET', c, 'uid', ARGV[2])
  return old
elseif op == 'unbind' then
  if redis.call('HGET', c, 'uid') == ARGV[2] then
    redis.call('HDEL', c, 'uid')
    return 1
  end
  return 0
elseif op == 'info' then
  -- info(k1, v1, k2, v2...): replaces the whole info.
  if redis.call('EXISTS', c) == 0 then return 0 end
  redis.call('DEL', info)
  for i = 2, #ARGV, 2 do redis.call('HSET', info, ARGV[i], ARGV[i + 1]) end
  return 1
elseif op == 'footprint' then
  -- footprint(ch or ''): nil when the id is not online, else {channels it is in, 1 when it
  -- is in ch, its info as a flat list}: what a node checks before sending a change there.
  local ch = ARGV[2]
  if redis.call('EXISTS', c) == 0 then return false end
  local member = 0
  if ch ~= '' then member = redis.call('SISMEMBER', cch, ch) end
  return { redis.call('SCARD', cch), member, redis.call('HGETALL', info) }
end
return redis.error_reply('wsp presence: unknown op ' .. tostring(op))
