"""
Tests for the backpressure rules (L{twisted_chat.server.backpressure}), with
real Twisted transport buffering on a simulated network, driven by a
L{Clock}:

  - a whole room that drains slower than its input is throttled: the
    senders are read more slowly, every line is delivered, nobody is cut;
  - one straggler among fast readers is cut at the send queue limit, and
    the others never wait for it;
  - a transport that stays paused while its reader keeps draining is not
    taken for a reader that stopped;
  - a reader that stopped draining no longer holds its room's senders.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import abstract
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import observe_logs
from twisted_chat.core.chat import ChatServer
from twisted_chat.server.backpressure import (
    PROGRESS_CHECK,
    STALL_TIMEOUT,
    THROTTLED_QUEUE_FACTOR,
    UPSTREAM_CHECK,
    UPSTREAM_LIMIT,
    Backpressure,
)
from twisted_chat.server.fastwrite import unsent_bytes
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol

# The simulated network: a tick of the clock, and how much the kernel holds
# for a connection in each direction.
TICK = 0.01
KERNEL_BUFFER = 16 * 1024
SEND_QUEUE = 64 * 1024
LINE = "x" * 190


class SimulatedSocket(abstract.FileDescriptor):
    """
    A transport with Twisted's real write buffering and producer calls, over
    a pretend socket: the kernel takes up to L{KERNEL_BUFFER} bytes, and the
    peer reads them when the test says so.  Input the peer sends waits (as
    in the kernel) while reading is paused.
    """

    def __init__(self, reactor: MemoryReactorClock, port: int) -> None:
        super().__init__(reactor)
        self.peer = IPv4Address("TCP", "127.0.0.1", port)
        self.in_kernel = 0
        self.received = bytearray()
        self.to_server = bytearray()
        self.connected = 1
        self.aborted = False
        self.reading = True
        self.protocol: ChatProtocol | None = None

    # What Twisted's transport needs

    def writeSomeData(self, data: Any) -> int:
        taken = min(len(data), KERNEL_BUFFER - self.in_kernel)
        self.received += bytes(data[:taken])
        self.in_kernel += taken
        return taken

    def getPeer(self) -> IPv4Address:
        return self.peer

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 10001)

    def startReading(self) -> None:
        self.reading = True

    def stopReading(self) -> None:
        self.reading = False

    def startWriting(self) -> None:
        pass

    def stopWriting(self) -> None:
        pass

    def loseConnection(self, _connDone: Failure | None = None) -> None:
        self._close()

    def abortConnection(self) -> None:
        self.aborted = True
        self._close()

    def _close(self) -> None:
        if self.connected:
            self.connected = 0
            assert self.protocol is not None
            self.protocol.connectionLost(Failure(ConnectionDone()))

    # What the test does

    def peer_reads(self, size: int) -> None:
        """The peer reads up to C{size} bytes; the kernel takes more."""
        self.in_kernel -= min(size, self.in_kernel)
        if self.connected and (self.dataBuffer[self.offset :] or self._tempDataLen):
            self.doWrite()

    def peer_sends(self, data: bytes) -> None:
        """The peer sends C{data}: the server reads it when it reads."""
        self.to_server += data
        self.deliver()

    def deliver(self) -> None:
        """Hand the server what it may read now."""
        if self.reading and self.to_server and self.connected:
            data, self.to_server = bytes(self.to_server), bytearray()
            assert self.protocol is not None
            self.protocol.dataReceived(data)


class Network:
    """A server on a clock, and connections on L{SimulatedSocket}s."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.chat = ChatServer()
        self.factory = ChatFactory(
            self.chat,
            Limits(flood_rate=0, max_send_queue=SEND_QUEUE),
            clock=self.reactor,
        )
        self.sockets: list[SimulatedSocket] = []

    def connect(self) -> SimulatedSocket:
        """A new connection, in the default room."""
        sock = SimulatedSocket(self.reactor, 40000 + len(self.sockets))
        protocol = self.factory.buildProtocol(sock.peer)
        assert isinstance(protocol, ChatProtocol)
        sock.protocol = protocol
        protocol.makeConnection(sock)
        self.sockets.append(sock)
        return sock

    def run(self, seconds: float, step: Any) -> None:
        """Call C{step()} and advance the clock by L{TICK}, for C{seconds}."""
        for _ in range(round(seconds / TICK)):
            step()
            for sock in self.sockets:
                sock.deliver()
            self.reactor.advance(TICK)


def said(sock: SimulatedSocket) -> list[str]:
    """The room messages C{sock}'s peer has read so far."""
    return [
        line
        for line in sock.received.decode("utf-8").split("\n")
        if line.startswith("<")
    ]


class ThrottleTests(SynchronousTestCase):
    """A room whose readers all fall behind slows its senders down."""

    def test_slow_room_is_throttled_and_nobody_is_cut(self) -> None:
        """
        Ten readers that each read 6 KB per tick while the room offers each
        about 10 KB per tick: the senders are held, every line arrives, and
        no connection is cut.
        """
        net = Network()
        socks = [net.connect() for _ in range(10)]
        sent = 0
        held = False

        def step() -> None:
            nonlocal sent, held
            if sent < 2000:
                for sock in socks:
                    sock.peer_sends(f"{LINE}\n".encode() * 5)
                sent += 5
            for sock in socks:
                sock.peer_reads(6 * 1024)
            held = held or any(not sock.reading for sock in socks)

        net.run(60, step)
        self.assertTrue(held, "the senders were never held")
        self.assertEqual(net.factory.pressure.held, set())
        for sock in socks:
            self.assertFalse(sock.aborted)
            self.assertEqual(len(said(sock)), 10 * 2000)

    def test_staggered_slow_readers(self) -> None:
        """
        Ten readers that each read 60 KB every 10 ticks, each at its own
        moment, while the room offers each 10 KB a tick: at any moment some
        have just read, yet all are slower than the room; the room is
        throttled, every line arrives, and nobody is cut.
        """
        net = Network()
        socks = [net.connect() for _ in range(10)]
        sent = 0
        tick = 0

        def step() -> None:
            nonlocal sent, tick
            if sent < 1000:
                for sock in socks:
                    sock.peer_sends(f"{LINE}\n".encode() * 5)
                sent += 5
            for index, sock in enumerate(socks):
                if tick % 10 == index:
                    sock.peer_reads(60 * 1024)
            tick += 1

        net.run(60, step)
        for sock in socks:
            self.assertFalse(sock.aborted)
            self.assertEqual(len(said(sock)), 10 * 1000)

    def test_straggler_is_cut_and_holds_nobody(self) -> None:
        """
        One reader that reads far slower than the room is cut once its queue
        has stayed past the limit for SENDQ_GRACE; the senders are never held
        for it, and the fast readers get every line.
        """
        net = Network()
        fast = [net.connect() for _ in range(5)]
        slow = net.connect()
        events = observe_logs(self)
        sent = 0

        def step() -> None:
            nonlocal sent
            if sent < 1500:
                fast[0].peer_sends(f"{LINE}\n".encode() * 3)
                sent += 3
            for sock in fast:
                sock.peer_reads(1 << 20)
                self.assertTrue(sock.reading, "a sender waited for the straggler")
            slow.peer_reads(100)

        net.run(5.5, step)
        self.assertTrue(slow.aborted)
        for sock in fast:
            self.assertFalse(sock.aborted)
            self.assertEqual(len(said(sock)), 1500)
        self.assertIn(
            "send queue exceeded",
            " ".join(formatEvent(event) for event in events),
        )
        self.assertIn(
            "it reads slower than its room",
            " ".join(formatEvent(event) for event in events),
        )


class ProgressTests(SynchronousTestCase):
    """A reader is judged by what it drains, not by how long it is behind."""

    def setUp(self) -> None:
        self.net = Network()
        self.sender = self.net.connect()
        self.readers = [self.net.connect() for _ in range(3)]
        self.pressure = self.net.factory.pressure

    def fill(self, sock: SimulatedSocket, lines: int) -> None:
        """Make the sender say C{lines} lines while C{sock} reads nothing."""
        for _ in range(lines):
            self.sender.peer_sends(f"{LINE}\n".encode())
            for other in self.net.sockets:
                if other is not sock:
                    other.peer_reads(1 << 20)
            self.net.reactor.advance(0)

    def test_paused_but_draining_is_not_stalled(self) -> None:
        """
        A reader whose transport stays paused for many times the stall
        timeout, while it reads a little every tick, is never taken for one
        that stopped.
        """
        slow = self.readers[0]
        self.fill(slow, 400)
        protocol = slow.protocol
        assert protocol is not None
        self.assertTrue(protocol._congested)
        transport_paused = 0

        def step() -> None:
            nonlocal transport_paused
            slow.peer_reads(100)
            transport_paused += protocol._congested

        self.net.run(5 * STALL_TIMEOUT, step)
        self.assertGreater(transport_paused * TICK, 2 * STALL_TIMEOUT)
        self.assertFalse(self.pressure.stalled(protocol))
        self.assertFalse(slow.aborted)

    def test_stopped_reader_is_stalled(self) -> None:
        """
        A reader that drains nothing is taken for one that stopped after the
        stall timeout, and not before.
        """
        slow = self.readers[0]
        self.fill(slow, 400)
        protocol = slow.protocol
        assert protocol is not None
        self.net.reactor.advance(STALL_TIMEOUT - PROGRESS_CHECK)
        self.assertFalse(self.pressure.stalled(protocol))
        self.net.reactor.advance(PROGRESS_CHECK)
        self.assertTrue(self.pressure.stalled(protocol))

    def test_stalled_readers_release_the_room(self) -> None:
        """
        When most of a room stops reading altogether, the senders are held
        at first, and read again once those readers are taken as stopped;
        the stopped readers are then cut at the limit, and the reader that
        kept reading gets every line.
        """
        stopped = self.readers[:2]
        reading = [self.sender, self.readers[2]]

        def step() -> None:
            for sock in reading:
                sock.peer_reads(1 << 20)

        self.sender.peer_sends(f"{LINE}\n".encode() * 400)
        self.net.run(TICK, step)
        self.assertFalse(self.sender.reading)
        self.net.run(STALL_TIMEOUT, step)
        self.assertTrue(self.sender.reading)
        self.sender.peer_sends(f"{LINE}\n".encode() * 400)
        self.net.run(1, step)
        self.assertTrue(all(sock.aborted for sock in stopped))
        self.assertEqual(len(said(self.readers[2])), 800)


class BurstTests(SynchronousTestCase):
    """A burst or a short pause is absorbed."""

    def test_short_pause_is_absorbed(self) -> None:
        """
        A reader that reads nothing for half a second while the room talks,
        then catches up, is not cut and misses nothing.
        """
        net = Network()
        socks = [net.connect() for _ in range(4)]
        pausing = socks[1]
        ticks = 0

        def step() -> None:
            nonlocal ticks
            ticks += 1
            if ticks <= 100:
                socks[0].peer_sends(f"{LINE}\n".encode() * 2)
            for sock in socks:
                if sock is not pausing or not 20 <= ticks < 70:
                    sock.peer_reads(1 << 20)

        net.run(2, step)
        self.assertFalse(pausing.aborted)
        self.assertEqual(len(said(pausing)), 200)

    def test_queue_bounded_in_throttled_room(self) -> None:
        """
        When eight senders each bring a full socket read of lines in the same
        reactor turn, nobody is cut, no queue passes the hard limit, and
        every line arrives once the readers read.
        """
        net = Network()
        socks = [net.connect() for _ in range(8)]
        chunk = f"{LINE}\n".encode() * 330
        largest = 0

        def step() -> None:
            nonlocal largest
            for sock in socks:
                assert sock.protocol is not None
                largest = max(largest, sock.protocol._out_bytes)
                sock.peer_reads(4096)

        for sock in socks:
            sock.peer_sends(chunk)
        net.run(10, step)
        self.assertFalse(any(sock.aborted for sock in socks))
        self.assertLess(largest, THROTTLED_QUEUE_FACTOR * SEND_QUEUE)
        for sock in socks:
            self.assertEqual(len(said(sock)), 8 * 330)

    def test_hard_limit(self) -> None:
        """
        Past the hard limit, even a reader that keeps draining in a
        throttled room is to be disconnected.
        """
        net = Network()
        socks = [net.connect() for _ in range(2)]
        for sock in socks:
            sock.write(b"x" * (2 * KERNEL_BUFFER + 65536))
        pressure = net.factory.pressure
        protocol = socks[0].protocol
        assert protocol is not None
        self.assertTrue(pressure.in_throttled_room(protocol))
        limit = SEND_QUEUE
        self.assertIsNone(pressure.may_queue(protocol, 2 * limit, limit))
        self.assertIsNone(
            pressure.may_queue(protocol, THROTTLED_QUEUE_FACTOR * limit, limit)
        )
        self.assertEqual(
            pressure.may_queue(protocol, THROTTLED_QUEUE_FACTOR * limit + 1, limit),
            "its queue passed the hard limit",
        )


class UnsentBytesTests(SynchronousTestCase):
    """L{unsent_bytes} reads what Twisted's transports keep unsent."""

    def test_file_descriptor(self) -> None:
        """The bytes a FileDescriptor holds, in both of its buffers."""
        sock = SimulatedSocket(MemoryReactorClock(), 1)
        sock.write(b"x" * (KERNEL_BUFFER + 10))
        self.assertEqual(unsent_bytes(sock), KERNEL_BUFFER + 10)
        sock.doWrite()
        self.assertEqual(unsent_bytes(sock), 10)
        sock.write(b"y" * 5)
        self.assertEqual(unsent_bytes(sock), 15)

    def test_wrapped(self) -> None:
        """A wrapping transport (TLS) is looked through."""

        class Wrapper:
            def __init__(self, transport: object) -> None:
                self.transport = transport

        sock = SimulatedSocket(MemoryReactorClock(), 1)
        sock.write(b"x" * 7)
        self.assertEqual(unsent_bytes(Wrapper(sock)), 7)

    def test_unknown(self) -> None:
        """A transport that keeps no such buffer gives L{None}."""
        self.assertIsNone(unsent_bytes(object()))


class UpstreamTests(SynchronousTestCase):
    """Lines waiting upstream of delivery (for a commit) hold input too."""

    def test_held_until_delivered(self) -> None:
        """
        Past UPSTREAM_LIMIT waiting operations, a sender is held after its
        input, and read again once they are delivered.
        """
        waiting = [UPSTREAM_LIMIT + 1]
        clock = MemoryReactorClock()
        pressure = Backpressure(clock, lambda key: 2, lambda: waiting[0])

        class Sender:
            peer = "sender"
            held: list[bool] = []

            def room_keys(self) -> list[str]:
                return ["lobby"]

            def unsent(self) -> int | None:
                return 0

            def hold_input(self, hold: bool) -> None:
                self.held.append(hold)

        sender = Sender()
        pressure.after_input(sender)
        self.assertEqual(sender.held, [True])
        clock.advance(UPSTREAM_CHECK)
        self.assertEqual(sender.held, [True])
        waiting[0] = UPSTREAM_LIMIT
        clock.advance(UPSTREAM_CHECK)
        self.assertEqual(sender.held, [True, False])
        pressure.after_input(sender)
        self.assertEqual(sender.held, [True, False])
