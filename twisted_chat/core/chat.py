"""
The chat itself: users, rooms and what each command does.

Plain Python: no sockets, no reactor.  A connection is an L{IChatClient};
what happens is said with the typed events of L{twisted_chat.core.events},
handed to an L{IFanout} that delivers them.  The core never formats a line
for a wire: each front end renders the events in its own protocol.

A connection is I{attached} first, then I{registered} under a nickname
(the line protocol does both at once, with a guest name; IRC registers after
NICK and USER).  Only registered users are in the directory of nicknames and
in rooms.  A user may be in several rooms; one is their I{current} room,
where the line protocol's plain lines go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import islice
from typing import Any, Protocol, TypeVar

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_chat.core import events
from twisted_chat.core.events import ErrorCode, NoticeCode
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import RoomHistory
from twisted_chat.core.interfaces import IChatClient, IDirectory, IFanout, bound
from twisted_chat.shared.commands import (
    Away,
    Command,
    Help,
    History,
    Invalid,
    Join,
    Kick,
    Me,
    Msg,
    Nick,
    Notice,
    Part,
    PartAll,
    Quit,
    Rooms,
    Say,
    Topic,
    Who,
    Whois,
    parse_line,
)
from twisted_chat.shared.rules import (
    TOPIC_MAX,
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

# How many names one Names reply holds.
NAMES_LIMIT = 500

# Lines of a room's history replayed on joining it, in a cluster.
CLUSTER_REPLAY = 50

_T = TypeVar("_T")


class TimeSource(Protocol):
    """Where the core reads the time: any L{IReactorTime} will do."""

    def seconds(self) -> float:
        """Seconds since the epoch, UTC."""


class WallClock:
    """The system's clock, for a core built without one."""

    # time.time itself, not a method calling it: read once per line said.
    seconds = staticmethod(time.time)


@define(eq=False)
class Room:
    """A room and the users in it, in the order in which they joined."""

    name: str
    created: float = 0.0
    members: dict[str, User] = field(factory=dict)
    operators: set[User] = field(factory=set)
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    # The sequence number of the room's last event.
    seq: int = 0
    # Computed once: every message to the room looks it up.
    key: str = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.key = name_key(self.name)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@define(eq=False)
class User:
    """A connection, and once registered, a user."""

    client: IChatClient
    nick: str = "*"
    username: str = ""
    host: str = ""
    realname: str = ""
    rooms: dict[str, Room] = field(factory=dict)
    current: Room | None = None
    away: str | None = None
    registered: bool = False
    connected: bool = True
    signon: float = 0.0
    last_active: float = 0.0
    # In a cluster: the commands that wait while the directory answers one
    # of this user's (a nickname claim, a join), and how many answers are
    # awaited; None otherwise.
    waiting: _Waiting | None = None
    source: events.Source = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.source = events.Source(self.nick, self.username or self.nick, self.host)

    @property
    def room(self) -> Room | None:
        """The current room (the one plain lines go to)."""
        return self.current

    def rename(self, nick: str) -> None:
        self.nick = nick
        self.source = events.Source(nick, self.username or nick, self.host)


@define
class _Waiting:
    """A user's commands held until the directory answers."""

    answers: int = 0
    commands: list[Command] = field(factory=list)


def _error(code: str, text: str, *args: str) -> events.Error:
    return events.Error(code, text, args)


def _no_such_nick(nick: str) -> events.Error:
    return _error(ErrorCode.NO_SUCH_NICK, f"There is no user called {nick}.", nick)


def _notice(code: str, text: str, *args: str) -> events.Notice:
    return events.Notice(code, text, args)


@define
class ChatServer:
    """
    The registry of connected users and rooms, and the rules of the chat.

    Front ends call L{attach} when a connection is made, L{register} to give
    it a nickname, L{execute} (or L{line_received}) for each command, and
    L{disconnect} when the connection is lost.  For the line protocol,
    L{connect} attaches and registers at once, with a guest name, in the
    default room.
    """

    fanout: IFanout = field(factory=LocalFanout)
    default_room: str = DEFAULT_ROOM
    announce_limit: int = DEFAULT_ANNOUNCE_LIMIT
    clock: TimeSource = field(factory=WallClock)
    # The rooms' stored lines, if the server keeps them: replayed on
    # joining, shown by /history; rooms continue their sequence numbers.
    history: RoomHistory | None = None
    # The directory of a cluster (nicknames and rooms across processes);
    # L{None}: this process alone, answering from its own dicts.
    directory: IDirectory | None = None
    users: dict[str, User] = field(factory=dict, init=False)
    rooms: dict[str, Room] = field(factory=dict, init=False)
    _guest_counter: int = field(default=0, init=False)

    log = Logger()

    def __attrs_post_init__(self) -> None:
        if self.directory is not None:
            self.directory.watch(self)

    # Connection lifecycle

    def attach(self, client: IChatClient, host: str = "") -> User:
        """A new connection, not registered yet: in no list and no room."""
        now = self.clock.seconds()
        return User(client=client, host=host, signon=now, last_active=now)

    def register(
        self,
        user: User,
        nick: str | None = None,
        username: str = "",
        join_default: bool = False,
        realname: str = "",
    ) -> bool:
        """
        Give C{user} the nickname C{nick} (a guest name if L{None}) and make
        them a user: welcome them and, if C{join_default}, put them in the
        default room.

        @return: whether it worked; if not, C{user} was told why.
        """
        if user.registered or not user.connected:
            return False
        if self.directory is not None:
            return self._register_cluster(user, nick, username, join_default, realname)
        if nick is None:
            nick = self._new_guest_nick()
        else:
            problem = self._nick_problem(nick)
            if problem is not None:
                self.tell(user, problem)
                return False
        user.username = username
        user.realname = realname
        self._registered(user, nick, join_default, user.client)
        return True

    def _registered(
        self, user: User, nick: str, join_default: bool, client: IChatClient
    ) -> None:
        user.rename(nick)
        user.registered = True
        self.users[name_key(nick)] = user
        self.fanout.send(client, events.Welcome(nick))
        if join_default:
            self._join(user, self.default_room)

    def connect(self, client: IChatClient, host: str = "") -> User:
        """
        Register a new line-protocol connection: a guest nickname, the
        greeting, and the default room.
        """
        user = self.attach(client, host)
        self.register(user, join_default=True)
        return user

    def disconnect(
        self, user: User, reason: str = "connection lost", requested: bool = False
    ) -> None:
        """
        Forget a user whose connection has gone, telling their rooms.  Safe
        to call more than once.

        @param requested: whether the user asked to quit.
        """
        if not user.connected:
            return
        user.connected = False
        if not user.registered:
            return
        del self.users[name_key(user.nick)]
        rooms = list(user.rooms.values())
        announced = [room for room in rooms if self._announces(room)]
        for room in rooms:
            self._remove_member(user, room)
        user.current = None
        if self.directory is not None:
            self.directory.release(user.nick)
        if announced:
            now = self.clock.seconds()
            event = events.Quit(
                now,
                user.source,
                reason,
                tuple((room.name, room.next_seq()) for room in announced),
                requested,
            )
            self.fanout.publish_user_event(
                [room.key for room in announced], event, None
            )

    def drop(
        self,
        user: User,
        reason: str,
        farewell: events.Reply,
        requested: bool = False,
    ) -> None:
        """
        End C{user}'s session: send them C{farewell}, tell their rooms they
        quit for C{reason}, and close the connection.
        """
        self.tell(user, farewell)
        self.disconnect(user, reason, requested)
        # After the farewell and whatever the user said before, which may
        # wait for the room's history to store it.
        self._in_order(user.client.disconnect, reason or "quit")

    def shutdown(self, reason: str) -> None:
        """
        Tell every user the server is going away and close every connection.
        """
        notice = _notice(NoticeCode.SHUTDOWN, f"Server shutting down: {reason}", reason)
        for user in list(self.users.values()):
            self.fanout.send(user.client, notice)
            user.connected = False
            for room in user.rooms.values():
                self.fanout.unsubscribe(room.key, user.client)
            self._in_order(user.client.disconnect, "server shutdown")
        self.users.clear()
        self.rooms.clear()

    def _in_order(self, call: Callable[..., None], *args: Any) -> None:
        """Call C{call} once what was sent before it is delivered."""
        if self.history is None:
            call(*args)
        else:
            self.history.call_in_order(call, *args)

    def tell(self, user: User, *replies: events.Reply) -> None:
        """Send one or more replies to C{user} alone."""
        for reply in replies:
            self.fanout.send(user.client, reply)

    # Input

    def refuse(self, user: User, message: str, code: str = ErrorCode.BAD_TEXT) -> None:
        """
        Tell C{user} that something they sent was refused, and log it.
        """
        self.tell(user, _error(code, message))
        self.log.info(
            "refused input from {nick} ({peer}): {reason}",
            nick=user.nick,
            peer=user.client.peer,
            reason=message,
        )

    def line_received(self, user: User, line: str) -> None:
        """Parse and execute one decoded line-protocol line from C{user}."""
        command = parse_line(line)
        if command is not None:
            self.execute(user, command)

    def execute(self, user: User, command: Command) -> None:
        """Carry out one parsed command for a registered C{user}."""
        if not user.connected:
            return
        if user.waiting is not None:
            user.waiting.commands.append(command)
            return
        if not user.registered:
            return
        now = user.last_active = self.clock.seconds()
        if type(command) is Say and command.room is None and self.directory is None:
            # The line said in the current room: most of the traffic, so
            # the shortest path (what _say does for it).
            current = user.current
            if current is not None:
                current.seq += 1
                event = events.Message(
                    current.name, current.seq, now, user.source, command.text
                )
                self.fanout.publish(current.key, event, user.client)
                return
        if self.directory is not None and self._cluster_command(user, command):
            return
        match command:
            case Say(text, room):
                self._say(user, room, text, events.Message)
            case Me(text, room):
                self._say(user, room, text, events.Action)
            case Notice(target, text):
                self._notice(user, target, text)
            case Nick(name):
                self._nick(user, name)
            case Join(room):
                self._join(user, room)
            case Part(room, reason):
                self._part(user, room, reason)
            case Topic(room, text):
                self._topic(user, room, text)
            case Kick(room, nick, reason):
                self._kick(user, room, nick, reason)
            case Away(message):
                self._away(user, message)
            case Whois(nick):
                self._whois(user, nick)
            case Rooms():
                self._rooms(user)
            case Who(room):
                self._who(user, room)
            case Msg(nick, text, kind):
                self._msg(user, nick, text, kind)
            case Help():
                self.tell(user, events.Help())
            case History():
                self._history(user, command)
            case Quit(reason):
                self.drop(
                    user,
                    reason or "",
                    _notice(
                        NoticeCode.GOODBYE,
                        f"Goodbye ({reason or 'quit'})",
                        reason or "",
                    ),
                    requested=True,
                )
            case PartAll(reason):
                for joined in list(user.rooms.values()):
                    self._part(user, joined.name, reason)
            case Invalid(message):
                self.refuse(user, message)

    # Commands

    def _target_room(self, user: User, typed: str | None) -> Room | None:
        """
        The room a command names (the current one for L{None}) if the user
        is in it; otherwise tell them why not and return L{None}.
        """
        if typed is None:
            if user.current is None:
                self.tell(
                    user,
                    _error(ErrorCode.NO_ROOM, "You are in no room; /join one to talk."),
                )
            return user.current
        name = normalize_room(typed)
        room = user.rooms.get(name_key(name))
        if room is None:
            if name_key(name) in self.rooms:
                self.tell(
                    user,
                    _error(
                        ErrorCode.NOT_IN_ROOM,
                        f"You are not in #{name}.",
                        self.rooms[name_key(name)].name,
                    ),
                )
            else:
                self.tell(user, self._no_such_room(name))
        return room

    def _no_such_room(self, name: str) -> events.Error:
        return _error(ErrorCode.NO_SUCH_ROOM, f"There is no room #{name}.", name)

    def _say(
        self,
        user: User,
        typed: str | None,
        text: str,
        kind: type[events.Message] | type[events.Action],
    ) -> None:
        if typed is not None and name_key(normalize_room(typed)) not in user.rooms:
            name = normalize_room(typed)
            if name_key(name) not in self.rooms:
                self.tell(user, self._no_such_room(name))
                return
            self.tell(
                user,
                _error(
                    ErrorCode.CANNOT_SEND,
                    f"You cannot send to #{name}: you are not in it.",
                    name,
                ),
            )
            return
        room = self._target_room(user, typed)
        if room is None:
            return
        event = kind(
            room.name, room.next_seq(), self.clock.seconds(), user.source, text
        )
        self.fanout.publish(room.key, event, user.client)

    def _notice(self, user: User, target: str, text: str) -> None:
        if target.startswith("#"):
            room = user.rooms.get(name_key(normalize_room(target)))
            if room is None:
                # Notices are never answered automatically, errors included
                # only where the user can fix something.
                self.tell(
                    user,
                    _error(
                        ErrorCode.CANNOT_SEND,
                        f"You cannot send to {target}: you are not in it.",
                        normalize_room(target),
                    ),
                )
                return
            event = events.RoomNotice(
                room.name, room.next_seq(), self.clock.seconds(), user.source, text
            )
            self.fanout.publish(room.key, event, user.client)
            return
        self._msg(user, target, text, "notice")

    def _nick_problem(self, new: str, user: User | None = None) -> events.Error | None:
        problem = nick_error(new)
        if problem is not None:
            return _error(ErrorCode.ERRONEOUS_NICK, problem, new)
        found = self.users.get(name_key(new))
        if found is not None and found is not user:
            return _error(
                ErrorCode.NICK_IN_USE,
                f"The nickname {new} is taken; choose another.",
                new,
            )
        return None

    def _may_rename(self, user: User, new: str) -> bool:
        """Whether C{user} may take C{new} here; if not, they are told why."""
        if new == user.nick:
            self.tell(
                user, _notice(NoticeCode.ALREADY_NICK, f"You are already {new}.", new)
            )
            return False
        problem = self._nick_problem(new, user)
        if problem is not None:
            self.tell(user, problem)
            return False
        return True

    def _nick(self, user: User, new: str) -> None:
        if self._may_rename(user, new):
            self._renamed(user, new, user.client)

    def _renamed(self, user: User, new: str, client: IChatClient | None) -> None:
        """C{user} is now called C{new}: tell their rooms (and C{client})."""
        old, old_key, new_key = user.nick, name_key(user.nick), name_key(new)
        source = user.source
        del self.users[old_key]
        user.rename(new)
        self.users[new_key] = user
        rooms = list(user.rooms.values())
        for room in rooms:
            # Rebuilt, not re-inserted, so the user keeps their place in /who.
            room.members = {
                (new_key if key == old_key else key): member
                for key, member in room.members.items()
            }
        event = events.NickChanged(
            self.clock.seconds(),
            source,
            new,
            tuple((room.name, room.next_seq()) for room in rooms),
        )
        self.fanout.publish_user_event([room.key for room in rooms], event, client)
        self.log.info("{old} is now known as {new}", old=old, new=new)

    def _join(self, user: User, typed: str) -> None:
        if self.directory is not None:
            self._join_cluster(user, typed)
            return
        name = self._room_to_join(user, typed)
        if name is None:
            return
        key = name_key(name)
        room = self.rooms.get(key)
        if room is None:
            # A room continues its sequence numbers: after a restart, or when
            # it is made again after its last member left.
            seq = 0 if self.history is None else self.history.last_seq(key)
            room = self.rooms[key] = Room(name, created=self.clock.seconds(), seq=seq)
            room.operators.add(user)
            self.log.info("room {room} created by {nick}", room=name, nick=user.nick)
        room.members[name_key(user.nick)] = user
        user.rooms[key] = room
        self._make_current(user, room, subscribe=True)
        joined = events.Joined(
            room.name, room.next_seq(), self.clock.seconds(), user.source
        )
        if self._announces(room):
            self.fanout.publish(room.key, joined, user.client)
        else:
            self.fanout.send(user.client, joined)
        if room.topic:
            self.tell(user, self._topic_reply(room))
        self.tell(user, self._names(room, joined=True))
        if self.history is not None:
            # Then what was said before, up to the first live line.
            self.history.replay(user.client, room.key, room.name)

    def _room_to_join(self, user: User, typed: str) -> str | None:
        """
        The name of the room C{typed} names, if C{user} is to join it; else
        L{None}: the name is refused, or the user is in that room already
        (it is made their current room).
        """
        name = normalize_room(typed)
        problem = room_error(name)
        if problem is not None:
            self.tell(user, _error(ErrorCode.BAD_ROOM_NAME, problem, name))
            return None
        room = user.rooms.get(name_key(name))
        if room is None:
            return name
        if room is user.current:
            self.tell(
                user,
                _notice(
                    NoticeCode.ALREADY_IN_ROOM,
                    f"You are already in #{room.name}.",
                    room.name,
                ),
            )
        else:
            self._make_current(user, room)
            self.tell(user, events.CurrentRoom(room.name))
        return None

    def _make_current(self, user: User, room: Room, subscribe: bool = False) -> None:
        """Make C{room} the user's current room (joining it if C{subscribe})."""
        previous = user.current
        user.current = room
        if subscribe:
            self.fanout.subscribe(room.key, user.client, True)
        else:
            self.fanout.update(room.key, user.client, True)
        if previous is not None and previous is not room:
            self.fanout.update(previous.key, user.client, False)

    def _part(self, user: User, typed: str | None, reason: str | None) -> None:
        if typed is None and reason:
            # "/part dev [reason]": a room the user is in, without its "#".
            first, _, rest = reason.partition(" ")
            if name_key(normalize_room(first)) in user.rooms:
                typed, reason = first, rest.strip() or None
        room = self._target_room(user, typed)
        if room is None:
            return
        was_current = room is user.current
        event = events.Parted(
            room.name, room.next_seq(), self.clock.seconds(), user.source, reason or ""
        )
        self._leave(user, room, event)
        if was_current:
            self._after_leaving_current(user)

    def _after_leaving_current(self, user: User) -> None:
        """The current room was left: the last joined one is current now."""
        rooms = list(user.rooms.values())
        if rooms:
            self._make_current(user, rooms[-1])
            self.tell(user, events.CurrentRoom(rooms[-1].name))
        else:
            user.current = None
            self.tell(user, events.CurrentRoom(None))

    def _leave(self, user: User, room: Room, event: events.RoomEvent) -> None:
        """
        Take C{user} out of C{room}, telling the room (and the user) with
        C{event}.
        """
        announce = self._announces(room)
        if announce:
            self.fanout.publish(room.key, event, user.client)
        else:
            self.fanout.send(user.client, event)
        self._remove_member(user, room)

    def _remove_member(self, user: User, room: Room) -> None:
        if self.directory is not None and room.key in user.rooms:
            self.directory.part(room.name, user.nick)
        self.fanout.unsubscribe(room.key, user.client)
        room.members.pop(name_key(user.nick), None)
        room.operators.discard(user)
        user.rooms.pop(room.key, None)
        if user.current is room:
            user.current = None
        if not room.members and room.key != name_key(self.default_room):
            del self.rooms[room.key]

    def _topic(self, user: User, typed: str | None, text: str | None) -> None:
        if text is None:
            if typed is not None and name_key(normalize_room(typed)) not in user.rooms:
                room = self.rooms.get(name_key(normalize_room(typed)))
                if room is None:
                    self.tell(user, self._no_such_room(normalize_room(typed)))
                else:
                    self.tell(user, self._topic_reply(room))
                return
            room = self._target_room(user, typed)
            if room is not None:
                self.tell(user, self._topic_reply(room))
            return
        room = self._operated_room(user, typed, "set its topic")
        if room is None:
            return
        if len(text) > TOPIC_MAX:
            text = text[:TOPIC_MAX]
        now = self.clock.seconds()
        room.topic, room.topic_by, room.topic_at = text, user.nick, now
        event = events.TopicChanged(room.name, room.next_seq(), now, user.source, text)
        self.fanout.publish(room.key, event, user.client)

    def _operated_room(self, user: User, typed: str | None, what: str) -> Room | None:
        """
        The room a command names (see L{_target_room}) if C{user} is one of
        its operators; otherwise tell them they may not do C{what} there.
        """
        room = self._target_room(user, typed)
        if room is not None and user not in room.operators:
            self.tell(
                user,
                _error(
                    ErrorCode.NOT_OPERATOR,
                    f"Only an operator of #{room.name} can {what}.",
                    room.name,
                ),
            )
            return None
        return room

    def _topic_reply(self, room: Room) -> events.Topic:
        return events.Topic(room.name, room.topic, room.topic_by, room.topic_at)

    def _kick(
        self, user: User, typed: str | None, nick: str, reason: str | None
    ) -> None:
        room = self._operated_room(user, typed, "kick")
        if room is None:
            return
        target = room.members.get(name_key(nick))
        if target is None:
            if name_key(nick) not in self.users:
                self.tell(user, _no_such_nick(nick))
            else:
                self.tell(
                    user,
                    _error(
                        ErrorCode.USER_NOT_IN_ROOM,
                        f"{nick} is not in #{room.name}.",
                        nick,
                        room.name,
                    ),
                )
            return
        was_current = room is target.current
        event = events.Kicked(
            room.name,
            room.next_seq(),
            self.clock.seconds(),
            user.source,
            target.nick,
            reason or user.nick,
        )
        # A kick is always announced: the kicked user must learn of it.
        self.fanout.publish(room.key, event, user.client)
        self._remove_member(target, room)
        self.log.info(
            "{op} kicked {nick} from {room}",
            op=user.nick,
            nick=target.nick,
            room=room.name,
        )
        if was_current:
            self._after_leaving_current(target)

    def _history(self, user: User, command: History) -> None:
        if self.history is None:
            self.tell(
                user, _error(ErrorCode.NO_HISTORY, "This server keeps no history.")
            )
            return
        room = self._target_room(user, command.room)
        if room is not None:
            self.history.request(
                user.client, room.key, room.name, command, room is user.current
            )

    def _away(self, user: User, message: str | None) -> None:
        user.away = message
        if message is None:
            self.tell(
                user,
                _notice(NoticeCode.UNAWAY, "You are no longer marked as being away."),
            )
        else:
            self.tell(
                user,
                _notice(NoticeCode.NOW_AWAY, "You have been marked as being away."),
            )

    def _whois(self, user: User, nick: str) -> None:
        target = self.users.get(name_key(nick))
        if target is None:
            self.tell(
                user,
                _no_such_nick(nick),
            )
            return
        now = self.clock.seconds()
        self.tell(
            user,
            events.Whois(
                target.nick,
                target.username or target.nick,
                target.host,
                tuple(room.name for room in target.rooms.values()),
                target.away,
                max(0.0, now - target.last_active),
                target.signon,
                target.realname or target.nick,
                tuple(
                    room.name
                    for room in target.rooms.values()
                    if target in room.operators
                ),
            ),
        )

    def _rooms(self, user: User) -> None:
        rooms = sorted(self.rooms.values(), key=lambda room: room.key)
        self.tell(
            user,
            events.RoomList(
                tuple(
                    events.RoomInfo(room.name, len(room.members), room.topic)
                    for room in rooms
                )
            ),
        )

    def _who(self, user: User, typed: str | None) -> None:
        if typed is None:
            room = user.current
            if room is None:
                room = self.rooms.get(name_key(self.default_room))
            name = room.name if room is not None else self.default_room
        else:
            name = normalize_room(typed)
            room = self.rooms.get(name_key(name))
        if room is None:
            self.tell(user, self._no_such_room(name))
            return
        self.tell(user, self._names(room))

    def _msg(self, user: User, nick: str, text: str, kind: str) -> None:
        target = self.users.get(name_key(nick))
        if target is None:
            self.tell(
                user,
                _no_such_nick(nick),
            )
            return
        message = events.PrivateMessage(
            self.clock.seconds(), user.source, target.nick, text, kind
        )
        self.tell(target, message)
        if target is not user:
            # The sender's copy, as delivered (front ends show or drop it).
            self.tell(user, message)
        if target.away is not None and kind != "notice":
            self.tell(
                user,
                _notice(
                    NoticeCode.AWAY,
                    f"{target.nick} is away: {target.away}",
                    target.nick,
                    target.away,
                ),
            )

    # Rooms

    def _names(self, room: Room, joined: bool = False) -> events.Names:
        return events.Names(
            room.name,
            tuple(
                events.Member(
                    member.nick,
                    member in room.operators,
                    member.username or member.nick,
                    member.host,
                    member.away is not None,
                )
                for member in islice(room.members.values(), NAMES_LIMIT)
            ),
            len(room.members),
            joined,
        )

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

    def room_members(self, room: str) -> list[User]:
        """The users in C{room}, in joining order (empty if no such room)."""
        found = self.rooms.get(name_key(normalize_room(room)))
        return list(found.members.values()) if found else []

    # A cluster: the same commands, asking the directory (see IDirectory).
    # Each question holds the user's later commands until it is answered,
    # so they keep their order; an answer that came at once runs at once.

    def _after(
        self,
        user: User,
        asked: Deferred[_T],
        then: Callable[[_T], None],
        client: IChatClient,
    ) -> None:
        """Run C{then} with the directory's answer, holding C{user}'s commands."""
        waiting = user.waiting
        if waiting is None:
            waiting = user.waiting = _Waiting()
        waiting.answers += 1

        def failed(failure: Failure) -> None:
            self.log.info(
                "the directory did not answer for {nick}: {why}",
                nick=user.nick,
                why=failure.getErrorMessage(),
            )
            if user.connected:
                self.fanout.send(client, self._unavailable())

        def answered(result: _T) -> None:
            if user.connected:
                then(result)

        asked.addCallbacks(answered, failed).addErrback(
            lambda failure: self.log.failure("after the directory", failure)
        ).addBoth(lambda _: self._answered(user))

    def _answered(self, user: User) -> None:
        waiting = user.waiting
        if waiting is None:
            return
        waiting.answers -= 1
        if waiting.answers > 0:
            return
        user.waiting = None
        commands = waiting.commands
        for i, command in enumerate(commands):
            self.execute(user, command)
            if user.waiting is not None:
                user.waiting.commands.extend(commands[i + 1 :])
                return

    def _unavailable(self) -> events.Error:
        why = self.directory.why if self.directory is not None else ""
        return _error(
            ErrorCode.UNAVAILABLE,
            f"The chat is degraded ({why}): nothing was changed. Try again shortly.",
        )

    def _info(self, user: User, nick: str | None = None) -> events.Whois:
        """What the directory keeps of C{user} (for WHOIS elsewhere)."""
        nick = nick or user.nick
        return events.Whois(
            nick,
            user.username or nick,
            user.host,
            tuple(room.name for room in user.rooms.values()),
            user.away,
            0.0,
            user.signon,
            user.realname or nick,
            tuple(room.name for room in user.rooms.values() if user in room.operators),
        )

    def _member(self, user: User, room: Room) -> events.Member:
        return events.Member(
            user.nick,
            user in room.operators,
            user.username or user.nick,
            user.host,
            user.away is not None,
        )

    def _register_cluster(
        self,
        user: User,
        nick: str | None,
        username: str,
        join_default: bool,
        realname: str,
    ) -> bool:
        assert self.directory is not None
        client = bound(user.client)
        if not self.directory.connected:
            self.fanout.send(client, self._unavailable())
            self._in_order(user.client.disconnect, "the chat is degraded")
            return False
        if nick is not None:
            problem = self._nick_problem(nick)
            if problem is not None:
                self.fanout.send(client, problem)
                return False
        user.username = username
        user.realname = realname
        directory = self.directory
        asked: Deferred[Any]
        if nick is None:
            asked = directory.guest(lambda guest: self._info(user, guest))
        else:
            asked = directory.claim(nick, self._info(user, nick))

        def claimed(result: Any) -> None:
            name = result if isinstance(result, str) else nick
            if not result or name is None:
                self.fanout.send(
                    client,
                    _error(
                        ErrorCode.NICK_IN_USE,
                        f"The nickname {nick} is taken; choose another.",
                        nick or "",
                    ),
                )
                return
            if user.registered or name_key(name) in self.users:
                directory.release(name)
                return
            self._registered(user, name, join_default, client)

        def gone(result: Any) -> Any:
            # Disconnected while the claim was on its way: free the name.
            if not user.connected and result:
                directory.release(result if isinstance(result, str) else nick or "")
            return result

        self._after(user, asked.addCallback(gone), claimed, client)
        return user.registered

    def _cluster_command(self, user: User, command: Command) -> bool:
        """Carry out C{command} through the directory, if it needs it."""
        directory = self.directory
        assert directory is not None
        changes = isinstance(command, Nick | Join | Part | PartAll | Kick) or (
            isinstance(command, Topic) and command.text is not None
        )
        if changes and not directory.connected:
            self.tell(user, self._unavailable())
            return True
        match command:
            case Nick(name):
                self._nick_cluster(user, name)
            case Topic(room, text):
                self._topic_cluster(user, room, text)
            case Kick(room, nick, reason):
                self._kick_cluster(user, room, nick, reason)
            case Whois(nick):
                self._whois_cluster(user, nick)
            case Rooms():
                client = bound(user.client)
                self._after(
                    user,
                    directory.rooms(),
                    lambda rooms: self.fanout.send(
                        client,
                        events.RoomList(tuple(rooms)),
                    ),
                    client,
                )
            case Who(room):
                self._who_cluster(user, room)
            case Msg(nick, text, kind) if name_key(nick) not in self.users:
                self._msg_cluster(user, nick, text, kind)
            case Notice(target, text) if (
                not target.startswith("#") and name_key(target) not in self.users
            ):
                self._msg_cluster(user, target, text, "notice")
            case History():
                self._history_cluster(user, command)
            case Away(message):
                self._away(user, message)
                directory.update(self._info(user))
                for joined in user.rooms.values():
                    directory.update_member(joined.name, self._member(user, joined))
            case _:
                return False
        return True

    def _nick_cluster(self, user: User, new: str) -> None:
        assert self.directory is not None
        if not self._may_rename(user, new):
            return
        directory = self.directory
        client = bound(user.client)
        old = user.nick

        def renamed(ok: bool) -> None:
            if not ok:
                self.fanout.send(
                    client,
                    _error(
                        ErrorCode.NICK_IN_USE,
                        f"The nickname {new} is taken; choose another.",
                        new,
                    ),
                )
                return
            self._cluster_renamed(user, old, new, client)

        self._after(
            user, directory.rename(old, new, self._info(user, new)), renamed, client
        )

    def _cluster_renamed(
        self, user: User, old: str, new: str, client: IChatClient | None
    ) -> None:
        """The directory gave C{user} the name C{new}: rename them here."""
        assert self.directory is not None
        self._renamed(user, new, client)
        # The new name joins before the old one leaves: the node never looks
        # memberless in the room (which would stop its members being reaped).
        for room in user.rooms.values():
            self.directory.join(room.name, self._member(user, room)).addErrback(
                lambda _: None
            )
            self.directory.part(room.name, old)

    def _join_cluster(self, user: User, typed: str) -> None:
        assert self.directory is not None
        directory = self.directory
        name = self._room_to_join(user, typed)
        if name is None:
            return
        key = name_key(name)
        if not directory.connected:
            self.tell(user, self._unavailable())
            return
        client = bound(user.client)
        member = events.Member(
            user.nick,
            False,
            user.username or user.nick,
            user.host,
            user.away is not None,
        )

        def joined(empty: bool) -> None:
            if key in user.rooms:
                return
            room = self.rooms.get(key)
            if room is None:
                room = self.rooms[key] = Room(name, created=self.clock.seconds())
            if empty:
                room.operators.add(user)
                directory.update_member(room.name, self._member(user, room))
            room.members[name_key(user.nick)] = user
            user.rooms[key] = room
            directory.update(self._info(user))
            self._make_current(user, room, subscribe=True)
            if self._announces(room):
                # As in one process: no joins announced in a big room (its
                # members on this node count), or every join would be
                # delivered to every member: quadratic as it fills.
                event = events.Joined(room.name, 0, self.clock.seconds(), user.source)
                self.fanout.publish(room.key, event, user.client)
            self._after(
                user,
                _gather(
                    directory.topic(room.name),
                    directory.names(room.name, NAMES_LIMIT),
                    directory.recent(room.key, CLUSTER_REPLAY),
                ),
                lambda answers: self._joined_cluster(room, client, *answers),
                client,
            )

        self._after(user, directory.join(name, member), joined, client)

    def _joined_cluster(
        self, room: Room, client: IChatClient, topic: Any, names: Any, recent: Any
    ) -> None:
        """What a user who just joined C{room} is told: topic, names, history."""
        if topic.topic:
            self.fanout.send(client, topic)
        members, total = names
        self.fanout.send(client, events.Names(room.name, members, total, True))
        stored = tuple(e for e in recent if isinstance(e, events.STORED_EVENTS))
        if stored:
            self.fanout.send(client, events.History(room.name, stored))

    def _topic_cluster(self, user: User, typed: str | None, text: str | None) -> None:
        assert self.directory is not None
        if text is None:
            if typed is None:
                room = user.current
                if room is None:
                    self._target_room(user, None)
                    return
                name = room.name
            else:
                name = normalize_room(typed)
            client = bound(user.client)
            self._after(
                user,
                self.directory.topic(name),
                lambda topic: self.fanout.send(client, topic),
                client,
            )
            return
        self._topic(user, typed, text)
        room = self._target_room(user, typed) if typed is not None else user.current
        if room is not None and user in room.operators:
            self.directory.set_topic(
                room.name, room.topic, room.topic_by, room.topic_at
            )

    def _kick_cluster(
        self, user: User, typed: str | None, nick: str, reason: str | None
    ) -> None:
        assert self.directory is not None
        room = self._operated_room(user, typed, "kick")
        if room is None:
            return
        client = bound(user.client)

        def found(whois: Any) -> None:
            if whois is None:
                self.fanout.send(client, _no_such_nick(nick))
                return
            if name_key(room.name) not in {name_key(r) for r in whois.rooms}:
                self.fanout.send(
                    client,
                    _error(
                        ErrorCode.USER_NOT_IN_ROOM,
                        f"{nick} is not in #{room.name}.",
                        nick,
                        room.name,
                    ),
                )
                return
            # Every node (this one too) takes the target out of the room
            # when the kick is delivered there: see room_event.
            event = events.Kicked(
                room.name,
                0,
                self.clock.seconds(),
                user.source,
                whois.nick,
                reason or user.nick,
            )
            self.fanout.publish(room.key, event, user.client)

        self._after(user, self.directory.whois(nick), found, client)

    def _whois_cluster(self, user: User, nick: str) -> None:
        assert self.directory is not None
        client = bound(user.client)
        local = self.users.get(name_key(nick))
        if local is not None:
            self._whois(user, nick)
            return

        def found(whois: Any) -> None:
            self.fanout.send(
                client, whois if whois is not None else _no_such_nick(nick)
            )

        self._after(user, self.directory.whois(nick), found, client)

    def _who_cluster(self, user: User, typed: str | None) -> None:
        assert self.directory is not None
        if typed is None:
            name = user.current.name if user.current is not None else self.default_room
        else:
            name = normalize_room(typed)
        client = bound(user.client)

        def answer(names: Any) -> None:
            members, total = names
            if not total:
                self.fanout.send(client, self._no_such_room(name))
                return
            self.fanout.send(client, events.Names(name, members, total))

        self._after(user, self.directory.names(name, NAMES_LIMIT), answer, client)

    def _msg_cluster(self, user: User, nick: str, text: str, kind: str) -> None:
        assert self.directory is not None
        directory = self.directory
        client = bound(user.client)
        if not directory.connected:
            self.fanout.send(client, self._unavailable())
            return

        def found(whois: Any) -> None:
            if whois is None:
                self.fanout.send(client, _no_such_nick(nick))
                return
            message = events.PrivateMessage(
                self.clock.seconds(), user.source, whois.nick, text, kind
            )
            self.fanout.send(client, message)
            directory.send_to(
                whois.nick, message, user.nick, _no_such_nick(whois.nick)
            ).addErrback(lambda _: False).addCallback(sent, whois)

        def sent(ok: bool, whois: Any) -> None:
            if not ok:
                self.fanout.send(client, _no_such_nick(nick))
            elif whois.away is not None and kind != "notice":
                self.fanout.send(
                    client,
                    _notice(
                        NoticeCode.AWAY,
                        f"{whois.nick} is away: {whois.away}",
                        whois.nick,
                        whois.away,
                    ),
                )

        self._after(user, directory.whois(nick), found, client)

    def _history_cluster(self, user: User, command: History) -> None:
        assert self.directory is not None
        room = self._target_room(user, command.room)
        if room is None:
            return
        client = bound(user.client)
        count = command.count or CLUSTER_REPLAY
        current = room is user.current

        def answer(recent: list[object]) -> None:
            stored = tuple(e for e in recent if isinstance(e, events.STORED_EVENTS))
            self.fanout.send(client, events.History(room.name, stored, True, current))

        self._after(user, self.directory.recent(room.key, count), answer, client)

    # What the directory tells a core (see IDirectory.watch)

    def cluster_degraded(self, why: str) -> None:
        """The cluster cannot take changes: tell every user."""
        notice = _notice(
            NoticeCode.DEGRADED,
            f"The chat is degraded ({why}): new lines are refused until it is back.",
            why,
        )
        for user in list(self.users.values()):
            self.fanout.send(user.client, notice)

    def cluster_recovered(self) -> None:
        """The cluster works again: tell every user."""
        notice = _notice(NoticeCode.RECOVERED, "The chat works normally again.")
        for user in list(self.users.values()):
            self.fanout.send(user.client, notice)

    def nick_lost(self, nick: str) -> None:
        """Another node took C{nick} meanwhile: its user here becomes a guest."""
        user = self.users.get(name_key(nick))
        if user is None or self.directory is None:
            return
        directory = self.directory
        client = user.client

        def renamed(guest: str) -> None:
            if self.users.get(name_key(nick)) is not user:
                directory.release(guest)
                return
            self._cluster_renamed(user, nick, guest, client)
            self.tell(
                user,
                _notice(
                    NoticeCode.NICK_LOST,
                    f"Your nickname {nick} was taken while the chat was degraded; "
                    f"you are {guest} now.",
                    nick,
                    guest,
                ),
            )

        self._after(
            user,
            directory.guest(lambda guest: self._info(user, guest)),
            renamed,
            client,
        )

    def reaped(self, members: list[tuple[str, events.Member]]) -> None:
        """Members of a dead node left their rooms: their rooms see them quit."""
        rooms: dict[str, list[str]] = {}
        sources: dict[str, events.Source] = {}
        for room, member in members:
            key = name_key(member.nick)
            rooms.setdefault(key, []).append(room)
            sources[key] = events.Source(member.nick, member.user, member.host)
        now = self.clock.seconds()
        for key, names in rooms.items():
            event = events.Quit(
                now, sources[key], "node lost", tuple((name, 0) for name in names)
            )
            self.fanout.publish_user_event(
                [name_key(name) for name in names], event, None
            )

    def room_event(self, key: str, event: object) -> None:
        """
        A room event was delivered here (from any node): kicks and topics
        change what this node keeps.
        """
        room = self.rooms.get(key)
        if room is None:
            return
        if isinstance(event, events.Kicked):
            target = room.members.get(name_key(event.target))
            if target is None:
                return
            was_current = room is target.current
            self._remove_member(target, room)
            if self.directory is not None:
                self.directory.update(self._info(target))
            if was_current:
                self._after_leaving_current(target)
        elif isinstance(event, events.TopicChanged):
            room.topic, room.topic_by, room.topic_at = (
                event.topic,
                event.source.nick,
                event.time,
            )


def _gather(*asked: Deferred[Any]) -> Deferred[list[Any]]:
    from twisted.internet.defer import gatherResults

    return gatherResults(list(asked), consumeErrors=True)
