"""
What passes between the client (L{twisted_chat.client.app.ChatClient}) and
the user interface in front of it.

There are two interfaces: the plain one, a Unix filter on standard input and
output (L{twisted_chat.client.protocols.TerminalProtocol}), and the
full-screen one on a terminal (L{twisted_chat.client.fullscreen.FullScreen}).
The client tells either what to show and how the connection stands
(L{UserInterface}); either tells the client what the user did
(L{UserEvents}).
"""

from __future__ import annotations

import enum
from typing import Protocol

from attrs import frozen
from twisted.internet.defer import Deferred


class Connection(enum.Enum):
    """How the client's connection to the server stands."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    QUITTING = "quitting"


@frozen
class Status:
    """
    What a status line shows.

    @ivar server: where the client connects, as the user named it.
    @ivar nick: our nickname, once the server has said it.
    @ivar room: the current room, where plain lines go.
    @ivar rooms: every room we are in, oldest join first.
    """

    server: str
    connection: Connection
    nick: str | None = None
    room: str | None = None
    rooms: tuple[str, ...] = ()


class UserInterface(Protocol):
    """Where the client shows what happens."""

    def show(self, text: str, at: float | None = None) -> None:
        """
        Show one line from the server, or from the client itself.

        @param at: when the line was said, in seconds since the epoch, for a
            line that is not news (a replay of a room's history); L{None}
            for now.
        """

    def status(self, status: Status) -> None:
        """The connection, nickname or rooms have changed."""

    def close(self) -> Deferred[None]:
        """Stop; the Deferred fires once the user's terminal is given back."""


class UserEvents(Protocol):
    """What a user interface tells the client."""

    def typed(self, line: str) -> None:
        """The user entered a line: a message or a command for the server."""

    def input_ended(self) -> None:
        """The user is done (end of input, Ctrl-D): leave as C{/quit} does."""

    def interrupted(self) -> None:
        """
        Ctrl-C: leave as C{/quit} does; a second one leaves at once, without
        waiting for the server.
        """
