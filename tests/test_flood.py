"""
Tests for flood control: the L{TokenBucket} arithmetic, and how
L{ChatProtocol} delays, announces and finally disconnects a flooding user
while normal typing and pasting a few lines are never throttled.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.test_limits import Peer, Server
from twisted_chat.server.flood import TokenBucket
from twisted_chat.server.limits import Limits

NOTICE = "*** You are sending lines faster than 5 a second; the rest are delayed."
KICKED = "!!! Disconnected: excess flood. You kept sending too fast."


def pass_time(server: Server, seconds: float, step: float = 0.01) -> None:
    """
    Let C{seconds} pass in small steps, as a running reactor would (one
    L{Clock.advance} runs every due call at the final time).
    """
    for _ in range(round(seconds / step)):
        server.clock.advance(step)


class TokenBucketTests(SynchronousTestCase):
    """A burst at once, then a steady rate."""

    def test_burst(self) -> None:
        """A full bucket allows C{burst} lines at the same instant."""
        bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
        self.assertEqual([bucket.take(100.0) for _ in range(3)], [0.0, 0.0, 0.0])

    def test_wait(self) -> None:
        """An empty bucket says how long until the next token."""
        bucket = TokenBucket(rate=4.0, burst=1, now=0.0)
        self.assertEqual(bucket.take(0.0), 0.0)
        self.assertEqual(bucket.take(0.0), 0.25)
        self.assertEqual(bucket.take(0.125), 0.125)

    def test_wait_spends_nothing(self) -> None:
        """A refused take spends nothing: asking again gives the same wait."""
        bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
        bucket.take(0.0)
        self.assertEqual([bucket.take(0.5) for _ in range(3)], [0.5, 0.5, 0.5])
        self.assertEqual(bucket.take(1.0), 0.0)

    def test_rate(self) -> None:
        """After the burst, exactly C{rate} lines a second."""
        bucket = TokenBucket(rate=4.0, burst=2, now=0.0)
        bucket.take(0.0)
        bucket.take(0.0)
        allowed = 0
        for step in range(1, 641):  # ten seconds in exact steps of 1/64 s
            now = step / 64
            while bucket.take(now) == 0.0:
                allowed += 1
        self.assertEqual(allowed, 40)

    def test_capped(self) -> None:
        """A long silence refills the bucket to C{burst}, no more."""
        bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
        takes = [bucket.take(3600.0) for _ in range(4)]
        self.assertEqual(takes, [0.0, 0.0, 0.0, 0.1])

    def test_time_backwards(self) -> None:
        """A clock that goes backwards neither refills nor breaks the bucket."""
        bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
        self.assertEqual(bucket.take(10.0), 0.0)
        self.assertEqual(bucket.take(5.0), 1.0)
        self.assertEqual(bucket.take(10.5), 0.5)
        self.assertEqual(bucket.take(11.0), 0.0)

    def test_full(self) -> None:
        """L{TokenBucket.full} says whether the whole burst is available."""
        bucket = TokenBucket(rate=2.0, burst=2, now=0.0)
        self.assertTrue(bucket.full(0.0))
        bucket.take(0.0)
        self.assertFalse(bucket.full(0.0))
        self.assertFalse(bucket.full(0.4))
        self.assertTrue(bucket.full(0.5))


class FloodControlTests(SynchronousTestCase):
    """
    Past the burst, lines are delayed (reading paused) with one notice and
    delivered in order as time passes; normal use is never throttled.
    """

    def setUp(self) -> None:
        # The defaults: a burst of 20, then 5 lines a second.
        self.server = Server(Limits(flood_burst=20, flood_rate=5, flood_kick=100))
        self.alice = self.server.connect("alice")
        self.bob = self.server.connect("bob")
        # "/nick" spent a token: start with a full bucket.
        self.server.clock.advance(60)

    def messages(self, peer: Peer) -> list[str]:
        """The lines C{peer} received, without its own notices."""
        return [line for line in peer.take() if not line.startswith("*** ")]

    def test_typing(self) -> None:
        """A line a second for ten minutes is never throttled."""
        for i in range(600):
            self.alice.type(f"line {i}")
            self.assertFalse(self.alice.reading_paused)
            self.assertEqual(self.alice.take(), [f"<alice> line {i}"])
            self.assertEqual(self.bob.take(), [f"<alice> line {i}"])
            self.server.clock.advance(1)

    def test_paste(self) -> None:
        """A paste of C{burst} lines goes at once, again after a pause."""
        for _ in range(3):
            texts = [f"pasted {i}" for i in range(20)]
            self.alice.type(*texts)
            self.assertFalse(self.alice.reading_paused)
            self.assertEqual(self.bob.take(), [f"<alice> {text}" for text in texts])
            self.assertEqual(self.alice.take(), [f"<alice> {text}" for text in texts])
            self.server.clock.advance(4)  # 20 lines at 5 a second

    def test_paste_then_typing(self) -> None:
        """Typing right after a paste of C{burst} lines is not throttled."""
        self.alice.type(*[f"pasted {i}" for i in range(20)])
        self.server.forget()
        for i in range(30):
            self.server.clock.advance(1)
            self.alice.type(f"typed {i}")
            self.assertEqual(self.alice.take(), [f"<alice> typed {i}"])

    def test_delayed(self) -> None:
        """
        Past the burst: reading pauses, the sender gets one notice, and the
        rest arrive in order at the steady rate.
        """
        texts = [f"line {i}" for i in range(30)]
        self.alice.type(*texts)
        self.assertTrue(self.alice.reading_paused)
        self.assertEqual(
            self.alice.take(), [*(f"<alice> {t}" for t in texts[:20]), NOTICE]
        )
        self.assertEqual(self.bob.take(), [f"<alice> {t}" for t in texts[:20]])
        for i in range(20, 30):
            self.server.clock.advance(0.2)
            self.assertEqual(self.bob.take(), [f"<alice> line {i}"])
            self.assertEqual(self.alice.take(), [f"<alice> line {i}"])
        self.assertFalse(self.alice.reading_paused)
        self.server.clock.advance(100)
        self.assertEqual(self.bob.take(), [])
        self.assertFalse(self.alice.closing)

    def test_delayed_across_segments(self) -> None:
        """Lines sent while delayed keep their order behind the delayed ones."""
        self.alice.type(*[f"a{i}" for i in range(22)])
        self.alice.type("b0", "b1")  # as if the transport had read them already
        self.server.clock.advance(10)
        expected = [f"<alice> a{i}" for i in range(22)] + ["<alice> b0", "<alice> b1"]
        self.assertEqual(self.messages(self.bob), expected)
        self.assertEqual(self.alice.take().count(NOTICE), 1)
        self.assertFalse(self.alice.reading_paused)

    def test_one_notice(self) -> None:
        """Flooding again before the bucket refilled gives no second notice."""
        self.alice.type(*[f"x{i}" for i in range(25)])
        pass_time(self.server, 1)
        self.assertEqual(self.alice.take().count(NOTICE), 1)
        self.alice.type(*[f"y{i}" for i in range(5)])
        pass_time(self.server, 2)
        self.assertEqual(self.alice.take().count(NOTICE), 0)
        self.assertEqual(len(self.messages(self.bob)), 30)

    def test_new_episode(self) -> None:
        """Once the bucket has refilled, a new flood is announced again."""
        self.alice.type(*[f"x{i}" for i in range(25)])
        pass_time(self.server, 1)
        self.assertEqual(self.alice.take().count(NOTICE), 1)
        pass_time(self.server, 10)
        self.alice.type(*[f"z{i}" for i in range(25)])
        pass_time(self.server, 1)
        self.assertEqual(self.alice.take().count(NOTICE), 1)
        self.assertEqual(len(self.messages(self.bob)), 50)

    def test_occasional_long_pastes(self) -> None:
        """
        Pasting a little more than the burst once a minute is delayed each
        time but never counts as flooding "in a row".
        """
        for minute in range(30):
            self.alice.type(*[f"m{minute} {i}" for i in range(25)])
            pass_time(self.server, 60)
            self.assertFalse(self.alice.closing, f"kicked in minute {minute}")
        self.assertEqual(len(self.messages(self.bob)), 30 * 25)

    def test_disabled(self) -> None:
        """With C{flood_rate=0}, nothing is ever delayed."""
        server = Server(Limits(flood_rate=0, flood_burst=1, flood_kick=1))
        alice, bob = server.connect("alice"), server.connect("bob")
        texts = [f"line {i}" for i in range(1000)]
        alice.type(*texts)
        self.assertFalse(alice.reading_paused)
        self.assertEqual(bob.take(), [f"<alice> {t}" for t in texts])
        self.assertNotIn(NOTICE, alice.take())
        self.assertEqual(server.clock.getDelayedCalls(), [])

    def test_other_users_unaffected(self) -> None:
        """While one user is delayed, the others' lines go through at once."""
        self.alice.type(*[f"a{i}" for i in range(30)])
        self.server.forget()
        self.bob.type("hello")
        self.assertEqual(self.alice.take(), ["<bob> hello"])
        self.assertFalse(self.bob.reading_paused)

    def test_blank_lines_count(self) -> None:
        """Blank lines cost a token too: they are lines the server reads."""
        self.alice.send(b"\n" * 20 + b"late\n")
        self.assertTrue(self.alice.reading_paused)
        self.assertEqual(self.bob.take(), [])
        self.server.clock.advance(0.2)
        self.assertEqual(self.bob.take(), ["<alice> late"])

    def test_disconnect_while_delayed(self) -> None:
        """A user who leaves while delayed leaves no timer and no late line."""
        self.alice.type(*[f"a{i}" for i in range(30)])
        self.server.forget()
        self.alice.lose()
        self.server.clock.advance(10)
        self.assertEqual(self.bob.take(), ["*** alice has quit (connection lost)"])
        self.assertEqual(self.server.clock.getDelayedCalls(), [])


class FloodKickTests(SynchronousTestCase):
    """
    A user with more than C{flood_kick} delayed lines in a row is
    disconnected, told why, and the room sees them quit for excess flood.
    """

    def setUp(self) -> None:
        self.server = Server(Limits(flood_burst=3, flood_rate=5, flood_kick=5))
        self.alice = self.server.connect("alice")
        self.bob = self.server.connect("bob")
        # "/nick" spent a token: start with a full bucket.
        self.server.clock.advance(60)

    def assert_kicked(self) -> list[str]:
        """
        Check that alice was told, disconnected and seen to quit; return the
        lines bob saw.
        """
        self.assertEqual(self.alice.take()[-1], KICKED)
        self.assertTrue(self.alice.closing)
        seen = self.bob.take()
        self.assertEqual(seen[-1], "*** alice has quit (excess flood)")
        self.alice.lose()
        self.assertEqual(self.bob.take(), [])
        self.server.clock.advance(60)
        self.assertEqual(self.bob.take(), [])
        self.assertNotIn(self.alice.protocol, self.server.factory.connections)
        return seen

    def test_at_the_limit(self) -> None:
        """C{flood_kick} delayed lines are delayed, not punished."""
        self.alice.type(*[f"a{i}" for i in range(3 + 5)])
        pass_time(self.server, 2)
        self.assertFalse(self.alice.closing)
        self.assertEqual(self.bob.take(), [f"<alice> a{i}" for i in range(8)])

    def test_one_paste(self) -> None:
        """One more delayed line than C{flood_kick}: disconnected at once."""
        self.alice.type(*[f"a{i}" for i in range(3 + 6)])
        self.assertEqual(
            self.assert_kicked(),
            [
                "<alice> a0",
                "<alice> a1",
                "<alice> a2",
                "*** alice has quit (excess flood)",
            ],
        )

    def test_keeps_flooding(self) -> None:
        """
        A user who keeps sending faster than the rate, a little at a time, is
        disconnected once more than C{flood_kick} lines were delayed in a row.
        """
        for i in range(100):
            if self.alice.closing:
                break
            self.alice.type(f"a{i}", f"b{i}")  # 10 lines a second
            self.server.clock.advance(0.2)
        else:
            self.fail("never disconnected")
        self.assertLess(i, 20)
        self.assert_kicked()

    def test_kicked_connection_is_aborted_later(self) -> None:
        """If the kicked peer does not close, the server aborts it."""
        self.alice.type(*[f"a{i}" for i in range(20)])
        self.assertTrue(self.alice.closing)
        self.assertFalse(self.alice.aborted)
        self.server.clock.advance(10)
        self.assertTrue(self.alice.aborted)
