"""
In-process fan-out: the members of each room, and delivery to them.
"""

from __future__ import annotations

from attrs import define, field
from zope.interface import implementer

from twisted_chat.interfaces import IChatClient, IFanout


@implementer(IFanout)
@define
class LocalFanout:
    """
    Delivers every line published to a room to the room's members in this
    process, in publication order.  Members are kept in insertion order so
    that delivery order is stable.
    """

    _members: dict[str, dict[IChatClient, None]] = field(factory=dict)

    def subscribe(self, room: str, client: IChatClient) -> None:
        self._members.setdefault(room, {})[client] = None

    def unsubscribe(self, room: str, client: IChatClient) -> None:
        members = self._members.get(room)
        if members is None:
            return
        members.pop(client, None)
        if not members:
            del self._members[room]

    def publish(self, room: str, data: bytes) -> None:
        members = self._members.get(room)
        if members:
            # Copy: a send may disconnect a client, which unsubscribes it.
            for client in list(members):
                client.send(data)
