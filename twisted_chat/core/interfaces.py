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

from collections.abc import Hashable, Iterable

from zope.interface import Attribute, Interface


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
