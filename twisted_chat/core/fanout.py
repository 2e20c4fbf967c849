"""
In-process fan-out: the members of each room, and delivery to them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from zope.interface import implementer

from twisted_chat.core.events import MESSAGES
from twisted_chat.core.interfaces import IChatClient, IFanout, IRenderer, View

_Pending = list[tuple[object, IChatClient | None]]


@implementer(IFanout)
class LocalFanout:
    """
    Delivers every event published to a room to the room's members in this
    process.

    Members are grouped by L{View}.  While held, the events published to a
    room are collected; at the release, each is rendered once per renderer
    and variant, the renderings of one room are joined into one C{bytes},
    and every member of a group receives that same C{bytes} with one
    L{IChatClient.send}: the per-member cost of an event is one call,
    however many lines it carried.  Membership changes, user events and
    replies first deliver what is pending, so nobody gets an event from
    before they joined or misses one from before they left, and replies
    keep their place.
    """

    __slots__ = (
        "_delivering",
        "_depth",
        "_groups",
        "_pending",
        "_user_events",
        "_views",
    )

    def __init__(self) -> None:
        # Per room: each member's view, in joining order (dict as an ordered
        # set), and the members grouped by view.
        self._views: dict[str, dict[IChatClient, View]] = {}
        self._groups: dict[str, dict[View, dict[IChatClient, None]]] = {}
        # Events published to each room during the current event, with the
        # client that caused each.
        self._pending: dict[str, _Pending] = {}
        # User events caused while delivering, to deliver after.
        self._user_events: list[tuple[list[str], object, IChatClient | None]] = []
        self._depth = 0
        # Set while delivering: what a send publishes meanwhile (a quit
        # notice, say) waits its turn instead of overtaking the event.
        self._delivering = False

    # Membership

    def subscribe(self, room: str, client: IChatClient, current: bool) -> None:
        self._settle(room)
        view = client.view(current)
        self._views.setdefault(room, {})[client] = view
        self._groups.setdefault(room, {}).setdefault(view, {})[client] = None

    def unsubscribe(self, room: str, client: IChatClient) -> None:
        self._settle(room)
        views = self._views.get(room)
        if views is None or client not in views:
            return
        view = views.pop(client)
        groups = self._groups[room]
        group = groups[view]
        del group[client]
        if not group:
            del groups[view]
        if not views:
            del self._views[room]
            del self._groups[room]

    def update(self, room: str, client: IChatClient, current: bool) -> None:
        views = self._views.get(room)
        if views is None or client not in views:
            return
        view = client.view(current)
        if views[client] == view:
            return
        self._settle(room)
        old = views[client]
        views[client] = view
        groups = self._groups[room]
        del groups[old][client]
        if not groups[old]:
            del groups[old]
        groups.setdefault(view, {})[client] = None

    def members(self, room: str) -> list[IChatClient]:
        """The clients subscribed to C{room}, in joining order."""
        return list(self._views.get(room, ()))

    # Delivery

    def publish(
        self, room: str, event: object, origin: IChatClient | None = None
    ) -> None:
        pending = self._pending.get(room)
        if pending is None:
            self._pending[room] = [(event, origin)]
        else:
            pending.append((event, origin))
        if not self._depth and not self._delivering:
            self._deliver_pending()

    def publish_user_event(
        self, rooms: Iterable[str], event: object, also: IChatClient | None
    ) -> None:
        if self._delivering:
            # Caused by a delivery (a client that went away): after it.
            self._user_events.append((list(rooms), event, also))
            return
        if self._pending:
            self._deliver_pending()
        self._deliver_user_event(rooms, event, also)

    def _deliver_user_event(
        self, rooms: Iterable[str], event: object, also: IChatClient | None
    ) -> None:
        recipients: dict[IChatClient, View] = {}
        for room in rooms:
            recipients.update(self._views.get(room, {}))
        if also is not None and also not in recipients:
            recipients[also] = also.view(True)
        rendered: dict[tuple[IRenderer, Hashable], bytes] = {}
        for client, (renderer, variant, _echo) in list(recipients.items()):
            data = rendered.get((renderer, variant))
            if data is None:
                data = rendered[renderer, variant] = renderer.render(event, variant)
            client.send(data)

    def send(self, client: IChatClient, event: object) -> None:
        if self._pending and not self._delivering:
            self._deliver_pending()
        client.reply(event)

    def hold(self) -> None:
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if not self._depth and self._pending:
            self._deliver_pending()

    # Inside

    def _settle(self, room: str) -> None:
        """Deliver what is pending for C{room} before its members change."""
        if room in self._pending and not self._delivering:
            self._deliver(room, self._pending.pop(room))

    def _deliver_pending(self) -> None:
        self._delivering = True
        try:
            while self._pending or self._user_events:
                pending, self._pending = self._pending, {}
                for room, events in pending.items():
                    self._deliver(room, events)
                if self._user_events:
                    user_events, self._user_events = self._user_events, []
                    for rooms, event, also in user_events:
                        self._deliver_user_event(rooms, event, also)
        finally:
            self._delivering = False

    def _deliver(self, room: str, events: _Pending) -> None:
        groups = self._groups.get(room)
        if not groups:
            return
        if len(events) == 1 and len(groups) == 1:
            # One event, one view: the usual case, kept short.
            (((renderer, variant, echo), group),) = groups.items()
            event, origin = events[0]
            data = renderer.render(event, variant)
            if not echo and origin in group and isinstance(event, MESSAGES):
                group = {c: None for c in group if c is not origin}
            # A copy: a send may disconnect a client, which unsubscribes it.
            for client in list(group):
                client.send(data)
            return
        rendered: dict[tuple[IRenderer, Hashable], list[bytes]] = {}
        # Copies: a send may disconnect a client, which unsubscribes it.
        for (renderer, variant, echo), group in list(groups.items()):
            parts = rendered.get((renderer, variant))
            if parts is None:
                parts = rendered[renderer, variant] = [
                    renderer.render(event, variant) for event, _ in events
                ]
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            if echo:
                for client in list(group):
                    client.send(data)
                continue
            # Members that do not see their own messages (IRC without
            # echo-message): those who sent one get the rest only.  They do
            # see their own joins, parts, kicks and topics.
            origins = {
                origin for event, origin in events if isinstance(event, MESSAGES)
            }
            for client in list(group):
                if client in origins:
                    own = b"".join(
                        part
                        for part, (event, origin) in zip(parts, events, strict=True)
                        if origin is not client or not isinstance(event, MESSAGES)
                    )
                    if own:
                        client.send(own)
                else:
                    client.send(data)
