"""
Tests for L{twisted_chat.server.line}: bytes in, lines out, on a
L{StringTransport}; and the socket tuning on real and fake TCP transports.
"""

from __future__ import annotations

import socket
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IReactorTCP,
    IReactorTime,
    ISystemHandle,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.test.iosim import FakeAddress
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import alsoProvides, noLongerProvides
from zope.interface.verify import verifyObject

from tests.helpers import observe_logs
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.interfaces import IChatClient
from twisted_chat.server.connection import describe_address
from twisted_chat.server.limits import DEFAULT_MAX_LINE_LENGTH, Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol
from twisted_chat.shared import lines
from twisted_chat.shared.sockets import tune_socket

TOO_LONG = "!!! Your line is longer than {} bytes and was not sent."
NOT_UTF8 = "!!! Your line is not valid UTF-8 and was not sent."
CONTROL = (
    "!!! Your line contains control characters (such as terminal escape "
    "sequences) and was not sent."
)


class ProtocolTestCase(SynchronousTestCase):
    """A chat behind a ChatFactory, and connections to it on StringTransports."""

    limits: Limits | None = None

    def setUp(self) -> None:
        self.clock = Clock()
        self.chat = ChatServer()
        self.factory = ChatFactory(self.chat, limits=self.limits, clock=self.clock)
        self._port = 50000

    def connect(self, nick: str | None = None) -> tuple[ChatProtocol, StringTransport]:
        """
        Connect over a StringTransport, optionally rename, and clear what
        every connection received so far.
        """
        self._port += 1
        peer = IPv4Address("TCP", "127.0.0.1", self._port)
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, ChatProtocol)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        if nick is not None:
            protocol.dataReceived(f"/nick {nick}\n".encode())
        for connection in self.factory.connections:
            assert isinstance(connection.transport, StringTransport)
            connection.transport.clear()
        return protocol, transport


def received(transport: StringTransport) -> list[str]:
    """The lines written to C{transport} since the last call."""
    data: bytes = transport.value()
    transport.clear()
    if data and not data.endswith(b"\n"):
        raise AssertionError(f"incomplete line written: {data!r}")
    return data.decode("utf-8").splitlines()


class ConnectionTests(ProtocolTestCase):
    """Connecting and disconnecting."""

    def test_greeting(self) -> None:
        """A new connection is greeted, named and put in the lobby."""
        peer = IPv4Address("TCP", "127.0.0.1", 1)
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, ChatProtocol)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        assert protocol.user is not None
        nick = protocol.user.nick
        self.assertEqual(
            received(transport),
            [
                lines.welcome(),
                lines.self_nick(nick),
                lines.joined(nick, "lobby"),
                lines.who("lobby", [nick]),
            ],
        )
        self.assertEqual(protocol.peer, "127.0.0.1:1")
        self.assertIn(protocol, self.factory.connections)

    def test_provides_chat_client(self) -> None:
        """A connected ChatProtocol provides IChatClient."""
        protocol, _ = self.connect()
        self.assertTrue(verifyObject(IChatClient, protocol))

    def test_quit(self) -> None:
        """/quit says goodbye, closes the transport and tells the room."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"/quit gotta go\r\n")
        self.assertEqual(received(alice_transport), ["*** Goodbye (gotta go)"])
        self.assertTrue(alice_transport.disconnecting)
        self.assertEqual(received(bob_transport), ["*** alice has quit (gotta go)"])
        self.assertEqual(list(self.chat.users), ["bob"])

    def test_nothing_after_quit(self) -> None:
        """Lines after /quit in the same chunk are not processed."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"/quit\nstill talking\n")
        alice.dataReceived(b"and more\n")
        self.assertEqual(received(alice_transport), ["*** Goodbye (quit)"])
        self.assertEqual(received(bob_transport), ["*** alice has quit (quit)"])

    def test_connection_lost(self) -> None:
        """A lost connection removes the user and tells the room."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        closed = alice.when_closed()
        fired: list[None] = []
        closed.addCallback(fired.append)
        alice.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            received(bob_transport), ["*** alice has quit (connection lost)"]
        )
        self.assertEqual(received(alice_transport), [])
        self.assertEqual(list(self.chat.users), ["bob"])
        self.assertNotIn(alice, self.factory.connections)
        self.assertEqual(fired, [None])
        alice.dataReceived(b"hello?\n")
        self.assertEqual(received(bob_transport), [])

    def test_when_closed_after_close(self) -> None:
        """when_closed() of a closed connection has already fired."""
        alice, _ = self.connect("alice")
        alice.connectionLost(Failure(ConnectionDone()))
        fired: list[None] = []
        alice.when_closed().addCallback(fired.append)
        self.assertEqual(fired, [None])

    def test_quit_then_connection_lost(self) -> None:
        """The room hears of a /quit once, not again when the socket closes."""
        alice, _ = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"/quit\n")
        alice.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(received(bob_transport), ["*** alice has quit (quit)"])


class FramingTests(ProtocolTestCase):
    """Lines end with \\n or \\r\\n and are decoded once, whole."""

    def test_line_endings(self) -> None:
        """Both \\r\\n and \\n end a line; the \\r is not part of it."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"one\r\ntwo\nthree\r\n")
        expected = ["<alice> one", "<alice> two", "<alice> three"]
        self.assertEqual(received(alice_transport), expected)
        self.assertEqual(received(bob_transport), expected)

    def test_crlf_split(self) -> None:
        """A \\r\\n split between two chunks still ends one line."""
        alice, alice_transport = self.connect("alice")
        alice.dataReceived(b"hello\r")
        self.assertEqual(received(alice_transport), [])
        alice.dataReceived(b"\n")
        self.assertEqual(received(alice_transport), ["<alice> hello"])

    def test_split_across_chunks(self) -> None:
        """A line arriving a byte at a time is handled once, when complete."""
        alice, alice_transport = self.connect("alice")
        data = b"hello, world\r\n"
        for i in range(len(data)):
            alice.dataReceived(data[i : i + 1])
            if i < len(data) - 1:
                self.assertEqual(alice_transport.value(), b"")
        self.assertEqual(received(alice_transport), ["<alice> hello, world"])

    def test_multibyte_split(self) -> None:
        """A UTF-8 character split between chunks is decoded whole."""
        alice, alice_transport = self.connect("alice")
        data = "héllo ☕ 👋\n".encode()
        for i in range(len(data)):
            alice.dataReceived(data[i : i + 1])
        self.assertEqual(received(alice_transport), ["<alice> héllo ☕ 👋"])

    def test_blank_lines(self) -> None:
        """Empty lines and lone \\r\\n are ignored."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"\n\r\n   \r\n")
        self.assertEqual(received(alice_transport), [])
        self.assertEqual(received(bob_transport), [])

    def test_invalid_utf8(self) -> None:
        """Invalid UTF-8 is refused; the connection and later lines go on."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"caf\xe9\nstill here\n")
        alice.dataReceived(b"\xc3\n\xff\xfe\n")
        self.assertEqual(
            received(alice_transport),
            [NOT_UTF8, "<alice> still here", NOT_UTF8, NOT_UTF8],
        )
        self.assertEqual(received(bob_transport), ["<alice> still here"])
        self.assertFalse(alice_transport.disconnecting)

    def test_invalid_utf8_logged(self) -> None:
        """A refused line is logged against the user who sent it."""
        alice, _ = self.connect("alice")
        events = observe_logs(self)
        alice.dataReceived(b"\xff\n")
        self.assertEqual(
            [
                (event["nick"], event["peer"])
                for event in events
                if event.get("log_format", "").startswith("refused input")
            ],
            [("alice", alice.peer)],
        )

    def test_control_characters(self) -> None:
        """Lines with control characters are refused, not sent or altered."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"\x1b[2J\x1b[Hboo\n")
        alice.dataReceived("bidi \u202egnp.exe\n".encode())
        alice.dataReceived(b"nul\x00byte\n")
        alice.dataReceived(b"a\rb\n")
        self.assertEqual(received(alice_transport), [CONTROL] * 4)
        self.assertEqual(received(bob_transport), [])

    def test_tab_allowed(self) -> None:
        """A tab is text."""
        alice, alice_transport = self.connect("alice")
        alice.dataReceived(b"a\tb\n")
        self.assertEqual(received(alice_transport), ["<alice> a\tb"])


class LongLineTests(ProtocolTestCase):
    """Lines over the limit are refused without buffering them."""

    limits = Limits(max_line_length=10, flood_rate=0)

    def test_default_limit(self) -> None:
        """The default limit is 4096 bytes."""
        self.assertEqual(DEFAULT_MAX_LINE_LENGTH, 4096)
        self.assertEqual(Limits().max_line_length, 4096)

    def test_at_limit(self) -> None:
        """A line of exactly the limit is accepted, with \\n or \\r\\n."""
        alice, alice_transport = self.connect("al")
        alice.dataReceived(b"x" * 10 + b"\n" + b"y" * 10 + b"\r\n")
        self.assertEqual(
            received(alice_transport),
            ["<al> " + "x" * 10, "<al> " + "y" * 10],
        )

    def test_limit_counts_bytes(self) -> None:
        """The limit is in bytes of UTF-8, not characters."""
        alice, alice_transport = self.connect("al")
        alice.dataReceived("ééééé\n".encode() + "éééééé\n".encode())
        self.assertEqual(received(alice_transport), ["<al> ééééé", TOO_LONG.format(10)])

    def test_over_limit_in_one_chunk(self) -> None:
        """A long line in one chunk gives one error; the next line works."""
        alice, alice_transport = self.connect("al")
        _, bob_transport = self.connect("bob")
        alice.dataReceived(b"x" * 50 + b"\nshort\n")
        self.assertEqual(received(alice_transport), [TOO_LONG.format(10), "<al> short"])
        self.assertEqual(received(bob_transport), ["<al> short"])
        self.assertFalse(alice_transport.disconnecting)

    def test_one_over_limit(self) -> None:
        """A line one byte over the limit is refused."""
        alice, alice_transport = self.connect("al")
        alice.dataReceived(b"x" * 11 + b"\n")
        alice.dataReceived(b"y" * 11 + b"\r\n")
        self.assertEqual(received(alice_transport), [TOO_LONG.format(10)] * 2)

    def test_over_limit_across_chunks(self) -> None:
        """A long line in pieces gives one error and is discarded to its end."""
        alice, alice_transport = self.connect("al")
        _, bob_transport = self.connect("bob")
        for _ in range(5):
            alice.dataReceived(b"x" * 4)
        alice.dataReceived(b"x" * 4 + b"tail\nnext\n")
        self.assertEqual(received(alice_transport), [TOO_LONG.format(10), "<al> next"])
        self.assertEqual(received(bob_transport), ["<al> next"])

    def test_configurable(self) -> None:
        """The error names the configured limit."""
        alice, alice_transport = self.connect("al")
        self.assertEqual(alice.max_line_length, 10)
        alice.dataReceived(b"z" * 100 + b"\n")
        self.assertEqual(received(alice_transport), [TOO_LONG.format(10)])


class StreamingTests(ProtocolTestCase):
    """A peer sending without newlines cannot make the server buffer it."""

    limits = Limits(flood_rate=0)

    def test_megabytes_without_newline(self) -> None:
        """The buffer stays within the limit, one error is sent, lines resume."""
        alice, alice_transport = self.connect("alice")
        _, bob_transport = self.connect("bob")
        limit = DEFAULT_MAX_LINE_LENGTH
        chunk = b"A" * 65536
        for _ in range(64):  # 4 MiB
            alice.dataReceived(chunk)
            # One byte of slack for a \r waiting for its \n.
            self.assertLessEqual(len(alice._buffer), limit + 1)
        for size in (1, 100, 4000, 5000):
            alice.dataReceived(b"B" * size)
            self.assertLessEqual(len(alice._buffer), limit + 1)
        self.assertEqual(received(alice_transport), [TOO_LONG.format(limit)])
        alice.dataReceived(b"end of the flood\nhello\n")
        self.assertEqual(received(alice_transport), ["<alice> hello"])
        self.assertEqual(received(bob_transport), ["<alice> hello"])
        self.assertEqual(alice._buffer, b"")

    def test_partial_line_kept(self) -> None:
        """A short partial line waits in the buffer for its end."""
        alice, alice_transport = self.connect("alice")
        alice.dataReceived(b"not yet")
        self.assertEqual(alice._buffer, b"not yet")
        alice.dataReceived(b" done\n")
        self.assertEqual(received(alice_transport), ["<alice> not yet done"])
        self.assertEqual(alice._buffer, b"")


class AddressTests(SynchronousTestCase):
    """Peer addresses, as shown in logs."""

    def test_ipv4(self) -> None:
        """host:port."""
        self.assertEqual(
            describe_address(IPv4Address("TCP", "192.0.2.7", 4242)), "192.0.2.7:4242"
        )

    def test_ipv6(self) -> None:
        """[host]:port."""
        self.assertEqual(
            describe_address(IPv6Address("TCP", "2001:db8::1", 4242)),
            "[2001:db8::1]:4242",
        )

    def test_unix(self) -> None:
        """unix:path, or just unix for an unnamed socket."""
        self.assertEqual(
            describe_address(UNIXAddress(b"/run/chat.sock")), "unix:/run/chat.sock"
        )
        self.assertEqual(describe_address(UNIXAddress(None)), "unix")
        self.assertEqual(describe_address(UNIXAddress(b"")), "unix")

    def test_unix_undecodable(self) -> None:
        """A UNIX path that is not UTF-8 is still printable."""
        self.assertEqual(
            describe_address(UNIXAddress(b"/tmp/\xff.sock")), "unix:/tmp/\ufffd.sock"
        )

    def test_other(self) -> None:
        """Other addresses fall back to str()."""
        address = FakeAddress()
        self.assertEqual(describe_address(address), str(address))


class FakeTCPTransport(StringTransport):
    """A StringTransport that claims to be TCP and records socket options."""

    def __init__(self, handle: socket.socket) -> None:
        super().__init__()
        alsoProvides(self, ITCPTransport, ISystemHandle)
        self.handle = handle
        self.options: list[tuple[str, bool]] = []

    def getHandle(self) -> socket.socket:
        return self.handle

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.options.append(("nodelay", enabled))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.options.append(("keepalive", enabled))


class Wrapper(StringTransport):
    """A transport wrapping another, as TLS does."""

    def __init__(self, transport: object) -> None:
        super().__init__()
        self.transport = transport


class TLSLikeWrapper(FakeTCPTransport):
    """
    Like Twisted's TLS wrapper: provides ITCPTransport and ISystemHandle, but
    its handle is not a socket, and the real TCP transport is inside.
    """

    def __init__(self, transport: FakeTCPTransport) -> None:
        super().__init__(transport.handle)
        self.transport = transport

    def getHandle(self) -> object:  # type: ignore[override]
        return object()


class TuneSocketTests(SynchronousTestCase):
    """tune_socket() sets TCP_NODELAY and SO_KEEPALIVE on TCP only."""

    def handle(self, family: socket.AddressFamily) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        return sock

    def test_tcp(self) -> None:
        """Both options are turned on for an IPv4 TCP connection."""
        transport = FakeTCPTransport(self.handle(socket.AF_INET))
        tune_socket(transport)
        self.assertEqual(transport.options, [("nodelay", True), ("keepalive", True)])

    def test_send_buffer(self) -> None:
        """
        A send buffer size, when given, is set on the socket (Linux reports
        twice what was asked, for its bookkeeping); by default it is left.
        """
        sock = self.handle(socket.AF_INET)
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        tune_socket(FakeTCPTransport(sock))
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), default)
        wanted = default // 4
        tune_socket(FakeTCPTransport(sock), send_buffer=wanted)
        self.assertIn(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), (wanted, wanted * 2)
        )

    def test_tcp6(self) -> None:
        """And for IPv6."""
        if not socket.has_ipv6:
            raise self.skipTest("no IPv6")
        transport = FakeTCPTransport(self.handle(socket.AF_INET6))
        tune_socket(transport)
        self.assertEqual(transport.options, [("nodelay", True), ("keepalive", True)])

    def test_through_wrapper(self) -> None:
        """A wrapper that is not itself TCP is looked through."""
        transport = FakeTCPTransport(self.handle(socket.AF_INET))
        tune_socket(Wrapper(Wrapper(transport)))
        self.assertEqual(transport.options, [("nodelay", True), ("keepalive", True)])

    def test_through_tls(self) -> None:
        """
        Twisted's TLS wrapper claims the interfaces of the TCP transport it
        wraps, and its handle is the TLS connection: it is looked through.
        """
        transport = FakeTCPTransport(self.handle(socket.AF_INET))
        tls = TLSLikeWrapper(transport)
        tune_socket(tls)
        self.assertEqual(tls.options, [])
        self.assertEqual(transport.options, [("nodelay", True), ("keepalive", True)])

    def test_tcp_without_handle(self) -> None:
        """
        A TCP transport without a system handle, like iosim's FakeTransport,
        is left alone instead of failing the connection.
        """
        factory = ChatFactory(ChatServer(), clock=Clock())
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(protocol, ChatProtocol)
        transport = iosim.FakeTransport(protocol, isServer=True)
        self.assertTrue(ITCPTransport.providedBy(transport))
        tune_socket(transport)
        protocol.makeConnection(transport)
        self.assertIsNotNone(protocol.user)

    def test_unix_socket(self) -> None:
        """A UNIX socket (TCP-like transport, no TCP options) is left alone."""
        transport = FakeTCPTransport(self.handle(socket.AF_UNIX))
        tune_socket(transport)
        self.assertEqual(transport.options, [])

    def test_not_tcp(self) -> None:
        """
        A transport with an IPv4 socket that does not provide ITCPTransport
        gets no TCP options and no send buffer.
        """
        sock = self.handle(socket.AF_INET)
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        transport = FakeTCPTransport(sock)
        noLongerProvides(transport, ITCPTransport)
        tune_socket(transport, send_buffer=default // 4)
        self.assertEqual(transport.options, [])
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), default)

    def test_on_connect(self) -> None:
        """ChatProtocol tunes its transport when the connection is made."""
        factory = ChatFactory(ChatServer(), clock=Clock())
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert protocol is not None
        transport = FakeTCPTransport(self.handle(socket.AF_INET))
        protocol.makeConnection(transport)
        self.assertEqual(transport.options, [("nodelay", True), ("keepalive", True)])


class _Reader(Protocol):
    """A real TCP client that waits for the greeting."""

    def __init__(self) -> None:
        self.received = b""
        self.greeted: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if b"Users in #lobby" in self.received and not self.greeted.called:
            self.greeted.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(None)


class RealSocketTests(TestCase):
    """The options are set on a real loopback TCP connection."""

    @inlineCallbacks
    def test_socket_options(self) -> Generator[Deferred[Any], Any, None]:
        """The server side of an accepted connection has both options on."""
        reactor = global_reactor
        assert IReactorTCP.providedBy(reactor) and IReactorTime.providedBy(reactor)
        factory = ChatFactory(ChatServer(), clock=reactor)
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        address = port.getHost()
        reader = _Reader()
        client_endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", address.port)
        yield client_endpoint.connect(Factory.forProtocol(lambda: reader))
        yield reader.greeted
        [server] = list(factory.connections)
        server_closed = server.when_closed()
        sock = server.transport.getHandle()  # type: ignore[attr-defined]
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        keepalive = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert reader.transport is not None
        reader.transport.loseConnection()
        yield reader.lost
        yield server_closed
        self.assertEqual((bool(nodelay), bool(keepalive)), (True, True))
