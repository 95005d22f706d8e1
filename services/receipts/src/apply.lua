-- Applies one event of a room's log to the read state, atomically, at most once.
-- ARGV: key prefix, room id, stream sequence, operation, operation arguments.
-- Returns what to publish: {'chat', previous, unreadCount, member, roomUnread, ...},
-- {'shown', previous}, {'leave', previous, readCount (-1: unknown)},
-- {'info', previous, readCount, lastRead ('' when none)}, {'out', previous} or {'none'}.
-- `previous` is the room's previous published event (0 when this is a redelivery).
local p, room, seq, op = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local K = p .. 'rs:'
local k_applied = K .. 'applied:' .. room
local k_shown = K .. 'shown:' .. room
local k_members = K .. 'members:' .. room
local k_inroom = K .. 'inroom:' .. room
local k_tracked = K .. 'tracked:' .. room
local function k_unread(m) return K .. 'unread:' .. room .. ':' .. m end
local function k_pending(u) return K .. 'pending:' .. room .. ':' .. u end
local function k_counts(u) return K .. 'counts:' .. u end
local function k_present(u) return K .. 'present:' .. room .. ':' .. u end
local function k_edge(e) return K .. 'edge:' .. e end

local fresh = seq > tonumber(redis.call('GET', k_applied) or '0')

local function shown()
  if not fresh then return 0 end
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
  local sender, keep = ARGV[5], tonumber(ARGV[6])
  local ku = k_unread(seq)
  if fresh then
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
  end
  reply = {'chat', shown(), redis.call('SCARD', ku)}
  for _, u in ipairs(redis.call('SMEMBERS', k_members)) do
    reply[#reply + 1] = u
    reply[#reply + 1] = tonumber(redis.call('HGET', k_counts(u), room) or '0')
  end
elseif op == 'members' then
  if fresh then
    for i = 5, #ARGV do
      redis.call('SADD', k_members, ARGV[i])
    end
  end
  reply = {'shown', shown()}
elseif op == 'delete' then
  if fresh then
    for i = 5, #ARGV do
      drop_message(ARGV[i])
    end
  end
  reply = {'shown', shown()}
elseif op == 'leave' then
  -- Presence stays until the leaver's edges say OUT (a LEAVE ends their subscriptions); it
  -- does not count for a non-member.
  local u = ARGV[5]
  if fresh then
    local count = read_all(u)
    redis.call('SREM', k_members, u)
    reply = {'leave', shown(), count}
  else
    reply = {'leave', 0, -1}
  end
elseif op == 'enter' then
  local u, e = ARGV[5], ARGV[6]
  if fresh then
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
  end
elseif op == 'exit' then
  local u, e = ARGV[5], ARGV[6]
  if fresh then
    redis.call('SREM', k_edge(e), room .. ' ' .. u)
    if redis.call('SREM', k_present(u), e) == 1 and redis.call('EXISTS', k_present(u)) == 0 then
      redis.call('SREM', k_inroom, u)
      if redis.call('SISMEMBER', k_members, u) == 1 then
        reply = {'out', shown()}
      end
    end
  end
end
if fresh then
  redis.call('SET', k_applied, seq)
end
return reply
