"""
The seams of twisted-chat.

The core talks to a connection only through L{IChatClient}, and to the other
members of a room only through L{IFanout}; it says what happened with the
typed events of L{twisted_chat.core.events}, and each front end renders them
with its L{IRenderer}.  A new wire protocol (IRC, a WebSocket) is another
adapter implementing L{IChatClient}; a fan-out spread over many nodes (Redis
pub/sub) is another implementation of L{IFanout}.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from twisted_chat.core.events import Member, RoomInfo, Topic, Whois


class IRenderer(Interface):
    """
    How one front end (one wire protocol) writes the events that many
    connections share.  The fan-out renders each room or user event once per
    renderer and variant, and hands the same C{bytes} to every member that
    shares them.
    """

    def render(event: object, variant: object) -> bytes:
        """
        The wire form of a room event or user event (see
        L{twisted_chat.core.events}) for members of the given C{variant}: a
        hashable value the front end chose for a group of its connections
        (the line protocol: whether the room is the member's current room;
        IRC: whether the connection negotiated C{server-time}).  Complete
        lines, ready to write.
        """


# How a member receives a room's events: its protocol's renderer, the
# variant it needs, and whether it receives the messages it sent.
View = tuple[IRenderer, Hashable, bool]


class IChatClient(Interface):
    """
    One connection, as the core sees it: something that renders and queues
    the core's events in its own protocol, and that can be disconnected.
    """

    peer = Attribute("A printable description of the remote end, for logs.")

    def view(current: bool) -> View:
        """
        How this client receives the shared events of a room (C{current}:
        whether that room is the user's current room, see
        L{twisted_chat.core.chat.User.current}; C{True} for user events):
        its protocol's L{IRenderer}, the variant it needs (a hashable
        value), and whether it receives the messages it sent itself (IRC's
        echo-message; its own joins, parts and topics it always receives).
        Clients with equal views receive the same C{bytes}.
        """

    def send(data: bytes) -> None:
        """
        Queue C{data} for this client: complete lines, already rendered.
        The same C{bytes} object is given to every member of a group, so an
        implementation must not modify it.
        """

    def reply(event: object) -> None:
        """
        Render and queue an event for this client alone: a reply (see
        L{twisted_chat.core.events}), or a room event that only this client
        is told of.
        """

    def disconnect(reason: str) -> None:
        """
        Close the connection after everything already sent has been written.

        @param reason: why, for logs; the user has been told already.
        """


class IFanout(Interface):
    """
    Delivers the core's events to the members of a room, and replies to one
    client.

    The in-process implementation keeps the member set in memory; an
    implementation over a message bus publishes the event and delivers it to
    the local members of each node.

    Between L{hold} and the matching L{release}, an implementation may buffer
    what it is given and deliver it at the release, so that one input event
    (a chunk of lines from one connection) costs one delivery per member
    rather than one per line.  Whatever it buffers, each client receives its
    events in the order in which they were published and sent to it.
    """

    def subscribe(room: str, client: IChatClient, current: bool) -> None:
        """
        Start delivering events published to C{room} to C{client}, as its
        L{IChatClient.view} of the room says.

        @param room: the room's key (its case-folded name).
        @param current: whether C{room} is now the user's current room.
        """

    def unsubscribe(room: str, client: IChatClient) -> None:
        """
        Stop delivering events published to C{room} to C{client}.
        """

    def update(room: str, client: IChatClient, current: bool) -> None:
        """
        C{client}'s view of C{room} may have changed (whether it is the
        user's current room, or what the client negotiated): ask it again.
        """

    def publish(room: str, event: object, origin: IChatClient | None) -> None:
        """
        Deliver a room event to every member of C{room}, in the order in
        which C{publish} was called.  C{origin} is the client that caused
        it, which receives it only if its view says so.
        """

    def publish_user_event(
        rooms: Iterable[str], event: object, also: IChatClient | None
    ) -> None:
        """
        Deliver a user event (a quit, a nick change) once to every member of
        any of the C{rooms} (keys), and to C{also}.
        """

    def send(client: IChatClient, event: object) -> None:
        """
        Deliver an event to C{client} alone (L{IChatClient.reply}), after
        everything already published to its rooms.
        """

    def hold() -> None:
        """
        Start an event: delivery may wait until the matching L{release}.
        Calls nest.
        """

    def release() -> None:
        """
        End an event: when the outermost L{hold} is released, deliver
        everything that was buffered.
        """


class IDirectory(Interface):
    """
    Who is called what, and in which rooms, across every process of one
    chat: the seam to a cluster (Redis), which answers later, so every
    question returns a L{Deferred}.  Without one, L{ChatServer} keeps its
    directory in its own dicts and answers at once.

    C{info} values are L{twisted_chat.core.events.Whois} snapshots of a user
    of this process (C{idle} is ignored); room names are display names.
    """

    connected = Attribute("Whether the cluster takes changes now (not degraded).")
    why = Attribute("Why it does not, when it does not: a few words.")

    def watch(observer: object) -> None:
        """
        Tell C{observer} (the core) what happens elsewhere:
        C{cluster_degraded(why)}, C{cluster_recovered()}, C{nick_lost(nick)},
        C{reaped(members)} (a list of (room, L{Member}) of dead processes),
        and C{room_event(room_key, event)} after each room event is
        delivered here.
        """

    def claim(nick: str, info: Whois) -> Deferred[bool]:
        """Take C{nick} for a user of this process: whether it is theirs now."""

    def guest(info: Callable[[str], Whois]) -> Deferred[str]:
        """A guest name nobody has anywhere, claimed for a user of this process."""

    def rename(old: str, new: str, info: Whois) -> Deferred[bool]:
        """Claim C{new}, then free C{old}: whether C{new} is the user's now."""

    def release(nick: str) -> None:
        """A user of this process called C{nick} left: free the name."""

    def update(info: Whois) -> None:
        """New details of a user of this process (away, rooms)."""

    def join(room: str, member: Member) -> Deferred[bool]:
        """A user of this process joined C{room}: whether it was empty before."""

    def part(room: str, nick: str) -> None:
        """A user of this process left C{room}."""

    def update_member(room: str, member: Member) -> None:
        """New details of a member of this process (operator, away)."""

    def names(room: str, limit: int) -> Deferred[tuple[tuple[Member, ...], int]]:
        """The first C{limit} members of C{room} in joining order, and how many."""

    def rooms() -> Deferred[list[RoomInfo]]:
        """Every room with members anywhere, as RoomInfo values, by name."""

    def whois(nick: str) -> Deferred[Whois | None]:
        """What WHOIS shows of the user called C{nick}, or L{None}."""

    def topic(room: str) -> Deferred[Topic]:
        """C{room}'s topic, as a Topic value."""

    def set_topic(room: str, topic: str, by: str, at: float) -> None:
        """C{room}'s topic changed."""

    def send_to(
        nick: str, event: object, sender_nick: str, bounce: object
    ) -> Deferred[bool]:
        """
        Deliver a reply to the user called C{nick}, wherever they are:
        whether someone took it (C{bounce} goes back to C{sender_nick} if
        the user turns out to have gone).
        """

    def recent(room: str, count: int) -> Deferred[list[object]]:
        """The room's last C{count} stored events, oldest first."""


def bound(client: IChatClient) -> IChatClient:
    """
    C{client} as it is answering now: a front end whose rendering of a
    reply depends on the request it answers (IRC) offers C{bound()}, and
    what answers later (a cluster) replies through it.
    """
    capture = getattr(client, "bound", None)
    return client if capture is None else capture()
