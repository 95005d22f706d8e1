-- Marks a room's published events: what the worker published no longer needs its recorded
-- outcome. Refused (nothing written) when a holder with a newer epoch has written the room.
-- KEYS: fence, outcomes (as apply.lua). ARGV: fencing epoch (0: none), the last sequence of the
-- room the batch published. Returns 1, or 0 when fenced. Deletes every recorded outcome of the
-- room up to that sequence: events of a room are published in log order, so anything older
-- was published too (it is also what clears an outcome left by a worker that died after
-- publishing it).
local k_fence, k_outcomes = KEYS[1], KEYS[2]
local epoch, upto = tonumber(ARGV[1]), tonumber(ARGV[2])
if epoch > 0 and tonumber(redis.call('GET', k_fence) or '0') > epoch then
  return 0
end
for _, seq in ipairs(redis.call('HKEYS', k_outcomes)) do
  if tonumber(seq) <= upto then
    redis.call('HDEL', k_outcomes, seq)
  end
end
return 1
