-- Marks a published batch: what the worker published no longer needs its recorded outcome,
-- and the partition's progress moves on. Atomic, and refused (nothing written) when the lease
-- key is set and no longer holds this holder.
-- ARGV: key prefix, lease key, lease holder, progress key, progress (the last sequence the
-- batch fetched), then pairs of room id and the last sequence of that room the batch published.
-- Returns 1, or 0 when fenced. Deletes every recorded outcome of the room up to that sequence:
-- events of a room are published in log order, so anything older was published too (it is
-- also what clears an outcome left by a worker that died after publishing it).
local p, lease, holder = ARGV[1], ARGV[2], ARGV[3]
if lease ~= '' and redis.call('GET', lease) ~= holder then
  return 0
end
redis.call('SET', ARGV[4], ARGV[5])
for i = 6, #ARGV - 1, 2 do
  local k_outcomes = p .. 'rs:outcomes:' .. ARGV[i]
  local upto = tonumber(ARGV[i + 1])
  for _, seq in ipairs(redis.call('HKEYS', k_outcomes)) do
    if tonumber(seq) <= upto then
      redis.call('HDEL', k_outcomes, seq)
    end
  end
end
return 1
