"""
Who waits for whom when readers fall behind.

A connection is I{behind} while its transport has paused it (the peer's
socket buffer is full, and more output waits in our queue).  Two cases call
for opposite answers, and the rules below tell them apart by the readers'
progress, never by how long they have been behind:

  1. B{Most of a room's readers are behind at once: the input is too fast.}
     The room is I{throttled}: after each chunk of input, a connection in a
     throttled room is not read again until the room catches up (all its
     readers but one in ten, at most one in a small room), so TCP pushes
     back on the senders.  Their lines are delayed, not lost, and nobody is
     disconnected for it.
  2. B{One reader is behind while the others keep up: that is its problem.}
     It never holds the others up, and it is disconnected when its queue
     has stayed past the send queue limit for L{SENDQ_GRACE} seconds (IRC's
     I{sendq} rule, with the time for the room to show whether the others
     keep up), whether it stopped reading or reads far slower than the room
     talks; at once past L{THROTTLED_QUEUE_FACTOR} times the limit.

A reader counts towards rule 1 only while it makes progress: one that has
drained nothing for L{STALL_TIMEOUT} seconds has stopped reading, and no
longer holds anybody up.  Progress is the bytes its transport has written to
the socket, measured with L{twisted_chat.server.fastwrite.unsent_bytes}, or,
where that cannot be measured, the transport resuming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from attrs import define, field
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

# How long a reader that is behind may drain nothing before it is taken for
# one that stopped reading.
STALL_TIMEOUT = 2.0

# How often a reader that is behind is checked for progress.
PROGRESS_CHECK = 0.5

# How long the queue of a reader that keeps draining may stay over the send
# queue limit while its room is not throttled, before the reader is taken for
# one that reads slower than its room.  The server cannot see how much the
# other readers' kernels hold for them: a room whose readers are all too
# slow shows them behind one after the other, and this gives the room the
# time to show it.
SENDQ_GRACE = 2.0

# How far past the send queue limit a queue may grow at all (while its room
# is throttled, or within the grace above).  Past this, memory comes first
# and the reader is disconnected anyway.
THROTTLED_QUEUE_FACTOR = 4

# How many operations may wait upstream of delivery (lines waiting for the
# history's commit) before input is held until they are delivered: a writer
# that stalls must not make the next commit's lines land on every reader at
# once.  And how often held input looks again.
UPSTREAM_LIMIT = 1000
UPSTREAM_CHECK = 0.005

# A room's throttling is logged when it starts, and then at most this often.
THROTTLE_LOG_INTERVAL = 60.0


class Reader(Protocol):
    """What L{Backpressure} needs of a connection."""

    peer: str

    def room_keys(self) -> Iterable[str]:
        """The keys of the rooms this connection is in."""

    def unsent(self) -> int | None:
        """Bytes its transport has not yet written to the socket, if known."""

    def hold_input(self, hold: bool) -> None:
        """Stop, or start again, reading this connection's input."""


@define(eq=False)
class _Behind:
    """What is known of one reader while it is behind."""

    rooms: tuple[str, ...]
    unsent: int | None
    last_progress: float
    check: IDelayedCall | None = None
    stalled: bool = False
    # Since when its queue has been over the limit outside a throttled room.
    over_since: float | None = None


@define(eq=False)
class Backpressure:
    """
    The rules above, for every connection of one server.

    @ivar room_size: how many members a room (by key) has.
    """

    clock: IReactorTime
    room_size: Callable[[str], int]
    # How many operations wait upstream of delivery (see UPSTREAM_LIMIT).
    upstream: Callable[[], int] = lambda: 0
    stall_timeout: float = STALL_TIMEOUT
    behind: dict[Reader, _Behind] = field(factory=dict, init=False)
    # Per room key: its members that are behind and still draining.
    counts: dict[str, int] = field(factory=dict, init=False)
    held: set[Reader] = field(factory=set, init=False)
    throttled_rooms: set[str] = field(factory=set, init=False)
    _upstream_check: IDelayedCall | None = field(default=None, init=False)
    _throttle_logged: dict[str, float] = field(factory=dict, init=False)

    log = Logger()

    # What the connections report

    def fell_behind(self, reader: Reader) -> None:
        """C{reader}'s transport paused it: its peer is not keeping up."""
        if reader in self.behind:
            return
        now = self.clock.seconds()
        state = _Behind(tuple(reader.room_keys()), reader.unsent(), now)
        self.behind[reader] = state
        state.check = self.clock.callLater(PROGRESS_CHECK, self._check, reader)
        self._count(state.rooms, +1)

    def gone(self, reader: Reader) -> None:
        """C{reader}'s connection is closed."""
        self.held.discard(reader)
        self.caught_up(reader)

    def caught_up(self, reader: Reader) -> None:
        """C{reader}'s transport resumed it: its buffer drained."""
        state = self.behind.pop(reader, None)
        if state is None:
            return
        if state.check is not None and state.check.active():
            state.check.cancel()
        if not state.stalled:
            self._count(state.rooms, -1)

    # What the connections ask

    def throttled(self, key: str) -> bool:
        """
        Whether room C{key} is throttled (rule 1): from when most of its
        readers are behind until nearly all have caught up.
        """
        return key in self.throttled_rooms

    def warm(self, reader: Reader) -> bool:
        """Whether any reader of any of C{reader}'s rooms is behind."""
        counts = self.counts
        return bool(counts) and any(key in counts for key in reader.room_keys())

    def in_throttled_room(self, reader: Reader) -> bool:
        """Whether C{reader} is in a throttled room."""
        return any(self.throttled(key) for key in reader.room_keys())

    def stalled(self, reader: Reader) -> bool:
        """Whether C{reader} is behind and has stopped draining."""
        state = self.behind.get(reader)
        return state is not None and state.stalled

    def after_input(self, reader: Reader) -> None:
        """
        C{reader}'s input has been handled: hold its further input while it
        is in a throttled room.
        """
        if reader in self.held:
            return
        if self.in_throttled_room(reader):
            self.held.add(reader)
            reader.hold_input(True)
        elif self.upstream() > UPSTREAM_LIMIT:
            self.held.add(reader)
            reader.hold_input(True)
            if self._upstream_check is None:
                self._upstream_check = self.clock.callLater(
                    UPSTREAM_CHECK, self._check_upstream
                )

    def may_queue(self, reader: Reader, queued: int, limit: int) -> str | None:
        """
        Whether a reader that is behind may keep C{queued} bytes waiting,
        with a send queue limit of C{limit}: L{None} if so, else why not.
        """
        state = self.behind.get(reader)
        if queued <= limit or state is None:
            if state is not None:
                state.over_since = None
            return None
        if state.stalled:
            return "it stopped reading"
        if queued > THROTTLED_QUEUE_FACTOR * limit:
            return "its queue passed the hard limit"
        if self.in_throttled_room(reader):
            state.over_since = None
            return None
        now = self.clock.seconds()
        if state.over_since is None:
            state.over_since = now
        if now - state.over_since >= SENDQ_GRACE:
            return "it reads slower than its room"
        return None

    # Inside

    def _count(self, rooms: tuple[str, ...], delta: int) -> None:
        released = False
        for key in rooms:
            count = self.counts.get(key, 0) + delta
            if count > 0:
                self.counts[key] = count
            else:
                self.counts.pop(key, None)
            size = self.room_size(key)
            if key not in self.throttled_rooms:
                if count > 0 and 2 * count > size:
                    self.throttled_rooms.add(key)
                    self._log_throttle(key)
            elif count == 0 or count <= min(size - 1, max(1, size // 10)):
                # Hysteresis: a room whose readers read in turns (each
                # behind until its next read) would otherwise be let go as
                # soon as half of them had read, and the senders' held-back
                # lines would pile up on the other half.
                self.throttled_rooms.discard(key)
                released = True
        if released and self.held:
            self._release()

    def _check_upstream(self) -> None:
        self._upstream_check = None
        if self.upstream() > UPSTREAM_LIMIT:
            self._upstream_check = self.clock.callLater(
                UPSTREAM_CHECK, self._check_upstream
            )
            return
        self._release()

    def _release(self) -> None:
        """Read again from held connections no longer in a throttled room."""
        if self._upstream_check is not None:
            return
        for reader in [r for r in self.held if not self.in_throttled_room(r)]:
            self.held.discard(reader)
            reader.hold_input(False)

    def _check(self, reader: Reader) -> None:
        state = self.behind.get(reader)
        if state is None:
            return
        state.check = None
        now = self.clock.seconds()
        unsent = reader.unsent()
        if unsent is not None and state.unsent is not None and unsent < state.unsent:
            state.last_progress = now
        state.unsent = unsent
        if now - state.last_progress >= self.stall_timeout:
            state.stalled = True
            self.log.info(
                "{peer} has drained nothing for {seconds:g} s: it stopped "
                "reading, holds nobody's input any more, and is disconnected "
                "if its send queue passes the limit",
                peer=reader.peer,
                seconds=self.stall_timeout,
            )
            self._count(state.rooms, -1)
            return
        state.check = self.clock.callLater(PROGRESS_CHECK, self._check, reader)

    def _log_throttle(self, key: str) -> None:
        now = self.clock.seconds()
        last = self._throttle_logged.get(key)
        if last is not None and now - last < THROTTLE_LOG_INTERVAL:
            return
        if len(self._throttle_logged) > 100:
            # Forget rooms not throttled lately, so the record stays small.
            self._throttle_logged = {
                room: when
                for room, when in self._throttle_logged.items()
                if now - when < THROTTLE_LOG_INTERVAL
            }
        self._throttle_logged[key] = now
        self.log.info(
            "most readers of room {room} are behind ({behind} of {size}): its "
            "input is too fast, and its senders are read more slowly until "
            "the readers catch up; nobody is disconnected for it",
            room=key,
            behind=self.counts.get(key, 0),
            size=self.room_size(key),
        )
