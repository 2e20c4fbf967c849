"""
Room history that survives a crash: what is kept, the interface of a store,
and L{DurableFanout}, which delivers a line only once it is stored.

What is kept: the L{STORED_EVENTS} of each room (messages, actions, notices
to the room, topic changes), with their room, sequence number and time.
Private messages are never stored; joins, leaves, kicks, quits and renames
are not either (see L{twisted_chat.core.events}).

B{The durability rule}: a line is delivered to anyone only once the store has
committed it, so after a crash every line that any user saw is in history.
L{DurableFanout} stands in front of the fan-out that delivers
(L{twisted_chat.core.fanout.LocalFanout}): it hands each storable event to
the store's writer, and applies every fan-out operation (publish, user
events, replies, membership changes) to the inner fan-out in the order it
was called, each once every storable event published before it has been
committed.  With nothing waiting for a commit, an operation goes straight
through.

A store that cannot commit (a full disk) fails the batch: its lines are
delivered to nobody, their senders are told (L{ErrorCode.NOT_STORED}), the
log says why, and later lines are tried again.

B{Replay on join} is synchronous and exact: the last lines of every room are
kept in memory (loaded at start-up), and the replay is taken when the join
is applied in order.  So it holds precisely the lines committed before the
joining user started receiving the room's live lines: none is missing at
the seam, and none is shown twice.  Reading further back (C{/history N}
past what memory holds, IRC C{CHATHISTORY}) asks the store, which answers
with a Deferred.

B{Sequence numbers} survive restarts: the store knows each room's last one
(L{Loaded.last_seq}), and the core starts a room from there
(L{DurableFanout.last_seq}).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface, implementer

from twisted_chat.core import events
from twisted_chat.core.events import STORED_EVENTS, ErrorCode, StoredEvent
from twisted_chat.core.interfaces import IChatClient, IFanout
from twisted_chat.shared import commands as cmd
from twisted_chat.shared.rules import name_key

# Lines replayed to a user who joins a room.
DEFAULT_REPLAY = 50
# Lines /history shows without a number.
DEFAULT_COUNT = 100
# The most lines one /history or CHATHISTORY returns.
DEFAULT_LIMIT = 1000

NOT_STORED_TEXT = "Your line was not sent: the server cannot store it."

_STORED = frozenset(STORED_EVENTS)


def storable(event: object) -> bool:
    """Whether a room's history keeps C{event}."""
    return type(event) in _STORED


class StoreError(Exception):
    """A store cannot be used; the message says why, in a few words."""


@frozen
class Loaded:
    """
    What a store holds, read at start-up, by room key: each room's last
    sequence number, and its most recent stored lines, oldest first.
    """

    last_seq: dict[str, int]
    recent: dict[str, list[StoredEvent]]


@frozen
class Query:
    """
    Which stored lines of one room (its key) to read, as C{selector},
    C{start} and C{end} say (see L{cmd.History}): at most C{limit}, none
    after the line C{upto} (the newest committed when asked), oldest first.
    """

    room: str
    selector: str
    start: cmd.HistoryRef | None
    end: cmd.HistoryRef | None
    limit: int
    upto: int


class IHistoryStore(Interface):
    """
    Where rooms' history is kept.  Writes go through one writer, which
    commits in batches; the reactor thread never waits for the disk, but at
    start-up (L{open}, before serving).
    """

    description = Attribute("Where the store is, for logs.")

    def open(recent: int) -> Loaded:
        """
        Open the store, create or migrate its schema, and read each room's
        last sequence number and last C{recent} lines.

        @raise StoreError: the store cannot be used.
        """

    def start(
        committed: Callable[[int], None], failed: Callable[[int, str], None]
    ) -> None:
        """
        Start writing.  After each commit the store calls, in the reactor
        thread, C{committed(n)}: the next C{n} events appended (in order)
        are stored; or C{failed(n, why)}: they could not be.
        """

    def append(event: StoredEvent) -> None:
        """Queue one event for the writer, without waiting."""

    def read(query: Query) -> Deferred[list[StoredEvent]]:
        """The stored lines C{query} selects, oldest first."""

    def close() -> Deferred[None]:
        """
        Commit what is queued (reported as usual), stop writing and close;
        fires when done.
        """


class RoomHistory(Protocol):
    """What the core asks of a room history (L{DurableFanout} is one)."""

    def last_seq(self, room: str) -> int:
        """The last sequence number room C{room} (a key) has used."""

    def replay(self, client: IChatClient, room: str, name: str) -> None:
        """Send C{client}, who has just joined, the room's recent lines."""

    def request(
        self,
        client: IChatClient,
        room: str,
        name: str,
        command: cmd.History,
        current: bool,
    ) -> None:
        """Answer C{command} (C{/history}, CHATHISTORY) for C{client}."""

    def call_in_order(self, call: Callable[..., None], *args: Any) -> None:
        """Call C{call} once what was published before is delivered."""


class Clock(Protocol):
    def seconds(self) -> float: ...


# An operation waiting its turn: how many storable events must be resolved
# (committed or failed) before it runs, and the call.
_Op = tuple[int, Callable[..., None], tuple[Any, ...]]


@implementer(IFanout)
class DurableFanout:
    """
    An L{IFanout} that delivers (through C{inner}) each storable event only
    once C{store} has committed it, and everything else in the order it was
    called; and the room history the core consults (L{RoomHistory}).

    Each storable event takes a ticket, the number of storable events
    published so far; the store reports commits and failures in the same
    order, so a count of resolved tickets says what may run: an operation
    waits for the tickets issued before it.

    @ivar cache_size: how many lines of each room are kept in memory: the
        replay, or fewer if rooms keep fewer (C{max_lines}).
    """

    log = Logger()

    def __init__(
        self,
        inner: IFanout,
        store: IHistoryStore,
        clock: Clock,
        replay: int = DEFAULT_REPLAY,
        count: int = DEFAULT_COUNT,
        limit: int = DEFAULT_LIMIT,
        max_age: float = 0.0,
        max_lines: int = 0,
    ) -> None:
        self.inner = inner
        self.store = store
        self.clock = clock
        self.replay_count = replay
        self.limit = limit
        self.default_count = min(count, limit)
        self.max_age = max_age
        self.cache_size = min(replay, max_lines) if max_lines else replay
        self._queue: deque[_Op] = deque()
        self._issued = 0
        self._resolved = 0
        # Failed tickets not yet reached, with why.
        self._failures: dict[int, str] = {}
        self._draining = False
        # Per room key: the last lines committed (memory), the last
        # sequence number used (any event), the last one committed.
        self._recent: dict[str, deque[StoredEvent]] = {}
        self._last_seq: dict[str, int] = {}
        self._stored_seq: dict[str, int] = {}

    # Start-up and the store's reports

    def load(self, loaded: Loaded) -> None:
        """Take what the store holds, before serving."""
        self._last_seq.update(loaded.last_seq)
        self._stored_seq.update(loaded.last_seq)
        for room, lines in loaded.recent.items():
            self._recent[room] = deque(lines, maxlen=self.cache_size)

    def committed(self, count: int) -> None:
        """The store committed the next C{count} storable events."""
        self._resolved += count
        self._drain()

    def failed(self, count: int, why: str) -> None:
        """The store could not commit the next C{count} storable events."""
        first = self._resolved + 1
        for ticket in range(first, first + count):
            self._failures[ticket] = why
        self._resolved += count
        self.log.error(
            "{count} lines could not be stored and were not delivered "
            "(their senders are told): {why}",
            count=count,
            why=why,
        )
        self._drain()

    @property
    def waiting(self) -> int:
        """Operations waiting for a commit."""
        return len(self._queue)

    # IFanout

    def subscribe(self, room: str, client: IChatClient, current: bool) -> None:
        self.call_in_order(self.inner.subscribe, room, client, current)

    def unsubscribe(self, room: str, client: IChatClient) -> None:
        self.call_in_order(self.inner.unsubscribe, room, client)

    def update(self, room: str, client: IChatClient, current: bool) -> None:
        self.call_in_order(self.inner.update, room, client, current)

    def publish(
        self, room: str, event: object, origin: IChatClient | None = None
    ) -> None:
        seq = getattr(event, "seq", None)
        if seq is not None:
            self._last_seq[room] = seq
        if type(event) in _STORED:
            self._issued += 1
            ticket = self._issued
            self._queue.append(
                (ticket, self._publish_stored, (ticket, room, event, origin))
            )
            # After queueing: a store may report the commit at once.
            self.store.append(event)  # type: ignore[arg-type]
            return
        self.call_in_order(self.inner.publish, room, event, origin)

    def publish_user_event(
        self, rooms: Iterable[str], event: object, also: IChatClient | None
    ) -> None:
        rooms = list(rooms)
        for name, seq in getattr(event, "rooms", ()):
            self._last_seq[name_key(name)] = seq
        self.call_in_order(self.inner.publish_user_event, rooms, event, also)

    def send(self, client: IChatClient, event: object) -> None:
        self.call_in_order(self.inner.send, client, event)

    def hold(self) -> None:
        self.inner.hold()

    def release(self) -> None:
        self.inner.release()

    # RoomHistory

    def last_seq(self, room: str) -> int:
        return self._last_seq.get(room, 0)

    def call_in_order(self, call: Callable[..., None], *args: Any) -> None:
        if self._queue:
            self._queue.append((self._issued, call, args))
        else:
            call(*args)

    def replay(self, client: IChatClient, room: str, name: str) -> None:
        self.call_in_order(self._replay, client, room, name)

    def request(
        self,
        client: IChatClient,
        room: str,
        name: str,
        command: cmd.History,
        current: bool,
    ) -> None:
        self.call_in_order(self._request, client, room, name, command, current)

    # Inside

    def _drain(self) -> None:
        """Run, in order, every operation whose tickets are resolved."""
        if self._draining:
            return
        self._draining = True
        queue = self._queue
        inner = self.inner
        inner.hold()
        try:
            while queue and queue[0][0] <= self._resolved:
                _, call, args = queue.popleft()
                try:
                    call(*args)
                except Exception:
                    self.log.failure("delivering in order: {call}", call=call)
        finally:
            self._draining = False
            inner.release()

    def _publish_stored(
        self, ticket: int, room: str, event: StoredEvent, origin: IChatClient | None
    ) -> None:
        if self._failures:
            why = self._failures.pop(ticket, None)
            if why is not None:
                if origin is not None:
                    self.inner.send(
                        origin,
                        events.Error(
                            ErrorCode.NOT_STORED, NOT_STORED_TEXT, (event.room,)
                        ),
                    )
                return
        recent = self._recent.get(room)
        if recent is None:
            recent = self._recent[room] = deque(maxlen=self.cache_size)
        recent.append(event)
        self._stored_seq[room] = event.seq
        self.inner.publish(room, event, origin)

    def _fresh(self, lines: Iterable[StoredEvent]) -> list[StoredEvent]:
        """C{lines} without those older than the maximum age."""
        if not self.max_age:
            return list(lines)
        oldest = self.clock.seconds() - self.max_age
        return [line for line in lines if line.time >= oldest]

    def _replay(self, client: IChatClient, room: str, name: str) -> None:
        recent = self._recent.get(room)
        if not recent or not self.replay_count:
            return
        lines = self._fresh(recent)[-self.replay_count :]
        if lines:
            self.inner.send(client, events.History(name, tuple(lines)))

    def _request(
        self,
        client: IChatClient,
        room: str,
        name: str,
        command: cmd.History,
        current: bool,
    ) -> None:
        count = min(command.count or self.default_count, self.limit)
        recent = self._recent.get(room, ())
        if (
            command.selector == cmd.LATEST
            and command.start is None
            and (count <= len(recent) or len(recent) < self.cache_size)
        ):
            # Memory holds them (or holds every line the room has).
            lines = self._fresh(recent)[-count:]
            self.inner.send(client, events.History(name, tuple(lines), True, current))
            return
        query = Query(
            room,
            command.selector,
            command.start,
            command.end,
            count,
            self._stored_seq.get(room, 0),
        )

        def found(lines: list[StoredEvent]) -> None:
            reply = events.History(name, tuple(self._fresh(lines)), True, current)
            self.send(client, reply)

        def failed(reason: Failure) -> None:
            self.log.failure("reading the history of {room}", reason, room=name)
            self.send(
                client,
                events.Error(
                    ErrorCode.HISTORY_UNAVAILABLE,
                    f"The history of #{name} cannot be read just now.",
                    (name,),
                ),
            )

        self.store.read(query).addCallbacks(found, failed)
