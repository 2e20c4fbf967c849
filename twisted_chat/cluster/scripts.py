"""
The Lua scripts the cluster runs in Redis, and how they are run.

A script runs by its SHA1 (EVALSHA).  Every script is loaded (SCRIPT LOAD)
when a link connects, before it is up (L{sources} is what to give as
L{twisted_chat.cluster.link.Link.preload}), so that after a Redis restart no
EVALSHA meets an empty script cache; one that still does (an operator's
SCRIPT FLUSH) falls back to EVAL, which also caches the script again.  (Two
publishes that both fell back could otherwise run in another order than
they were sent: the preload is what keeps one node's lines in order.)
"""

from __future__ import annotations

import hashlib

from attrs import field, frozen
from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from twisted_chat.cluster.link import Link, RedisReplyError, Reply

Arg = bytes | str | int | float


@frozen
class Script:
    """One Lua script."""

    name: str
    source: str
    sha: str = field(init=False)

    @sha.default
    def _sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()

    def run(self, link: Link, keys: list[str], args: list[Arg]) -> Deferred[Reply]:
        """Run the script with C{keys} and C{args}; its reply."""
        d = link.command("EVALSHA", self.sha, len(keys), *keys, *args)

        def missing(failure: Failure) -> Deferred[Reply]:
            if failure.check(RedisReplyError) and "NOSCRIPT" in str(failure.value):
                return link.command("EVAL", self.source, len(keys), *keys, *args)
            return fail(failure)

        return d.addErrback(missing)


# Publish one event in the order of each of its rooms (one for a room event,
# every room a quit or a rename counts in), atomically:
#
# - a room whose order is unknown (new, or lost by Redis) starts a new epoch
#   at 0, and any stream left of an older one is deleted;
# - a room last written by another run of Redis (it restarted, from a
#   snapshot that may be older than what the nodes saw) starts a new epoch at
#   its stored number, so that a number given again after a rollback is
#   never taken for one a node has already delivered;
# - the room's next number is given to the event, which is appended to the
#   room's stream (XADD with that number as its ID, MAXLEN ~) and published
#   on the room's channel, as a frame whose header gives every room's place.
#
# KEYS: each room's meta hash and stream, in the event's order.
# ARGV: the event (encoded with its numbers at 0), Redis's run_id, a new
#       epoch name, the streams' MAXLEN, their time to live in seconds (0:
#       none), then each room's channel.
# Returns the frame's header.
PUBLISH = Script(
    "publish",
    r"""
local payload, run_id, fresh = ARGV[1], ARGV[2], ARGV[3]
local maxlen, ttl = ARGV[4], tonumber(ARGV[5])
local n = #KEYS / 2
local header = '1'
local seqs = {}
for i = 1, n do
  local meta, stream = KEYS[2 * i - 1], KEYS[2 * i]
  local m = redis.call('HMGET', meta, 'e', 'b', 's', 'r', 'h')
  local epoch, base, seq, chain = m[1], tonumber(m[2]), tonumber(m[3]), m[5]
  if not epoch then
    epoch, base, seq, chain = fresh, 0, 0, ''
    redis.call('DEL', stream)
  elseif m[4] ~= run_id then
    epoch, base = fresh, seq
  end
  if m[4] ~= run_id then
    local epochs = {}
    for item in string.gmatch((chain or '') .. ' ' .. epoch .. ':' ..
        string.format('%d', base), '%S+') do
      epochs[#epochs + 1] = item
    end
    chain = table.concat(epochs, ' ', math.max(1, #epochs - 7))
  end
  seq = seq + 1
  seqs[i] = string.format('%d', seq)
  redis.call('HSET', meta, 'e', epoch, 'b', string.format('%d', base),
             's', seqs[i], 'r', run_id, 'h', chain)
  header = header .. ' ' .. epoch .. ':' .. string.format('%d', base) .. ':' .. seqs[i]
end
local frame = header .. '\n' .. payload
for i = 1, n do
  local stream = KEYS[2 * i]
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, seqs[i] .. '-0', 'f', frame)
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[2 * i - 1], ttl)
    redis.call('EXPIRE', stream, ttl)
  end
  redis.call('PUBLISH', ARGV[5 + i], frame)
end
return header
""",
)


# The directory (see directory.py).  A nick key holds "<node> <details>";
# a room's members hash holds "<node> <details>" per nick key.

# Claim a nickname for a node: SET NX with an expiry.  Claiming again
# (after a reconnection), a node that still holds it refreshes it; a new
# claim of a name the node holds fails (another of its users has it).
# KEYS: the nick key.  ARGV: node, value, ttl, '1' to claim again.
# Returns 1 if the node holds it now, else the holder's value.
CLAIM = Script(
    "claim",
    r"""
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then
  return 1
end
local held = redis.call('GET', KEYS[1])
if ARGV[4] == '1' and held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return held or 0
""",
)

# Replace a nickname's details if the node holds it.  KEYS: the nick key.
# ARGV: node, value.  Returns 1 if done.
UPDATE = Script(
    "update",
    r"""
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
""",
)

# Release a nickname if the node holds it (not one another node took after
# ours expired).  KEYS: the nick key.  ARGV: node.
RELEASE = Script(
    "release",
    r"""
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
""",
)

# Refresh many nick keys at once.  KEYS: nick keys.  ARGV: ttl.  Returns one
# 1 or 0 per key: 0 means the key had expired.
REFRESH = Script(
    "refresh",
    r"""
local done = {}
for i, key in ipairs(KEYS) do
  done[i] = redis.call('EXPIRE', key, ARGV[1])
end
return done
""",
)

# A member joins a room (or is listed again).  KEYS: members hash, members
# order (sorted set), rooms hash, room info hash, the node's rooms set.
# ARGV: room key, nick key, value, room display name.  Returns 1 if the room
# was empty before (its first member is its operator).
JOIN = Script(
    "join",
    r"""
local created = 0
if redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) == 1 then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], 'NX', tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[2])
  if redis.call('HINCRBY', KEYS[3], ARGV[1], 1) == 1 then
    created = 1
    redis.call('DEL', KEYS[4])
  end
end
redis.call('HSETNX', KEYS[4], 'name', ARGV[4])
redis.call('SADD', KEYS[5], ARGV[1])
return created
""",
)

# A member of this node leaves a room (not a member of the same name on
# another node, after this node lost the name).  KEYS: members hash,
# members order, rooms hash, room info hash.  ARGV: room key, nick key,
# node.  Returns 1 if they were there.
PART = Script(
    "part",
    r"""
local held = redis.call('HGET', KEYS[1], ARGV[2])
if not held or string.sub(held, 1, #ARGV[3] + 1) ~= ARGV[3] .. ' ' then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('DEL', KEYS[4])
end
return 1
""",
)

# A node's heartbeat: note it alive (by Redis's clock, so that the nodes'
# clocks do not matter), and take out of every room the members of the
# nodes whose heartbeat is older than ttl seconds.  KEYS: the nodes sorted
# set.  ARGV: key prefix, ttl, this node (or '' to only reap).
# Returns {1 if this node was not listed (new, or reaped), then for each
# member taken out: node, room key, nick key, value}.
BEAT = Script(
    "beat",
    r"""
local prefix, ttl, me = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local result = {0}
if me ~= '' then
  result[1] = redis.call('ZADD', KEYS[1], now, me)
end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do
  local rooms_key = prefix .. 'n:' .. node .. ':rooms'
  for _, room in ipairs(redis.call('SMEMBERS', rooms_key)) do
    local members = prefix .. 'r:' .. room .. ':members'
    local all = redis.call('HGETALL', members)
    for i = 1, #all, 2 do
      local nick, value = all[i], all[i + 1]
      if string.sub(value, 1, #node + 1) == node .. ' ' then
        redis.call('HDEL', members, nick)
        redis.call('ZREM', prefix .. 'r:' .. room .. ':order', nick)
        if redis.call('HINCRBY', prefix .. 'rooms', room, -1) <= 0 then
          redis.call('HDEL', prefix .. 'rooms', room)
          redis.call('DEL', prefix .. 'r:' .. room .. ':info')
        end
        for _, item in ipairs({node, room, nick, value}) do
          result[#result + 1] = item
        end
      end
    end
  end
  redis.call('DEL', rooms_key)
  redis.call('ZREM', KEYS[1], node)
end
return result
""",
)

ALL: tuple[Script, ...] = (PUBLISH, CLAIM, UPDATE, RELEASE, REFRESH, JOIN, PART, BEAT)


def sources() -> tuple[str, ...]:
    """What a command link preloads (L{Link.preload})."""
    return tuple(script.source for script in ALL)
