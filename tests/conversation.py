"""
One conversation suite for every front end, and the in-memory network it
runs on.

L{Conversation} holds the chat scenarios once, in terms of what users do
(L{Peer.say}, L{Peer.join}, ...) and what they see (L{Peer.seen}: plain
tuples such as C{("message", "lobby", "alice", "hi")}).  Each front end
supplies a L{Peer} that types its own protocol's lines and reads its own
protocol's replies back into those tuples; a test case picks the front ends
its users take in turn, so the same scenarios run for the line protocol, for
IRC, and for a room where both meet.  Modelled on the magic-wormhole transit
relay's C{_Transit} (one suite over TCP and WebSocket) and Synapse's
C{tests/replication/_base.py}.

L{Network} is one chat behind one L{Delivery}, with both front ends'
factories, and any number of in-memory connections
(L{twisted.test.iosim}) moved along by L{Network.flush}.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.irc import parsemsg

from tests.helpers import Pumps
from twisted_chat.core.chat import ChatServer
from twisted_chat.server.connection import ConnectionFactory
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.irc import IRCServerInfo
from twisted_chat.server.irc_protocol import IRCFactory
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory

SERVER = "irc.test"
INFO = IRCServerInfo(
    server_name=SERVER, network="TestNet", version="tc-1", created="today"
)

# What a user sees, as plain tuples whatever the protocol:
#   ("message", room, nick, text)   ("action", room, nick, text)
#   ("joined", room, nick)          ("parted", room, nick, reason)
#   ("quit", nick, reason)          ("nick", old, new)
#   ("private", sender, recipient, text)
#   ("names", room, "nick nick ...")  (sorted, without prefixes)
#   ("topic", room, nick, topic)    ("kicked", room, operator, nick, reason)
#   ("no such nick", nick)          ("goodbye", reason)
Seen = tuple[str, ...]


class Wire(Protocol):
    """
    The user's end of an in-memory connection: sends lines, collects what
    the server writes.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True

    def send(self, *lines: str, ending: bytes = b"\r\n") -> None:
        """Send each of C{lines}, as one segment."""
        assert self.transport is not None
        self.transport.write(b"".join(line.encode() + ending for line in lines))

    def take(self) -> list[str]:
        """The complete lines received since the last call, without endings."""
        data, newline, rest = self.received.rpartition(b"\n")
        self.received = rest
        return [line.rstrip("\r") for line in (data + newline).decode().splitlines()]


class Network(Pumps):
    """
    One chat behind one L{Delivery}, a line-protocol and an IRC factory
    sharing it, and in-memory connections to either.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.clock = Clock()
        self.chat = ChatServer(clock=self.clock)
        self.delivery = Delivery(
            self.chat, limits if limits is not None else Limits(), self.clock
        )
        self.line = ChatFactory(self.chat, delivery=self.delivery)
        self.irc = IRCFactory(self.delivery, info=INFO)

    def connect(self, factory: ConnectionFactory) -> Wire:
        """Open a connection through C{factory} and deliver what it says first."""
        wire = Wire()
        self.open(factory, wire)
        return wire


class Peer:
    """
    A user of one front end: does things by typing that protocol's lines,
    and reads that protocol's lines back as L{Seen} tuples.
    """

    protocol: ClassVar[str]

    def __init__(self, network: Network, wire: Wire, nick: str) -> None:
        self.network = network
        self.wire = wire
        self.nick = nick

    @classmethod
    def login(cls, network: Network, nick: str) -> Peer:
        """Connect, take the nickname C{nick}, and be in C{#lobby}."""
        raise NotImplementedError

    def seen(self) -> list[Seen]:
        """What this user saw since the last call, after a flush."""
        self.network.flush()
        found = []
        for line in self.wire.take():
            seen = self.read(line)
            if seen is not None:
                found.append(seen)
        return found

    def read(self, line: str) -> Seen | None:
        """One line of the protocol, as a L{Seen}; L{None} for the rest."""
        raise NotImplementedError

    def type(self, *lines: str) -> None:
        self.wire.send(*lines)
        self.network.flush()

    def say(self, room: str, text: str) -> None:
        raise NotImplementedError

    def me(self, room: str, text: str) -> None:
        raise NotImplementedError

    def join(self, room: str) -> None:
        raise NotImplementedError

    def part(self, room: str, reason: str = "") -> None:
        raise NotImplementedError

    def msg(self, nick: str, text: str) -> None:
        raise NotImplementedError

    def rename(self, new: str) -> None:
        raise NotImplementedError

    def topic(self, room: str, text: str) -> None:
        raise NotImplementedError

    def kick(self, room: str, nick: str, reason: str) -> None:
        raise NotImplementedError

    def quit(self, reason: str) -> None:
        raise NotImplementedError


_ROOM = r"(?:\[#(?P<room>[^\]]+)\] )?"
_LINE_PATTERNS = [
    (re.compile(_ROOM + r"<(?P<nick>[^>]+)> (?P<text>.*)\Z"), "message"),
    (re.compile(_ROOM + r"\* (?P<nick>\S+) (?P<text>.*)\Z"), "action"),
    (
        re.compile(_ROOM + r"\*\*\* (?P<nick>\S+) has joined #(?P<where>\S+)\Z"),
        "joined",
    ),
    (
        re.compile(
            _ROOM
            + r"\*\*\* (?P<nick>\S+) has left #(?P<where>\S+)(?: \((?P<why>.*)\))?\Z"
        ),
        "parted",
    ),
    (re.compile(r"\*\*\* (?P<nick>\S+) has quit \((?P<why>.*)\)\Z"), "quit"),
    (re.compile(r"\*\*\* (?P<old>\S+) is now known as (?P<new>\S+)\Z"), "nick"),
    (re.compile(r"\*\*\* Users in #(?P<where>\S+) \(\d+\): (?P<names>.*)\Z"), "names"),
    (re.compile(r"-> \*(?P<nick>[^*]+)\* (?P<text>.*)\Z"), "private out"),
    (re.compile(r"\*(?P<nick>[^*]+)\* (?P<text>.*)\Z"), "private in"),
    (re.compile(r"\*\*\* Goodbye \((?P<why>.*)\)\Z"), "goodbye"),
    (re.compile(r"!!! There is no user called (?P<nick>\S+)\.\Z"), "no such nick"),
    (re.compile(r"\*\*\* Now talking in #(?P<where>\S+)\.\Z"), "current"),
    (re.compile(r"\*\*\* You are in no room now"), "current"),
    (
        re.compile(
            _ROOM + r"\*\*\* (?P<nick>\S+) set the topic of #(?P<where>\S+): "
            r"(?P<text>.*)\Z"
        ),
        "topic",
    ),
    (
        re.compile(
            _ROOM + r"\*\*\* (?P<op>\S+) kicked (?P<nick>\S+) from #(?P<where>\S+) "
            r"\((?P<why>.*)\)\Z"
        ),
        "kicked",
    ),
]


class LinePeer(Peer):
    """A user of the line protocol (C{nc}): plain lines go to the current room."""

    protocol = "line"

    def __init__(self, network: Network, wire: Wire, nick: str) -> None:
        super().__init__(network, wire, nick)
        self.current: str | None = "lobby"

    @classmethod
    def login(cls, network: Network, nick: str) -> Peer:
        wire = network.connect(network.line)
        peer = cls(network, wire, nick)
        peer.type(f"/nick {nick}")
        peer.seen()
        return peer

    def read(self, line: str) -> Seen | None:
        for pattern, kind in _LINE_PATTERNS:
            match = pattern.match(line)
            if match is None:
                continue
            found = match.groupdict()
            room = found.get("room") or self.current or ""
            match kind:
                case "message" | "action":
                    return (kind, room, found["nick"], found["text"])
                case "joined":
                    if found["nick"] == self.nick:
                        self.current = found["where"]
                    return ("joined", found["where"], found["nick"])
                case "parted":
                    return ("parted", found["where"], found["nick"], found["why"] or "")
                case "quit":
                    return ("quit", found["nick"], found["why"])
                case "nick":
                    if found["old"] == self.nick:
                        self.nick = found["new"]
                    return ("nick", found["old"], found["new"])
                case "names":
                    names = " ".join(sorted(found["names"].split(", ")))
                    return ("names", found["where"], names)
                case "private out":
                    return ("private", self.nick, found["nick"], found["text"])
                case "private in":
                    return ("private", found["nick"], self.nick, found["text"])
                case "goodbye":
                    return ("goodbye", found["why"])
                case "no such nick":
                    return ("no such nick", found["nick"])
                case "current":
                    self.current = found.get("where")
                    return None
                case "topic":
                    return ("topic", found["where"], found["nick"], found["text"])
                case "kicked":
                    if found["nick"] == self.nick and self.current == found["where"]:
                        self.current = None
                    return (
                        "kicked",
                        found["where"],
                        found["op"],
                        found["nick"],
                        found["why"],
                    )
        return None

    def _in(self, room: str) -> list[str]:
        """Make C{room} the current room first, if it is not."""
        return [] if room == self.current else [f"/join {room}"]

    def say(self, room: str, text: str) -> None:
        self.type(*self._in(room), text)

    def me(self, room: str, text: str) -> None:
        self.type(*self._in(room), f"/me {text}")

    def join(self, room: str) -> None:
        self.type(f"/join {room}")

    def part(self, room: str, reason: str = "") -> None:
        self.type(f"/part #{room} {reason}".rstrip())

    def msg(self, nick: str, text: str) -> None:
        self.type(f"/msg {nick} {text}")

    def rename(self, new: str) -> None:
        self.type(f"/nick {new}")

    def topic(self, room: str, text: str) -> None:
        self.type(*self._in(room), f"/topic {text}")

    def kick(self, room: str, nick: str, reason: str) -> None:
        self.type(*self._in(room), f"/kick {nick} {reason}")

    def quit(self, reason: str) -> None:
        self.type(f"/quit {reason}")


class IRCPeer(Peer):
    """
    A user of IRC, as a client that negotiated C{echo-message} (so it sees
    its own messages, as line-protocol users do) and joined C{#lobby}.
    """

    protocol = "irc"

    @classmethod
    def login(cls, network: Network, nick: str) -> Peer:
        wire = network.connect(network.irc)
        peer = cls(network, wire, nick)
        peer.type(
            "CAP LS 302",
            f"NICK {nick}",
            f"USER {nick} 0 * :{nick.title()}",
            "CAP REQ :echo-message",
            "CAP END",
            "JOIN #lobby",
        )
        peer.seen()
        return peer

    def read(self, line: str) -> Seen | None:
        if line.startswith("@"):
            line = line.partition(" ")[2]
        if line.startswith("ERROR "):
            _, _, params = parsemsg(line)
            return ("goodbye", params[0].removeprefix("Closing link: "))
        source, command, params = parsemsg(line)
        nick = source.partition("!")[0]
        match command, params:
            case ("PRIVMSG", [target, text]) if target.startswith("#"):
                if text.startswith("\x01ACTION "):
                    return ("action", target[1:], nick, text[8:].rstrip("\x01"))
                return ("message", target[1:], nick, text)
            case ("PRIVMSG", [target, text]):
                return ("private", nick, target, text)
            case ("JOIN", [target, *_]):
                return ("joined", target[1:], nick)
            case ("PART", [target, *reason]):
                return ("parted", target[1:], nick, reason[0] if reason else "")
            case ("QUIT", [reason]):
                return ("quit", nick, reason.removeprefix("Quit: "))
            case ("NICK", [new]):
                if nick == self.nick:
                    self.nick = new
                return ("nick", nick, new)
            case ("TOPIC", [target, text]):
                return ("topic", target[1:], nick, text)
            case ("KICK", [target, victim, reason]):
                return ("kicked", target[1:], nick, victim, reason)
            case ("353", [_, _, target, names]):
                listed = sorted(name.lstrip("@") for name in names.split())
                return ("names", target[1:], " ".join(listed))
            case ("401", [_, target, _]):
                return ("no such nick", target)
        return None

    def say(self, room: str, text: str) -> None:
        self.type(f"PRIVMSG #{room} :{text}")

    def me(self, room: str, text: str) -> None:
        self.type(f"PRIVMSG #{room} :\x01ACTION {text}\x01")

    def join(self, room: str) -> None:
        self.type(f"JOIN #{room}")

    def part(self, room: str, reason: str = "") -> None:
        self.type(f"PART #{room} :{reason}" if reason else f"PART #{room}")

    def msg(self, nick: str, text: str) -> None:
        self.type(f"PRIVMSG {nick} :{text}")

    def rename(self, new: str) -> None:
        self.type(f"NICK {new}")

    def topic(self, room: str, text: str) -> None:
        self.type(f"TOPIC #{room} :{text}")

    def kick(self, room: str, nick: str, reason: str) -> None:
        self.type(f"KICK #{room} {nick} :{reason}")

    def quit(self, reason: str) -> None:
        self.type(f"QUIT :{reason}")


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class Conversation(_TestCase):
    """
    The chat scenarios, for whichever front ends L{front_ends} names: the
    users log in taking them in turn (alice the first, bob the second,
    carol the third, then round again), all to C{#lobby}.

    A mixin: a test module defines
    C{class XConversationTests(Conversation, SynchronousTestCase)} with its
    L{front_ends}.
    """

    front_ends: ClassVar[tuple[type[Peer], ...]]

    def setUp(self) -> None:
        self.network = Network()
        self.logins = 0
        self.alice = self.login("alice")
        self.bob = self.login("bob")
        self.carol = self.login("carol")
        self.everyone = (self.alice, self.bob, self.carol)
        for peer in self.everyone:
            peer.seen()

    def login(self, nick: str) -> Peer:
        """A new user, of the next front end in turn."""
        kind = self.front_ends[self.logins % len(self.front_ends)]
        self.logins += 1
        return kind.login(self.network, nick)

    def test_messages(self) -> None:
        """A message and an action reach every member, sender included."""
        self.alice.say("lobby", "hi everyone")
        self.bob.me("lobby", "waves")
        for peer in self.everyone:
            self.assertEqual(
                peer.seen(),
                [
                    ("message", "lobby", "alice", "hi everyone"),
                    ("action", "lobby", "bob", "waves"),
                ],
                peer.protocol,
            )

    def test_rooms(self) -> None:
        """
        Joining another room lists its members; leaving one tells its
        members; what is said in a room reaches its members only.
        """
        self.carol.join("games")
        self.carol.part("lobby", "bored")
        self.assertEqual(
            self.carol.seen(),
            [
                ("joined", "games", "carol"),
                ("names", "games", "carol"),
                ("parted", "lobby", "carol", "bored"),
            ],
        )
        for peer in (self.alice, self.bob):
            self.assertEqual(peer.seen(), [("parted", "lobby", "carol", "bored")])
        self.bob.join("games")
        self.assertEqual(
            self.bob.seen(),
            [("joined", "games", "bob"), ("names", "games", "bob carol")],
        )
        self.assertEqual(self.carol.seen(), [("joined", "games", "bob")])
        self.carol.say("games", "chess?")
        self.assertEqual(self.carol.seen(), [("message", "games", "carol", "chess?")])
        self.assertEqual(self.bob.seen(), [("message", "games", "carol", "chess?")])
        self.assertEqual(self.alice.seen(), [])

    def test_private_message(self) -> None:
        """A private message reaches its recipient; the sender sees it sent."""
        self.alice.msg("carol", "want to play later?")
        self.carol.msg("ALICE", "sure!")
        self.assertEqual(
            self.alice.seen(),
            [
                ("private", "alice", "carol", "want to play later?"),
                ("private", "carol", "alice", "sure!"),
            ],
        )
        self.assertEqual(
            self.carol.seen(),
            [
                ("private", "alice", "carol", "want to play later?"),
                ("private", "carol", "alice", "sure!"),
            ],
        )
        self.assertEqual(self.bob.seen(), [])

    def test_no_such_nick(self) -> None:
        """A private message to nobody is refused, to the sender only."""
        self.bob.msg("dave", "hello?")
        self.assertEqual(self.bob.seen(), [("no such nick", "dave")])
        self.assertEqual(self.alice.seen() + self.carol.seen(), [])

    def test_rename(self) -> None:
        """A rename is seen by the room and by the renamed user, who is then
        reachable under the new name only."""
        self.bob.rename("robert")
        for peer in self.everyone:
            self.assertEqual(peer.seen(), [("nick", "bob", "robert")], peer.protocol)
        self.alice.msg("robert", "nice name")
        self.alice.msg("bob", "still there?")
        self.assertEqual(self.bob.seen(), [("private", "alice", "robert", "nice name")])
        self.assertEqual(
            self.alice.seen(),
            [("private", "alice", "robert", "nice name"), ("no such nick", "bob")],
        )

    def test_quit(self) -> None:
        """A quit says goodbye, closes the connection and tells the room."""
        self.alice.quit("see you")
        self.assertEqual(self.alice.seen(), [("goodbye", "see you")])
        self.assertTrue(self.alice.wire.closed)
        for peer in (self.bob, self.carol):
            self.assertEqual(peer.seen(), [("quit", "alice", "see you")])
        self.assertEqual(sorted(self.network.chat.users), ["bob", "carol"])

    def test_dropped_connection(self) -> None:
        """A connection that drops is announced as a quit."""
        assert self.bob.wire.transport is not None
        self.bob.wire.transport.loseConnection()
        for peer in (self.alice, self.carol):
            self.assertEqual(peer.seen(), [("quit", "bob", "connection lost")])
        self.assertEqual(len(self.network.delivery.connections), 2)

    def test_topic_and_kick(self) -> None:
        """
        The creator of a room is its operator: they set its topic and kick
        from it; everybody in it sees both, and the kicked user leaves it.
        """
        self.bob.join("dev")
        self.carol.join("dev")
        for peer in self.everyone:
            peer.seen()
        self.bob.topic("dev", "release on Friday")
        self.bob.kick("dev", "carol", "off topic")
        expected = [
            ("topic", "dev", "bob", "release on Friday"),
            ("kicked", "dev", "bob", "carol", "off topic"),
        ]
        self.assertEqual(self.bob.seen(), expected)
        self.assertEqual(self.carol.seen(), expected)
        self.assertEqual(self.alice.seen(), [])
        self.assertEqual(list(self.network.chat.users["carol"].rooms), ["lobby"])
