"""
Tests for L{twisted_chat.server.connection}: the connection base every front
end shares, through a minimal front end of its own (L{Probe}) on
L{StringTransport}s and a L{Clock}: the lifecycle, framing with a front
end's own limit and hooks, the idle hook, closing and aborting.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_chat.core.chat import ChatServer
from twisted_chat.core.interfaces import IChatClient, View
from twisted_chat.server import connection
from twisted_chat.server.backpressure import THROTTLED_QUEUE_FACTOR
from twisted_chat.server.connection import (
    CLOSE_TIMEOUT,
    Connection,
    ConnectionFactory,
    RefusedProtocol,
    describe_address,
)
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.limits import Limits
from twisted_chat.server.line_render import CURRENT, RENDERER


class Probe(Connection):
    """
    A front end that records what the base hands it: lines, overlong lines,
    replies and idle checks.  It registers when it receives C{REGISTER}.
    """

    factory: ProbeFactory

    def connection_opened(self) -> None:
        self.lines: list[bytes] = []
        self.too_long = 0
        self.replies: list[object] = []
        self.idle_checks: list[float] = []
        self.user = self.delivery.chat.attach(self, "probe")

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"REGISTER":
            assert self.user is not None
            self.delivery.chat.register(self.user, f"p{len(self.delivery.chat.users)}")
            self.registered()

    def line_too_long(self) -> None:
        self.too_long += 1

    def line_limit(self) -> int:
        return self.factory.limit

    def first_idle_check(self) -> float:
        return self.factory.idle

    def check_idle(self, now: float) -> float:
        self.idle_checks.append(now)
        return self.factory.next_idle

    def view(self, current: bool) -> View:
        return (RENDERER, CURRENT, True)

    def reply(self, event: object) -> None:
        self.replies.append(event)


class ProbeFactory(ConnectionFactory):
    protocol = Probe

    def __init__(self, delivery: Delivery, limit: int = 10) -> None:
        super().__init__(delivery)
        self.limit = limit
        self.idle = 0.0
        self.next_idle = 0.0

    def refusal(self, reason: str) -> bytes:
        return f"NO {reason}\n".encode()


class Harness(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.chat = ChatServer(clock=self.clock)
        self.delivery = Delivery(self.chat, Limits(flood_rate=0), self.clock)
        self.factory = ProbeFactory(self.delivery)

    def connect(
        self, transport: StringTransport | None = None
    ) -> tuple[Probe, StringTransport]:
        address = IPv4Address("TCP", "127.0.0.1", 4000 + len(self.delivery.connections))
        protocol = self.factory.buildProtocol(address)
        assert isinstance(protocol, Probe)
        if transport is None:
            transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport


class LifecycleTests(Harness):
    """registering, open, closing, closed: an explicit machine."""

    def test_states(self) -> None:
        """
        A connection is registering until the front end registers it, then
        open; closing once we close it (output refused, input ignored);
        closed once the transport is.
        """
        probe, transport = self.connect()
        self.assertTrue(verifyObject(IChatClient, probe))
        self.assertEqual(probe.state, "registering")
        self.assertIn(probe, self.delivery.connections)
        probe.dataReceived(b"REGISTER\n")
        self.assertEqual(probe.state, "open")
        probe.send(b"bye\n")
        probe.disconnect("done")
        self.assertEqual(probe.state, "closing")
        self.assertEqual(transport.value(), b"bye\n")
        self.assertTrue(transport.disconnecting)
        probe.send(b"late\n")
        probe.dataReceived(b"ignored\n")
        self.assertEqual((transport.value(), probe.lines), (b"bye\n", [b"REGISTER"]))
        probe.connectionLost()
        self.assertEqual(probe.state, "closed")
        self.assertNotIn(probe, self.delivery.connections)
        self.assertEqual(self.chat.users, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_inputs_after_close_do_nothing(self) -> None:
        """Closing twice, registering late, losing twice: no effect."""
        probe, _ = self.connect()
        probe.disconnect("one")
        probe.disconnect("two")
        probe.registered()
        self.assertEqual(probe.state, "closing")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        probe.connectionLost()
        probe.connectionLost()
        probe.disconnect("three")
        self.assertEqual(probe.state, "closed")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lost_while_closing_the_transport(self) -> None:
        """
        A transport that reports the connection lost inside loseConnection
        (as some do) still leaves no close timer behind: the machine
        finishes closing before it handles the loss.
        """
        transport = StringTransportWithDisconnection()
        probe, _ = self.connect(transport)
        transport.protocol = probe
        probe.disconnect("bye")
        self.assertEqual(probe.state, "closed")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_timeout(self) -> None:
        """A peer that does not let the connection close is aborted."""
        probe, transport = self.connect()
        probe.disconnect("bye")
        self.clock.advance(CLOSE_TIMEOUT - 0.1)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)

    def test_abort(self) -> None:
        """
        A reader that stopped reading, whose queue passes the hard limit,
        is aborted at once: closing, its user gone, no close timer.
        """
        delivery = Delivery(self.chat, Limits(max_send_queue=10), self.clock)
        factory = ProbeFactory(delivery)
        probe = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(probe, Probe)
        transport = StringTransport()
        probe.makeConnection(transport)
        probe.dataReceived(b"REGISTER\n")
        probe.pauseProducing()
        with delivery.batch():
            probe.send(b"x" * (THROTTLED_QUEUE_FACTOR * 10 + 1))
        self.assertEqual(probe.state, "closing")
        self.assertTrue(transport.disconnected)
        self.assertIsNone(probe.user)
        self.assertEqual(self.chat.users, {})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_hot_path_skips_the_machine(self) -> None:
        """
        Delivering output (send, the end-of-event flush, the end-of-turn
        write) reads fields the transitions set, and never makes or calls the
        machine; an open connection holds no machine between inputs.
        """
        probe, transport = self.connect()
        probe.dataReceived(b"REGISTER\n")
        self.assertIsNone(probe._lifecycle)

        def untouchable(*args: object) -> object:
            raise AssertionError("the machine was used")

        self.patch(connection, "_LIFECYCLE", untouchable)
        with self.delivery.batch():
            probe.send(b"one\n")
            probe.send(b"two\n")
        probe.end_of_turn()
        self.assertEqual(transport.value(), b"one\ntwo\n")

    def test_server_stopping(self) -> None:
        """A connection not closed yet is told, in its protocol, and closed."""
        probe, _ = self.connect()
        probe.server_stopping("maintenance")
        self.assertEqual([type(reply).__name__ for reply in probe.replies], ["Notice"])
        self.assertEqual(probe.state, "closing")
        probe.server_stopping("again")
        self.assertEqual(len(probe.replies), 1)


class FramingTests(Harness):
    """Lines end with \\n, one \\r before it dropped; the front end's limit."""

    def test_lines(self) -> None:
        """\\n and \\r\\n end lines; only one \\r is dropped; bytes go on as
        they came."""
        probe, _ = self.connect()
        probe.dataReceived(b"one\r\ntwo\nthr")
        probe.dataReceived(b"ee\r\r\n\xff\n")
        self.assertEqual(probe.lines, [b"one", b"two", b"three\r", b"\xff"])

    def test_front_end_limit(self) -> None:
        """The limit is the front end's; a longer line calls its hook once."""
        probe, _ = self.connect()
        self.assertEqual(probe.max_line_length, 10)
        probe.dataReceived(b"x" * 10 + b"\r\n" + b"y" * 11 + b"\n")
        self.assertEqual((probe.lines, probe.too_long), ([b"x" * 10], 1))

    def test_long_line_not_buffered(self) -> None:
        """A line past the limit is discarded to its end, never buffered."""
        probe, _ = self.connect()
        for _ in range(100):
            probe.dataReceived(b"z" * 7)
            self.assertLessEqual(len(probe._buffer), 11)
        probe.dataReceived(b"end\nnext\n")
        self.assertEqual((probe.lines, probe.too_long), ([b"next"], 1))


class IdleHookTests(Harness):
    """The idle check is a hook: called when due, again when it says."""

    def test_called_and_rescheduled(self) -> None:
        """The first check after first_idle_check(), the next as returned."""
        self.factory.idle = 30.0
        self.factory.next_idle = 5.0
        probe, _ = self.connect()
        self.clock.advance(29)
        self.assertEqual(probe.idle_checks, [])
        self.clock.advance(1)
        self.clock.advance(5)
        self.assertEqual(probe.idle_checks, [30.0, 35.0])
        self.factory.next_idle = 0.0
        self.clock.advance(5)
        self.clock.advance(100)
        self.assertEqual(probe.idle_checks, [30.0, 35.0, 40.0])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_none(self) -> None:
        """No first check: no timer at all."""
        self.connect()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RefusalTests(Harness):
    """Over the limits, the factory's refusal, in its protocol."""

    def test_refused(self) -> None:
        """The refused connection gets the front end's line and is closed."""
        delivery = Delivery(ChatServer(), Limits(max_clients=1), self.clock)
        factory = ProbeFactory(delivery)
        first = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 1))
        assert first is not None
        first.makeConnection(StringTransport())
        refused = factory.buildProtocol(IPv4Address("TCP", "10.0.0.2", 2))
        self.assertIsInstance(refused, RefusedProtocol)
        assert refused is not None
        transport = StringTransport()
        refused.makeConnection(transport)
        self.assertEqual(
            transport.value(),
            b"NO The server is full (1 users); please try again later.\n",
        )
        self.assertTrue(transport.disconnecting)

    def test_describe(self) -> None:
        """Peers are logged as host:port."""
        self.assertEqual(
            describe_address(IPv4Address("TCP", "192.0.2.1", 7)), "192.0.2.1:7"
        )
