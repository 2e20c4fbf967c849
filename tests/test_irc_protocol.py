"""
Tests for L{twisted_chat.server.irc_protocol}: IRC clients on
L{StringTransport}s, sharing one chat and one delivery with line-protocol
users, driven by a L{Clock}.  Exact lines everywhere: the numerics and their
parameters are what the specifications fix.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.conversation import INFO
from tests.test_history import FakeStore
from tests.test_limits import RecordingTransport
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import DurableFanout
from twisted_chat.core.interfaces import IChatClient
from twisted_chat.server.backpressure import SENDQ_GRACE
from twisted_chat.server.connection import (
    Connection,
    ConnectionFactory,
    RefusedProtocol,
)
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.irc import IRCServerInfo
from twisted_chat.server.irc_protocol import IRC_HOST, IRCFactory, IRCProtocol
from twisted_chat.server.irc_wire import MAX_CLIENT_LINE_BYTES
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory

S = ":irc.test"
FLOOD_NOTICE = (
    f"{S} NOTICE al :You are sending lines faster than 5 a second; the rest are "
    "delayed."
)


class Client:
    """One connection to the server under test, from the user's side."""

    def __init__(self, protocol: Connection, transport: RecordingTransport) -> None:
        self.protocol = protocol
        self.transport = transport
        self.lost = False

    def send(self, data: bytes) -> None:
        """Deliver C{data} to the server as one TCP segment."""
        self.protocol.dataReceived(data)

    def type(self, *lines: str) -> None:
        """Send each of C{lines} with CR LF, in one segment."""
        self.send(b"".join(line.encode() + b"\r\n" for line in lines))

    def take(self) -> list[str]:
        """The lines received since the last call, without their endings."""
        data = bytes(self.transport.value())
        self.transport.clear()
        self.transport.writes.clear()
        assert data == b"" or data.endswith(b"\n"), f"partial line: {data!r}"
        return [line.removesuffix("\r") for line in data.decode().split("\n")[:-1]]

    @property
    def closing(self) -> bool:
        return bool(self.transport.disconnecting)

    @property
    def aborted(self) -> bool:
        return bool(self.transport.disconnected)

    @property
    def reading_paused(self) -> bool:
        return self.transport.producerState == "paused"

    def lose(self) -> None:
        """The connection is closed: tell the protocol."""
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionDone()))


class Server:
    """
    One chat and one delivery, with an IRC and a line-protocol factory
    sharing them, and connections on L{RecordingTransport}s.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        ping_interval: float = 120.0,
        registration_timeout: float = 60.0,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.chat = ChatServer(clock=self.clock)
        self.delivery = Delivery(
            self.chat, limits if limits is not None else Limits(), self.clock
        )
        self.line_factory = ChatFactory(self.chat, delivery=self.delivery)
        self.irc_factory = IRCFactory(
            self.delivery,
            info=INFO,
            ping_interval=ping_interval,
            registration_timeout=registration_timeout,
        )
        self.clients: list[Client] = []
        self._port = 40000

    def address(self, host: str = "127.0.0.1") -> IAddress:
        self._port += 1
        return IPv4Address("TCP", host, self._port)

    def open(
        self, factory: ConnectionFactory, host: str = "127.0.0.1"
    ) -> tuple[Protocol, RecordingTransport]:
        """Open a connection, whatever the factory builds for it."""
        address = self.address(host)
        protocol = factory.buildProtocol(address)
        assert protocol is not None
        transport = RecordingTransport(address)
        protocol.makeConnection(transport)
        return protocol, transport

    def connect(self, factory: ConnectionFactory) -> Client:
        protocol, transport = self.open(factory)
        assert isinstance(protocol, Connection), "the connection was refused"
        client = Client(protocol, transport)
        self.clients.append(client)
        return client

    def irc(self, nick: str | None = None, *lines: str) -> Client:
        """
        An IRC client; registered as C{nick} if given, then sends C{lines};
        what everyone received so far is forgotten.
        """
        client = self.connect(self.irc_factory)
        if nick is not None:
            client.type(f"NICK {nick}", f"USER {nick} 0 * :{nick.title()}", *lines)
            self.forget()
        return client

    def line(self, nick: str) -> Client:
        """A line-protocol user called C{nick}, in #lobby."""
        client = self.connect(self.line_factory)
        client.type(f"/nick {nick}")
        self.forget()
        return client

    def forget(self) -> None:
        for client in self.clients:
            client.take()


class RegistrationTests(SynchronousTestCase):
    """Connecting, registering, and what is refused before."""

    def test_welcome(self) -> None:
        """
        CAP LS holds registration until CAP END; then 001 to 005 and 422 (no
        MOTD).  The connection is a user only then, in no room.
        """
        server = Server()
        al = server.irc()
        self.assertTrue(verifyObject(IChatClient, al.protocol))
        al.type("CAP LS 302", "NICK al", "USER al 0 * :Al Smith")
        self.assertEqual(
            al.take(),
            [f"{S} CAP * LS :cap-notify echo-message multi-prefix server-time"],
        )
        self.assertEqual(al.protocol.state, "registering")
        self.assertEqual(server.chat.users, {})
        al.type("CAP END")
        self.assertEqual(
            al.take(),
            [
                f"{S} 001 al :Welcome to the TestNet Network, al",
                f"{S} 002 al :Your host is irc.test, running version tc-1",
                f"{S} 003 al :This server was created today",
                f"{S} 004 al irc.test tc-1 i ot o",
                f"{S} 005 al CASEMAPPING=ascii CHANMODES=,,,t CHANNELLEN=33 "
                "CHANTYPES=# NETWORK=TestNet NICKLEN=20 PREFIX=(o)@ "
                "TARGMAX=JOIN:,KICK:4,LIST:,NAMES:,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1 "
                "TOPICLEN=300 :are supported by this server",
                f"{S} 422 al :MOTD File is missing",
            ],
        )
        self.assertEqual(al.protocol.state, "open")
        user = server.chat.users["al"]
        self.assertEqual(
            (user.username, user.host, user.realname, list(user.rooms)),
            ("~al", IRC_HOST, "Al Smith", []),
        )

    def test_nick_in_use(self) -> None:
        """A nickname a line-protocol user has is refused with 433; another
        NICK registers."""
        server = Server()
        server.line("bob")
        client = server.irc()
        client.type("NICK bob", "USER b 0 * :B")
        self.assertEqual(client.take(), [f"{S} 433 * bob :Nickname is already in use"])
        client.type("NICK Bob2")
        self.assertEqual(
            client.take()[0], f"{S} 001 Bob2 :Welcome to the TestNet Network, Bob2"
        )

    def test_not_registered(self) -> None:
        """Commands other than registration's get 451 before it."""
        client = Server().irc()
        client.type("JOIN #lobby", "PRIVMSG bob :hi")
        self.assertEqual(client.take(), [f"{S} 451 * :You have not registered"] * 2)

    def test_quit_before_registration(self) -> None:
        """QUIT before registering: ERROR, then the connection closes."""
        client = Server().irc()
        client.type("QUIT")
        self.assertEqual(client.take(), ["ERROR :Closing link: (Quit)"])
        self.assertTrue(client.closing)
        self.assertEqual(client.protocol.state, "closing")
        client.lose()
        self.assertEqual(client.protocol.state, "closed")

    def test_registration_timeout(self) -> None:
        """A connection that does not register in time is closed."""
        server = Server(registration_timeout=30)
        client = server.irc()
        client.type("NICK al")
        server.clock.advance(29.9)
        self.assertFalse(client.closing)
        server.clock.advance(0.1)
        self.assertEqual(client.take(), ["ERROR :Closing link: registration timed out"])
        self.assertTrue(client.closing)
        registered = server.irc("bob")
        server.clock.advance(100)
        self.assertFalse(registered.closing)

    def test_invalid_utf8(self) -> None:
        """A line that is not UTF-8 gets a server NOTICE; the connection stays."""
        server = Server()
        al = server.irc("al")
        al.send(b"PRIVMSG #lobby :caf\xe9\r\n")
        self.assertEqual(
            al.take(),
            [f"{S} NOTICE al :Your line is not valid UTF-8 and was not sent."],
        )
        self.assertFalse(al.closing)


class LengthTests(SynchronousTestCase):
    """
    IRC's limits: 512 bytes of message with its CR LF, tags counted apart
    (4094 bytes of tag data); refused with 417, never truncated.
    """

    def setUp(self) -> None:
        # --max-line-length is the line protocol's: IRC's limit is its own.
        self.server = Server(Limits(max_line_length=16, flood_rate=0))
        self.al = self.server.irc("al", "JOIN #dev")
        self.bob = self.server.irc("bob", "JOIN #dev")

    def test_longest_message(self) -> None:
        """510 bytes and CR LF: relayed whole."""
        head = "PRIVMSG #dev :"
        text = "x" * (510 - len(head))
        self.al.type(head + text)
        # With the source in front, it takes two lines to relay.
        prefix = f":al!~al@{IRC_HOST} PRIVMSG #dev :"
        relayed = self.bob.take()
        self.assertEqual([line[: len(prefix)] for line in relayed], [prefix] * 2)
        self.assertEqual("".join(line[len(prefix) :] for line in relayed), text)

    def test_too_long(self) -> None:
        """One byte more (a 600-byte line too): 417, nothing relayed, the
        connection stays."""
        for size in (511, 600):
            self.al.type("PRIVMSG #dev :" + "x" * (size - 14))
            self.assertEqual(self.al.take(), [f"{S} 417 al :Input line was too long"])
            self.assertEqual(self.bob.take(), [])
        self.assertFalse(self.al.closing)

    def test_tags_counted_apart(self) -> None:
        """4094 bytes of tags before a full message are fine; one more is
        too long."""
        message = "PRIVMSG #dev :" + "y" * (510 - 14)
        self.al.type("@" + "a" * 4094 + " " + message)
        self.assertEqual(len(self.bob.take()), 2)
        self.al.type("@" + "a" * 4095 + " " + message)
        self.assertEqual(self.al.take(), [f"{S} 417 al :Input line was too long"])
        self.assertEqual(self.bob.take(), [])

    def test_longer_than_any_line(self) -> None:
        """
        Past the longest line a client may send, the connection answers 417
        once, keeps at most that much, and discards the rest of the line.
        """
        self.assertEqual(self.al.protocol.max_line_length, MAX_CLIENT_LINE_BYTES - 2)
        for _ in range(64):
            self.al.send(b"z" * 4096)
            self.assertLessEqual(len(self.al.protocol._buffer), MAX_CLIENT_LINE_BYTES)
        self.al.send(b"\r\nPRIVMSG #dev :after\r\n")
        self.assertEqual(self.al.take(), [f"{S} 417 al :Input line was too long"])
        self.assertEqual(self.bob.take(), [f":al!~al@{IRC_HOST} PRIVMSG #dev :after"])


class FloodTests(SynchronousTestCase):
    """Flood control is the line protocol's: delay, then disconnect."""

    def test_delayed(self) -> None:
        """Past the burst, lines wait (reading paused) with one NOTICE, and
        arrive in order."""
        server = Server()
        al = server.irc("al", "JOIN #dev")
        bob = server.line("bob")
        bob.type("/join dev")
        server.clock.advance(60)
        server.forget()
        al.type(*[f"PRIVMSG #dev :line {i}" for i in range(25)])
        self.assertTrue(al.reading_paused)
        self.assertEqual(al.take(), [FLOOD_NOTICE])
        self.assertEqual(bob.take(), [f"<al> line {i}" for i in range(20)])
        server.clock.advance(1)
        self.assertEqual(bob.take(), [f"<al> line {i}" for i in range(20, 25)])
        self.assertFalse(al.reading_paused)

    def test_kicked(self) -> None:
        """Too many delayed lines: ERROR, closed; both protocols see it quit."""
        server = Server(Limits(flood_burst=3, flood_rate=5, flood_kick=5))
        al = server.irc("al", "JOIN #lobby")
        bob = server.line("bob")
        carol = server.irc("carol", "JOIN #lobby")
        server.clock.advance(60)
        server.forget()
        al.type(*[f"PRIVMSG #lobby :a{i}" for i in range(10)])
        self.assertEqual(
            al.take()[-2:], [FLOOD_NOTICE, "ERROR :Closing link: excess flood"]
        )
        self.assertTrue(al.closing)
        self.assertEqual(bob.take()[-1], "*** al has quit (excess flood)")
        self.assertEqual(carol.take()[-1], f":al!~al@{IRC_HOST} QUIT :excess flood")


class KeepaliveTests(SynchronousTestCase):
    """The server PINGs a silent client and drops one that does not answer."""

    def setUp(self) -> None:
        self.server = Server()
        self.al = self.server.irc("al", "JOIN #lobby")
        self.bob = self.server.line("bob")
        self.carol = self.server.irc("carol", "JOIN #lobby")
        self.server.forget()

    def test_ping_answered(self) -> None:
        """PING after the interval of silence; a PONG keeps the connection."""
        self.server.clock.advance(119.9)
        self.assertEqual(self.al.take(), [])
        self.server.clock.advance(0.1)
        self.assertEqual(self.al.take(), ["PING :irc.test"])
        self.server.clock.advance(60)
        self.al.type("PONG :irc.test")
        self.server.clock.advance(119)
        self.assertFalse(self.al.closing)
        self.assertNotIn("PING :irc.test", self.al.take())
        self.server.clock.advance(1)
        self.assertIn("PING :irc.test", self.al.take())

    def test_any_line_answers(self) -> None:
        """Any line is an answer, and lines often enough mean no PING."""
        for _ in range(10):
            self.server.clock.advance(100)
            self.al.type("PRIVMSG bob :still here")
        self.server.clock.advance(119)
        self.assertEqual([line for line in self.al.take() if "PING" in line], [])
        self.assertFalse(self.al.closing)

    def test_ping_timeout(self) -> None:
        """
        No answer within the interval: ERROR, closed, and every room sees the
        quit with the seconds of silence.
        """
        self.server.clock.advance(120)
        self.carol.type("PONG :irc.test")
        self.server.clock.advance(119.9)
        self.assertFalse(self.al.closing)
        self.server.clock.advance(0.1)
        self.assertEqual(
            self.al.take(),
            ["PING :irc.test", "ERROR :Closing link: Ping timeout: 240 seconds"],
        )
        self.assertTrue(self.al.closing)
        self.assertEqual(
            self.bob.take(), ["*** al has quit (Ping timeout: 240 seconds)"]
        )
        self.assertIn(
            f":al!~al@{IRC_HOST} QUIT :Ping timeout: 240 seconds", self.carol.take()
        )
        self.assertFalse(self.carol.closing)
        self.al.lose()
        self.assertEqual(self.bob.take(), [])

    def test_off(self) -> None:
        """With a ping interval of 0 (and no timeouts), nothing is timed."""
        server = Server(ping_interval=0, registration_timeout=0)
        al = server.irc("al")
        self.assertEqual(server.clock.getDelayedCalls(), [])
        server.clock.advance(10 * 24 * 3600)
        self.assertEqual(al.take(), [])

    def test_timers_cancelled(self) -> None:
        """A connection that closes leaves no timer behind."""
        for client in (self.al, self.bob, self.carol):
            client.lose()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])


class IdleTimeoutTests(SynchronousTestCase):
    """
    The idle timeout counts what the user does: a client that answers PINGs
    but says nothing is idle.
    """

    def test_keepalive_is_not_activity(self) -> None:
        """PONGs and PINGs do not reset the idle timeout; a message does."""
        server = Server(Limits(idle_timeout=300))
        al = server.irc("al", "JOIN #lobby")
        carol = server.irc("carol", "JOIN #lobby")
        for _ in range(5):
            server.clock.advance(50)
            al.type("PING :lag", "PONG :irc.test")
            carol.type("PRIVMSG #lobby :busy")
        al.type("PRIVMSG #lobby :hi")
        carol.type("PRIVMSG #lobby :busy")
        server.forget()
        server.clock.advance(299)
        self.assertFalse(al.closing)
        al.type("PONG :irc.test")
        carol.type("PRIVMSG #lobby :busy")
        server.clock.advance(1)
        self.assertEqual(al.take()[-1], "ERROR :Closing link: idle timeout")
        self.assertTrue(al.closing)
        self.assertEqual(carol.take()[-1], f":al!~al@{IRC_HOST} QUIT :idle timeout")


class EchoTests(SynchronousTestCase):
    """
    echo-message: without it a client gets none of its own messages back,
    but always its own JOIN, PART, TOPIC and NICK; with it, it gets them all.
    """

    def test_without(self) -> None:
        """Own PRIVMSG and NOTICE (to a channel or a nick) are not echoed."""
        server = Server()
        al = server.irc("al")
        bob = server.irc("bob")
        al.type("JOIN #dev")
        bob.type("JOIN #dev")
        bob.take()
        self.assertEqual(
            al.take(),
            [
                f":al!~al@{IRC_HOST} JOIN #dev",
                f"{S} 353 al = #dev :@al",
                f"{S} 366 al #dev :End of /NAMES list",
                f":bob!~bob@{IRC_HOST} JOIN #dev",
            ],
        )
        al.type(
            "PRIVMSG #dev :hi",
            "NOTICE #dev :note",
            "PRIVMSG bob :psst",
            "TOPIC #dev :plans",
            "NICK al2",
            "PART #dev :bye",
        )
        source = f"al!~al@{IRC_HOST}"
        self.assertEqual(
            al.take(),
            [
                f":{source} TOPIC #dev :plans",
                f":{source} NICK al2",
                f":al2!~al@{IRC_HOST} PART #dev :bye",
            ],
        )
        self.assertEqual(
            bob.take(),
            [
                f":{source} PRIVMSG #dev :hi",
                f":{source} NOTICE #dev :note",
                f":{source} PRIVMSG bob :psst",
                f":{source} TOPIC #dev :plans",
                f":{source} NICK al2",
                f":al2!~al@{IRC_HOST} PART #dev :bye",
            ],
        )

    def test_with(self) -> None:
        """With echo-message, own messages come back, private ones too."""
        server = Server()
        al = server.irc("al", "CAP REQ :echo-message", "JOIN #dev")
        server.irc("bob", "JOIN #dev")
        server.forget()
        al.type("PRIVMSG #dev :hi", "PRIVMSG bob :psst")
        self.assertEqual(
            al.take(),
            [
                f":al!~al@{IRC_HOST} PRIVMSG #dev :hi",
                f":al!~al@{IRC_HOST} PRIVMSG bob :psst",
            ],
        )

    def test_capabilities_change_the_view(self) -> None:
        """CAP REQ after joining takes effect in the rooms already joined."""
        server = Server()
        al = server.irc("al", "JOIN #dev")
        bob = server.line("bob")
        bob.type("/join dev")
        server.forget()
        al.type("CAP REQ :echo-message server-time")
        self.assertEqual(al.take(), [f"{S} CAP al ACK :echo-message server-time"])
        bob.type("hello")
        al.type("PRIVMSG #dev :hi bob")
        stamp = "@time=2023-11-14T22:13:20.000Z"
        self.assertEqual(
            al.take(),
            [
                f"{stamp} :bob!bob@line.twisted-chat PRIVMSG #dev :hello",
                f"{stamp} :al!~al@{IRC_HOST} PRIVMSG #dev :hi bob",
            ],
        )
        al.type("CAP REQ :-server-time")
        al.take()
        bob.type("again")
        self.assertEqual(al.take(), [":bob!bob@line.twisted-chat PRIVMSG #dev :again"])


class CommandTests(SynchronousTestCase):
    """Commands carried out through the core, with their exact replies."""

    def setUp(self) -> None:
        self.server = Server(Limits(flood_rate=0))
        self.al = self.server.irc("al", "JOIN #dev")
        self.bob = self.server.line("bob")
        self.bob.type("/join dev")
        self.server.forget()

    def test_nick_followed(self) -> None:
        """After NICK, replies are addressed to the new nickname."""
        self.al.type("NICK Alice", "MODE Alice", "WHOIS alice")
        self.assertEqual(
            self.al.take(),
            [
                f":al!~al@{IRC_HOST} NICK Alice",
                f"{S} 221 Alice +i",
                f"{S} 311 Alice Alice ~al {IRC_HOST} * :Al",
                f"{S} 319 Alice Alice :@#dev",
                f"{S} 312 Alice Alice irc.test :TestNet",
                f"{S} 317 Alice Alice 0 1700000000 :seconds idle, signon time",
                f"{S} 318 Alice alice :End of /WHOIS list",
            ],
        )
        self.assertEqual(self.bob.take(), ["*** al is now known as Alice"])

    def test_quit(self) -> None:
        """QUIT: ERROR with the reason; the room sees "Quit: " before it."""
        carol = self.server.irc("carol", "JOIN #dev")
        self.server.forget()
        self.al.type("QUIT :see you")
        self.assertEqual(self.al.take(), ["ERROR :Closing link: see you"])
        self.assertTrue(self.al.closing)
        self.assertEqual(self.bob.take(), ["*** al has quit (see you)"])
        self.assertEqual(carol.take(), [f":al!~al@{IRC_HOST} QUIT :Quit: see you"])

    def test_join_zero(self) -> None:
        """JOIN 0 parts every channel."""
        self.al.type("JOIN #ops", "JOIN 0")
        self.assertEqual(
            [line for line in self.al.take() if " PART " in line],
            [f":al!~al@{IRC_HOST} PART #dev", f":al!~al@{IRC_HOST} PART #ops"],
        )
        self.assertEqual(list(self.server.chat.users["al"].rooms), [])

    def test_operator(self) -> None:
        """
        The creator of a channel is its operator: only they set the topic
        (+t) and kick; the others get 482.
        """
        self.bob.type("/topic mine now")
        self.assertEqual(
            self.bob.take(), ["!!! Only an operator of #dev can set its topic."]
        )
        self.al.type("TOPIC #dev :ours", "KICK #dev bob :enough")
        self.assertEqual(
            self.bob.take(),
            [
                "*** al set the topic of #dev: ours",
                "*** al kicked bob from #dev (enough)",
                "*** Now talking in #lobby.",
            ],
        )
        carol = self.server.irc("carol", "JOIN #dev")
        carol.type("TOPIC #dev :theirs")
        self.assertEqual(
            carol.take(), [f"{S} 482 carol #dev :You're not channel operator"]
        )
        carol.type("TOPIC #dev")
        self.assertEqual(carol.take()[0], f"{S} 332 carol #dev :ours")

    def test_control_characters(self) -> None:
        """A message with control characters is refused with 404; colours
        are stripped."""
        self.al.type("PRIVMSG #dev :\x1b[2Jboo", "PRIVMSG #dev :\x0304red\x03 text")
        self.assertEqual(
            self.al.take(),
            [
                f"{S} 404 al #dev :Your message contains control characters and "
                "was not sent"
            ],
        )
        self.assertEqual(self.bob.take(), ["<al> red text"])

    def test_away(self) -> None:
        """AWAY is 306; a message to an away user gets 301."""
        self.al.type("AWAY :lunch")
        self.assertEqual(
            self.al.take(), [f"{S} 306 al :You have been marked as being away"]
        )
        self.bob.type("/msg al back soon?")
        self.assertEqual(
            self.bob.take(), ["-> *al* back soon?", "*** al is away: lunch"]
        )

    def test_list_names_who(self) -> None:
        """LIST, NAMES and WHO of a channel both protocols share."""
        self.al.type("LIST", "NAMES #dev", "WHO #dev")
        self.assertEqual(
            self.al.take(),
            [
                f"{S} 321 al Channel :Users  Name",
                f"{S} 322 al #dev 2 :",
                f"{S} 322 al #lobby 1 :",
                f"{S} 323 al :End of /LIST",
                f"{S} 353 al = #dev :@al bob",
                f"{S} 366 al #dev :End of /NAMES list",
                f"{S} 352 al #dev ~al {IRC_HOST} irc.test al H@ :0 al",
                f"{S} 352 al #dev bob line.twisted-chat irc.test bob H :0 bob",
                f"{S} 315 al #dev :End of WHO list",
            ],
        )


class SharedDeliveryTests(SynchronousTestCase):
    """Both front ends on one delivery: one batch, one count, one rule."""

    def test_one_write_per_connection(self) -> None:
        """A segment of lines from an IRC user is one write to every member,
        whatever its protocol."""
        server = Server(Limits(flood_rate=0))
        al = server.irc("al", "JOIN #lobby")
        bob = server.line("bob")
        carol = server.irc("carol", "JOIN #lobby")
        server.forget()
        al.type("PRIVMSG #lobby :one", "PRIVMSG #lobby :two")
        self.assertEqual(bob.transport.writes, [b"<al> one\n<al> two\n"])
        source = f":al!~al@{IRC_HOST}".encode()
        self.assertEqual(
            carol.transport.writes,
            [
                source
                + b" PRIVMSG #lobby :one\r\n"
                + source
                + b" PRIVMSG #lobby :two\r\n"
            ],
        )

    def test_connection_limits_count_both(self) -> None:
        """
        max_clients and max_per_ip count both front ends; each refuses in
        its own protocol.
        """
        server = Server(Limits(max_clients=2, max_per_ip=0))
        server.irc("al")
        server.line("bob")
        for factory, expected in [
            (
                server.irc_factory,
                b"ERROR :Closing link: The server is full (2 users); please try "
                b"again later.\r\n",
            ),
            (
                server.line_factory,
                b"!!! The server is full (2 users); please try again later.\n",
            ),
        ]:
            protocol, transport = server.open(factory)
            self.assertIsInstance(protocol, RefusedProtocol)
            self.assertEqual(transport.writes, [expected])
        per_ip = Server(Limits(max_clients=0, max_per_ip=1))
        per_ip.line("bob")
        protocol, _ = per_ip.open(per_ip.irc_factory)
        self.assertIsInstance(protocol, RefusedProtocol)

    def test_slow_irc_reader(self) -> None:
        """An IRC client that stops reading is cut once its queue has been
        past the send queue limit for SENDQ_GRACE, and the room (of both
        protocols) sees why."""
        server = Server(Limits(flood_rate=0, max_send_queue=1000))
        al = server.irc("al", "JOIN #lobby")
        bob = server.line("bob")
        carol = server.irc("carol", "JOIN #lobby")
        server.forget()
        al.protocol.pauseProducing()
        bob.type(*["x" * 200 for _ in range(6)])
        self.assertFalse(al.aborted)
        server.clock.advance(SENDQ_GRACE)
        bob.type("x")
        self.assertTrue(al.aborted)
        self.assertEqual(al.transport.writes, [])
        self.assertEqual(bob.take()[-1], "*** al has quit (send queue exceeded)")
        self.assertEqual(
            carol.take()[-1], f":al!~al@{IRC_HOST} QUIT :send queue exceeded"
        )
        al.lose()
        self.assertNotIn(al.protocol, server.delivery.connections)


class ProtocolInstanceTests(SynchronousTestCase):
    """What the factory builds."""

    def test_builds_irc(self) -> None:
        """The IRC factory builds IRCProtocols on the shared delivery."""
        server = Server()
        client = server.irc()
        self.assertIsInstance(client.protocol, IRCProtocol)
        self.assertIs(client.protocol.delivery, server.delivery)
        self.assertIn(client.protocol, server.line_factory.connections)


class HistoryTests(SynchronousTestCase):
    """With history kept, IRC users get the replay on joining, and
    CHATHISTORY, in their capabilities' form."""

    def test_replay_and_chathistory(self) -> None:
        """
        An IRC client with server-time joining a room gets its last lines as
        said, with their time; CHATHISTORY asks the store and answers.
        """
        clock = Clock()
        clock.advance(1_700_000_000)
        store = FakeStore(auto=True)
        fanout = DurableFanout(LocalFanout(), store, clock, replay=2)
        store.start(fanout.committed, fanout.failed)
        chat = ChatServer(fanout=fanout, history=fanout, clock=clock)
        delivery = Delivery(chat, Limits(), clock)
        server = Server()
        server.clock, server.chat, server.delivery = clock, chat, delivery
        server.line_factory = ChatFactory(chat, delivery=delivery)
        info = IRCServerInfo(server_name="irc.test", history_limit=10)
        server.irc_factory = IRCFactory(delivery, info=info)
        bob = server.line("bob")
        bob.type("one", "two", "three")
        al = server.irc("al", "CAP REQ :server-time draft/chathistory")
        al.type("JOIN #lobby")
        source = ":bob!bob@line.twisted-chat PRIVMSG #lobby"
        stamp = "@time=2023-11-14T22:13:20.000Z"
        self.assertEqual(
            al.take()[-2:],
            [
                f"{stamp};msgid=lobby.4 {source} :two",
                f"{stamp};msgid=lobby.5 {source} :three",
            ],
        )
        al.type("CHATHISTORY BEFORE #lobby msgid=lobby.5 1")
        [(query, d)] = store.reads
        self.assertEqual((query.room, query.limit), ("lobby", 1))
        d.callback(store.stored[1:2])
        self.assertEqual(al.take(), [f"{stamp};msgid=lobby.4 {source} :two"])
