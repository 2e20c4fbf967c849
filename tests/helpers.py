"""
Shared fakes for the tests: a fake L{IChatClient} for driving the core, and
an in-memory network (L{twisted.test.iosim}) for driving many real
L{ChatProtocol} connections without sockets.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_chat.core.chat import ChatServer, User
from twisted_chat.core.events import SHARED_EVENTS
from twisted_chat.core.interfaces import IChatClient, View
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory
from twisted_chat.server.line_render import CURRENT, OTHER, RENDERER, render_reply
from twisted_chat.shared.rules import NICK_MAX, ROOM_MAX

# Property tests: no example database (nothing written to the tree) and no
# deadline (the machine is shared, and timing is not what they test).
property_settings = settings(database=None, deadline=None, max_examples=200)


def names(max_size: int) -> st.SearchStrategy[str]:
    """Valid nicknames or room names of at most C{max_size} characters."""
    return st.from_regex(rf"[A-Za-z][A-Za-z0-9_-]{{0,{max_size - 1}}}", fullmatch=True)


nicks = names(NICK_MAX)
rooms = names(ROOM_MAX)

# The characters that text may not contain, written out from the
# specification rather than taken from the code under test
# (twisted_chat.shared.rules): C0 controls except TAB (so every ANSI escape
# sequence), DEL, C1 controls, the bidi embeddings and overrides
# (U+202A-202E) and isolates (U+2066-2069), LINE SEPARATOR and PARAGRAPH
# SEPARATOR; and lone surrogates, which no UTF-8 decoder produces but another
# front end might pass on.
FORBIDDEN: tuple[str, ...] = tuple(
    chr(c)
    for first, last in [
        (0x00, 0x08),
        (0x0A, 0x1F),
        (0x7F, 0x9F),
        (0x202A, 0x202E),
        (0x2066, 0x2069),
        (0x2028, 0x2029),
        (0xD800, 0xDFFF),
    ]
    for c in range(first, last + 1)
)

# The same characters, as a pattern to search text for.
SPEC_FORBIDDEN = re.compile("[" + re.escape("".join(FORBIDDEN)) + "]")


def observe_logs(test: SynchronousTestCase) -> EventLoggingObserver:
    """Collect the log events published until the end of C{test}."""
    events = EventLoggingObserver()
    globalLogPublisher.addObserver(events)
    test.addCleanup(globalLogPublisher.removeObserver, events)
    return events


@implementer(IChatClient)
class FakeClient:
    """
    An L{IChatClient} that records what the core sends it.

    @ivar sent: every C{bytes} object passed to L{send}, unchanged, so that
        tests can check identity.
    @ivar lines: the decoded lines received so far.
    @ivar disconnects: the reasons given to L{disconnect}, in order.
    @ivar on_send: called with the data after each L{send}, to let a test
        react (for example by disconnecting) in the middle of a delivery.
    """

    def __init__(self, peer: str = "fake") -> None:
        self.peer = peer
        self.sent: list[bytes] = []
        self.lines: list[str] = []
        self.disconnects: list[str] = []
        # The replies received, as events; and the user, set by the test
        # once connected (a front end knows its user's current nickname).
        self.replies: list[object] = []
        self.user: User | None = None
        self.on_send: Callable[[bytes], None] | None = None

    def send(self, data: bytes) -> None:
        if not isinstance(data, bytes) or not data.endswith(b"\n"):
            raise AssertionError(f"send() needs complete encoded lines: {data!r}")
        self.sent.append(data)
        self.lines.extend(data.decode("utf-8").split("\n")[:-1])
        if self.on_send is not None:
            self.on_send(data)

    def view(self, current: bool) -> View:
        return (RENDERER, CURRENT if current else OTHER, True)

    def reply(self, event: object) -> None:
        self.replies.append(event)
        if isinstance(event, SHARED_EVENTS):
            # A room event told to this client alone: as the room's members
            # whose current room it is see it.
            self.send(RENDERER.render(event, CURRENT))
        else:
            nick = self.user.nick if self.user is not None else ""
            self.send(render_reply(event, nick))  # type: ignore[arg-type]

    def disconnect(self, reason: str) -> None:
        self.disconnects.append(reason)

    def take(self) -> list[str]:
        """
        The lines received since the last call; they (and L{sent}) are then
        forgotten.
        """
        taken, self.lines = self.lines, []
        self.sent = []
        return taken


class UserSide(Protocol):
    """
    The user's end of an in-memory connection: types lines and collects
    what the server writes.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed = True

    def type(self, *texts: str) -> None:
        """Send each of C{texts} as one line, as a user would type it."""
        assert self.transport is not None
        for text in texts:
            self.transport.write(text.encode("utf-8") + b"\r\n")

    def take(self) -> list[str]:
        """The complete lines received since the last call."""
        data, newline, rest = self.received.rpartition(b"\n")
        self.received = rest
        return (data + newline).decode("utf-8").splitlines()


class Pumps:
    """
    In-memory connections to server factories, moved along by L{flush}.

    Modelled on the transit relay's C{test/common.py}.
    """

    def __init__(self) -> None:
        self._pumps: list[iosim.IOPump] = []
        self._next_port = 40000

    def open(self, factory: ServerFactory, client: Protocol) -> None:
        """Connect C{client} to what C{factory} builds, and flush."""
        self._next_port += 1
        peer = IPv4Address("TCP", "127.0.0.1", self._next_port)
        host = IPv4Address("TCP", "127.0.0.1", 10001)
        server = factory.buildProtocol(peer)
        assert server is not None
        self._pumps.append(
            iosim.connect(
                server,
                iosim.FakeTransport(server, True, host, peer),
                client,
                iosim.FakeTransport(client, False, peer, host),
                greet=False,
            )
        )
        self.flush()

    def flush(self) -> None:
        """Move bytes both ways on every connection until nothing moves."""
        for _ in range(1000):
            did_work = False
            for pump in self._pumps:
                did_work = pump.flush() or did_work
            if not did_work:
                return
        raise AssertionError("the network never became quiet")


class ChatNetwork(Pumps):
    """
    One L{ChatServer} behind a real L{ChatFactory}, and any number of
    in-memory connections to it.
    """

    def __init__(
        self, chat: ChatServer | None = None, limits: Limits | None = None
    ) -> None:
        super().__init__()
        self.chat = ChatServer() if chat is None else chat
        self.clock = Clock()
        self.factory = ChatFactory(self.chat, limits=limits, clock=self.clock)

    def connect(self) -> UserSide:
        """Open a new connection, deliver the server's greeting, return it."""
        user = UserSide()
        self.open(self.factory, user)
        return user
