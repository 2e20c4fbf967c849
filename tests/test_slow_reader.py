"""
Tests for slow readers: a client whose transport has paused the protocol
(the peer stopped reading) gets nothing more written while the others get
every line; its output waits in a queue, written as one write when it reads
again, and a queue that grows past C{max_send_queue} disconnects it.
"""

from __future__ import annotations

from twisted.logger import formatEvent
from twisted.trial.unittest import SynchronousTestCase

from tests.test_limits import Server, capture_log
from twisted_chat.server.backpressure import SENDQ_GRACE, STALL_TIMEOUT
from twisted_chat.server.limits import Limits


class SlowReaderTests(SynchronousTestCase):
    """A client that does not read cannot hold up the others or the server."""

    def setUp(self) -> None:
        self.server = Server(Limits(flood_rate=0, max_send_queue=1000))
        self.alice = self.server.connect("alice")
        self.bob = self.server.connect("bob")
        self.slow = self.server.connect("slow")

    def test_registered(self) -> None:
        """The protocol is a streaming producer on its transport."""
        transport = self.slow.transport
        self.assertIs(transport.producer, self.slow.protocol)
        self.assertTrue(transport.streaming)

    def test_paused(self) -> None:
        """
        Nothing is written to a paused client; the others get every line.
        """
        self.slow.stop_reading()
        for i in range(10):
            self.alice.type(f"line {i}")
            self.assertEqual(self.bob.take(), [f"<alice> line {i}"])
        self.assertEqual(self.slow.transport.writes, [])
        self.assertFalse(self.slow.closing)

    def test_resumed(self) -> None:
        """When it reads again, the queue is written in order, as one write."""
        self.slow.stop_reading()
        self.alice.type("one")
        self.bob.type("two")
        self.alice.send(b"/msg slow three\n")
        self.slow.start_reading()
        self.assertEqual(
            self.slow.transport.writes,
            [b"<alice> one\n<bob> two\n*alice* three\n"],
        )
        self.slow.take()
        self.alice.type("four")
        self.assertEqual(self.slow.take(), ["<alice> four"])

    def test_resumed_twice(self) -> None:
        """Pause and resume can repeat; nothing is lost or repeated."""
        seen: list[str] = []
        for round_ in range(5):
            self.slow.stop_reading()
            self.alice.type(f"a{round_}", f"b{round_}")
            self.slow.start_reading()
            seen += self.slow.take()
        self.assertEqual(seen, [f"<alice> {x}{i}" for i in range(5) for x in "ab"])

    def test_own_lines_still_relayed(self) -> None:
        """A client that does not read can still talk; the room hears it."""
        self.slow.stop_reading()
        self.slow.type("I am not reading")
        self.assertEqual(self.alice.take(), ["<slow> I am not reading"])

    def test_queue_exceeded(self) -> None:
        """
        Past C{max_send_queue}: aborted, logged, the room told; the others
        keep receiving.
        """
        events = capture_log(self)
        self.slow.stop_reading()
        line = "x" * 90  # 100 bytes with "<alice> " and "\n"
        for i in range(10):
            self.alice.type(line)
            self.assertFalse(self.slow.closing, i)  # 1000 bytes: at the limit
        self.assertEqual(len(self.bob.take()), 10)
        self.alice.type("one more")
        # Over the limit: the room gets SENDQ_GRACE to show whether the
        # others keep up (they do), then the slow reader goes.
        self.assertFalse(self.slow.closing)
        self.server.clock.advance(SENDQ_GRACE)
        self.alice.type("and one more")
        self.assertTrue(self.slow.aborted)
        self.assertEqual(
            self.bob.take(),
            [
                "<alice> one more",
                "<alice> and one more",
                "*** slow has quit (send queue exceeded)",
            ],
        )
        self.assertEqual(
            self.alice.take()[-1], "*** slow has quit (send queue exceeded)"
        )
        self.assertEqual(self.slow.transport.writes, [])
        logged = [formatEvent(event) for event in events]
        self.assertTrue(
            any("slow" in text and "send queue exceeded" in text for text in logged),
            logged,
        )
        # The connection closes: no second notice, no more output.
        self.slow.lose()
        self.alice.type("after")
        self.assertEqual(self.bob.take(), ["<alice> after"])
        self.assertEqual(self.slow.transport.writes, [])
        self.assertEqual(
            sorted(user for user in self.server.chat.users), ["alice", "bob"]
        )

    def test_queue_exceeded_by_one_event(self) -> None:
        """One event that queues more than the hard limit at once is enough."""
        self.slow.stop_reading()
        self.alice.type(*["y" * 900 for _ in range(5)])
        self.assertTrue(self.slow.aborted)
        self.assertEqual(self.bob.take()[-1], "*** slow has quit (send queue exceeded)")

    def test_resumed_before_limit(self) -> None:
        """Resuming just before the limit writes everything; the count restarts."""
        self.slow.stop_reading()
        for _ in range(10):
            self.alice.type("x" * 90)
        self.slow.start_reading()
        self.assertEqual(len(self.slow.transport.writes), 1)
        self.assertEqual(len(self.slow.take()), 10)
        self.slow.stop_reading()
        for _ in range(10):
            self.alice.type("x" * 90)
        self.assertFalse(self.slow.closing)

    def test_many_slow_readers(self) -> None:
        """
        When most of the room stops reading, nobody is cut at first (the
        input is throttled); once they have drained nothing for the stall
        timeout, the clients over the limit in the same event all go.
        """
        others = [self.server.connect(f"s{i}") for i in range(3)]
        for peer in [self.slow, *others]:
            peer.stop_reading()
        self.alice.type(*["z" * 200 for _ in range(6)])
        self.assertFalse(any(peer.closing for peer in [self.slow, *others]))
        self.assertTrue(self.alice.reading_paused)
        self.server.clock.advance(STALL_TIMEOUT)
        self.assertFalse(self.alice.reading_paused)
        self.alice.type("z")
        self.assertTrue(all(peer.aborted for peer in [self.slow, *others]))
        quits = [line for line in self.bob.take() if line.startswith("*** ")]
        self.assertEqual(
            sorted(quits),
            sorted(
                f"*** {nick} has quit (send queue exceeded)"
                for nick in ["slow", "s0", "s1", "s2"]
            ),
        )
