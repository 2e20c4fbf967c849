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

ALL: tuple[Script, ...] = (PUBLISH,)


def sources() -> tuple[str, ...]:
    """What a command link preloads (L{Link.preload})."""
    return tuple(script.source for script in ALL)
