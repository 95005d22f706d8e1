-- Applies a run of one room's events of the log, in order, to the room's read positions:
-- atomically, each event at most once. Every key is the room's (one hash slot: the keys share
-- the room id as their hash tag):
-- KEYS: room (hash: applied, shown, chats), positions (zset member -> read position,
-- inf while present), bases (hash member -> chats not counted as unread), unread (zset of the
-- CHATs someone may not have read: "seq sender", score seq), presence (hash member -> the
-- edges where they have the room open, space-separated), outcomes (hash seq -> reply), fence
-- (the newest fencing epoch that wrote the room; outside `rs:`, so a rebuild keeps it),
-- mentions (zset of "seq user user..." for CHATs that mentioned members who had not read
-- them, score seq). A member's mentionCount is the field 'm:' .. member of the room hash.
-- ARGV: fencing epoch (0: none), then per event: stream sequence, record ('1': keep the
-- outcome until published), operation, how many arguments follow, the operation's arguments.
-- One call per run, not per event: the room's counters are read and written once, and Redis
-- pays for calling Lua once (the cost of a CHAT in a small room is mostly that).
--
-- A member's unread count in the room is chats - base while absent, 0 while present. A
-- message's unread set is the members whose position is below its sequence, but its sender.
-- A member's mentionCount is how many CHATs of their unread set mention them: raised by such a
-- CHAT, lowered by its DELETE, cleared when they enter (they read everything) or leave.
--
-- Returns {'fenced'} when a holder with a newer epoch has written the room (then nothing is
-- written), or one reply per event: {kind, previous, chats, count, lastRead, changes...} where
-- kind is 'chat' (count: unreadCount; lastRead's place holds every non-zero mentionCount of
-- the room after it, "user count user count ..."), 'shown' (INVITE, room creation, DELETE,
-- REACTION, EDIT), 'leave' (count: readCount), 'info' (count: readCount, lastRead: the newest
-- message read or ''),
-- 'out'; `previous` is the room's previous published event, `chats` the room's CHAT count
-- after the event; each change is five strings: member, position and base before, position
-- and base after ('' when not a member, 'inf' while present). Or {'none'} when clients hear
-- nothing. An event applied before (a redelivery) changes nothing and gets the outcome
-- recorded when it was applied, while that outcome is not marked published (published.lua).
local k_room, k_pos, k_base, k_unread, k_presence, k_outcomes, k_fence, k_mentions =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local epoch = tonumber(ARGV[1])

if epoch > 0 then
  local held = tonumber(redis.call('GET', k_fence) or '0')
  if held > epoch then
    return {'fenced'}
  elseif held < epoch then
    redis.call('SET', k_fence, epoch)
  end
end

local counters = redis.call('HMGET', k_room, 'applied', 'chats', 'shown')
local applied = tonumber(counters[1] or '0')
local chats = tonumber(counters[2] or '0')
local shown = tonumber(counters[3] or '0')
-- The event being applied, what it did to members, and what clients hear of it.
local seq, changes, reply

-- Moves member u from (position, base) to (to_pos, to_base); '' removes them.
local function move(u, position, base, to_pos, to_base)
  if to_pos == '' then
    redis.call('ZREM', k_pos, u)
    redis.call('HDEL', k_base, u)
  else
    if tostring(to_pos) ~= position then
      redis.call('ZADD', k_pos, to_pos, u)
    end
    redis.call('HSET', k_base, u, to_base)
  end
  local n = #changes
  changes[n + 1], changes[n + 2], changes[n + 3] = u, position or '', tostring(base or '')
  changes[n + 4], changes[n + 5] = tostring(to_pos), tostring(to_base)
end

-- A CHAT everyone has read is forgotten: those at or below the lowest position.
local function forget_read()
  local lowest = redis.call('ZRANGE', k_pos, 0, 0, 'WITHSCORES')
  if #lowest == 0 then
    redis.call('DEL', k_unread, k_mentions)
  else
    redis.call('ZREMRANGEBYSCORE', k_unread, '-inf', lowest[2])
    redis.call('ZREMRANGEBYSCORE', k_mentions, '-inf', lowest[2])
  end
end

-- Every member's mentionCount that is not 0, as "user count user count ..." ('' when none).
local function mention_counts()
  local out = {}
  local fields = redis.call('HGETALL', k_room)
  for i = 1, #fields, 2 do
    local u = string.match(fields[i], '^m:(.*)$')
    if u then
      out[#out + 1] = u .. ' ' .. fields[i + 1]
    end
  end
  return table.concat(out, ' ')
end

-- The newest CHAT after position p that u did not send ('' when none).
local function newest_unread(u, p)
  local offset = 0
  while true do
    local page = redis.call('ZREVRANGEBYSCORE', k_unread, '+inf', '(' .. p, 'LIMIT', offset, 64)
    for _, entry in ipairs(page) do
      local s, sender = string.match(entry, '^(%d+) (.*)$')
      if sender ~= u then
        return s
      end
    end
    if #page < 64 then
      return ''
    end
    offset = offset + 64
  end
end

-- Sets what clients hear of the event, which becomes the room's newest published one.
local function answer(kind, count, last)
  reply = {kind, shown, chats, count, last}
  shown = seq
  for _, c in ipairs(changes) do
    reply[#reply + 1] = c
  end
end

-- Applies operation op, whose arguments are ARGV[a..z], as event seq.
local function apply(op, a, z)
  if op == 'chat' then
    local sender = ARGV[a]
    chats = chats + 1
    local sp = redis.call('ZSCORE', k_pos, sender)
    local unread = redis.call('ZCOUNT', k_pos, '-inf', '(' .. seq)
    if sp and sp ~= 'inf' then
      -- The sender's own message never counts as unread for them.
      local sb = tonumber(redis.call('HGET', k_base, sender) or '0')
      move(sender, sp, sb, sp, sb + 1)
      unread = unread - 1
    end
    if unread > 0 then
      redis.call('ZADD', k_unread, seq, seq .. ' ' .. sender)
    end
    local mentioned = {}
    for i = a + 1, z do
      local u = ARGV[i]
      local p = redis.call('ZSCORE', k_pos, u)
      if u ~= sender and p and p ~= 'inf' then
        redis.call('HINCRBY', k_room, 'm:' .. u, 1)
        mentioned[#mentioned + 1] = u
      end
    end
    if #mentioned > 0 then
      redis.call('ZADD', k_mentions, seq, seq .. ' ' .. table.concat(mentioned, ' '))
    end
    answer('chat', unread, mention_counts())
  elseif op == 'members' then
    for i = a, z do
      local u = ARGV[i]
      if not redis.call('ZSCORE', k_pos, u) then
        local to = redis.call('HEXISTS', k_presence, u) == 1 and 'inf' or seq
        move(u, '', '', to, chats)
      end
    end
    answer('shown', '', '')
  elseif op == 'delete' then
    for i = a, z do
      local s = tonumber(ARGV[i])
      local entry = redis.call('ZRANGEBYSCORE', k_unread, s, s)[1]
      if entry then
        redis.call('ZREM', k_unread, entry)
        local sender = string.match(entry, '^%d+ (.*)$')
        local behind = redis.call('ZRANGEBYSCORE', k_pos, '-inf', '(' .. s, 'WITHSCORES')
        for j = 1, #behind, 2 do
          local u = behind[j]
          if u ~= sender then
            local b = tonumber(redis.call('HGET', k_base, u) or '0')
            move(u, behind[j + 1], b, behind[j + 1], b + 1)
          end
        end
      end
      local mention = redis.call('ZRANGEBYSCORE', k_mentions, s, s)[1]
      if mention then
        redis.call('ZREM', k_mentions, mention)
        for u in string.gmatch(string.match(mention, '^%d+ (.*)$'), '%S+') do
          local p = redis.call('ZSCORE', k_pos, u)
          if p and p ~= 'inf' and tonumber(p) < s then
            if redis.call('HINCRBY', k_room, 'm:' .. u, -1) <= 0 then
              redis.call('HDEL', k_room, 'm:' .. u)
            end
          end
        end
      end
    end
    answer('shown', '', '')
  elseif op == 'show' then
    -- Reactions and edits change no count and no presence: they are only shown in the view.
    answer('shown', '', '')
  elseif op == 'leave' then
    -- Presence stays until the leaver's edges say OUT (a LEAVE ends their subscriptions); it
    -- does not count for a non-member.
    local u = ARGV[a]
    local p = redis.call('ZSCORE', k_pos, u)
    local count = 0
    if p then
      local b = tonumber(redis.call('HGET', k_base, u) or '0')
      if p ~= 'inf' then
        count = chats - b
      end
      move(u, p, b, '', '')
      redis.call('HDEL', k_room, 'm:' .. u)
      forget_read()
    end
    answer('leave', count, '')
  elseif op == 'enter' then
    local u, e = ARGV[a], ARGV[a + 1]
    local edges = redis.call('HGET', k_presence, u)
    if not edges then
      redis.call('HSET', k_presence, u, e)
      local p = redis.call('ZSCORE', k_pos, u)
      if p then
        local b = tonumber(redis.call('HGET', k_base, u) or '0')
        local count, last = 0, ''
        if p ~= 'inf' then
          count = chats - b
          if count > 0 then
            last = newest_unread(u, p)
          end
        end
        move(u, p, b, 'inf', chats)
        redis.call('HDEL', k_room, 'm:' .. u)
        forget_read()
        answer('info', count, last)
      end
    elseif not string.find(' ' .. edges .. ' ', ' ' .. e .. ' ', 1, true) then
      redis.call('HSET', k_presence, u, edges .. ' ' .. e)
    end
  elseif op == 'exit' then
    local u, e = ARGV[a], ARGV[a + 1]
    local edges = redis.call('HGET', k_presence, u)
    if edges then
      local rest = {}
      for edge in string.gmatch(edges, '%S+') do
        if edge ~= e then
          rest[#rest + 1] = edge
        end
      end
      if #rest > 0 then
        redis.call('HSET', k_presence, u, table.concat(rest, ' '))
      else
        redis.call('HDEL', k_presence, u)
        local p = redis.call('ZSCORE', k_pos, u)
        if p then
          local b = tonumber(redis.call('HGET', k_base, u) or '0')
          move(u, p, b, seq, chats)
          answer('out', '', '')
        end
      end
    end
  end
end

local replies, outcomes = {}, {}
local i = 2
while i <= #ARGV do
  local record, op, a = ARGV[i + 1] == '1', ARGV[i + 2], i + 4
  local z = a + tonumber(ARGV[i + 3]) - 1
  seq, i = tonumber(ARGV[i]), z + 1
  if seq <= applied then
    local recorded = redis.call('HGET', k_outcomes, seq)
    replies[#replies + 1] = recorded and cmsgpack.unpack(recorded) or {'none'}
  else
    changes, reply = {}, {'none'}
    apply(op, a, z)
    applied = seq
    if record and reply[1] ~= 'none' then
      outcomes[#outcomes + 1] = seq
      outcomes[#outcomes + 1] = cmsgpack.pack(reply)
    end
    replies[#replies + 1] = reply
  end
end
redis.call('HSET', k_room, 'applied', applied, 'chats', chats, 'shown', shown)
-- In slices: unpack() has a bounded stack.
for j = 1, #outcomes, 256 do
  redis.call('HSET', k_outcomes, unpack(outcomes, j, math.min(j + 255, #outcomes)))
end
return replies
