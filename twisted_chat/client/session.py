"""
What the client knows about itself, apart from any connection: the nickname
and room it wants, the nickname and room the server gave it, and the lines
typed while it could not send them.

Pure: no sockets, no reactor.  The client feeds it every line the server
sends and every line the user types, and sends the lines it hands back.

The server greets each new connection with a welcome, a L{self_nick} notice
("You are guest3.") and a L{joined} notice for the default room.  That
joined notice is the moment the session becomes I{ready}: it asks the server
for the wanted nickname and room (C{/nick}, C{/join}), then sends the queued
lines, so they are said under the right name in the right room.

@see: L{twisted_chat.shared.lines} for the notices read here.
"""

from __future__ import annotations

from attrs import define, field

from twisted_chat.shared.lines import parse_joined, parse_nick_change, parse_self_nick
from twisted_chat.shared.rules import name_key


@define
class ClientSession:
    """
    The nickname and room to restore on every connection, and the lines
    waiting for one.

    @ivar wanted_nick: the nickname to ask for after connecting: from
        C{--nick}, then whatever the user last changed it to.  L{None} keeps
        the guest name the server gives.
    @ivar wanted_room: the room to join after connecting: from C{--room},
        then the room the user last joined.  L{None} stays in the server's
        default room.
    @ivar nick: the nickname the server says we have on this connection.
    @ivar room: the room the server says we are in on this connection.
    @ivar ready: whether this connection has been greeted, so typed lines are
        sent at once rather than queued.
    @ivar pending: lines typed while not ready, oldest first.
    """

    wanted_nick: str | None = None
    wanted_room: str | None = None
    nick: str | None = field(default=None, init=False)
    room: str | None = field(default=None, init=False)
    ready: bool = field(default=False, init=False)
    pending: list[str] = field(factory=list, init=False)

    def connection_lost(self) -> None:
        """
        Forget what the server told the connection that has gone; keep what
        we want and what is queued.
        """
        self.nick = None
        self.room = None
        self.ready = False

    def typed(self, line: str) -> list[str]:
        """
        A line the user typed.

        @return: the lines to send now: C{[line]} when ready, else nothing
            (the line is queued until the next greeting).
        """
        if self.ready:
            return [line]
        self.pending.append(line)
        return []

    def server_line(self, line: str) -> list[str]:
        """
        Learn our nickname and room from one line the server sent.

        @return: the lines to send in answer: when this line completes the
            greeting, C{/nick} and C{/join} to restore the wanted nickname and
            room, then every queued line; otherwise nothing.
        """
        announced = parse_self_nick(line)
        if announced is not None:
            self.nick = announced
            return []
        change = parse_nick_change(line)
        if change is not None:
            old, new = change
            if self.nick is not None and old == self.nick:
                self.nick = new
                self.wanted_nick = new
            return []
        joined = parse_joined(line)
        if joined is not None:
            who, room = joined
            if self.nick is None or who != self.nick:
                return []
            self.room = room
            if self.ready:
                self.wanted_room = room
                return []
            self.ready = True
            return self._restore() + self._flush()
        return []

    def _restore(self) -> list[str]:
        commands = []
        if self.wanted_nick is not None and self.wanted_nick != self.nick:
            commands.append(f"/nick {self.wanted_nick}")
        if self.wanted_room is not None and (
            self.room is None or name_key(self.wanted_room) != name_key(self.room)
        ):
            commands.append(f"/join {self.wanted_room}")
        return commands

    def _flush(self) -> list[str]:
        queued, self.pending = self.pending, []
        return queued
