"""
What every front end's connection shares: one set of protections and one
delivery path.

L{Connection} is the base of each wire protocol's connection (the line
protocol's L{twisted_chat.server.line.ChatProtocol}, IRC's
L{twisted_chat.server.irc_protocol.IRCProtocol}).  It frames input into
lines and enforces the per-connection limits of L{Limits} on them; it queues
output and writes it through the server's L{Delivery}; and it goes through
an explicit lifecycle.  A front end only says how to greet a connection,
what a line means, and how its replies look.

Input: a line ends with C{\\n}; one C{\\r} before it is dropped.  A line
longer than the front end's limit is refused (L{Connection.line_too_long})
and discarded up to the next newline, without buffering more than the limit.
Past the flood allowance, lines wait (and reading stops) until the token
bucket allows them; too many delayed in a row and the connection is dropped.
A connection silent for too long is checked by L{Connection.check_idle},
which a front end may extend (IRC sends PING first).

Output: L{Connection.send} queues bytes; the L{Delivery} writes each
connection's queue with one C{write} at the end of the event that produced
it (or of the reactor turn, for plain TCP).  The connection is a streaming
producer on its own transport, so the transport says when the peer falls
behind; output then waits in the queue, and the rules of
L{twisted_chat.server.backpressure} decide whether the senders wait for it or
it is disconnected.

Lifecycle (an Automat machine): I{registering} (connected, not yet a user
of the chat: IRC before its welcome), I{open}, I{closing} (we closed it;
output is no longer accepted and input is ignored), I{closed}.  The
transitions set the few fields that the hot path reads (C{_out} is L{None}
once closing), so delivering a line never goes through the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from typing import Protocol as TypingProtocol

from automat import TypeMachine, TypeMachineBuilder
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
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer, User
from twisted_chat.core.events import ErrorCode, NoticeCode
from twisted_chat.core.interfaces import IChatClient, View
from twisted_chat.server.backpressure import Backpressure
from twisted_chat.server.delivery import Delivery, _Batch
from twisted_chat.server.fastwrite import can_write_now, unsent_bytes, write_now
from twisted_chat.server.flood import TokenBucket
from twisted_chat.server.limits import Limits
from twisted_chat.shared.sockets import tune_socket

_CLOSED = Failure(ConnectionDone())

# Stands in the queue of pending lines for the start of a line that was too
# long; it cannot be a real line, which never contains b"\n".
_TOO_LONG = b"\n"

# Why reading from a connection is paused (bits of Connection._read_pauses).
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


# The lifecycle


class _Lifecycle(TypingProtocol):
    """The inputs of a connection's life."""

    def registered(self) -> None:
        """The connection is now a user of the chat."""

    def close(self, reason: str) -> None:
        """We close the connection once its queued output is written."""

    def abort(self, why: str) -> None:
        """We drop the connection at once (a reader too far behind)."""

    def lost(self, reason: Failure) -> None:
        """The transport is closed, by either side."""


# A state of the machine (automat does not export the type's name).
_State = Any


def _build_lifecycle() -> tuple[TypeMachine[_Lifecycle, Connection], dict[str, _State]]:
    """The lifecycle machine, and its states by name (see L{Connection.state})."""
    builder = TypeMachineBuilder(_Lifecycle, Connection)
    registering = builder.state("registering")
    opened = builder.state("open")
    closing = builder.state("closing")
    closed = builder.state("closed")

    @registering.upon(_Lifecycle.registered).to(opened)
    def open_(inputs: _Lifecycle, c: Connection) -> None:
        c.state = "open"

    for state in (opened, closing, closed):
        state.upon(_Lifecycle.registered).loop().returns(None)

    @registering.upon(_Lifecycle.close).to(closing)
    @opened.upon(_Lifecycle.close).to(closing)
    def close(inputs: _Lifecycle, c: Connection, reason: str) -> None:
        c._start_closing(reason)

    @registering.upon(_Lifecycle.abort).to(closing)
    @opened.upon(_Lifecycle.abort).to(closing)
    def abort(inputs: _Lifecycle, c: Connection, why: str) -> None:
        c._abort_now(why)

    for state in (closing, closed):
        state.upon(_Lifecycle.close).loop().returns(None)
        state.upon(_Lifecycle.abort).loop().returns(None)

    @registering.upon(_Lifecycle.lost).to(closed)
    @opened.upon(_Lifecycle.lost).to(closed)
    @closing.upon(_Lifecycle.lost).to(closed)
    def lost(inputs: _Lifecycle, c: Connection, reason: Failure) -> None:
        c._finish(reason)

    closed.upon(_Lifecycle.lost).loop().returns(None)
    states = {"registering": registering, "open": opened}
    states.update(closing=closing, closed=closed)
    return builder.build(), states


@implementer(IChatClient, IPushProducer)
class Connection(Protocol):
    """
    One connection of any front end (see the module docstring).

    Subclasses implement L{connection_opened}, L{line_received},
    L{line_too_long}, L{view} and L{reply}, and may override
    L{line_limit}, L{first_idle_check} and L{check_idle}.
    """

    log = Logger()

    factory: ConnectionFactory
    delivery: Delivery
    transport: ITransport
    user: User | None = None
    peer = "?"
    host: str | None = None
    # The lifecycle's state, for logs and tests (the machine decides).
    state = "registering"
    # The longest line accepted, in bytes, without its line ending.
    max_line_length = 0

    # Per-connection state.  The defaults live on the class, so an idle
    # connection's instance holds only what differs: with tens of thousands
    # of connections, every attribute counts.
    _buffer = b""  # the start of a line not yet complete
    _discarding = False  # dropping the rest of an overlong line
    _pending: list[bytes] | None = None  # lines held back (flood, budget)
    _out: list[bytes] | None = None  # queued output; None once closing
    _out_bytes = 0
    _queued = False  # in the delivery's list of connections to flush
    _congested = False  # the transport asked us to stop producing
    _read_pauses = 0  # why reading is paused: _FLOOD | _BACKPRESSURE | _BUDGET
    _bucket: TokenBucket | None = None  # flood control, None when off
    _delayed = 0  # lines delayed in the current flood episode
    _last_line = 0.0  # when the last complete line arrived
    _resume_call: IDelayedCall | None = None  # handles _pending later
    _idle_call: IDelayedCall | None = None
    _close_call: IDelayedCall | None = None
    _closed_waiters: list[Deferred[None]] | None = None
    _direct = False  # a plain TCP socket: written at the end of the turn
    _turn_queued = False  # in the delivery's list for the end of the turn
    # The lifecycle machine, while it handles an input (see _lifecycle_input).
    _lifecycle: _Lifecycle | None = None

    # What each front end says

    def connection_opened(self) -> None:
        """
        The connection is made and counted: attach it to the chat (and, if
        the protocol needs no registration, register it and call
        L{registered}).  Called inside a batch.
        """
        raise NotImplementedError

    def line_received(self, line: bytes) -> None:
        """
        One complete line, without its line ending, within the length limit.
        Called inside a batch.
        """
        raise NotImplementedError

    def line_too_long(self) -> None:
        """A line longer than L{max_line_length} was discarded: say so."""
        raise NotImplementedError

    def line_limit(self) -> int:
        """The longest line this front end accepts, without its ending."""
        return self.delivery.limits.max_line_length

    def first_idle_check(self) -> float:
        """
        Seconds from the connection until the first L{check_idle}; C{0} for
        none.  By default, the idle timeout.
        """
        return self.delivery.limits.idle_timeout

    def check_idle(self, now: float) -> float:
        """
        Check whether the connection has been silent too long, and act; by
        default, the idle timeout: disconnect it once no line came for that
        long.  Called inside a batch.

        @return: seconds until the next check; C{0} for none.
        """
        timeout = self.delivery.limits.idle_timeout
        idle = now - self._last_line
        if idle < timeout:
            return timeout - idle
        self.kick(
            "idle timeout", f"You sent nothing for {timeout:g} seconds.", ErrorCode.IDLE
        )
        return 0.0

    # Lifecycle

    def connectionMade(self) -> None:
        delivery = self.delivery = self.factory.delivery
        limits = delivery.limits
        clock = delivery.clock
        self.max_line_length = self.line_limit()
        self._out = []
        if limits.flood_rate > 0:
            self._bucket = TokenBucket(
                limits.flood_rate, limits.flood_burst, clock.seconds()
            )
        self._last_line = clock.seconds()

        address = self.transport.getPeer()
        self.peer = describe_address(address)
        self.host = peer_host(address)
        delivery.connection_made(self)
        tune_socket(self.transport, limits.socket_send_buffer)
        if can_write_now(self.transport):
            self._direct = True
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        first = self.first_idle_check()
        if first > 0:
            self._idle_call = clock.callLater(first, self._check_idle)
        with delivery.batch():
            self.connection_opened()

    def registered(self) -> None:
        """The connection is now a user of the chat (see the lifecycle)."""
        self._lifecycle_input(lambda machine: machine.registered())

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        self._lifecycle_input(lambda machine: machine.lost(reason))

    def _lifecycle_input(self, give: Callable[[_Lifecycle], None]) -> None:
        """
        Give the lifecycle machine an input.

        The machine is made for the input, in the state that L{state} names,
        and dropped after it, rather than kept by every connection: an idle
        connection then holds one string for its state, not a machine (about
        200 bytes each, with tens of thousands of connections).  An input
        given while the machine handles another (the transport reporting the
        loss inside C{loseConnection}) goes to the same machine, which
        handles it once the first is done.
        """
        machine = self._lifecycle
        if machine is not None:
            give(machine)
            return
        machine = self._lifecycle = _LIFECYCLE(self, _STATES[self.state])
        try:
            give(machine)
        finally:
            self._lifecycle = None

    def _finish(self, reason: Failure) -> None:
        """The transport is closed: forget the connection everywhere."""
        self.state = "closed"
        delivery = self.delivery
        self._uncongest()
        delivery.connection_lost(self)
        self._out = None
        self._pending = None
        for call in (self._resume_call, self._idle_call, self._close_call):
            if call is not None and call.active():
                call.cancel()
        waiters, self._closed_waiters = self._closed_waiters or [], None
        for waiter in waiters:
            waiter.callback(None)
        user, self.user = self.user, None
        if user is None:
            return
        with delivery.batch():
            delivery.chat.disconnect(user)
        self.log.info(
            "{peer} ({nick}) disconnected: {why}",
            peer=self.peer,
            nick=user.nick,
            why=reason.getErrorMessage(),
        )

    def when_closed(self) -> Deferred[None]:
        """A Deferred that fires once this connection is closed."""
        d: Deferred[None] = Deferred()
        if self in self.delivery.connections:
            if self._closed_waiters is None:
                self._closed_waiters = []
            self._closed_waiters.append(d)
        else:
            d.callback(None)
        return d

    def server_stopping(self, reason: str) -> None:
        """
        The server is stopping: unless the connection is closing already (the
        core closed every user's), say so and close it.
        """
        if self._out is None:
            return
        self.reply(
            events.Notice(
                NoticeCode.SHUTDOWN, f"Server shutting down: {reason}", (reason,)
            )
        )
        self.disconnect("server shutdown")

    # Input

    def dataReceived(self, data: bytes) -> None:
        # Split a chunk once, and keep the connection of a user who pasted
        # too much (LineReceiver splits one line at a time and drops the
        # connection on an overlong line).
        if self.user is None:
            return
        limit = self.max_line_length + 1  # room for a \r before the \n
        with self.delivery.batch():
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
            self.delivery.pressure.after_input(self)

    def _process(self, pending: list[bytes]) -> None:
        """
        Handle lines, as far as flood control and the input budget allow;
        keep the rest in L{_pending}.
        """
        if self._read_pauses & _BACKPRESSURE:
            self._pending = pending
            return
        delivery = self.delivery
        budget = INPUT_BUDGET if delivery.pressure.warm(self) else 0
        used = 0
        bucket = self._bucket
        now = delivery.clock.seconds()
        if pending:
            self._last_line = now
        if self._delayed and bucket is not None and bucket.full(now):
            # Quiet long enough for the whole burst to come back: a new
            # episode, the delayed lines so far are forgiven.
            self._delayed = 0
        limit = self.max_line_length
        for index, line in enumerate(pending):
            if self.user is None or self._out is None:
                return
            if budget and used >= budget:
                self._pending = pending[index:]
                self._pause_reading(_BUDGET, True)
                self._resume_call = delivery.clock.callLater(0, self._resume_pending)
                return
            used += len(line)
            if bucket is not None:
                wait = bucket.take(now)
                if wait:
                    self._pending = pending[index:]
                    self._throttle(wait)
                    return
            if line is _TOO_LONG:
                self.line_too_long()
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                self.line_too_long()
            else:
                self.line_received(line)
        self._pause_reading(_FLOOD | _BUDGET, False)

    def _throttle(self, wait: float) -> None:
        if self._resume_call is not None and self._resume_call.active():
            return
        delivery = self.delivery
        limits = delivery.limits
        assert self.user is not None
        if not self._delayed:
            delivery.chat.tell(
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
            self.kick("excess flood", "You kept sending too fast.", ErrorCode.FLOOD)
            return
        self._pause_reading(_FLOOD, True)
        self._resume_call = delivery.clock.callLater(wait, self._resume_pending)

    def _resume_pending(self) -> None:
        """Handle the lines held back, as far as the limits allow now."""
        self._resume_call = None
        if self._read_pauses & _BACKPRESSURE:
            # Held: releasing the hold comes back here.
            return
        pending, self._pending = self._pending, None
        with self.delivery.batch():
            self._process(pending or [])
        if self._out is not None:
            self.delivery.pressure.after_input(self)

    def hold_input(self, hold: bool) -> None:
        """Backpressure: stop or start reading this connection's input."""
        self._pause_reading(_BACKPRESSURE, hold)
        if not hold and self._pending is not None and self._resume_call is None:
            self._resume_call = self.delivery.clock.callLater(0, self._resume_pending)

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

    def _check_idle(self) -> None:
        self._idle_call = None
        if self._out is None:
            return
        delivery = self.delivery
        with delivery.batch():
            delay = self.check_idle(delivery.clock.seconds())
        if delay > 0 and self._out is not None:
            self._idle_call = delivery.clock.callLater(delay, self._check_idle)

    def kick(self, reason: str, explanation: str, code: str) -> None:
        """
        Disconnect this connection for breaking a limit: tell the user why
        (an L{events.Error} with C{code}, whose C{args} hold C{reason}), and
        their rooms that they quit for C{reason}.
        """
        user = self.user
        if user is None:
            return
        self.log.info(
            "disconnecting {nick} ({peer}): {reason}",
            nick=user.nick,
            peer=self.peer,
            reason=reason,
        )
        self.delivery.chat.drop(
            user,
            reason,
            events.Error(code, f"Disconnected: {reason}. {explanation}", (reason,)),
        )

    # Output: IChatClient

    def view(self, current: bool) -> View:
        raise NotImplementedError

    def reply(self, event: object) -> None:
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        out = self._out
        if out is None:
            return
        out.append(data)
        self._out_bytes += len(data)
        if not self._queued:
            self._queued = True
            delivery = self.delivery
            delivery.dirty.append(self)
            if not delivery.depth:
                delivery.flush()

    def disconnect(self, reason: str) -> None:
        self._lifecycle_input(lambda machine: machine.close(reason))

    def _start_closing(self, reason: str) -> None:
        """Write what is queued, then close; abort if that takes too long."""
        self.state = "closing"
        self.log.info(
            "closing the connection of {peer}: {reason}", peer=self.peer, reason=reason
        )
        self._uncongest()
        self._write_queue()
        self._out = None
        # Under TLS, a registered producer postpones the close.
        self.transport.unregisterProducer()  # type: ignore[attr-defined]
        self.transport.loseConnection()
        self._close_call = self.delivery.clock.callLater(
            CLOSE_TIMEOUT, self._close_timed_out
        )

    def _close_timed_out(self) -> None:
        self._close_call = None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def _abort_now(self, why: str) -> None:
        """Drop a reader too far behind at once, telling its rooms."""
        self.state = "closing"
        user, self.user = self.user, None
        self.log.info(
            "disconnecting {nick} ({peer}): send queue exceeded "
            "({size} bytes waiting): {why}",
            nick=user.nick if user is not None else "?",
            peer=self.peer,
            size=self._out_bytes,
            why=why,
        )
        self._uncongest()
        self._out = None
        if user is not None:
            self.delivery.chat.disconnect(user, "send queue exceeded")
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
        Called by the delivery at the end of an event: write the queue,
        unless the peer is not reading, in which case check the queue's size.

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
                    self.delivery.write_at_end_of_turn(self)
            else:
                self._write_queue()
            return
        self._queued = False
        if self.user is None:
            return
        delivery = self.delivery
        why = delivery.pressure.may_queue(
            self, self._out_bytes, delivery.limits.max_send_queue
        )
        if why is not None:
            self._lifecycle_input(lambda machine: machine.abort(why))

    def end_of_turn(self) -> None:
        """The reactor turn is over: write what this turn queued."""
        self._turn_queued = False
        if self._out is not None and not self._congested:
            self._write_queue()

    # IPushProducer: the transport tells us when the peer stops reading.

    def pauseProducing(self) -> None:
        if not self._congested and self._out is not None:
            self._congested = True
            self.delivery.pressure.fell_behind(self)

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
        self.delivery.pressure.caught_up(self)


_LIFECYCLE, _STATES = _build_lifecycle()


class RefusedProtocol(Protocol):
    """Tells a connection over the limits why, in its protocol, and closes it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)
        self.transport.loseConnection()


class ConnectionFactory(ServerFactory):
    """
    Builds one front end's connections, all sharing one L{Delivery}, and
    refuses connections over the limits (counted across front ends).
    """

    protocol: type[Connection]  # type: ignore[assignment]
    log = Logger()

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    def refusal(self, reason: str) -> bytes:
        """What a refused connection is told, in this front end's protocol."""
        raise NotImplementedError

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        assert addr is not None
        reason = self.delivery.refusal(peer_host(addr))
        if reason is not None:
            self.log.info(
                "refused {peer}: {reason}", peer=describe_address(addr), reason=reason
            )
            refused = RefusedProtocol(self.refusal(reason))
            refused.factory = self
            return refused
        return cast(Protocol | None, super().buildProtocol(addr))

    # What the delivery holds, as the factory's own (for tests and tools).

    @property
    def chat(self) -> ChatServer:
        return self.delivery.chat

    @property
    def limits(self) -> Limits:
        return self.delivery.limits

    @property
    def clock(self) -> IReactorTime:
        return self.delivery.clock

    @property
    def connections(self) -> set[Connection]:
        """Every open connection of the server, of every front end."""
        return self.delivery.connections

    @property
    def pressure(self) -> Backpressure:
        return self.delivery.pressure

    def batch(self) -> _Batch:
        """See L{Delivery.batch}."""
        return self.delivery.batch()

    def write_at_end_of_turn(self, connection: Connection) -> None:
        """See L{Delivery.write_at_end_of_turn}."""
        self.delivery.write_at_end_of_turn(connection)
