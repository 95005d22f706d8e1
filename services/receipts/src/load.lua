-- Loads a room's members for the worker's in-memory counts, and fences the room: once a
-- holder with this epoch has loaded it, holders with older epochs can no longer write it, so
-- nothing changes the room behind the loaded copy.
-- KEYS: room, positions, bases, outcomes, fence (as apply.lua). ARGV: fencing epoch (0: none).
-- Returns {'fenced'}, or {'room', chats, {member, position, ...}, {member, base, ...},
-- {seq, outcome, ...}, applied, shown, {member, mentionCount, ...}}: the outcomes applied and
-- not yet published, as apply.lua returned them; then the last event applied, the room's newest
-- published one and every mentionCount that is not 0, for the views published from memory.
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
-- One read of the room's hash: its counters and its mention counts (fields 'm:{member}').
local room = {chats = 0, applied = 0, shown = 0}
local mentions = {}
local fields = redis.call('HGETALL', k_room)
for i = 1, #fields, 2 do
  local name, value = fields[i], fields[i + 1]
  local u = string.match(name, '^m:(.*)$')
  if u then
    mentions[#mentions + 1] = u
    mentions[#mentions + 1] = value
  elseif room[name] then
    room[name] = tonumber(value)
  end
end
return {
  'room',
  room.chats,
  redis.call('ZRANGE', k_pos, 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', k_base),
  outcomes,
  room.applied,
  room.shown,
  mentions,
}
