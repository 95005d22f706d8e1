-- Loads a room's members for the worker's in-memory counts, and fences the room: once a
-- holder with this epoch has loaded it, holders with older epochs can no longer write it, so
-- nothing changes the room behind the loaded copy.
-- KEYS: room, positions, bases, outcomes, fence (as apply.lua). ARGV: fencing epoch (0: none).
-- Returns {'fenced'}, or {'room', chats, {member, position, ...}, {member, base, ...},
-- {seq, outcome, ...}}: the outcomes applied and not yet published, as apply.lua returned them.
local k_room, k_pos, k_base, k_outcomes, k_fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local epoch = tonumber(ARGV[1])
if epoch > 0 then
  local held = tonumber(redis.call('GET', k_fence) or '0')
  if held > epoch then
    return {'fenced'}
  elseif held < epoch then
    redis.call('SET', k_fence, epoch)
  end
end
local outcomes = {}
local recorded = redis.call('HGETALL', k_outcomes)
for i = 1, #recorded, 2 do
  outcomes[#outcomes + 1] = tonumber(recorded[i])
  outcomes[#outcomes + 1] = cmsgpack.unpack(recorded[i + 1])
end
return {
  'room',
  tonumber(redis.call('HGET', k_room, 'chats') or '0'),
  redis.call('ZRANGE', k_pos, 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', k_base),
  outcomes,
}
