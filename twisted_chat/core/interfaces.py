"""
The seams of twisted-chat.

The core talks to a connection only through L{IChatClient}, and to the other
members of a room only through L{IFanout}.  A new wire protocol (IRC, a
WebSocket) is another adapter implementing L{IChatClient}; a fan-out spread
over many nodes (Redis pub/sub) is another implementation of L{IFanout}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IChatClient(Interface):
    """
    One connected user, as the core sees it: something that can be sent
    complete, already-encoded lines and that can be disconnected.
    """

    peer = Attribute("A printable description of the remote end, for logs.")

    def send(data: bytes) -> None:
        """
        Queue C{data} for this client.

        C{data} is one or more complete lines, each ending with C{b"\\n"},
        already encoded.  The same C{bytes} object is given to every member of
        a room, so an implementation must not modify it.
        """

    def disconnect(reason: str) -> None:
        """
        Close the connection after everything already sent has been written.

        @param reason: why, for logs; the user has been told already.
        """


class IFanout(Interface):
    """
    Delivers room traffic to the members of a room, and lines to one client.

    The in-process implementation keeps the member set in memory; an
    implementation over a message bus publishes the line and delivers it to
    the local members of each node.

    Between L{hold} and the matching L{release}, an implementation may buffer
    what it is given and deliver it at the release, so that one event (a
    chunk of lines from one connection) costs one delivery per member rather
    than one per line.  Whatever it buffers, each client receives its lines
    in the order in which L{publish} and L{send} were called for it.
    """

    def subscribe(room: str, client: IChatClient) -> None:
        """
        Start delivering lines published to C{room} to C{client}.

        @param room: the room's key (its case-folded name).
        """

    def unsubscribe(room: str, client: IChatClient) -> None:
        """
        Stop delivering lines published to C{room} to C{client}.
        """

    def publish(room: str, data: bytes) -> None:
        """
        Deliver C{data} (complete encoded lines) to every member of C{room},
        in the order in which C{publish} was called.
        """

    def send(client: IChatClient, data: bytes) -> None:
        """
        Deliver C{data} to C{client} alone, after everything already published
        to its rooms.
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
