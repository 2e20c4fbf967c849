"""
What the client knows about itself, apart from any connection: the nickname
and rooms it wants, the nickname and rooms the server gave it, and the lines
typed while it could not send them.

Pure: no sockets, no reactor.  The client feeds it every line the server
sends and every line the user types, and sends the lines it hands back.

The server greets each new connection with a welcome, a L{self_nick} notice
("You are guest3.") and a L{joined} notice for the default room.  That
joined notice is the moment the session becomes I{ready}: it asks the server
for the wanted nickname and rooms (C{/nick}, C{/join}, C{/part}), then sends
the queued lines, so they are said under the right name in the right room.

A user may be in several rooms, one of them current (see
L{twisted_chat.client.server_lines}).  A server that keeps one room per user
(C{/join} leaves the old room, silently for the joiner) is followed too: the
current room is always right, and the restore after a reconnection ends in
it; only the list of rooms then keeps the rooms left that way.

@see: L{twisted_chat.shared.lines} and L{twisted_chat.client.server_lines}
    for the notices read here.
"""

from __future__ import annotations

from attrs import define, field

from twisted_chat.client.server_lines import (
    is_no_room,
    parse_kicked,
    parse_left,
    parse_now_talking,
    split_room,
)
from twisted_chat.shared.lines import parse_joined, parse_nick_change, parse_self_nick
from twisted_chat.shared.rules import name_key


def _index(rooms: list[str], room: str) -> int | None:
    key = name_key(room)
    for i, name in enumerate(rooms):
        if name_key(name) == key:
            return i
    return None


def _contains(rooms: list[str], room: str) -> bool:
    return _index(rooms, room) is not None


def _remove(rooms: list[str], room: str) -> None:
    i = _index(rooms, room)
    if i is not None:
        del rooms[i]


def _add(rooms: list[str], room: str) -> None:
    """Add C{room} at the end (the most recently joined), once."""
    _remove(rooms, room)
    rooms.append(room)


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    return name_key(a) == name_key(b)


@define
class ClientSession:
    """
    The nickname and rooms to restore on every connection, and the lines
    waiting for one.

    @ivar wanted_nick: the nickname to ask for after connecting: from
        C{--nick}, then whatever the user last changed it to.  L{None} keeps
        the guest name the server gives.
    @ivar wanted_room: the room to make current after connecting: from
        C{--room}, then the room that was last current.  L{None} stays in the
        server's default room.
    @ivar wanted_rooms: every room to be in after connecting, oldest join
        first; L{None} until the first greeting, which says what the server
        gives (its default room).
    @ivar nick: the nickname the server says we have on this connection.
    @ivar room: the current room on this connection, where plain lines go.
    @ivar rooms: every room we are in on this connection, oldest join first.
    @ivar ready: whether this connection has been greeted, so typed lines are
        sent at once rather than queued.
    @ivar pending: lines typed while not ready, oldest first.
    """

    wanted_nick: str | None = None
    wanted_room: str | None = None
    wanted_rooms: list[str] | None = None
    nick: str | None = field(default=None, init=False)
    room: str | None = field(default=None, init=False)
    rooms: list[str] = field(factory=list, init=False)
    ready: bool = field(default=False, init=False)
    pending: list[str] = field(factory=list, init=False)

    def connection_lost(self) -> None:
        """
        Forget what the server told the connection that has gone; keep what
        we want and what is queued.
        """
        self.nick = None
        self.room = None
        self.rooms = []
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
        Learn our nickname and rooms from one line the server sent.

        @return: the lines to send in answer: when this line completes the
            greeting, C{/nick}, C{/join} and C{/part} to restore the wanted
            nickname and rooms, then every queued line; otherwise nothing.
        """
        other_room, text = split_room(line)
        if other_room is None:
            announced = parse_self_nick(text)
            if announced is not None:
                self.nick = announced
                return []
            change = parse_nick_change(text)
            if change is not None:
                old, new = change
                if self.nick is not None and old == self.nick:
                    self.nick = new
                    self.wanted_nick = new
                return []
            now = parse_now_talking(text)
            if now is not None:
                self._current(now)
                return []
            if is_no_room(text):
                self._left_all()
                return []
        joined = parse_joined(text)
        if joined is not None:
            who, room = joined
            if self.nick is None or who != self.nick:
                return []
            if other_room is None:
                return self._joined(room)
            # Joined, but not made current: not what the server does, but
            # the room is ours all the same.
            self._also_in(room)
            return []
        left = parse_left(text)
        if left is not None:
            who, room = left
            if self.nick is not None and who == self.nick:
                self._left(room)
            return []
        kicked = parse_kicked(text)
        if kicked is not None:
            _, who, room = kicked
            if self.nick is not None and who == self.nick:
                self._left(room)
        return []

    # What the server says

    def _joined(self, room: str) -> list[str]:
        _add(self.rooms, room)
        self.room = room
        if not self.ready:
            # The greeting's default room.
            self.ready = True
            return self._restore() + self._flush()
        assert self.wanted_rooms is not None
        _add(self.wanted_rooms, room)
        self.wanted_room = room
        return []

    def _also_in(self, room: str) -> None:
        if not _contains(self.rooms, room):
            self.rooms.append(room)
        wanted = self.wanted_rooms
        if self.ready and wanted is not None and not _contains(wanted, room):
            wanted.append(room)

    def _current(self, room: str) -> None:
        self._also_in(room)
        self.room = room
        if self.ready:
            self.wanted_room = room

    def _left(self, room: str) -> None:
        _remove(self.rooms, room)
        if _same(room, self.room):
            # The server names the new current room next (the most recently
            # joined one); until it does, guess the same.
            self.room = self.rooms[-1] if self.rooms else None
        if self.ready and self.wanted_rooms is not None:
            _remove(self.wanted_rooms, room)
            self.wanted_room = self.room

    def _left_all(self) -> None:
        self.rooms = []
        self.room = None
        if self.ready:
            self.wanted_rooms = []
            self.wanted_room = None

    # After the greeting

    def _restore(self) -> list[str]:
        commands = []
        if self.wanted_nick is not None and self.wanted_nick != self.nick:
            commands.append(f"/nick {self.wanted_nick}")
        if self.wanted_rooms is None:
            # The first connection: keep what the server gives, and join
            # --room as well.
            self.wanted_rooms = list(self.rooms)
        # Each room in the order it was joined before, so that the rooms
        # keep their numbers; then the current one again if it is not the
        # last (/join of a room already joined makes it current).
        current = self.room
        for room in self.wanted_rooms:
            if not _contains(self.rooms, room):
                commands.append(f"/join {room}")
                current = room
        if self.wanted_room is not None and not _same(current, self.wanted_room):
            commands.append(f"/join {self.wanted_room}")
        for room in self.rooms:
            if not _contains(self.wanted_rooms, room):
                commands.append(f"/part {room}")
        return commands

    def _flush(self) -> list[str]:
        queued, self.pending = self.pending, []
        return queued
