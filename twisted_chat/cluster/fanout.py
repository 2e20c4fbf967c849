"""
L{RedisFanout}: the L{IFanout} of one node of a cluster.

Membership and delivery to this node's connections stay with a
L{LocalFanout} (grouped by view, rendered once per view); what is published
goes through Redis first:

  - L{RedisFanout.publish} numbers the event in Redis (one atomic script:
    the room's next number, its stream, its channel) and delivers nothing
    itself: this node delivers the event when the room's L{RoomOrder}
    reaches it, from Redis's reply or from the channel, whichever comes
    first, like every other node.  No node shows a line before Redis has
    ordered it.
  - The node follows (SUBSCRIBEs to) a room's channel while it has members
    there: from the first local member's join, reading where the room stands
    before subscribing so nothing is missed, to the last one's leave.
  - A user event (a quit, a rename) counts in several rooms: each of this
    node's rooms delivers it when its order reaches it, and it is handed to
    the local members once, when every one of those rooms has.  (The orders
    agree: Redis numbers every event in all its rooms in one step.)
  - L{RedisFanout.send} keeps its place after what this node published
    before it, as L{IFanout} requires: a reply waits for those events.
  - What goes to one user on another node (a private message) goes through
    that node's inbox channel (L{RedisFanout.send_to}).

While the node is degraded (a link to Redis is down), L{RedisFanout.publish}
refuses: the event is not delivered anywhere, and the user who caused it is
told with an L{events.Error} of code C{unavailable} (L{refused} can be
replaced to do otherwise).  A core that needs to know (to undo what it did,
or to refuse up front) uses L{RedisFanout.publish_checked}, whose Deferred
fails with L{Refused}, and L{RedisFanout.connected}.  User events are
delivered locally while degraded, and not to the other nodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.cluster.directory import Directory
from twisted_chat.cluster.keys import Keys
from twisted_chat.cluster.link import Health, LinkDown, LinkLost, Subscriber
from twisted_chat.cluster.ordering import RoomOrder
from twisted_chat.cluster.rooms import RoomStreams, position_in
from twisted_chat.cluster.wire import (
    Envelope,
    Frame,
    Position,
    WireError,
    decode_envelope,
    encode_envelope,
    event_rooms,
    parse_frame,
    restamp,
)
from twisted_chat.core import events
from twisted_chat.core.events import ErrorCode, NoticeCode
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.interfaces import IChatClient, IFanout, bound
from twisted_chat.shared.rules import name_key

# How many reactor turns delivery may be held while one chunk received
# from Redis is still being parsed (txredisapi's parser takes one turn per
# bulk string): a bound on the latency the batching adds.
MAX_HELD_TURNS = 1000


class Refused(Exception):
    """The cluster did not take an event: it reached nobody (or may not have)."""


UNAVAILABLE = "The chat is degraded ({why}): your line was not sent. Try again shortly."
MAYBE_LOST = (
    "The chat lost its connection to Redis while sending your line: "
    "it may not have been sent."
)


@define(eq=False)
class _Barrier:
    """A user event waiting for this node's other rooms to reach it."""

    waiting: set[str]
    seqs: dict[str, int]
    held: list[str] = field(factory=list)


@define(eq=False)
class _Ticket:
    """One publish of this node, until it is delivered (or refused)."""

    number: int
    done: bool = False


@implementer(IFanout)
@define(eq=False)
class RedisFanout:
    """
    The fan-out of one node: local delivery by C{local}, order by Redis.

    @ivar local_user: finds a connected user of this node by nickname, for
        what other nodes send to one user.
    @ivar refused: what to do with an event Redis did not take (by default,
        tell its origin).
    @ivar lost: what to do when a room's events could not be recovered (by
        default, tell the room's local members how many).
    """

    streams: RoomStreams
    subscriber: Subscriber
    health: Health
    directory: Directory
    local: LocalFanout = field(factory=LocalFanout)
    local_user: Callable[[str], IChatClient | None] = lambda nick: None
    refused: Callable[[IChatClient | None, object, str], None] | None = None
    lost: Callable[[str, int], None] | None = None
    # Told of each room event delivered on this node, after its local
    # members (the core: a kick or a topic from any node changes its state).
    on_event: Callable[[str, object], None] | None = None
    # With a clock, what arrives in one reactor turn (a burst read from
    # Redis in one chunk) is delivered together: one write per member.
    clock: IReactorTime | None = None
    _turn: IDelayedCall | None = field(default=None, init=False)
    _orders: dict[str, RoomOrder[object]] = field(factory=dict, init=False)
    _channels: dict[bytes, str] = field(factory=dict, init=False)
    _unbegun: set[str] = field(factory=set, init=False)
    # This node's events in flight, by their value with every number at 0:
    # who caused each (or the "also" of a user event), and its ticket.
    _origins: dict[object, deque[tuple[IChatClient | None, _Ticket]]] = field(
        factory=dict, init=False
    )
    _barriers: dict[object, _Barrier] = field(factory=dict, init=False)
    _tickets: deque[_Ticket] = field(factory=deque, init=False)
    _issued: int = field(default=0, init=False)
    # Replies (and local-only deliveries) waiting for the publishes before
    # them: the number of the last ticket issued before each.
    _waiting: deque[tuple[int, Callable[[], None]]] = field(factory=deque, init=False)

    log = Logger()

    @property
    def keys(self) -> Keys:
        return self.streams.keys

    @property
    def node(self) -> str:
        return self.directory.node

    @property
    def connected(self) -> bool:
        """Whether events may be published now (not degraded)."""
        return self.health.connected

    def start(self) -> None:
        """Receive this node's inbox and follow the health of its links."""
        self.subscriber.handler = self._message
        self.health.observe(self)
        inbox = self.keys.inbox(self.node)
        self._channels[inbox] = ""
        self.subscriber.subscribe(inbox).addErrback(lambda _: None)

    # Membership (IFanout)

    def subscribe(self, room: str, client: IChatClient, current: bool) -> None:
        first = room not in self._orders
        self.local.subscribe(room, client, current)
        if first:
            self._follow(room)

    def unsubscribe(self, room: str, client: IChatClient) -> None:
        self.local.unsubscribe(room, client)
        if room in self._orders and not self.local.members(room):
            self._unfollow(room)

    def update(self, room: str, client: IChatClient, current: bool) -> None:
        self.local.update(room, client, current)

    # Delivery (IFanout)

    def publish(
        self, room: str, event: object, origin: IChatClient | None = None
    ) -> None:
        self.publish_checked(room, event, origin).addErrback(
            self._refuse, origin, event
        )

    def publish_checked(
        self, room: str, event: object, origin: IChatClient | None = None
    ) -> Deferred[Frame]:
        """
        Publish a room event; fires with its L{Frame} once Redis has ordered
        it, or fails with L{Refused} (degraded: nobody received it; or the
        link dropped meanwhile: it may or may not have been published).
        """
        if not self.health.connected:
            return fail(Refused(UNAVAILABLE.format(why=self.health.why)))
        ticket = self._expect(event, origin)
        d = self.streams.publish(event)

        def published(frame: Frame) -> Frame:
            self._arrived(frame, ticket)
            return frame

        def failed(failure: Failure) -> Failure:
            self._forget(event, ticket)
            if failure.check(LinkLost):
                return Failure(Refused(MAYBE_LOST))
            if failure.check(LinkDown):
                return Failure(Refused(UNAVAILABLE.format(why=self.health.why)))
            return failure

        return d.addCallbacks(published, failed)

    def publish_user_event(
        self, rooms: Iterable[str], event: object, also: IChatClient | None
    ) -> None:
        keys = list(rooms)
        if not event_rooms(event) or not self.health.connected:
            if keys and not self.health.connected:
                self.log.warn(
                    "degraded: {event} delivered on this node only",
                    event=type(event).__name__,
                )
            self._after_publishes(
                lambda: self.local.publish_user_event(keys, event, also)
            )
            return
        ticket = self._expect(event, also)

        def failed(failure: Failure) -> None:
            self._forget(event, ticket)
            self.log.warn(
                "a {event} reached this node only: {why}",
                event=type(event).__name__,
                why=failure.getErrorMessage(),
            )
            self.local.publish_user_event(keys, event, also)

        self.streams.publish(event).addCallbacks(
            lambda frame: self._arrived(frame, ticket), failed
        )

    def send(self, client: IChatClient, event: object) -> None:
        # As the client is answering now, if it renders replies by request.
        client = bound(client)
        self._after_publishes(lambda: self.local.send(client, event))

    def send_to(
        self,
        nick: str,
        event: object,
        sender: IChatClient | None = None,
        sender_nick: str = "",
        bounce: object = None,
    ) -> Deferred[bool]:
        """
        Deliver C{event} to the user called C{nick}, on this node or
        another.

        @param bounce: told to C{sender_nick} (through this node) if the
            user turns out not to be there after all.
        @return: whether a node took it (L{False}: nobody is called C{nick}).
        """
        local = self.local_user(nick)
        if local is not None:
            self.send(local, event)
            return succeed(True)
        if not self.health.connected:
            return fail(Refused(UNAVAILABLE.format(why=self.health.why)))
        return Deferred.fromCoroutine(
            self._send_remote(nick, event, sender_nick, bounce)
        )

    async def _send_remote(
        self, nick: str, event: object, sender_nick: str, bounce: object
    ) -> bool:
        located = await self.directory.locate(nick)
        if located is None or located.node == self.node:
            return False
        envelope = Envelope(located.info.nick, event, self.node, sender_nick, bounce)
        receivers = await self.streams.link.command(
            "PUBLISH", self.keys.inbox(located.node), encode_envelope(envelope)
        )
        return receivers != 0

    def hold(self) -> None:
        self.local.hold()

    def release(self) -> None:
        self.local.release()

    # The health of the links (HealthObserver)

    def cluster_connected(self) -> None:
        for room in list(self._unbegun):
            self._begin(room)
        for room, order in list(self._orders.items()):
            if room not in self._unbegun:
                order.catch_up()

    def cluster_degraded(self, why: str) -> None:
        # What was in flight is settled by catching up after the reconnection;
        # replies must not wait for it.
        for ticket in list(self._tickets):
            ticket.done = True
        self._done(None)

    # Following rooms

    def _follow(self, room: str) -> None:
        order: RoomOrder[object] = RoomOrder(
            room, self.streams, lambda p, e: self._deliver(room, p, e), self._lost
        )
        self._orders[room] = order
        self._channels[self.keys.room_channel(room)] = room
        self._begin(room)

    def _begin(self, room: str) -> None:
        """Read where the room stands, then subscribe, then catch up."""
        order = self._orders.get(room)
        if order is None:
            return
        self._unbegun.discard(room)
        if not self.health.connected:
            self._unbegun.add(room)
            return
        # Sent before any event this node publishes to the room from now on
        # (same connection, in order): the start is before all of them.
        meta = self.streams.meta(room)

        async def begin() -> None:
            order.begin(await meta)
            self._passed(room, order.last)
            await self.subscriber.subscribe(self.keys.room_channel(room))
            if not order.closed:
                await order.catch_up()

        def failed(failure: Failure) -> None:
            if self._orders.get(room) is order:
                self._unbegun.add(room)
            self.log.info(
                "room {room}: cannot follow it now ({why}); will when Redis is back",
                room=room,
                why=failure.getErrorMessage(),
            )

        Deferred.fromCoroutine(begin()).addErrback(failed)

    def _unfollow(self, room: str) -> None:
        order = self._orders.pop(room)
        order.close()
        self._unbegun.discard(room)
        channel = self.keys.room_channel(room)
        self._channels.pop(channel, None)
        self.subscriber.unsubscribe(channel)
        for event, barrier in list(self._barriers.items()):
            if room in barrier.waiting:
                barrier.waiting.discard(room)
                self._complete(event, barrier)

    # Arrivals

    def _message(self, channel: bytes, data: bytes) -> None:
        room = self._channels.get(channel)
        if room is None:
            return
        try:
            if room == "":
                self._inbox(decode_envelope(data))
                return
            position, event = position_in(parse_frame(data), room)
        except WireError as e:
            self.log.warn(
                "unreadable message on {channel!r}: {why}", channel=channel, why=e
            )
            return
        order = self._orders.get(room)
        if order is None:
            return
        if self._hold_turn():
            order.offer(position, event)
            return
        self.local.hold()
        try:
            order.offer(position, event)
        finally:
            self.local.release()

    def _hold_turn(self) -> bool:
        """
        Hold local delivery until the end of this reactor turn (and of the
        chunk being parsed), so that the events of a room received together
        are joined into one write per member, in order.  L{False} without a
        clock.
        """
        if self.clock is None:
            return False
        if self._turn is None:
            self.local.hold()
            self._turn = self.clock.callLater(0, self._end_turn, 0)
        return True

    def _end_turn(self, turns: int) -> None:
        if self.subscriber.parsing and turns < MAX_HELD_TURNS:
            assert self.clock is not None
            self._turn = self.clock.callLater(0, self._end_turn, turns + 1)
            return
        self._turn = None
        self.local.release()

    def _arrived(self, frame: Frame, ticket: _Ticket) -> None:
        """This node's own event, as Redis numbered it."""
        event = frame.event()
        followed = [
            (room, position)
            for room, position in zip(
                (name_key(name) for name in event_rooms(event)),
                frame.positions,
                strict=True,
            )
            if room in self._orders
        ]
        if not followed:
            self._forget(event, ticket)
            return
        self._hold_turn()
        for room, position in followed:
            order = self._orders.get(room)
            if order is not None:
                order.offer(position, event)

    def _inbox(self, envelope: Envelope) -> None:
        client = self.local_user(envelope.to)
        if client is not None:
            self.send(client, envelope.event)
            return
        if envelope.bounce is not None and envelope.reply_to:
            back = Envelope(envelope.sender, envelope.bounce)
            self.streams.link.command(
                "PUBLISH", self.keys.inbox(envelope.reply_to), encode_envelope(back)
            ).addErrback(lambda _: None)

    # Delivery in order

    def _deliver(self, room: str, position: Position, event: object) -> bool:
        self._passed(room, position.seq - 1)
        if isinstance(event, events.Quit | events.NickChanged):
            return self._deliver_user_event(room, position, event)
        origin, ticket = self._claim_origin(event)
        self.local.publish(room, event, origin)
        if self.on_event is not None:
            self.on_event(room, event)
        if ticket is not None:
            self._done(ticket)
        return True

    def _deliver_user_event(self, room: str, position: Position, event: Any) -> bool:
        barrier = self._barriers.get(event)
        if barrier is None:
            seqs = {name_key(name): seq for name, seq in event.rooms}
            mine = {
                key
                for key in seqs
                if key in self._orders
                and not (key != room and self._orders[key].last >= seqs[key])
            }
            barrier = self._barriers[event] = _Barrier(mine, seqs)
        barrier.waiting.discard(room)
        if barrier.waiting:
            barrier.held.append(room)
            return False
        self._complete(event, barrier, delivering=room)
        return True

    def _complete(
        self, event: Any, barrier: _Barrier, delivering: str | None = None
    ) -> None:
        if barrier.waiting or self._barriers.get(event) is not barrier:
            return
        del self._barriers[event]
        rooms = [key for key in barrier.seqs if key in self._orders]
        also, ticket = self._claim_origin(event)
        self.local.publish_user_event(rooms, event, also)
        if ticket is not None:
            self._done(ticket)
        for held in barrier.held:
            order = self._orders.get(held)
            if order is not None and held != delivering:
                order.release()

    def _passed(self, room: str, seq: int) -> None:
        """
        C{room} is past number C{seq}: user events numbered up to there in
        it (before this node followed it, or lost) will not come from it.
        """
        for event, barrier in list(self._barriers.items()):
            if room in barrier.waiting and barrier.seqs.get(room, 0) <= seq:
                barrier.waiting.discard(room)
                self._complete(event, barrier)

    def _lost(self, room: str, count: int) -> None:
        order = self._orders.get(room)
        if order is not None:
            self._passed(room, order.last)
        if self.lost is not None:
            self.lost(room, count)
            return
        notice = events.Notice(
            NoticeCode.DEGRADED,
            f"{count} line(s) of #{room} could not be delivered to you.",
            (str(count), room),
        )
        for client in self.local.members(room):
            self.local.send(client, notice)

    # Refusals

    def _refuse(
        self, failure: Failure, origin: IChatClient | None, event: object
    ) -> None:
        why = (
            str(failure.value) if failure.check(Refused) else failure.getErrorMessage()
        )
        self.log.info(
            "not published ({why}): {event}", why=why, event=type(event).__name__
        )
        if self.refused is not None:
            self.refused(origin, event, why)
        elif origin is not None:
            self.local.send(origin, events.Error(ErrorCode.UNAVAILABLE, why))

    # This node's events in flight, and the replies after them

    def _expect(self, event: object, origin: IChatClient | None) -> _Ticket:
        """Note an event about to be published, and who caused it."""
        self._issued += 1
        ticket = _Ticket(self._issued)
        self._tickets.append(ticket)
        zeroed = restamp(event, [0] * len(event_rooms(event)))
        self._origins.setdefault(zeroed, deque()).append((origin, ticket))
        return ticket

    def _claim_origin(self, event: object) -> tuple[IChatClient | None, _Ticket | None]:
        zeroed = restamp(event, [0] * len(event_rooms(event)))
        waiting = self._origins.get(zeroed)
        if not waiting:
            return None, None
        origin, ticket = waiting.popleft()
        if not waiting:
            del self._origins[zeroed]
        return origin, ticket

    def _forget(self, event: object, ticket: _Ticket) -> None:
        zeroed = restamp(event, [0] * len(event_rooms(event)))
        waiting = self._origins.get(zeroed)
        if waiting:
            for item in list(waiting):
                if item[1] is ticket:
                    waiting.remove(item)
            if not waiting:
                del self._origins[zeroed]
        self._done(ticket)

    def _done(self, ticket: _Ticket | None) -> None:
        if ticket is not None:
            ticket.done = True
        while self._tickets and self._tickets[0].done:
            self._tickets.popleft()
        # Everything issued before the oldest ticket still in flight is done.
        pending = self._tickets[0].number if self._tickets else self._issued + 1
        while self._waiting and self._waiting[0][0] < pending:
            _, action = self._waiting.popleft()
            action()

    def _after_publishes(self, action: Callable[[], None]) -> None:
        """Run C{action} once this node's earlier publishes are delivered."""
        if not self._tickets and not self._waiting:
            action()
        else:
            self._waiting.append((self._issued, action))
