"""
One room's events on one node, delivered in the order Redis gave them.

Every event a room publishes has a L{Position} in the room's order: an
epoch, the epoch's base and a number (see L{twisted_chat.cluster.scripts}).
A L{RoomOrder} receives events from the room's channel (and from its own
node's publish replies) in whatever order they come, and delivers each once,
in number order:

  - a number already delivered is a duplicate, and dropped;
  - the next number is delivered at once, and then whatever it unblocks;
  - a later number waits, and the order I{catches up}: it reads the room's
    meta hash and its stream from the last delivered number (XRANGE), and
    delivers what it finds.  A number the stream no longer has (trimmed by
    MAXLEN, or lost by Redis) is skipped and reported as lost, so one missing
    line never stops a room;
  - an event of another epoch (Redis lost or may have rolled back the room's
    counter) also makes it catch up: the stream says in what order the
    epochs came, and from which number the new one counts.

A node also catches up when it starts following a room (from the number it
read when its first member joined, before it subscribed, so nothing
published meanwhile is missed) and after every reconnection to Redis (from
the last number it delivered), and so resumes exactly where it stopped.

Delivery may be I{held}: the deliver callback returns C{False} to say it
cannot deliver this event yet (a user event waiting for the node's other
rooms to reach it), and the order waits until L{RoomOrder.release}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_chat.cluster.wire import Position

T = TypeVar("T")

# How many stream entries one catch-up reads at a time.
BATCH = 500


@frozen
class Meta:
    """
    What a room's meta hash says: its current epoch, that epoch's base, its
    last number, and the recent epochs with their bases, oldest first.
    """

    epoch: str
    base: int
    seq: int
    chain: tuple[tuple[str, int], ...] = ()


class Source(Protocol[T]):
    """Where a room's order reads what it missed."""

    def meta(self, room: str) -> Deferred[Meta | None]:
        """The room's meta hash (L{None}: the room has none)."""

    def read(
        self, room: str, after: int, count: int
    ) -> Deferred[list[tuple[Position, T]]]:
        """At most C{count} stream entries numbered after C{after}, in order."""


@define(eq=False)
class RoomOrder(Generic[T]):
    """
    The order of one room on one node.

    @ivar deliver: called with each event in order; returns C{False} to hold
        the order at this event until L{release}.
    @ivar lost: called with how many events could not be recovered.
    """

    room: str
    source: Source[T]
    deliver: Callable[[Position, T], bool]
    lost: Callable[[str, int], None] = lambda room, count: None
    batch: int = BATCH
    epoch: str | None = field(default=None, init=False)
    last: int = field(default=0, init=False)
    # Whether the first catch-up is done: until then everything waits.
    ready: bool = field(default=False, init=False)
    _held: tuple[Position, T] | None = field(default=None, init=False)
    _stash: dict[tuple[str, int], tuple[Position, T]] = field(factory=dict, init=False)
    _retired: set[str] = field(factory=set, init=False)
    # What catching up learnt from the stream: each epoch's base, the order
    # in which the epochs came, and the highest number read in each.
    _bases: dict[str, int] = field(factory=dict, init=False)
    _succession: list[str] = field(factory=list, init=False)
    _top: dict[str, int] = field(factory=dict, init=False)
    _catching: bool = field(default=False, init=False)
    _again: bool = field(default=False, init=False)
    # The stash's entries when the last catch-up ended: if nothing new has
    # come since and they still cannot be placed, the stream cannot help.
    _settled: set[tuple[str, int]] = field(factory=set, init=False)
    closed: bool = field(default=False, init=False)

    log = Logger()

    def begin(self, meta: Meta | None) -> None:
        """Start after what C{meta} (read before subscribing) says."""
        if meta is None:
            self.epoch, self.last = None, 0
        else:
            self.epoch, self.last = meta.epoch, meta.seq

    def offer(self, position: Position, item: T) -> None:
        """An event of this room, from the channel or a publish reply."""
        if self.closed or position.epoch in self._retired:
            return
        if position.epoch == self.epoch and position.seq <= self.last:
            return
        if (
            self.ready
            and self._held is None
            and position.epoch == self.epoch
            and position.seq == self.last + 1
            and not self._stash
        ):
            self._deliver(position, item)
            return
        self._stash[position.epoch, position.seq] = (position, item)
        self._settle()

    def release(self) -> None:
        """The held event has been delivered: go on."""
        held, self._held = self._held, None
        if held is not None:
            self._advance(held[0])
            self._settle()

    def close(self) -> None:
        """The node no longer follows this room."""
        self.closed = True
        self._stash.clear()
        self._held = None

    def catch_up(self) -> Deferred[None]:
        """
        Read what the stream has after the last delivered event, and deliver
        it.  Fires when done (a failure to read is logged, and the order
        waits for the next catch-up).
        """
        if self._catching:
            self._again = True
            return Deferred.fromCoroutine(_nothing())
        self._catching = True
        return Deferred.fromCoroutine(self._catch_up()).addErrback(self._failed)

    # Inside

    def _failed(self, failure: Failure) -> None:
        self._catching = False
        self._again = False
        self.log.info(
            "room {room}: cannot catch up now ({why}); will when Redis is back",
            room=self.room,
            why=failure.getErrorMessage(),
        )

    async def _catch_up(self) -> None:
        while True:
            self._again = False
            meta = await self.source.meta(self.room)
            after = self._start(meta)
            while after is not None and not self.closed:
                entries = await self.source.read(self.room, after, self.batch)
                for position, item in entries:
                    self._learn(position)
                    if position.epoch in self._retired or (
                        position.epoch == self.epoch and position.seq <= self.last
                    ):
                        continue
                    self._stash[position.epoch, position.seq] = (position, item)
                after = entries[-1][0].seq if len(entries) == self.batch else None
            if not self._again or self.closed:
                break
        self._catching = False
        self.ready = True
        self._settled = set(self._stash)
        self._settle()

    def _start(self, meta: Meta | None) -> int | None:
        """Where reading the stream starts, or L{None} if there is nothing."""
        if meta is None:
            return None
        for epoch, base in meta.chain:
            self._bases.setdefault(epoch, base)
        self._bases.setdefault(meta.epoch, meta.base)
        if self.epoch is None:
            return 0
        if meta.epoch == self.epoch:
            return self.last
        # Another epoch: its events may be numbered from below our last one
        # (after a rollback), from its base on.
        epochs = [epoch for epoch, _ in meta.chain]
        later = (
            meta.chain[epochs.index(self.epoch) + 1 :]
            if self.epoch in epochs
            else meta.chain
        )
        return min([self.last, meta.base, *(base for _, base in later)])

    def _learn(self, position: Position) -> None:
        if position.epoch not in self._succession:
            self._succession.append(position.epoch)
            del self._succession[:-16]
        self._bases.setdefault(position.epoch, position.base)
        self._top[position.epoch] = max(self._top.get(position.epoch, 0), position.seq)

    def _deliver(self, position: Position, item: T) -> None:
        if self.deliver(position, item) is False:
            self._held = (position, item)
            return
        self._advance(position)

    def _advance(self, position: Position) -> None:
        if position.epoch != self.epoch:
            # Only through _switch; a held event of a new epoch lands here.
            self.epoch = position.epoch
        self.last = position.seq

    def _settle(self) -> None:
        while self.ready and self._held is None and not self.closed:
            nxt = (
                self._stash.pop((self.epoch, self.last + 1), None)
                if self.epoch
                else None
            )
            if nxt is not None:
                self._deliver(*nxt)
                continue
            self._drop_stale()
            if not self._stash:
                return
            if self._skip_gap() or self._switch():
                continue
            if set(self._stash) <= self._settled:
                # Caught up already, and the stream could not place these:
                # take them as they say.
                self._force()
                continue
            if not self._catching:
                self.catch_up()
            return

    def _drop_stale(self) -> None:
        for key in [
            key
            for key in self._stash
            if key[0] in self._retired or (key[0] == self.epoch and key[1] <= self.last)
        ]:
            del self._stash[key]

    def _current(self) -> list[int]:
        return [seq for epoch, seq in self._stash if epoch == self.epoch]

    def _skip_gap(self) -> bool:
        """Skip numbers the stream was read past and did not have."""
        current = self._current()
        if not current or self.epoch is None:
            return False
        first = min(current)
        if self._top.get(self.epoch, -1) < first:
            return False
        self._lose(first - self.last - 1)
        self.last = first - 1
        return True

    def _switch(self) -> bool:
        """Move to the epoch that follows ours, once the stream has shown it."""
        if self._current():
            return False
        candidates = {epoch for epoch, _ in self._stash}
        if self.epoch is None and (position := self._brand_new()) is not None:
            # Nothing before, and this is the very first event of the room.
            self._enter(position.epoch, 0)
            return True
        order = self._succession
        after = order[order.index(self.epoch) + 1 :] if self.epoch in order else order
        for epoch in after:
            if epoch in candidates and epoch in self._bases:
                self._enter(epoch, self._bases[epoch])
                return True
        return False

    def _brand_new(self) -> Position | None:
        for position, _ in self._stash.values():
            if position.base == 0 and position.seq == 1:
                return position
        return None

    def _force(self) -> None:
        current = self._current()
        if current:
            first = min(current)
            self._lose(first - self.last - 1)
            self.last = first - 1
            return
        position = min((p for p, _ in self._stash.values()), key=lambda p: p.base)
        self._enter(position.epoch, position.base)

    def _enter(self, epoch: str, base: int) -> None:
        if self.epoch is not None:
            self._retired.add(self.epoch)
            if base > self.last:
                self._lose(base - self.last)
        self.log.info(
            "room {room}: Redis started a new order (epoch {epoch} from {base})",
            room=self.room,
            epoch=epoch,
            base=base,
        )
        self.epoch, self.last = epoch, base

    def _lose(self, count: int) -> None:
        if count > 0:
            self.log.warn(
                "room {room}: {count} event(s) could not be recovered from Redis",
                room=self.room,
                count=count,
            )
            self.lost(self.room, count)


async def _nothing() -> None:
    return None
