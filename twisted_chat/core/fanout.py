"""
In-process fan-out: the members of each room, and delivery to them.
"""

from __future__ import annotations

from zope.interface import implementer

from twisted_chat.core.interfaces import IChatClient, IFanout


@implementer(IFanout)
class LocalFanout:
    """
    Delivers every line published to a room to the room's members in this
    process.

    While held, the lines published to a room are collected and, at the
    release, joined into one C{bytes} that every member receives with one
    L{IChatClient.send}: the per-member cost of an event is one call, however
    many lines it carried.  Membership changes and direct sends first deliver
    what is pending, so nobody gets a line from before they joined or misses
    one from before they left, and direct lines keep their place.
    """

    __slots__ = ("_delivering", "_depth", "_members", "_pending")

    def __init__(self) -> None:
        # Members in joining order (dict as an ordered set).
        self._members: dict[str, dict[IChatClient, None]] = {}
        # Lines published to each room during the current event.
        self._pending: dict[str, list[bytes]] = {}
        self._depth = 0
        # Set while delivering: what a send publishes meanwhile (a quit
        # notice, say) waits its turn instead of overtaking the line.
        self._delivering = False

    def subscribe(self, room: str, client: IChatClient) -> None:
        if room in self._pending and not self._delivering:
            self._deliver(room, self._pending.pop(room))
        self._members.setdefault(room, {})[client] = None

    def unsubscribe(self, room: str, client: IChatClient) -> None:
        if room in self._pending and not self._delivering:
            self._deliver(room, self._pending.pop(room))
        members = self._members.get(room)
        if members is None:
            return
        members.pop(client, None)
        if not members:
            del self._members[room]

    def members(self, room: str) -> list[IChatClient]:
        """The clients subscribed to C{room}, in joining order."""
        return list(self._members.get(room, ()))

    def publish(self, room: str, data: bytes) -> None:
        pending = self._pending.get(room)
        if pending is None:
            self._pending[room] = [data]
        else:
            pending.append(data)
        if not self._depth and not self._delivering:
            self._deliver_pending()

    def send(self, client: IChatClient, data: bytes) -> None:
        if self._pending and not self._delivering:
            self._deliver_pending()
        client.send(data)

    def hold(self) -> None:
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if not self._depth and self._pending:
            self._deliver_pending()

    def _deliver_pending(self) -> None:
        self._delivering = True
        try:
            while self._pending:
                pending, self._pending = self._pending, {}
                for room, chunks in pending.items():
                    self._deliver(room, chunks)
        finally:
            self._delivering = False

    def _deliver(self, room: str, chunks: list[bytes]) -> None:
        members = self._members.get(room)
        if not members:
            return
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        # Copy: a send may disconnect a client, which unsubscribes it.
        for client in list(members):
            client.send(data)
