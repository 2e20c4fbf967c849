"""
The line protocol: bytes on a stream connection in, calls on the core out.

L{ChatProtocol} is a L{Connection} (which frames lines, enforces the limits
and queues output, as for every front end); what is the line protocol's own
is here: a connection is a user at once, with a guest name, in the default
room; each complete line is decoded once as UTF-8 and parsed as a command or
a message; replies and events are rendered as the text of
L{twisted_chat.server.line_render}.  L{ChatFactory} builds them.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.events import ErrorCode
from twisted_chat.core.interfaces import View
from twisted_chat.server.connection import (
    Connection,
    ConnectionFactory,
    describe_address,
    peer_host,
)
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.limits import Limits
from twisted_chat.server.line_render import CURRENT, OTHER, RENDERER, render_reply
from twisted_chat.shared import lines
from twisted_chat.shared.rules import name_key

__all__ = [
    "LINE_HOST",
    "ChatFactory",
    "ChatProtocol",
    "describe_address",
    "peer_host",
]

# The displayed host of line-protocol users: addresses are not shown to other
# users (IRC front ends show it in nick!user@host).
LINE_HOST = "line.twisted-chat"

_VIEW_CURRENT = (RENDERER, CURRENT, True)
_VIEW_OTHER = (RENDERER, OTHER, True)


class ChatProtocol(Connection):
    """
    One line-protocol user's connection: C{nc}, C{telnet}, scripts and our
    client.  Lines end with C{\\n} (a C{\\r} before it is dropped), and are
    at most C{--max-line-length} bytes.
    """

    factory: ChatFactory

    def connection_opened(self) -> None:
        self.user = self.delivery.chat.connect(self, LINE_HOST)
        self.registered()
        # Logged before the batch ends and the greeting is written.
        self.log.info("{peer} connected as {nick}", peer=self.peer, nick=self.user.nick)

    def line_received(self, line: bytes) -> None:
        user = self.user
        assert user is not None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.delivery.chat.refuse(
                user,
                "Your line is not valid UTF-8 and was not sent.",
                ErrorCode.NOT_UTF8,
            )
            return
        self.delivery.chat.line_received(user, text)

    def line_too_long(self) -> None:
        if self.user is not None:
            self.delivery.chat.refuse(
                self.user,
                f"Your line is longer than {self.max_line_length} bytes and was "
                "not sent.",
                ErrorCode.LINE_TOO_LONG,
            )

    # Output: IChatClient

    def view(self, current: bool) -> View:
        return _VIEW_CURRENT if current else _VIEW_OTHER

    def reply(self, event: object) -> None:
        user = self.user
        if isinstance(event, events.SHARED_EVENTS):
            room = getattr(event, "room", None)
            current = room is None or (
                user is not None
                and user.current is not None
                and user.current.key == name_key(room)
            )
            self.send(RENDERER.render(event, CURRENT if current else OTHER))
            return
        self.send(render_reply(event, user.nick if user else ""))  # type: ignore[arg-type]


class ChatFactory(ConnectionFactory):
    """
    Builds a L{ChatProtocol} for each connection.  Its L{Delivery} (one per
    server, shared with the other front ends) is made here unless one is
    given.
    """

    protocol = ChatProtocol

    def __init__(
        self,
        chat: ChatServer,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        if delivery is None:
            delivery = Delivery(chat, limits, clock)
        elif delivery.chat is not chat or limits is not None or clock is not None:
            raise ValueError("a shared Delivery brings its own chat, limits and clock")
        super().__init__(delivery)

    def refusal(self, reason: str) -> bytes:
        return lines.encode(lines.error(reason))
