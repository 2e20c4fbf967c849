"""
The delivery hub: what every front end of one server shares.

One L{Delivery} per server, whatever protocols it speaks: its connections of
every front end (so the connection limits count them all), the backpressure
rules (so a room's readers are judged together, whichever protocol each
speaks), and the writes at the end of each event and of each reactor turn
(so that an IRC user's line reaches line-protocol users in the same batch as
it reaches IRC users).

The connections themselves are L{twisted_chat.server.connection.Connection}s;
this module only schedules their writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from twisted_chat.core.chat import ChatServer
from twisted_chat.server.backpressure import Backpressure
from twisted_chat.server.limits import ConnectionCounter, Limits

if TYPE_CHECKING:
    from twisted_chat.server.connection import Connection


class _Batch:
    """Context manager: writes all queued output when the event ends."""

    __slots__ = ("delivery", "fanout")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.fanout = delivery.chat.fanout

    def __enter__(self) -> None:
        self.delivery.depth += 1
        self.fanout.hold()

    def __exit__(self, *exc_info: object) -> None:
        delivery = self.delivery
        # Room traffic first (into each member's queue), then the queues.
        self.fanout.release()
        delivery.depth -= 1
        if not delivery.depth and delivery.dirty:
            delivery.flush()


class Delivery:
    """
    The connections of one server, of every front end, and when their
    output is written.

    Output is written once per connection per event: inside L{batch},
    L{Connection.send} only queues, and the connections that queued are
    flushed when the outermost batch ends.  A plain TCP connection is then
    written once more lazily, at the end of the reactor turn
    (L{write_at_end_of_turn}), so that every event of the turn costs it one
    C{send}.

    @ivar connections: every open connection, of every front end.
    @ivar counter: the connection limits, counted across front ends.
    @ivar pressure: the backpressure rules, for every connection.
    @ivar dirty: connections that queued output during the current event.
    @ivar depth: how many batches are open.
    """

    log = Logger()

    def __init__(
        self,
        chat: ChatServer,
        limits: Limits | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.chat = chat
        self.limits = limits if limits is not None else Limits()
        self.clock = clock
        self.connections: set[Connection] = set()
        self.pressure = Backpressure(
            clock,
            self._room_size,
            lambda: getattr(self.chat.fanout, "waiting", 0),
        )
        self.counter = ConnectionCounter(
            self.limits.max_clients, self.limits.max_per_ip
        )
        self.dirty: list[Connection] = []
        self.depth = 0
        # Plain TCP connections to write at the end of the reactor turn.
        self._end_of_turn: list[Connection] = []
        self._turn_call: IDelayedCall | None = None
        self._batch = _Batch(self)

    # Connections

    def refusal(self, host: str | None) -> str | None:
        """
        Why a new connection from C{host} (L{None}: not an IP address) must
        be refused, or L{None} to accept it.
        """
        return self.counter.refusal(host)

    def connection_made(self, connection: Connection) -> None:
        """C{connection} is open: count it."""
        self.connections.add(connection)
        self.counter.add(connection.host)

    def connection_lost(self, connection: Connection) -> None:
        """C{connection} is closed: forget it everywhere."""
        self.pressure.gone(connection)
        if connection in self.connections:
            self.connections.remove(connection)
            self.counter.remove(connection.host)
            if connection in self.dirty:
                self.dirty.remove(connection)

    def _room_size(self, key: str) -> int:
        room = self.chat.rooms.get(key)
        return len(room.members) if room is not None else 0

    # Writing

    def batch(self) -> _Batch:
        """
        A context for one event: output queued inside it is written when the
        outermost one ends.
        """
        return self._batch

    def flush(self) -> None:
        """Write the output queued by every connection."""
        while self.dirty:
            dirty, self.dirty = self.dirty, []
            for connection in dirty:
                connection.flush()

    def write_at_end_of_turn(self, connection: Connection) -> None:
        """
        Write C{connection}'s queue once the reactor has handled this round
        of events: a C{callLater(0)} runs after the events of the current
        poll and before the next poll.
        """
        self._end_of_turn.append(connection)
        if self._turn_call is None:
            self._turn_call = self.clock.callLater(0, self._turn_ended)

    def _turn_ended(self) -> None:
        self._turn_call = None
        connections, self._end_of_turn = self._end_of_turn, []
        for connection in connections:
            connection.end_of_turn()
