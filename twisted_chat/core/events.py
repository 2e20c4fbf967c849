"""
What the core says happened: typed, immutable events.

The core never formats a line for a wire.  It emits these values, and each
front end renders them in its own protocol (the line protocol's text in
L{twisted_chat.server.line}, IRC messages in L{twisted_chat.server.irc}).  A
room event is rendered once per protocol and variant, and every member that
shares them receives the same C{bytes}.

Three kinds:
  - B{room events} (L{Message}, L{Action}, L{RoomNotice}, L{Joined},
    L{Parted}, L{Kicked}, L{TopicChanged}) belong to one room and carry its
    name, the room's sequence number for the event (which only grows) and
    the time, in UTC seconds since the epoch, from the core's clock;
  - B{user events} (L{Quit}, L{NickChanged}) concern every room a user is
    in: each member of any of those rooms receives them once, and they
    carry the room sequence number of each room they count in;
  - B{replies} (L{PrivateMessage}, L{Notice}, L{Error}, L{Names},
    L{RoomList}, L{History}, ...) go to one connection.

A room's history keeps its L{STORED_EVENTS} (messages, actions, notices to
the room and topic changes): see L{twisted_chat.core.history}.

Names in events are display names: a room's name has no C{#}; front ends add
what their protocol shows.
"""

from __future__ import annotations

from attrs import frozen


@frozen
class Source:
    """
    Who did something: a user's nickname and, for protocols that show a full
    source (IRC's C{nick!user@host}), their user name and displayed host.
    """

    nick: str
    user: str
    host: str


# Room events


@frozen
class Message:
    """A line said in a room."""

    room: str
    seq: int
    time: float
    source: Source
    text: str


@frozen
class Action:
    """An action in a room (C{/me waves}, CTCP ACTION)."""

    room: str
    seq: int
    time: float
    source: Source
    text: str


@frozen
class RoomNotice:
    """A notice sent to a room (IRC's NOTICE): never answered automatically."""

    room: str
    seq: int
    time: float
    source: Source
    text: str


@frozen
class Joined:
    """C{source} joined C{room}."""

    room: str
    seq: int
    time: float
    source: Source


@frozen
class Parted:
    """C{source} left C{room}."""

    room: str
    seq: int
    time: float
    source: Source
    reason: str


@frozen
class Kicked:
    """C{source}, an operator of C{room}, made C{target} leave it."""

    room: str
    seq: int
    time: float
    source: Source
    target: str
    reason: str


@frozen
class TopicChanged:
    """C{source} set C{room}'s topic (empty: cleared)."""

    room: str
    seq: int
    time: float
    source: Source
    topic: str


RoomEvent = Message | Action | RoomNotice | Joined | Parted | Kicked | TopicChanged


# User events


@frozen
class Quit:
    """
    C{source} left the chat.  C{rooms} holds each room they were in, with
    that room's sequence number for this event.
    """

    time: float
    source: Source
    reason: str
    rooms: tuple[tuple[str, int], ...]
    # Whether the user asked to quit (IRC shows "Quit: " before the reason
    # then), rather than being disconnected for a reason of the server's.
    requested: bool = False


@frozen
class NickChanged:
    """
    C{source} is now known as C{new}; C{rooms} as for L{Quit}.  The user
    themself receives it too, whether or not they are in a room.
    """

    time: float
    source: Source
    new: str
    rooms: tuple[tuple[str, int], ...]


UserEvent = Quit | NickChanged

# The room events a room's history keeps: what was said, and the topic.
# Joins, leaves, kicks, quits and renames are not kept (IRC users find them
# clutter in a replay; /who says who is there now), nor private messages.
StoredEvent = Message | Action | RoomNotice | TopicChanged
STORED_EVENTS = (Message, Action, RoomNotice, TopicChanged)

# The events a view without echo leaves out for the user who caused them.
MESSAGES = (Message, Action, RoomNotice)

# Every room and user event type: what a renderer renders, for isinstance().
SHARED_EVENTS = (
    Message,
    Action,
    RoomNotice,
    Joined,
    Parted,
    Kicked,
    TopicChanged,
    Quit,
    NickChanged,
)


# Replies: to one connection


@frozen
class PrivateMessage:
    """A message from C{source} to one user, C{target}.

    C{kind} is C{"message"}, C{"action"} or C{"notice"}.  Private messages
    are never stored.
    """

    time: float
    source: Source
    target: str
    text: str
    kind: str = "message"


@frozen
class Notice:
    """
    Information for one user.  C{code} is stable (front ends and tests key on
    it, see L{NoticeCode}); C{text} is the human sentence; C{args} the values
    the sentence names, in the order a protocol's reply needs them.
    """

    code: str
    text: str
    args: tuple[str, ...] = ()


@frozen
class Error:
    """
    Something one user asked for was refused.  C{code} is stable (see
    L{ErrorCode}); C{args} as for L{Notice}.
    """

    code: str
    text: str
    args: tuple[str, ...] = ()


@frozen
class Member:
    """One member of a room, as listed: their nickname and whether they are
    an operator of the room."""

    nick: str
    operator: bool = False
    user: str = ""
    host: str = ""
    away: bool = False


@frozen
class Names:
    """
    The members of C{room}, in joining order: the first C{len(members)} of
    C{total}.  Sent on joining a room and in answer to C{/who} and NAMES.
    """

    room: str
    members: tuple[Member, ...]
    total: int
    # Sent because the user just joined (protocols may list fewer names).
    joined: bool = False


@frozen
class RoomInfo:
    """One room as listed: its name, member count and topic."""

    name: str
    users: int
    topic: str


@frozen
class RoomList:
    """The rooms (C{/rooms}, LIST), sorted by name."""

    rooms: tuple[RoomInfo, ...]


@frozen
class Topic:
    """
    C{room}'s topic, in answer to a query or on joining: empty if none was
    set; C{set_by} and C{set_at} are empty and C{0.0} then.
    """

    room: str
    topic: str
    set_by: str
    set_at: float


@frozen
class Whois:
    """What is public about one connected user."""

    nick: str
    user: str
    host: str
    rooms: tuple[str, ...]
    away: str | None
    idle: float
    signon: float
    realname: str = ""
    # The rooms (of C{rooms}) where the user is an operator.
    operator_in: tuple[str, ...] = ()


@frozen
class Welcome:
    """Registration is complete: the connection is the user C{nick}."""

    nick: str


@frozen
class CurrentRoom:
    """
    The room where a line protocol user's plain lines now go, or L{None} when
    they are in no room.
    """

    room: str | None


@frozen
class Help:
    """The list of commands; front ends render their own."""


@frozen
class History:
    """
    Stored lines of C{room}, oldest first, for one user: replayed on joining
    the room (C{request} false: nothing is sent when there are none), or
    asked for (C{/history}, IRC C{CHATHISTORY}: C{request} true, sent even
    when empty).  Each event keeps its own C{seq} and C{time}.

    C{current}: whether C{room} was the user's current room when the lines
    were sent (the line protocol marks the lines of other rooms).
    """

    room: str
    events: tuple[StoredEvent, ...]
    request: bool = False
    current: bool = True


Reply = (
    PrivateMessage
    | Notice
    | Error
    | Names
    | RoomList
    | Topic
    | Whois
    | Welcome
    | CurrentRoom
    | Help
    | History
)

Event = RoomEvent | UserEvent | Reply


class NoticeCode:
    """The stable codes of L{Notice}."""

    ALREADY_IN_ROOM = "already_in_room"  # args: (room,)
    ALREADY_NICK = "already_nick"  # args: (nick,)
    AWAY = "away"  # the target of a private message is away: (nick, message)
    UNAWAY = "unaway"  # you are no longer marked away
    NOW_AWAY = "now_away"  # you are marked away
    FLOOD_DELAY = "flood_delay"  # your lines are being delayed: (rate,)
    GOODBYE = "goodbye"  # your session ends: (reason,)
    SHUTDOWN = "shutdown"  # the server is stopping: (reason,)
    DEGRADED = "degraded"  # the chat cannot deliver for now: (why,)
    RECOVERED = "recovered"  # the chat delivers again after being degraded: ()
    NICK_LOST = "nick_lost"  # your nickname was taken meanwhile: (old, new)


class ErrorCode:
    """
    The stable codes of L{Error}.  Each names the IRC numeric it renders as,
    and the C{args} that numeric takes after the client's own nickname.
    """

    NO_SUCH_NICK = "no_such_nick"  # 401: (nick,)
    NO_SUCH_ROOM = "no_such_room"  # 403: (room,)
    CANNOT_SEND = "cannot_send"  # 404: (room,)
    UNKNOWN_COMMAND = "unknown_command"  # 421: (command,)
    ERRONEOUS_NICK = "erroneous_nick"  # 432: (nick,)
    NICK_IN_USE = "nick_in_use"  # 433: (nick,)
    USER_NOT_IN_ROOM = "user_not_in_room"  # 441: (nick, room)
    NOT_IN_ROOM = "not_in_room"  # 442: (room,)
    NOT_OPERATOR = "not_operator"  # 482: (room,)
    BAD_ROOM_NAME = "bad_room_name"  # 479 (de facto ERR_BADCHANNAME): (room,)
    BAD_TEXT = "bad_text"  # the line protocol's refusal of a line: ()
    LINE_TOO_LONG = "line_too_long"  # (limit,)
    NOT_UTF8 = "not_utf8"  # ()
    USAGE = "usage"  # a command's arguments are wrong: (command,)
    NO_ROOM = "no_room"  # a plain line while in no room: ()
    FLOOD = "flood"  # disconnected for flooding: ()
    SEND_QUEUE = "send_queue"  # disconnected as a slow reader: ()
    IDLE = "idle"  # disconnected for idling: ()
    UNAVAILABLE = "unavailable"  # refused for now (degraded cluster): ()
    # A line that the room's history could not store (a full disk) and so
    # was delivered to nobody: (room,)
    NOT_STORED = "not_stored"
    NO_HISTORY = "no_history"  # the server keeps no history: ()
    # The stored lines could not be read just now: (room,)
    HISTORY_UNAVAILABLE = "history_unavailable"
