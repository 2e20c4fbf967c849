"""
Tests for L{twisted_chat.cluster.ordering.RoomOrder}: delivery in Redis's
order whatever order events come in, with a stream in memory.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import property_settings
from twisted_chat.cluster.ordering import Meta, RoomOrder
from twisted_chat.cluster.wire import Position


class FakeStream:
    """A room's meta and stream in memory; reads can be made to wait."""

    def __init__(self) -> None:
        self.entries: list[tuple[Position, str]] = []
        self.meta_value: Meta | None = None
        self.reads: list[int] = []
        self.paused: list[Deferred[None]] | None = None

    def add(
        self, epoch: str, base: int, seq: int, chain: tuple[tuple[str, int], ...] = ()
    ) -> tuple[Position, str]:
        entry = (Position(epoch, base, seq), f"{epoch}{seq}")
        self.entries.append(entry)
        self.meta_value = Meta(epoch, base, seq, chain or ((epoch, base),))
        return entry

    def meta(self, room: str) -> Deferred[Meta | None]:
        return self._maybe_wait(self.meta_value)

    def read(
        self, room: str, after: int, count: int
    ) -> Deferred[list[tuple[Position, str]]]:
        self.reads.append(after)
        found = [entry for entry in self.entries if entry[0].seq > after]
        found.sort(key=lambda entry: entry[0].seq)
        return self._maybe_wait(found[:count])

    def _maybe_wait(self, value: object) -> Deferred:  # type: ignore[type-arg]
        if self.paused is None:
            return succeed(value)
        d: Deferred[None] = Deferred()
        self.paused.append(d)
        return d.addCallback(lambda _: value)

    def go(self) -> None:
        paused, self.paused = self.paused or [], None
        for d in paused:
            d.callback(None)


class Harness:
    """A RoomOrder over a FakeStream, recording what it delivers."""

    def __init__(self, batch: int = 500) -> None:
        self.stream = FakeStream()
        self.delivered: list[str] = []
        self.losses: list[int] = []
        self.hold: set[str] = set()
        self.order: RoomOrder[str] = RoomOrder(
            "room",
            self.stream,
            self._deliver,
            lambda room, n: self.losses.append(n),
            batch,
        )

    def _deliver(self, position: Position, item: str) -> bool:
        self.delivered.append(item)
        return item not in self.hold

    def start(self) -> None:
        self.order.begin(self.stream.meta_value)
        self.order.catch_up()

    def offer(self, entry: tuple[Position, str]) -> None:
        self.order.offer(*entry)


class OrderTests(SynchronousTestCase):
    """The rules, one at a time."""

    def test_in_order(self) -> None:
        """Events in order are delivered at once, duplicates dropped."""
        h = Harness()
        h.start()
        one, two = h.stream.add("e", 0, 1), h.stream.add("e", 0, 2)
        h.offer(one)
        h.offer(one)
        h.offer(two)
        h.offer(one)
        self.assertEqual(h.delivered, ["e1", "e2"])
        # A room with no meta has no stream to read.
        self.assertEqual(h.stream.reads, [])

    def test_starts_after_begin(self) -> None:
        """Events numbered up to the start are not delivered."""
        h = Harness()
        old = h.stream.add("e", 0, 1)
        h.start()
        h.offer(old)
        h.offer(h.stream.add("e", 0, 2))
        self.assertEqual(h.delivered, ["e2"])

    def test_nothing_before_ready(self) -> None:
        """Until the first catch-up is done, events wait."""
        h = Harness()
        h.stream.paused = []
        h.start()
        h.offer(h.stream.add("e", 0, 1))
        self.assertEqual(h.delivered, [])
        h.stream.go()
        self.assertEqual(h.delivered, ["e1"])

    def test_catch_up_at_start(self) -> None:
        """What was published between begin and subscribing is read from the
        stream."""
        h = Harness()
        h.stream.add("e", 0, 1)
        h.order.begin(h.stream.meta_value)
        h.stream.add("e", 0, 2)
        h.stream.add("e", 0, 3)
        h.order.catch_up()
        self.assertEqual(h.delivered, ["e2", "e3"])

    def test_out_of_order(self) -> None:
        """A later event waits while the missing one is read from the stream."""
        h = Harness()
        h.start()
        one, two, three = (h.stream.add("e", 0, n) for n in (1, 2, 3))
        h.stream.paused = []
        h.offer(three)
        self.assertEqual(h.delivered, [])
        h.offer(one)
        self.assertEqual(h.delivered, ["e1"])
        h.stream.go()
        self.assertEqual(h.delivered, ["e1", "e2", "e3"])
        h.offer(two)
        self.assertEqual(h.delivered, ["e1", "e2", "e3"])

    def test_gap_filled(self) -> None:
        """A gap is filled from the stream without waiting for the channel."""
        h = Harness()
        h.start()
        h.stream.add("e", 0, 1)
        h.stream.add("e", 0, 2)
        h.offer(h.stream.add("e", 0, 3))
        self.assertEqual(h.delivered, ["e1", "e2", "e3"])
        self.assertEqual(h.losses, [])

    def test_gap_lost(self) -> None:
        """A number the stream no longer has is skipped and reported."""
        h = Harness()
        h.start()
        h.stream.add("e", 0, 1)
        three = h.stream.add("e", 0, 3)
        h.offer(three)
        self.assertEqual(h.delivered, ["e1", "e3"])
        self.assertEqual(h.losses, [1])

    def test_resume(self) -> None:
        """Catching up after a reconnection delivers exactly what was missed."""
        h = Harness()
        h.start()
        h.offer(h.stream.add("e", 0, 1))
        h.stream.add("e", 0, 2)
        h.stream.add("e", 0, 3)
        h.order.catch_up()
        h.offer(h.stream.add("e", 0, 4))
        h.order.catch_up()
        self.assertEqual(h.delivered, ["e1", "e2", "e3", "e4"])
        self.assertEqual(h.stream.reads[-1], 4)

    def test_batches(self) -> None:
        """A long catch-up reads the stream in batches."""
        h = Harness(batch=2)
        h.start()
        for n in range(1, 6):
            h.stream.add("e", 0, n)
        h.order.catch_up()
        self.assertEqual(h.delivered, ["e1", "e2", "e3", "e4", "e5"])
        self.assertEqual(h.stream.reads, [0, 2, 4])

    def test_new_room(self) -> None:
        """A room with no meta yet starts with its first event."""
        h = Harness()
        h.start()
        h.offer(h.stream.add("e", 0, 1))
        self.assertEqual(h.delivered, ["e1"])

    def test_clean_restart(self) -> None:
        """Redis restarted with its data: a new epoch from our last number."""
        h = Harness()
        h.start()
        h.offer(h.stream.add("a", 0, 1))
        h.offer(h.stream.add("b", 1, 2, chain=(("a", 0), ("b", 1))))
        self.assertEqual(h.delivered, ["a1", "b2"])
        self.assertEqual((h.order.epoch, h.order.last), ("b", 2))
        self.assertEqual(h.losses, [])

    def test_missed_across_restart(self) -> None:
        """Events of the old epoch missed before the restart come first."""
        h = Harness()
        h.start()
        h.offer(h.stream.add("a", 0, 1))
        h.stream.add("a", 0, 2)
        h.offer(h.stream.add("b", 2, 3, chain=(("a", 0), ("b", 2))))
        self.assertEqual(h.delivered, ["a1", "a2", "b3"])

    def test_rollback(self) -> None:
        """
        Redis came back from an older snapshot: numbers are given again in a
        new epoch, and delivered although we delivered the same numbers in
        the old one.
        """
        h = Harness()
        h.start()
        for n in (1, 2, 3):
            h.offer(h.stream.add("a", 0, n))
        # The snapshot had only a1; a2 and a3 are gone from Redis.
        h.stream.entries = h.stream.entries[:1]
        chain = (("a", 0), ("b", 1))
        h.stream.add("b", 1, 2, chain)
        h.offer(h.stream.add("b", 1, 3, chain))
        self.assertEqual(h.delivered, ["a1", "a2", "a3", "b2", "b3"])
        h.offer(h.stream.entries[1])
        self.assertEqual(len(h.delivered), 5)
        self.assertEqual(h.losses, [])

    def test_data_lost(self) -> None:
        """Redis lost everything: a new epoch from 0, whatever we had."""
        h = Harness()
        h.start()
        h.offer(h.stream.add("a", 0, 1))
        h.offer(h.stream.add("a", 0, 2))
        h.stream.entries = []
        h.offer(h.stream.add("c", 0, 1))
        self.assertEqual(h.delivered, ["a1", "a2", "c1"])
        h.offer(h.stream.add("a", 0, 3))
        self.assertEqual(h.delivered, ["a1", "a2", "c1"])

    def test_hold(self) -> None:
        """A held event stops the order until it is released."""
        h = Harness()
        h.start()
        h.hold.add("e1")
        h.offer(h.stream.add("e", 0, 1))
        h.offer(h.stream.add("e", 0, 2))
        self.assertEqual(h.delivered, ["e1"])
        h.order.release()
        self.assertEqual(h.delivered, ["e1", "e2"])

    def test_closed(self) -> None:
        """A closed order delivers nothing more."""
        h = Harness()
        h.start()
        h.order.close()
        h.offer(h.stream.add("e", 0, 1))
        self.assertEqual(h.delivered, [])

    def test_read_fails(self) -> None:
        """A failed catch-up leaves the events waiting for the next one."""
        h = Harness()
        h.start()
        h.stream.add("e", 0, 1)
        failing: Deferred[list[tuple[Position, str]]] = Deferred()
        real = h.stream.read
        h.stream.read = lambda room, after, count: failing  # type: ignore[method-assign]
        h.offer(h.stream.add("e", 0, 2))
        failing.errback(ConnectionError("gone"))
        self.assertEqual(h.delivered, [])
        h.stream.read = real  # type: ignore[method-assign]
        h.order.catch_up()
        self.assertEqual(h.delivered, ["e1", "e2"])


class PropertyTests(SynchronousTestCase):
    """Whatever the order of arrival, each event once, in order."""

    @property_settings
    @given(
        st.integers(min_value=1, max_value=30),
        st.integers(min_value=0, max_value=30),
        st.randoms(use_true_random=False),
        st.floats(min_value=0, max_value=1),
    )
    def test_any_arrival(
        self, count: int, restart_at: int, rnd: object, drop: float
    ) -> None:
        """
        Events (with an epoch change somewhere) arrive shuffled, duplicated
        and some not at all; every one is delivered exactly once, in order.
        """
        import random

        assert isinstance(rnd, random.Random)
        h = Harness()
        h.start()
        entries = []
        for n in range(1, count + 1):
            if n <= restart_at or restart_at == 0:
                entries.append(h.stream.add("a", 0, n, (("a", 0),)))
            else:
                entries.append(
                    h.stream.add("b", restart_at, n, (("a", 0), ("b", restart_at)))
                )
        arrivals = [e for e in entries if rnd.random() >= drop] + rnd.sample(
            entries, count // 3
        )
        rnd.shuffle(arrivals)
        for entry in arrivals:
            h.offer(entry)
        h.order.catch_up()
        self.assertEqual(h.delivered, [item for _, item in entries])
        self.assertEqual(h.losses, [])
