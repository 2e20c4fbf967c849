"""
The chat itself: users, rooms and what each command does.

Plain Python: no sockets, no reactor.  A connection is an L{IChatClient}; room
traffic goes through an L{IFanout}.  The core formats each line once, encodes
it once, and hands the same C{bytes} to every recipient.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from attrs import define, field
from twisted.logger import Logger

from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.interfaces import IChatClient, IFanout
from twisted_chat.shared import lines
from twisted_chat.shared.commands import (
    Command,
    Help,
    Invalid,
    Join,
    Me,
    Msg,
    Nick,
    Quit,
    Rooms,
    Say,
    Who,
    parse_line,
)
from twisted_chat.shared.rules import (
    name_key,
    nick_error,
    normalize_room,
    room_error,
)

DEFAULT_ROOM = "lobby"

# Rooms with more members than this stop announcing joins, leaves and quits:
# in a room of thousands they would be most of the traffic, and each one
# costs a line to every member.
DEFAULT_ANNOUNCE_LIMIT = 500

# How many names the list sent on joining a room shows, and /who: a line
# must stay short enough for any client to take.
JOIN_LIST_LIMIT = 50
WHO_LIMIT = 500


@define(eq=False)
class Room:
    """A room and the users in it, in the order in which they joined."""

    name: str
    members: dict[str, User] = field(factory=dict)
    # Computed once: every message to the room looks it up.
    key: str = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.key = name_key(self.name)


@define(eq=False)
class User:
    """A connected user."""

    client: IChatClient
    nick: str
    room: Room | None = None
    connected: bool = True


@define
class ChatServer:
    """
    The registry of connected users and rooms, and the rules of the chat.

    Adapters call L{connect} when a connection is made, L{line_received} (or
    L{execute}) for each decoded line, and L{disconnect} when the connection
    is lost.
    """

    fanout: IFanout = field(factory=LocalFanout)
    default_room: str = DEFAULT_ROOM
    announce_limit: int = DEFAULT_ANNOUNCE_LIMIT
    users: dict[str, User] = field(factory=dict, init=False)
    rooms: dict[str, Room] = field(factory=dict, init=False)
    _guest_counter: int = field(default=0, init=False)

    log = Logger()

    # Connection lifecycle

    def connect(self, client: IChatClient) -> User:
        """
        Register a new connection: give it a guest nickname, greet it and put
        it in the default room.
        """
        user = User(client=client, nick=self._new_guest_nick())
        self.users[name_key(user.nick)] = user
        self.tell(user, lines.welcome(), lines.self_nick(user.nick))
        self._enter(user, self.default_room)
        return user

    def disconnect(self, user: User, reason: str = "connection lost") -> None:
        """
        Forget a user whose connection has gone, telling their room.  Safe to
        call more than once.
        """
        if not user.connected:
            return
        user.connected = False
        del self.users[name_key(user.nick)]
        self._leave(user, lines.quit_(user.nick, reason))

    def drop(self, user: User, reason: str, farewell: str) -> None:
        """
        End C{user}'s session: send them C{farewell}, tell their room they
        quit for C{reason}, and close the connection.
        """
        self.tell(user, farewell)
        self.disconnect(user, reason)
        user.client.disconnect(reason)

    def shutdown(self, reason: str) -> None:
        """
        Tell every user the server is going away and close every connection.
        """
        data = lines.encode(lines.shutting_down(reason))
        for user in list(self.users.values()):
            self.fanout.send(user.client, data)
            user.connected = False
            if user.room is not None:
                self.fanout.unsubscribe(user.room.key, user.client)
            user.client.disconnect("server shutdown")
        self.users.clear()
        self.rooms.clear()

    def tell(self, user: User, *text: str) -> None:
        """Send one or more lines to C{user} alone."""
        self.fanout.send(user.client, lines.encode(*text))

    # Input

    def refuse(self, user: User, message: str) -> None:
        """
        Tell C{user} that something they sent was refused, and log it.
        """
        self.tell(user, lines.error(message))
        self.log.info(
            "refused input from {nick} ({peer}): {reason}",
            nick=user.nick,
            peer=user.client.peer,
            reason=message,
        )

    def line_received(self, user: User, line: str) -> None:
        """Parse and execute one decoded line from C{user}."""
        command = parse_line(line)
        if command is not None:
            self.execute(user, command)

    def execute(self, user: User, command: Command) -> None:
        """Carry out one parsed command for C{user}."""
        if not user.connected:
            return
        match command:
            case Say(text):
                self._to_room(user, lines.message(user.nick, text))
            case Me(text):
                self._to_room(user, lines.action(user.nick, text))
            case Nick(name):
                self._nick(user, name)
            case Join(room):
                self._join(user, room)
            case Rooms():
                self._rooms(user)
            case Who(room):
                self._who(user, room)
            case Msg(nick, text):
                self._msg(user, nick, text)
            case Help():
                self.tell(user, *lines.help_lines())
            case Quit(reason):
                self._quit(user, reason or "quit")
            case Invalid(message):
                self.refuse(user, message)

    # Commands

    def _to_room(self, user: User, line: str) -> None:
        assert user.room is not None
        self.fanout.publish(user.room.key, lines.encode(line))

    def _nick(self, user: User, new: str) -> None:
        problem = nick_error(new)
        if problem is not None:
            self.tell(user, lines.error(problem))
            return
        old_key, new_key = name_key(user.nick), name_key(new)
        if new == user.nick:
            self.tell(user, lines.notice(f"You are already {new}."))
            return
        if new_key != old_key and new_key in self.users:
            self.tell(
                user, lines.error(f"The nickname {new} is taken; choose another.")
            )
            return
        old = user.nick
        del self.users[old_key]
        user.nick = new
        self.users[new_key] = user
        assert user.room is not None
        # Rebuilt, not re-inserted, so the user keeps their place in /who.
        user.room.members = {
            (new_key if key == old_key else key): member
            for key, member in user.room.members.items()
        }
        self.fanout.publish(user.room.key, lines.encode(lines.nick_change(old, new)))
        self.log.info("{old} is now known as {new}", old=old, new=new)

    def _join(self, user: User, typed: str) -> None:
        name = normalize_room(typed)
        problem = room_error(name)
        if problem is not None:
            self.tell(user, lines.error(problem))
            return
        if user.room is not None and user.room.key == name_key(name):
            self.tell(
                user,
                lines.notice(f"You are already in {lines.room_label(user.room.name)}."),
            )
            return
        assert user.room is not None
        self._leave(user, lines.left(user.nick, user.room.name))
        self._enter(user, name)

    def _rooms(self, user: User) -> None:
        counts = sorted(
            ((room.name, len(room.members)) for room in self.rooms.values()),
            key=lambda pair: name_key(pair[0]),
        )
        self.tell(user, lines.rooms(counts))

    def _who(self, user: User, typed: str | None) -> None:
        name = user.room.name if user.room else self.default_room
        if typed is None:
            room = user.room
        else:
            name = normalize_room(typed)
            room = self.rooms.get(name_key(name))
        if room is None:
            self.tell(user, lines.error(f"There is no room {lines.room_label(name)}."))
            return
        self.tell(user, self._who_line(room, WHO_LIMIT))

    def _msg(self, user: User, nick: str, text: str) -> None:
        target = self.users.get(name_key(nick))
        if target is None:
            self.tell(user, lines.error(f"There is no user called {nick}."))
            return
        self.tell(target, lines.private_in(user.nick, text))
        if target is not user:
            self.tell(user, lines.private_out(target.nick, text))

    def _quit(self, user: User, reason: str) -> None:
        self.drop(user, reason, lines.goodbye(reason))

    # Rooms

    def _enter(self, user: User, name: str) -> None:
        room = self.rooms.get(name_key(name))
        if room is None:
            room = self.rooms[name_key(name)] = Room(name)
            self.log.info("room {room} created by {nick}", room=name, nick=user.nick)
        room.members[name_key(user.nick)] = user
        user.room = room
        self.fanout.subscribe(room.key, user.client)
        joined = lines.encode(lines.joined(user.nick, room.name))
        if self._announces(room):
            self.fanout.publish(room.key, joined)
        else:
            self.fanout.send(user.client, joined)
        self.tell(user, self._who_line(room, JOIN_LIST_LIMIT))

    def _leave(self, user: User, announcement: str) -> None:
        room = user.room
        if room is None:
            return
        user.room = None
        # Counted with the user leaving, as their join was.
        announce = self._announces(room)
        self.fanout.unsubscribe(room.key, user.client)
        del room.members[name_key(user.nick)]
        if announce:
            self.fanout.publish(room.key, lines.encode(announcement))
        if not room.members and room.key != name_key(self.default_room):
            del self.rooms[room.key]

    def _who_line(self, room: Room, limit: int) -> str:
        nicks = [member.nick for member in islice(room.members.values(), limit)]
        return lines.who(room.name, nicks, len(room.members))

    def _announces(self, room: Room) -> bool:
        """
        Whether joins, leaves and quits in C{room} are announced, counting the
        user who joins or leaves.
        """
        return not self.announce_limit or len(room.members) <= self.announce_limit

    def _new_guest_nick(self) -> str:
        while True:
            self._guest_counter += 1
            nick = f"guest{self._guest_counter}"
            if name_key(nick) not in self.users:
                return nick

    def room_members(self, room: str) -> Iterator[User]:
        """The users in C{room}, in joining order (empty if no such room)."""
        found = self.rooms.get(name_key(normalize_room(room)))
        return iter(found.members.values()) if found else iter(())
