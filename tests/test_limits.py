"""
Tests for the protective limits of the server (L{twisted_chat.server.limits}) as the
line protocol enforces them: line length, invalid UTF-8, control characters,
connection limits, the idle timeout, and one write per connection per event.

Flood control is in C{test_flood}, slow readers in C{test_slow_reader}, and
the properties that hold for any input in C{test_properties}.  The harness at
the top of this module (L{Server}, L{Peer}) is shared by those modules.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import observe_logs
from twisted_chat.core.chat import ChatServer
from twisted_chat.server.connection import RefusedProtocol
from twisted_chat.server.limits import ConnectionCounter, Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol

# Where another user's words may appear in a line: only after one of these
# prefixes, which name the sender (or, for "-> ", the recipient).
SERVER_PREFIXES = ("*** ", "!!! ")


class RecordingTransport(StringTransport):
    """A L{StringTransport} that also keeps every C{write} separately."""

    def __init__(self, peer: IAddress) -> None:
        super().__init__(peerAddress=peer)
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class Peer:
    """
    One connection to the server under test, seen from the user's side: a
    real L{ChatProtocol} on a L{RecordingTransport}.
    """

    def __init__(self, protocol: ChatProtocol, transport: RecordingTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.lost = False

    @property
    def nick(self) -> str:
        """The user's current nickname on the server."""
        user = self.protocol.user
        assert user is not None, "the user is gone"
        return user.nick

    def send(self, data: bytes) -> None:
        """Deliver C{data} to the server as one TCP segment."""
        self.protocol.dataReceived(data)

    def type(self, *texts: str) -> None:
        """Send each of C{texts} as one line, all in one segment."""
        self.send(b"".join(text.encode("utf-8") + b"\r\n" for text in texts))

    def received(self) -> bytes:
        """Everything the server wrote since the last L{take}."""
        return bytes(self.transport.value())

    def take(self) -> list[str]:
        """The lines received since the last call, which are then forgotten."""
        data = self.received()
        self.transport.clear()
        self.transport.writes.clear()
        assert data == b"" or data.endswith(b"\n"), f"partial line: {data!r}"
        # Split on "\n" only: the server's line ending, and nothing else.
        lines: list[str] = data.decode("utf-8").split("\n")[:-1]
        return lines

    @property
    def reading_paused(self) -> bool:
        """Whether the server stopped reading from this connection."""
        return self.transport.producerState == "paused"

    @property
    def closing(self) -> bool:
        """Whether the server closed or aborted the connection."""
        return bool(self.transport.disconnecting)

    @property
    def aborted(self) -> bool:
        """Whether the server aborted the connection."""
        return bool(self.transport.disconnected)

    def stop_reading(self) -> None:
        """Act as the transport does when the peer stops reading."""
        self.protocol.pauseProducing()

    def start_reading(self) -> None:
        """Act as the transport does when the peer has read its backlog."""
        self.protocol.resumeProducing()

    def lose(self) -> None:
        """The connection is closed (by either side): tell the protocol."""
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionDone()))


class Server:
    """
    A real L{ChatFactory} on a L{Clock}, and connections to it over
    L{RecordingTransport}s.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.clock = Clock()
        self.chat = ChatServer()
        self.factory = ChatFactory(
            self.chat, limits if limits is not None else Limits(), clock=self.clock
        )
        self.peers: list[Peer] = []
        self._port = 40000

    def open(self, address: IAddress) -> tuple[Protocol, RecordingTransport]:
        """Open a connection from C{address}, whatever the factory builds."""
        protocol = self.factory.buildProtocol(address)
        assert protocol is not None
        transport = RecordingTransport(address)
        protocol.makeConnection(transport)
        return protocol, transport

    def address(self, host: str = "127.0.0.1") -> IAddress:
        """A new peer address from C{host} (C{"unix"} for a UNIX socket)."""
        self._port += 1
        if host == "unix":
            return UNIXAddress(None)
        if ":" in host:
            return IPv6Address("TCP", host, self._port)
        return IPv4Address("TCP", host, self._port)

    def connect(self, nick: str | None = None, host: str = "127.0.0.1") -> Peer:
        """
        Connect a user from C{host}, optionally renamed to C{nick}; then
        forget everything every connection has received so far.
        """
        protocol, transport = self.open(self.address(host))
        assert isinstance(protocol, ChatProtocol), "the connection was refused"
        peer = Peer(protocol, transport)
        self.peers.append(peer)
        if nick is not None:
            peer.type(f"/nick {nick}")
        self.forget()
        return peer

    def forget(self) -> None:
        """Forget what every connection has received so far."""
        for peer in self.peers:
            peer.take()


# The old name of tests.helpers.observe_logs, still imported by
# test_slow_reader; remove it once that module imports observe_logs.
capture_log = observe_logs


class LimitsTests(SynchronousTestCase):
    """
    The default limits are the documented ones.  (How options become limits
    is tested with the options, in test_tap.)
    """

    def test_defaults(self) -> None:
        """4 KiB lines, flood control on, idle timeout off, and so on."""
        self.assertEqual(
            Limits(),
            Limits(
                max_line_length=4096,
                flood_burst=20,
                flood_rate=5.0,
                flood_kick=100,
                max_send_queue=256 * 1024,
                max_clients=5000,
                max_per_ip=50,
                idle_timeout=0.0,
                socket_send_buffer=64 * 1024,
            ),
        )


class ConnectionCounterTests(SynchronousTestCase):
    """L{ConnectionCounter} counts connections and says why one is refused."""

    full = "The server is full (2 users); please try again later."
    per_ip = (
        "Too many connections from your address (at most 1); "
        "please close one and try again."
    )

    def test_under_limits(self) -> None:
        """Connections under both limits are accepted."""
        counter = ConnectionCounter(max_clients=2, max_per_ip=1)
        self.assertIsNone(counter.refusal("10.0.0.1"))
        counter.add("10.0.0.1")
        self.assertIsNone(counter.refusal("10.0.0.2"))

    def test_full(self) -> None:
        """At C{max_clients}, every new connection is refused."""
        counter = ConnectionCounter(max_clients=2, max_per_ip=1)
        counter.add("10.0.0.1")
        counter.add(None)
        self.assertEqual(counter.refusal("10.0.0.2"), self.full)
        self.assertEqual(counter.refusal(None), self.full)

    def test_per_ip(self) -> None:
        """At C{max_per_ip}, only that address is refused."""
        counter = ConnectionCounter(max_clients=2, max_per_ip=1)
        counter.add("10.0.0.1")
        self.assertEqual(counter.refusal("10.0.0.1"), self.per_ip)
        self.assertIsNone(counter.refusal("10.0.0.2"))

    def test_unix_not_per_ip(self) -> None:
        """UNIX socket connections (host L{None}) have no per-IP limit."""
        counter = ConnectionCounter(max_clients=0, max_per_ip=1)
        for _ in range(5):
            self.assertIsNone(counter.refusal(None))
            counter.add(None)
        self.assertEqual(counter.total, 5)
        self.assertEqual(dict(counter.per_host), {})

    def test_remove(self) -> None:
        """A closed connection frees its place in both counts."""
        counter = ConnectionCounter(max_clients=2, max_per_ip=1)
        counter.add("10.0.0.1")
        counter.add("10.0.0.2")
        counter.remove("10.0.0.1")
        self.assertIsNone(counter.refusal("10.0.0.1"))
        self.assertEqual((counter.total, dict(counter.per_host)), (1, {"10.0.0.2": 1}))

    def test_zero_is_no_limit(self) -> None:
        """A limit of 0 is no limit."""
        counter = ConnectionCounter(max_clients=0, max_per_ip=0)
        for _ in range(1000):
            counter.add("10.0.0.1")
        self.assertIsNone(counter.refusal("10.0.0.1"))


class ConnectionLimitTests(SynchronousTestCase):
    """
    A connection over C{max_clients} or C{max_per_ip} gets one line saying
    why and is closed; once a connection closes, a new one is accepted.
    """

    full = b"!!! The server is full (2 users); please try again later.\n"
    per_ip = (
        b"!!! Too many connections from your address (at most 2); "
        b"please close one and try again.\n"
    )

    def assert_refused(
        self,
        server: Server,
        opened: tuple[Protocol, RecordingTransport],
        line: bytes,
    ) -> None:
        protocol, transport = opened
        self.assertIsInstance(protocol, RefusedProtocol)
        self.assertEqual(transport.writes, [line])
        self.assertTrue(transport.disconnecting)

    def test_max_clients(self) -> None:
        """The connection past C{max_clients} is told and closed."""
        server = Server(Limits(max_clients=2, max_per_ip=0))
        alice = server.connect("alice", host="10.0.0.1")
        server.connect("bob", host="10.0.0.2")
        events = observe_logs(self)
        opened = server.open(server.address("10.0.0.3"))
        self.assert_refused(server, opened, self.full)
        # The room never saw it: it was not a user.
        self.assertEqual(alice.take(), [])
        self.assertEqual(len(server.chat.users), 2)
        self.assertEqual(
            [formatEvent(e) for e in events if "refused" in formatEvent(e)],
            [f"refused 10.0.0.3:{server._port}: {self.full[4:-1].decode()}"],
        )

    def test_max_clients_counts_unix(self) -> None:
        """UNIX socket connections count towards C{max_clients}."""
        server = Server(Limits(max_clients=2, max_per_ip=0))
        server.connect(host="unix")
        server.connect(host="unix")
        self.assert_refused(server, server.open(server.address("unix")), self.full)

    def test_accepted_after_disconnect(self) -> None:
        """After a user leaves, a new connection is accepted again."""
        server = Server(Limits(max_clients=2, max_per_ip=0))
        alice = server.connect("alice", host="10.0.0.1")
        bob = server.connect("bob", host="10.0.0.2")
        self.assert_refused(server, server.open(server.address("10.0.0.3")), self.full)
        bob.lose()
        carol = server.connect("carol", host="10.0.0.3")
        self.assertIsNotNone(carol.protocol.user)
        alice.type("hi")
        self.assertEqual(carol.take(), ["<alice> hi"])

    def test_max_per_ip(self) -> None:
        """The connection past C{max_per_ip} from one address is refused."""
        server = Server(Limits(max_clients=0, max_per_ip=2))
        server.connect(host="10.0.0.1")
        server.connect(host="10.0.0.1")
        self.assert_refused(
            server, server.open(server.address("10.0.0.1")), self.per_ip
        )
        other = server.connect(host="10.0.0.2")
        self.assertIsNotNone(other.protocol.user)

    def test_max_per_ip_ipv6(self) -> None:
        """IPv6 addresses are counted too."""
        server = Server(Limits(max_clients=0, max_per_ip=2))
        server.connect(host="::1")
        server.connect(host="::1")
        self.assert_refused(server, server.open(server.address("::1")), self.per_ip)

    def test_max_per_ip_after_disconnect(self) -> None:
        """After one of its connections closes, an address may connect again."""
        server = Server(Limits(max_clients=0, max_per_ip=2))
        first = server.connect(host="10.0.0.1")
        server.connect(host="10.0.0.1")
        first.lose()
        again = server.connect(host="10.0.0.1")
        self.assertIsNotNone(again.protocol.user)
        self.assert_refused(
            server, server.open(server.address("10.0.0.1")), self.per_ip
        )

    def test_unix_not_per_ip(self) -> None:
        """UNIX socket connections are not counted per IP address."""
        server = Server(Limits(max_clients=0, max_per_ip=1))
        peers = [server.connect(host="unix") for _ in range(5)]
        self.assertTrue(all(peer.protocol.user is not None for peer in peers))
        self.assertIsNotNone(server.connect(host="10.0.0.1").protocol.user)

    def test_refused_closed_twice_is_counted_once(self) -> None:
        """A refused connection takes no place: its close frees nothing."""
        server = Server(Limits(max_clients=1, max_per_ip=0))
        server.connect(host="10.0.0.1")
        protocol, _ = server.open(server.address("10.0.0.2"))
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assert_refused(
            server,
            server.open(server.address("10.0.0.3")),
            b"!!! The server is full (1 users); please try again later.\n",
        )


class LineLengthTests(SynchronousTestCase):
    """
    A line longer than C{max_line_length} bytes is refused with an error and
    discarded up to the next newline; the connection stays open, and a peer
    that never sends a newline cannot make the server buffer more.
    """

    error = "!!! Your line is longer than 16 bytes and was not sent."

    def setUp(self) -> None:
        self.server = Server(Limits(max_line_length=16))
        self.alice = self.server.connect("alice")
        self.bob = self.server.connect("bob")

    def test_longest(self) -> None:
        """A line of exactly the limit is sent, with or without a CR."""
        self.alice.send(b"a" * 16 + b"\n" + b"b" * 16 + b"\r\n")
        self.assertEqual(
            self.bob.take(), ["<alice> " + "a" * 16, "<alice> " + "b" * 16]
        )

    def test_too_long(self) -> None:
        """One byte over the limit: an error, nothing relayed, still open."""
        self.alice.send(b"a" * 17 + b"\r\n")
        self.assertEqual(self.alice.take(), [self.error])
        self.assertEqual(self.bob.take(), [])
        self.alice.type("short")
        self.assertEqual(self.bob.take(), ["<alice> short"])
        self.assertFalse(self.alice.closing)

    def test_too_long_without_cr(self) -> None:
        """The limit counts the bytes of the line, whatever ends it."""
        self.alice.send(b"a" * 17 + b"\n")
        self.assertEqual(self.alice.take(), [self.error])
        self.assertEqual(self.bob.take(), [])

    def test_rest_discarded(self) -> None:
        """
        Once a partial line is over the limit, the rest of it is discarded
        up to the next newline, however it arrives; one error is sent.
        """
        self.alice.send(b"x" * 10)
        self.alice.send(b"x" * 10)
        self.assertEqual(self.alice.take(), [self.error])
        self.alice.send(b"tail")
        self.alice.send(b" end\r\nnext\r\n")
        self.assertEqual(self.alice.take(), ["<alice> next"])
        self.assertEqual(self.bob.take(), ["<alice> next"])
        self.assertFalse(self.alice.closing)

    def test_in_one_chunk(self) -> None:
        """Lines around an overlong one in the same segment are all handled."""
        self.alice.send(b"one\n" + b"z" * 50 + b"\ntwo\n")
        self.assertEqual(self.alice.take(), ["<alice> one", self.error, "<alice> two"])
        self.assertEqual(self.bob.take(), ["<alice> one", "<alice> two"])

    def test_stream_without_newline(self) -> None:
        """
        Megabytes without a newline: one error, and the protocol never holds
        more than the limit of it.
        """
        for _ in range(256):
            self.alice.send(b"y" * 4096)
            # White-box: what the protocol keeps of the unfinished line.
            self.assertLessEqual(len(self.alice.protocol._buffer), 17)
            self.assertIsNone(self.alice.protocol._pending)
        self.alice.send(b"\nafter\n")
        self.assertEqual(self.alice.take(), [self.error, "<alice> after"])
        self.assertEqual(self.bob.take(), ["<alice> after"])

    def test_default_limit(self) -> None:
        """The default limit is 4 KiB."""
        server = Server()
        alice, bob = server.connect("alice"), server.connect("bob")
        alice.send(b"a" * 4096 + b"\r\n")
        alice.send(b"b" * 4097 + b"\r\n")
        self.assertEqual(bob.take(), ["<alice> " + "a" * 4096])
        self.assertEqual(
            alice.take(),
            [
                "<alice> " + "a" * 4096,
                "!!! Your line is longer than 4096 bytes and was not sent.",
            ],
        )


class Utf8Tests(SynchronousTestCase):
    """A line that is not valid UTF-8 is refused; the connection stays."""

    error = "!!! Your line is not valid UTF-8 and was not sent."

    def setUp(self) -> None:
        self.server = Server()
        self.alice = self.server.connect("alice")
        self.bob = self.server.connect("bob")

    def test_invalid(self) -> None:
        """Invalid bytes: an error to the sender, nothing to the room."""
        for bad in [
            b"caf\xe9",  # Latin-1
            b"\xff\xfe",
            b"\xc0\xaf",  # overlong encoding of /
            b"\xed\xa0\x80",  # a surrogate
            b"abc\xe2\x82",  # truncated sequence
        ]:
            self.alice.send(bad + b"\r\n")
            self.assertEqual(self.alice.take(), [self.error], bad)
            self.assertEqual(self.bob.take(), [], bad)
        self.alice.type("still here")
        self.assertEqual(self.bob.take(), ["<alice> still here"])
        self.assertFalse(self.alice.closing)

    def test_split_character(self) -> None:
        """A multibyte character split across segments is fine."""
        data = "é€😀 ok\r\n".encode()
        for i in range(len(data)):
            self.alice.send(data[i : i + 1])
        self.assertEqual(self.bob.take(), ["<alice> é€😀 ok"])
        self.assertEqual(self.alice.take(), ["<alice> é€😀 ok"])


class ControlCharacterTests(SynchronousTestCase):
    """
    Control characters never reach another user, and no user can make a line
    that passes for a server notice or for another user's line.
    """

    error = (
        "!!! Your line contains control characters (such as terminal escape "
        "sequences) and was not sent."
    )

    samples = [
        "\x00",
        "\x07",
        "\x08",
        "\x0b",
        "\x0c",
        "\r",
        "\x1b[31mred\x1b[0m",
        "\x1b]0;title\x07",
        "\x7f",
        "\x85",
        "\x9b31m",
        "\u202e",
        "\u202a",
        "\u2066",
        "\u2069",
        "\u2028",
        "\u2029",
    ]

    def setUp(self) -> None:
        # Many lines in a row: flood control would delay them.
        self.server = Server(Limits(flood_rate=0))
        self.alice = self.server.connect("alice")
        self.bob = self.server.connect("bob")

    def test_refused(self) -> None:
        """In a message, an action, a private message or a quit reason."""
        for sample in self.samples:
            for template in ["a{}b", "/me a{}b", "/msg bob a{}b", "/quit a{}b"]:
                line = template.format(sample)
                self.alice.send(line.encode("utf-8") + b"\n")
                self.assertEqual(self.alice.take(), [self.error], repr(line))
                self.assertEqual(self.bob.take(), [], repr(line))
        self.assertFalse(self.alice.closing)

    def test_tab_allowed(self) -> None:
        """The tab is text."""
        self.alice.type("a\tb")
        self.assertEqual(self.bob.take(), ["<alice> a\tb"])

    def test_forgery(self) -> None:
        """
        Lines that try to look like a notice, an error or another user's line
        arrive prefixed with the sender's nickname.
        """
        self.alice.send(
            b"*** Server shutting down: now\n"
            b"!!! Your password is wrong\n"
            b"<bob> I owe alice 100 euros\n"
            b"hi\r\r\n<bob> hidden after CR\n"
            b"/me \n"
            b"/me * bob waves\n"
            b"/msg bob *carol* psst\n"
            b"hi\x0b<bob> vertical tab\n"
            b"hi\x85<bob> next line\n"
            b"hi\xe2\x80\xa8<bob> line separator\n"
        )
        self.assertEqual(
            self.bob.take(),
            [
                "<alice> *** Server shutting down: now",
                "<alice> !!! Your password is wrong",
                "<alice> <bob> I owe alice 100 euros",
                "<alice> <bob> hidden after CR",
                "* alice * bob waves",
                "*alice* *carol* psst",
            ],
        )

    def test_forged_nick(self) -> None:
        """A nickname cannot carry a prefix or a control character."""
        for name in ["***", "!!!", "<bob>", "bob\x1b[0m", "*bob*", "b\u202eob"]:
            self.alice.send(f"/nick {name}\n".encode())
            self.assertEqual(self.bob.take(), [], name)
            self.assertEqual(self.alice.nick, "alice")


class IdleTimeoutTests(SynchronousTestCase):
    """
    With an idle timeout, a user who sends no line for that long is told and
    disconnected; every line starts the wait again.  Off by default.
    """

    def test_off_by_default(self) -> None:
        """Without the option, a silent user stays for ever."""
        server = Server()
        alice = server.connect("alice")
        server.clock.advance(30 * 24 * 3600)
        self.assertEqual(alice.take(), [])
        self.assertFalse(alice.closing)
        self.assertEqual(server.clock.getDelayedCalls(), [])

    def test_timeout(self) -> None:
        """After the timeout: told why, disconnected, the room told."""
        server = Server(Limits(idle_timeout=60))
        alice = server.connect("alice")
        bob = server.connect("bob")
        server.clock.advance(30)
        bob.type("still here")  # bob's line does not keep alice connected
        server.forget()
        server.clock.advance(29.9)
        self.assertFalse(alice.closing)
        server.clock.advance(0.1)
        self.assertEqual(
            alice.take(),
            ["!!! Disconnected: idle timeout. You sent nothing for 60 seconds."],
        )
        self.assertTrue(alice.closing)
        self.assertEqual(bob.take(), ["*** alice has quit (idle timeout)"])
        self.assertFalse(bob.closing)
        alice.lose()
        self.assertEqual(bob.take(), [])

    def test_line_resets(self) -> None:
        """Each complete line restarts the timeout."""
        server = Server(Limits(idle_timeout=60))
        alice = server.connect("alice")
        for _ in range(5):
            server.clock.advance(50)
            alice.type("")  # even an empty line is a line
        server.clock.advance(59)
        self.assertFalse(alice.closing)
        server.clock.advance(1)
        self.assertTrue(alice.closing)

    def test_partial_line_does_not_reset(self) -> None:
        """Bytes without a newline are not a line."""
        server = Server(Limits(idle_timeout=60))
        alice = server.connect("alice")
        server.clock.advance(50)
        alice.send(b"typing slowly")
        server.clock.advance(10)
        self.assertTrue(alice.closing)

    def test_cancelled_on_disconnect(self) -> None:
        """A user who leaves leaves no timer behind."""
        server = Server(Limits(idle_timeout=60))
        alice = server.connect("alice")
        alice.lose()
        self.assertEqual(server.clock.getDelayedCalls(), [])


class BatchingTests(SynchronousTestCase):
    """
    Output is written once per connection per event: a segment of many lines
    from one sender is one C{write} to each member, with every line in order.
    """

    def test_one_write_per_member(self) -> None:
        """K lines in one segment: one write per member, K lines in order."""
        server = Server(Limits(flood_rate=0))
        alice = server.connect("alice")
        others = [server.connect(f"user{i}") for i in range(5)]
        texts = [f"line {i}" for i in range(50)]
        alice.type(*texts)
        expected = "".join(f"<alice> {text}\n" for text in texts).encode()
        for peer in [alice, *others]:
            self.assertEqual(peer.transport.writes, [expected])

    def test_mixed_output(self) -> None:
        """Replies to the sender alone are in the same single write, in order."""
        server = Server(Limits(flood_rate=0))
        alice = server.connect("alice")
        bob = server.connect("bob")
        alice.send(b"one\n/nosuch\n\xff\ntwo\n")
        self.assertEqual(len(alice.transport.writes), 1)
        self.assertEqual(
            alice.take(),
            [
                "<alice> one",
                "!!! Unknown command /nosuch. Type /help for the list of "
                "commands, or start a message with // to send a line beginning "
                "with /.",
                "!!! Your line is not valid UTF-8 and was not sent.",
                "<alice> two",
            ],
        )
        self.assertEqual(len(bob.transport.writes), 1)
        self.assertEqual(bob.take(), ["<alice> one", "<alice> two"])

    def test_connect_is_one_write(self) -> None:
        """The greeting of a new connection is one write."""
        server = Server()
        server.connect("alice")
        _, transport = server.open(server.address())
        self.assertEqual(len(transport.writes), 1)
        self.assertIn(b"*** Welcome", transport.writes[0])

    def test_one_write_per_event(self) -> None:
        """Separate segments are separate events: one write each."""
        server = Server(Limits(flood_rate=0))
        alice = server.connect("alice")
        bob = server.connect("bob")
        alice.type("a")
        alice.type("b")
        self.assertEqual(bob.transport.writes, [b"<alice> a\n", b"<alice> b\n"])
