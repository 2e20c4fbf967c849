"""
Tests for L{twisted_chat.server.fastwrite}: writing to a TCP connection at once.
"""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.e2e import global_reactor
from twisted_chat.core.chat import ChatServer
from twisted_chat.server.fastwrite import can_write_now, unsent_bytes, write_now
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol


class _Accepted(ServerFactory):
    """Fires C{accepted} with the server-side protocol of one connection."""

    def __init__(self) -> None:
        self.accepted: Deferred[Protocol] = Deferred()

    def buildProtocol(self, addr: object) -> Protocol:
        factory = self

        class Accepted(Protocol):
            def connectionMade(self) -> None:
                factory.accepted.callback(self)

        return Accepted()


class CanWriteNowTests(SynchronousTestCase):
    """Only plain TCP server connections take the direct path."""

    def test_other_transports(self) -> None:
        """Anything that is not exactly a tcp.Server is refused."""
        self.assertFalse(can_write_now(StringTransport()))
        self.assertFalse(can_write_now(object()))


class WriteNowTests(TestCase):
    """L{write_now} against a real loopback TCP connection."""

    async def connect(self) -> tuple[tcp.Server, socket.socket]:
        reactor = global_reactor()
        factory = _Accepted()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        peer = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(peer.close)
        peer.settimeout(5)
        protocol = await factory.accepted
        transport = protocol.transport
        assert isinstance(transport, tcp.Server)
        self.addCleanup(transport.abortConnection)
        return transport, peer

    async def test_sends_at_once(self) -> None:
        """
        The bytes are on the wire before the reactor runs again, where
        transport.write only buffers them.
        """
        transport, peer = await self.connect()
        self.assertTrue(can_write_now(transport))
        transport.write(b"buffered\n")
        peer.setblocking(False)
        self.assertRaises(BlockingIOError, peer.recv, 100)
        # Let Twisted send what it buffered, then use the direct path.
        await deferLater(global_reactor(), 0.01, lambda: None)
        peer.settimeout(5)
        self.assertEqual(peer.recv(100), b"buffered\n")
        write_now(transport, [b"direct\n"])
        peer.setblocking(False)
        self.assertEqual(peer.recv(100), b"direct\n")

    async def test_order_kept_behind_buffer(self) -> None:
        """
        With data already buffered, write_now queues behind it instead of
        overtaking it.
        """
        transport, peer = await self.connect()
        transport.write(b"first\n")
        write_now(transport, [b"second\n"])
        await deferLater(global_reactor(), 0.01, lambda: None)
        received = b""
        while len(received) < len(b"first\nsecond\n"):
            received += peer.recv(100)
        self.assertEqual(received, b"first\nsecond\n")

    async def test_remainder_buffered(self) -> None:
        """
        What the socket does not take is left to Twisted, in order, and all
        of it arrives.
        """
        transport, peer = await self.connect()
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        chunks = [bytes(range(256)) * 1024, b"middle", bytes(range(256)) * 2048]
        data = b"".join(chunks)  # 768 KiB: more than the socket takes
        write_now(transport, chunks)
        self.assertGreater(transport._tempDataLen, 0)
        received = bytearray()
        peer.setblocking(False)
        for _ in range(2000):
            try:
                received += peer.recv(1 << 16)
            except BlockingIOError:
                await deferLater(global_reactor(), 0.001, lambda: None)
            if len(received) == len(data):
                break
        self.assertEqual(bytes(received), data)

    async def test_unsent_bytes(self) -> None:
        """
        L{unsent_bytes} reads the real tcp.Server's buffer: what Twisted
        holds after the socket took its share, and nothing once it is sent.
        """
        transport, peer = await self.connect()
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = bytes(range(256)) * 1024
        self.assertEqual(unsent_bytes(transport), 0)
        transport.write(data)
        self.assertEqual(unsent_bytes(transport), len(data))
        received = bytearray()
        peer.setblocking(False)
        seen = []
        for _ in range(2000):
            try:
                received += peer.recv(1 << 14)
            except BlockingIOError:
                await deferLater(global_reactor(), 0.001, lambda: None)
            seen.append(unsent_bytes(transport))
            if len(received) == len(data):
                break
        self.assertEqual(bytes(received), data)
        self.assertEqual(seen, sorted(seen, reverse=True))
        self.assertEqual(unsent_bytes(transport), 0)


class EndOfTurnTests(TestCase):
    """A plain TCP connection is written once, at the end of the turn."""

    async def test_one_send_per_turn(self) -> None:
        """
        Output queued by several events of one turn is not written when each
        event ends, but all together once the turn is over, in order.
        """
        reactor = global_reactor()
        factory = ChatFactory(ChatServer(), Limits(flood_rate=0), clock=reactor)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        peer = socket.create_connection(("127.0.0.1", port.getHost().port))
        self.addCleanup(peer.close)
        peer.setblocking(False)
        received = b""
        for _ in range(1000):
            try:
                received += peer.recv(4096)
            except BlockingIOError:
                await deferLater(reactor, 0.001, lambda: None)
            if b"Users in" in received and received.endswith(b"\n"):
                break
        [protocol] = factory.connections
        transport = protocol.transport
        assert isinstance(transport, tcp.Server)
        self.addCleanup(transport.abortConnection)
        for line in (b"one\n", b"two\n", b"three\n"):
            with factory.batch():
                protocol.send(line)
        self.assertRaises(BlockingIOError, peer.recv, 100)
        await deferLater(reactor, 0, lambda: None)
        self.assertEqual(peer.recv(100), b"one\ntwo\nthree\n")

    def test_scheduled_once(self) -> None:
        """However many connections wait, one callLater(0) ends the turn."""
        clock = Clock()
        factory = ChatFactory(ChatServer(), clock=clock)
        first, second = ChatProtocol(), ChatProtocol()
        factory.write_at_end_of_turn(first)
        factory.write_at_end_of_turn(second)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
