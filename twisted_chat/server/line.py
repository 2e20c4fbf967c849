"""
The line protocol: bytes on a stream connection in, calls on the core out.

L{ChatProtocol} frames lines, decodes each complete line once and hands it to
the L{ChatServer}; it implements L{IChatClient} by queueing bytes for its
transport.  It also enforces the per-connection limits of L{Limits}: line
length, flood control, the send queue of a client that does not read, and the
idle timeout.  L{ChatFactory} enforces the connection limits.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer, User
from twisted_chat.core.events import ErrorCode, NoticeCode
from twisted_chat.core.interfaces import IChatClient, View
from twisted_chat.server.backpressure import Backpressure
from twisted_chat.server.fastwrite import can_write_now, unsent_bytes, write_now
from twisted_chat.server.flood import TokenBucket
from twisted_chat.server.limits import ConnectionCounter, Limits
from twisted_chat.server.line_render import CURRENT, OTHER, RENDERER, render_reply
from twisted_chat.shared import lines
from twisted_chat.shared.rules import name_key
from twisted_chat.shared.sockets import tune_socket

_CLOSED = Failure(ConnectionDone())

# Stands in the queue of pending lines for the start of a line that was too
# long; it cannot be a real line, which never contains b"\n".
_TOO_LONG = b"\n"

# Why reading from a connection is paused (bits of ChatProtocol._read_pauses).
_FLOOD = 1
_BACKPRESSURE = 2
_BUDGET = 4

# While some reader of a user's room is behind, at most this many bytes of
# the user's input are handled per reactor turn; the rest waits for the next
# turn (and reading pauses meanwhile).  Otherwise the first turn after the
# room is throttled could bring a whole socket read (64 KB) from every
# sender into every member's queue.
INPUT_BUDGET = 8 * 1024

# How long a connection we closed may take to drain its output before it is
# aborted: a peer that stopped reading must not keep it open for ever.
CLOSE_TIMEOUT = 10.0


def describe_address(address: IAddress) -> str:
    """A short printable form of a peer address, for logs."""
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, UNIXAddress):
        raw = address.name
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return f"unix:{name}" if name else "unix"
    return str(address)


def peer_host(address: IAddress) -> str | None:
    """The IP address that connection limits count, or L{None}."""
    if isinstance(address, IPv4Address | IPv6Address):
        return address.host
    return None


@implementer(IChatClient, IPushProducer)
class ChatProtocol(LineReceiver):
    """
    One user's connection.

    Input: lines end with C{\\n}; a C{\\r} before it is dropped, so C{nc},
    C{telnet} and the client all work.  A line longer than the limit is
    refused with an error and discarded up to the next newline, without
    buffering more than the limit.  Past the flood allowance, lines wait (and
    reading stops) until the token bucket allows them.

    Output: L{send} queues bytes; the factory writes each connection's queue
    with one C{write} at the end of the event that produced it.  The protocol
    is a streaming producer on its own transport, so the transport says when
    the peer falls behind; output then waits in the queue, and the rules of
    L{twisted_chat.server.backpressure} decide whether the senders wait for
    it or it is disconnected.
    """

    delimiter = b"\n"
    log = Logger()

    factory: ChatFactory
    transport: ITransport
    user: User | None = None
    peer = "?"
    host: str | None = None

    # Per-connection state.  The defaults live on the class, so an idle
    # connection's instance holds only what differs: with tens of thousands
    # of connections, every attribute counts.
    _buffer = b""  # the start of a line not yet complete
    _discarding = False  # dropping the rest of an overlong line
    _pending: list[bytes] | None = None  # lines held back (flood, budget)
    _out: list[bytes] | None = None  # queued output; None once closing
    _out_bytes = 0
    _queued = False  # in the factory's list of connections to flush
    _congested = False  # the transport asked us to stop producing
    _read_pauses = 0  # why reading is paused: _FLOOD | _BACKPRESSURE | _BUDGET
    _bucket: TokenBucket | None = None  # flood control, None when off
    _delayed = 0  # lines delayed in the current flood episode
    _last_line = 0.0
    _resume_call: IDelayedCall | None = None  # handles _pending later
    _idle_call: IDelayedCall | None = None
    _close_call: IDelayedCall | None = None
    _closed_waiters: list[Deferred[None]] | None = None
    _direct = False  # a plain TCP socket: written at the end of the turn
    _turn_queued = False  # in the factory's list for the end of the turn

    def connectionMade(self) -> None:
        factory = self.factory
        limits = factory.limits
        self.MAX_LENGTH = limits.max_line_length
        self._out = []
        if limits.flood_rate > 0:
            self._bucket = TokenBucket(
                limits.flood_rate, limits.flood_burst, factory.clock.seconds()
            )
        self._last_line = factory.clock.seconds()

        address = self.transport.getPeer()
        self.peer = describe_address(address)
        self.host = peer_host(address)
        factory.connection_made(self)
        tune_socket(self.transport, limits.socket_send_buffer)
        if can_write_now(self.transport):
            self._direct = True
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        if limits.idle_timeout > 0:
            self._idle_call = factory.clock.callLater(
                limits.idle_timeout, self._check_idle
            )
        with factory.batch():
            self.user = factory.chat.connect(self, LINE_HOST)
            # Logged before the batch ends and the greeting is written.
            self.log.info(
                "{peer} connected as {nick}", peer=self.peer, nick=self.user.nick
            )

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        factory = self.factory
        factory.connection_lost(self)
        self._out = None
        self._pending = None
        for call in (
            self._resume_call,
            self._idle_call,
            self._close_call,
        ):
            if call is not None and call.active():
                call.cancel()
        waiters, self._closed_waiters = self._closed_waiters or [], None
        for waiter in waiters:
            waiter.callback(None)
        user, self.user = self.user, None
        if user is None:
            return
        with factory.batch():
            factory.chat.disconnect(user)
        self.log.info(
            "{peer} ({nick}) disconnected: {why}",
            peer=self.peer,
            nick=user.nick,
            why=reason.getErrorMessage(),
        )

    def when_closed(self) -> Deferred[None]:
        """A Deferred that fires once this connection is closed."""
        d: Deferred[None] = Deferred()
        if self in self.factory.connections:
            if self._closed_waiters is None:
                self._closed_waiters = []
            self._closed_waiters.append(d)
        else:
            d.callback(None)
        return d

    # Input

    def dataReceived(self, data: bytes) -> None:
        # LineReceiver splits one line at a time and drops the connection on
        # an overlong line; a chat server splits a chunk once and keeps the
        # connection of a user who pasted too much.
        if self.user is None:
            return
        limit = self.MAX_LENGTH + 1  # room for a \r before the \n
        with self.factory.batch():
            if self._discarding:
                end = data.find(b"\n")
                if end < 0:
                    return
                data = data[end + 1 :]
                self._discarding = False
            if self._buffer:
                data = self._buffer + data
            chunks = data.split(b"\n")
            self._buffer = chunks.pop()
            if len(self._buffer) > limit:
                self._buffer = b""
                self._discarding = True
                chunks.append(_TOO_LONG)
            if self._pending is not None:
                # Lines are held back already: these wait behind them.
                self._pending.extend(chunks)
            else:
                self._process(chunks)
        # After the batch, when what these lines produced has been queued:
        # in a room whose readers are mostly behind, read no more until they
        # catch up, rather than queueing output without end.
        if self._out is not None:
            self.factory.pressure.after_input(self)

    def _process(self, pending: list[bytes]) -> None:
        """
        Handle lines, as far as flood control and the input budget allow;
        keep the rest in L{_pending}.
        """
        if self._read_pauses & _BACKPRESSURE:
            self._pending = pending
            return
        budget = INPUT_BUDGET if self.factory.pressure.warm(self) else 0
        used = 0
        bucket = self._bucket
        now = self.factory.clock.seconds()
        if pending:
            self._last_line = now
        if self._delayed and bucket is not None and bucket.full(now):
            # Quiet long enough for the whole burst to come back: a new
            # episode, the delayed lines so far are forgiven.
            self._delayed = 0
        for index, line in enumerate(pending):
            if self.user is None or self._out is None:
                return
            if budget and used >= budget:
                self._pending = pending[index:]
                self._pause_reading(_BUDGET, True)
                self._resume_call = self.factory.clock.callLater(
                    0, self._resume_pending
                )
                return
            used += len(line)
            if bucket is not None:
                wait = bucket.take(now)
                if wait:
                    self._pending = pending[index:]
                    self._throttle(wait)
                    return
            if line is _TOO_LONG:
                self._line_too_long()
            else:
                # lineReceived checks the length, after dropping any \r.
                self.lineReceived(line)
        self._pause_reading(_FLOOD | _BUDGET, False)

    def _throttle(self, wait: float) -> None:
        if self._resume_call is not None and self._resume_call.active():
            return
        limits = self.factory.limits
        assert self.user is not None
        if not self._delayed:
            self.factory.chat.tell(
                self.user,
                events.Notice(
                    NoticeCode.FLOOD_DELAY,
                    f"You are sending lines faster than {limits.flood_rate:g} a "
                    "second; the rest are delayed.",
                    (f"{limits.flood_rate:g}",),
                ),
            )
            self.log.info(
                "flood control delays {nick} ({peer})",
                nick=self.user.nick,
                peer=self.peer,
            )
        self._delayed += 1
        waiting = len(self._pending) if self._pending else 0
        if self._delayed + waiting - 1 > limits.flood_kick:
            self._kick("excess flood", "You kept sending too fast.", ErrorCode.FLOOD)
            return
        self._pause_reading(_FLOOD, True)
        self._resume_call = self.factory.clock.callLater(wait, self._resume_pending)

    def _resume_pending(self) -> None:
        """Handle the lines held back, as far as the limits allow now."""
        self._resume_call = None
        if self._read_pauses & _BACKPRESSURE:
            # Held: releasing the hold comes back here.
            return
        pending, self._pending = self._pending, None
        with self.factory.batch():
            self._process(pending or [])
        if self._out is not None:
            self.factory.pressure.after_input(self)

    def hold_input(self, hold: bool) -> None:
        """Backpressure: stop or start reading this connection's input."""
        self._pause_reading(_BACKPRESSURE, hold)
        if not hold and self._pending is not None and self._resume_call is None:
            self._resume_call = self.factory.clock.callLater(0, self._resume_pending)

    def room_keys(self) -> list[str]:
        """The keys of the rooms this user is in."""
        user = self.user
        if user is None:
            return []
        return list(user.rooms)

    def unsent(self) -> int | None:
        """Bytes the transport holds that it has not written yet, if known."""
        return unsent_bytes(self.transport)

    def _pause_reading(self, why: int, pause: bool) -> None:
        """Pause or resume reading from the peer for one reason."""
        before = self._read_pauses
        after = before | why if pause else before & ~why
        self._read_pauses = after
        if self._out is None or bool(before) == bool(after):
            return
        if after:
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        else:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.MAX_LENGTH:
            self._line_too_long()
            return
        assert self.user is not None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.factory.chat.refuse(
                self.user,
                "Your line is not valid UTF-8 and was not sent.",
                ErrorCode.NOT_UTF8,
            )
            return
        self.factory.chat.line_received(self.user, text)

    def _line_too_long(self) -> None:
        if self.user is not None:
            self.factory.chat.refuse(
                self.user,
                f"Your line is longer than {self.MAX_LENGTH} bytes and was not sent.",
                ErrorCode.LINE_TOO_LONG,
            )

    def _check_idle(self) -> None:
        self._idle_call = None
        timeout = self.factory.limits.idle_timeout
        idle = self.factory.clock.seconds() - self._last_line
        if idle < timeout:
            self._idle_call = self.factory.clock.callLater(
                timeout - idle, self._check_idle
            )
            return
        with self.factory.batch():
            self._kick(
                "idle timeout",
                f"You sent nothing for {timeout:g} seconds.",
                ErrorCode.IDLE,
            )

    def _kick(self, reason: str, explanation: str, code: str) -> None:
        """Disconnect this user for breaking a limit, telling them why."""
        user = self.user
        if user is None:
            return
        self.log.info(
            "disconnecting {nick} ({peer}): {reason}",
            nick=user.nick,
            peer=self.peer,
            reason=reason,
        )
        self.factory.chat.drop(
            user,
            reason,
            events.Error(code, f"Disconnected: {reason}. {explanation}"),
        )

    # Output: IChatClient

    def view(self, current: bool) -> View:
        return _VIEW_CURRENT if current else _VIEW_OTHER

    def reply(self, event: object) -> None:
        user = self.user
        if isinstance(event, events.SHARED_EVENTS):
            room = getattr(event, "room", None)
            current = room is None or (
                user is not None
                and user.current is not None
                and user.current.key == name_key(room)
            )
            self.send(RENDERER.render(event, CURRENT if current else OTHER))
            return
        self.send(render_reply(event, user.nick if user else ""))  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        out = self._out
        if out is None:
            return
        out.append(data)
        self._out_bytes += len(data)
        if not self._queued:
            self._queued = True
            factory = self.factory
            factory.dirty.append(self)
            if not factory.depth:
                factory.flush()

    def disconnect(self, reason: str) -> None:
        if self._out is None:
            return
        self.log.info(
            "closing the connection of {peer}: {reason}", peer=self.peer, reason=reason
        )
        self._uncongest()
        self._write_queue()
        self._out = None
        # Under TLS, a registered producer postpones the close.
        self.transport.unregisterProducer()  # type: ignore[attr-defined]
        self.transport.loseConnection()
        self._close_call = self.factory.clock.callLater(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        self._close_call = None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def _write_queue(self) -> None:
        """Write everything queued, as one write."""
        self._queued = False
        out = self._out
        if out:
            self._out_bytes = 0
            transport = self.transport
            if self._direct:
                write_now(transport, out)  # type: ignore[arg-type]
            else:
                transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def flush(self) -> None:
        """
        Called by the factory at the end of an event: write the queue, unless
        the peer is not reading, in which case check the queue's size.

        A plain TCP connection is written once at the end of the reactor
        turn instead, so that every event of the turn (several senders'
        lines, a storm of joins) costs it one C{send}.  Other transports
        buffer their writes until the next turn themselves.
        """
        if not self._congested:
            if self._direct:
                self._queued = False
                if not self._turn_queued:
                    self._turn_queued = True
                    self.factory.write_at_end_of_turn(self)
            else:
                self._write_queue()
            return
        self._queued = False
        if self.user is None:
            return
        why = self.factory.pressure.may_queue(
            self, self._out_bytes, self.factory.limits.max_send_queue
        )
        if why is not None:
            user, self.user = self.user, None
            self.log.info(
                "disconnecting {nick} ({peer}): send queue exceeded "
                "({size} bytes waiting): {why}",
                nick=user.nick,
                peer=self.peer,
                size=self._out_bytes,
                why=why,
            )
            self._uncongest()
            self._out = None
            self.factory.chat.disconnect(user, "send queue exceeded")
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def end_of_turn(self) -> None:
        """The reactor turn is over: write what this turn queued."""
        self._turn_queued = False
        if self._out is not None and not self._congested:
            self._write_queue()

    # IPushProducer: the transport tells us when the peer stops reading.

    def pauseProducing(self) -> None:
        if not self._congested and self._out is not None:
            self._congested = True
            self.factory.pressure.fell_behind(self)

    def resumeProducing(self) -> None:
        self._uncongest()
        if self._out is not None:
            self._write_queue()

    def stopProducing(self) -> None:
        self._uncongest()

    def _uncongest(self) -> None:
        """No longer behind (or gone): tell the backpressure rules."""
        if self._congested:
            self._congested = False
        self.factory.pressure.caught_up(self)


# The displayed host of line-protocol users: addresses are not shown to other
# users (IRC front ends show it in nick!user@host).
LINE_HOST = "line.twisted-chat"

_VIEW_CURRENT = (RENDERER, CURRENT, True)
_VIEW_OTHER = (RENDERER, OTHER, True)


class RefusedProtocol(Protocol):
    """Tells a connection over the limits why, and closes it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(lines.encode(lines.error(self.reason)))
        self.transport.loseConnection()


class _Batch:
    """Context manager: writes all queued output when the event ends."""

    __slots__ = ("factory", "fanout")

    def __init__(self, factory: ChatFactory) -> None:
        self.factory = factory
        self.fanout = factory.chat.fanout

    def __enter__(self) -> None:
        self.factory.depth += 1
        self.fanout.hold()

    def __exit__(self, *exc_info: object) -> None:
        factory = self.factory
        # Room traffic first (into each member's queue), then the queues.
        self.fanout.release()
        factory.depth -= 1
        if not factory.depth and factory.dirty:
            factory.flush()


class ChatFactory(ServerFactory):
    """
    Builds a L{ChatProtocol} for each connection, all sharing one
    L{ChatServer}; refuses connections over the limits; and writes the
    output that each event queued, one write per connection.
    """

    protocol = ChatProtocol  # type: ignore[assignment]
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
        self.connections: set[ChatProtocol] = set()
        self.pressure = Backpressure(clock, self._room_size)
        self.counter = ConnectionCounter(
            self.limits.max_clients, self.limits.max_per_ip
        )
        self.dirty: list[ChatProtocol] = []
        self.depth = 0
        # Plain TCP connections to write at the end of the reactor turn.
        self._end_of_turn: list[ChatProtocol] = []
        self._turn_call: IDelayedCall | None = None
        self._batch = _Batch(self)

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        assert addr is not None
        reason = self.counter.refusal(peer_host(addr))
        if reason is not None:
            self.log.info(
                "refused {peer}: {reason}", peer=describe_address(addr), reason=reason
            )
            refused = RefusedProtocol(reason)
            refused.factory = self
            return refused
        return cast(Protocol | None, super().buildProtocol(addr))

    def connection_made(self, protocol: ChatProtocol) -> None:
        self.connections.add(protocol)
        self.counter.add(protocol.host)

    def _room_size(self, key: str) -> int:
        room = self.chat.rooms.get(key)
        return len(room.members) if room is not None else 0

    def connection_lost(self, protocol: ChatProtocol) -> None:
        protocol._uncongest()
        self.pressure.gone(protocol)
        if protocol in self.connections:
            self.connections.remove(protocol)
            self.counter.remove(protocol.host)
            if protocol in self.dirty:
                self.dirty.remove(protocol)

    def write_at_end_of_turn(self, protocol: ChatProtocol) -> None:
        """
        Write C{protocol}'s queue once the reactor has handled this round of
        events: a C{callLater(0)} runs after the events of the current poll
        and before the next poll.
        """
        self._end_of_turn.append(protocol)
        if self._turn_call is None:
            self._turn_call = self.clock.callLater(0, self._turn_ended)

    def _turn_ended(self) -> None:
        self._turn_call = None
        protocols, self._end_of_turn = self._end_of_turn, []
        for protocol in protocols:
            protocol.end_of_turn()

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
            for protocol in dirty:
                protocol.flush()
