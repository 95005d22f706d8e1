-- Applies one event of a room's log to the read state, atomically, at most once.
-- ARGV: key prefix, lease key, lease holder, record ('1': keep the outcome until published),
-- room id, stream sequence, operation, operation arguments.
-- Returns what to publish: {'chat', previous, unreadCount, member, roomUnread, ...},
-- {'shown', previous}, {'leave', previous, readCount},
-- {'info', previous, readCount, lastRead ('' when none)}, {'out', previous}, {'none'},
-- or {'fenced'} when the lease key is set and no longer holds this holder: then nothing is
-- written, so a worker that lost its lease can never write after the next holder started.
-- `previous` is the room's previous published event.
-- An event applied before (a redelivery) changes nothing and returns the outcome recorded
-- when it was applied, while that outcome has not been marked published (published.lua), so
-- a worker that died between applying and publishing publishes exactly what it would have.
local p, lease, holder, record = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local room, seq, op = ARGV[5], tonumber(ARGV[6]), ARGV[7]
if lease ~= '' and redis.call('GET', lease) ~= holder then
  return {'fenced'}
end
local K = p .. 'rs:'
local k_applied = K .. 'applied:' .. room
local k_shown = K .. 'shown:' .. room
local k_members = K .. 'members:' .. room
local k_inroom = K .. 'inroom:' .. room
local k_tracked = K .. 'tracked:' .. room
local k_outcomes = K .. 'outcomes:' .. room
local function k_unread(m) return K .. 'unread:' .. room .. ':' .. m end
local function k_pending(u) return K .. 'pending:' .. room .. ':' .. u end
local function k_counts(u) return K .. 'counts:' .. u end
local function k_present(u) return K .. 'present:' .. room .. ':' .. u end
local function k_edge(e) return K .. 'edge:' .. e end

if seq <= tonumber(redis.call('GET', k_applied) or '0') then
  local recorded = redis.call('HGET', k_outcomes, seq)
  if recorded then
    return cmsgpack.unpack(recorded)
  end
  return {'none'}
end

local function shown()
  local previous = tonumber(redis.call('GET', k_shown) or '0')
  redis.call('SET', k_shown, seq)
  return previous
end

-- Forgets a message's unread set (deleted, or past the retention).
local function drop_message(m)
  local ku = k_unread(m)
  for _, u in ipairs(redis.call('SMEMBERS', ku)) do
    redis.call('ZREM', k_pending(u), m)
    if redis.call('HINCRBY', k_counts(u), room, -1) <= 0 then
      redis.call('HDEL', k_counts(u), room)
    end
  end
  redis.call('DEL', ku)
  redis.call('ZREM', k_tracked, m)
end

-- Marks everything unread by u in the room as read; returns the count and the newest.
local function read_all(u)
  local kp = k_pending(u)
  local seqs = redis.call('ZRANGE', kp, 0, -1)
  for _, m in ipairs(seqs) do
    local ku = k_unread(m)
    redis.call('SREM', ku, u)
    if redis.call('EXISTS', ku) == 0 then
      redis.call('ZREM', k_tracked, m)
    end
  end
  redis.call('DEL', kp)
  redis.call('HDEL', k_counts(u), room)
  return #seqs, seqs[#seqs] or ''
end

local reply = {'none'}
if op == 'chat' then
  local sender, keep = ARGV[8], tonumber(ARGV[9])
  local ku = k_unread(seq)
  for _, u in ipairs(redis.call('SDIFF', k_members, k_inroom)) do
    if u ~= sender then
      redis.call('SADD', ku, u)
      redis.call('ZADD', k_pending(u), seq, seq)
      redis.call('HINCRBY', k_counts(u), room, 1)
    end
  end
  if redis.call('EXISTS', ku) == 1 then
    redis.call('ZADD', k_tracked, seq, seq)
    local excess = redis.call('ZCARD', k_tracked) - keep
    if excess > 0 then
      for _, m in ipairs(redis.call('ZRANGE', k_tracked, 0, excess - 1)) do
        drop_message(m)
      end
    end
  end
  reply = {'chat', shown(), redis.call('SCARD', ku)}
  for _, u in ipairs(redis.call('SMEMBERS', k_members)) do
    reply[#reply + 1] = u
    reply[#reply + 1] = tonumber(redis.call('HGET', k_counts(u), room) or '0')
  end
elseif op == 'members' then
  for i = 8, #ARGV do
    redis.call('SADD', k_members, ARGV[i])
  end
  reply = {'shown', shown()}
elseif op == 'delete' then
  for i = 8, #ARGV do
    drop_message(ARGV[i])
  end
  reply = {'shown', shown()}
elseif op == 'leave' then
  -- Presence stays until the leaver's edges say OUT (a LEAVE ends their subscriptions); it
  -- does not count for a non-member.
  local u = ARGV[8]
  local count = read_all(u)
  redis.call('SREM', k_members, u)
  reply = {'leave', shown(), count}
elseif op == 'enter' then
  local u, e = ARGV[8], ARGV[9]
  redis.call('SADD', k_edge(e), room .. ' ' .. u)
  redis.call('SADD', K .. 'edges', e)
  local first = redis.call('SADD', k_present(u), e) == 1 and redis.call('SCARD', k_present(u)) == 1
  if first then
    redis.call('SADD', k_inroom, u)
    if redis.call('SISMEMBER', k_members, u) == 1 then
      local count, last = read_all(u)
      reply = {'info', shown(), count, last}
    end
  end
elseif op == 'exit' then
  local u, e = ARGV[8], ARGV[9]
  redis.call('SREM', k_edge(e), room .. ' ' .. u)
  if redis.call('SREM', k_present(u), e) == 1 and redis.call('EXISTS', k_present(u)) == 0 then
    redis.call('SREM', k_inroom, u)
    if redis.call('SISMEMBER', k_members, u) == 1 then
      reply = {'out', shown()}
    end
  end
end
redis.call('SET', k_applied, seq)
if record and reply[1] ~= 'none' then
  redis.call('HSET', k_outcomes, seq, cmsgpack.pack(reply))
end
return reply
