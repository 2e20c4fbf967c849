"""
Tests for input backpressure: while more than one peer has stopped reading
(or one has, past a threshold), the server stops reading input until they
drain, waiting at most SLOW_READER_GRACE for any one peer; one slow reader
alone never holds anyone up.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.test_limits import Server
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import SLOW_READER_GRACE

# Each "<alice> xxx...\n" line is 109 bytes: 10 of them pass the threshold
# of 2 x 500 bytes.
LINE = "x" * 100
SIZE = len(f"<alice> {LINE}\n")


class BackpressureTests(SynchronousTestCase):
    """Input waits for a backed-up room, but not for one slow reader."""

    def setUp(self) -> None:
        self.server = Server(Limits(flood_rate=0, max_send_queue=500))
        self.alice = self.server.connect("alice")
        self.readers = [self.server.connect(f"r{n}") for n in range(3)]

    def test_threshold(self) -> None:
        """Input waits past twice the send queue limit."""
        self.assertEqual(self.server.factory.hold_threshold, 1000)

    def test_one_slow_reader_holds_nobody(self) -> None:
        """
        A single peer that stops reading is dropped at its send queue limit
        without the sender's reading ever being paused.
        """
        slow = self.readers[0]
        slow.stop_reading()
        for _ in range(10):
            self.alice.type(LINE)
            self.assertFalse(self.alice.reading_paused)
        self.assertTrue(slow.aborted)
        self.assertEqual(self.server.factory.backlog, 0)

    def test_backed_up_room_holds_input(self) -> None:
        """
        While more than one peer is backed up, the sender's reading is
        paused; it resumes when only one is left, backed up by less than the
        threshold, and nothing is lost.
        """
        for reader in self.readers:
            reader.stop_reading()
        self.alice.type(LINE)
        self.assertTrue(self.alice.reading_paused)
        self.alice.type(LINE, LINE, LINE)
        self.assertEqual(self.server.factory.backlog, 3 * 4 * SIZE)
        self.readers[0].start_reading()
        self.assertEqual(self.server.factory.backlog, 2 * 4 * SIZE)
        self.assertTrue(self.alice.reading_paused)
        self.readers[1].start_reading()
        self.assertFalse(self.alice.reading_paused)
        self.readers[2].start_reading()
        self.assertEqual(self.server.factory.backlog, 0)
        for reader in self.readers:
            self.assertEqual(reader.take(), [f"<alice> {LINE}"] * 4)

    def test_one_peer_past_threshold(self) -> None:
        """One backed-up peer holds input once its queue passes the threshold."""
        self.server.factory.hold_threshold = 300
        slow = self.readers[0]
        slow.stop_reading()
        self.alice.type(LINE, LINE)
        self.assertFalse(self.alice.reading_paused)
        self.alice.type(LINE)
        self.assertTrue(self.alice.reading_paused)

    def test_gives_up_after_grace(self) -> None:
        """
        Peers that do not drain within SLOW_READER_GRACE are no longer waited
        for: the sender is read again, and those peers are later dropped at
        their send queue limit.
        """
        for reader in self.readers:
            reader.stop_reading()
        self.alice.type(LINE, LINE, LINE, LINE)
        self.assertTrue(self.alice.reading_paused)
        self.server.clock.advance(SLOW_READER_GRACE - 0.01)
        self.assertTrue(self.alice.reading_paused)
        self.server.clock.advance(0.01)
        self.assertFalse(self.alice.reading_paused)
        self.alice.type(LINE)
        self.assertFalse(self.alice.reading_paused)
        self.assertTrue(all(reader.aborted for reader in self.readers))

    def test_lost_peer_releases(self) -> None:
        """A backed-up peer that disconnects no longer holds input."""
        for reader in self.readers:
            reader.stop_reading()
        self.alice.type(LINE, LINE, LINE, LINE)
        self.assertTrue(self.alice.reading_paused)
        for reader in self.readers:
            reader.lose()
        self.assertFalse(self.alice.reading_paused)
        self.assertEqual(self.server.factory.backlog, 0)
