"""
A connection to Redis that stays up: L{Link} for commands, L{Subscriber} for
pub/sub, and L{Health}, which says whether a node is I{connected} (every
link up) or I{degraded}.

A link connects (with backoff between failed attempts), says
AUTH, SELECT and CLIENT SETNAME, learns the server's C{run_id}, and is then
I{up}.  While up it looks at the connection every C{ping_interval} seconds
and sends a PING if none is in flight, so that an idle link has a command
waiting too.  Any byte received counts as a sign of life, not only the
PING's answer: on a busy link the PONG queues behind thousands of pipelined
replies, and that is not a dead Redis.  The connection is declared dead only
when commands are waiting and nothing at all has arrived for C{ping_timeout}
seconds: it is aborted, every command still waiting fails with L{LinkLost},
and the link reconnects.  So a silent Redis (a dead host, a cut network, a
stopped process) is noticed within C{ping_interval + ping_timeout} seconds,
not after TCP's minutes.  The silence is counted in the link's own checks,
each at most C{ping_interval}: a reactor that was too busy to run them (and
so to read) does not count its own lateness against Redis.

The life of a link is an Automat machine: I{connecting} (never up yet),
I{up}, I{down} (was up, reconnecting), I{stopped}.  Observers hear each
move between up and down.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

from attrs import define, field
from automat import TypeMachineBuilder
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import Deferred, FirstError, fail, gatherResults, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IReactorCore,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_chat.cluster._txredis import (
    CommandProtocol,
    Hooks,
    LinkLost,
    RedisReplyError,
    Reply,
    SubscriberProtocol,
)
from twisted_chat.cluster.address import RedisAddress

__all__ = [
    "Health",
    "Link",
    "LinkDown",
    "LinkLost",
    "LinkObserver",
    "RedisReplyError",
    "Reply",
    "Subscriber",
]

# How often a link is checked (and PINGed), and how long it may receive
# nothing at all, with commands waiting, before it is declared dead.
PING_INTERVAL = 1.0
PING_TIMEOUT = 3.0

# Reconnection: the first retry after 0.1 s, doubling to at most 5 s, plus up
# to 10% of jitter so that many nodes do not all come back at once.
RETRY_INITIAL = 0.1
RETRY_MAX = 5.0


class LinkDown(Exception):
    """A command was given while the link to Redis is not up."""


def retry_policy(
    initial: float = RETRY_INITIAL, most: float = RETRY_MAX
) -> Callable[[int], float]:
    """Exponential backoff from C{initial} to C{most} seconds, with jitter."""
    return backoffPolicy(
        initialDelay=initial,
        maxDelay=most,
        factor=2.0,
        jitter=lambda: random.random() * initial,
    )


class LinkObserver(Protocol):
    """What hears a link go up and down."""

    def link_up(self, link: Link) -> None:
        """The link is up (again)."""

    def link_down(self, link: Link, why: str) -> None:
        """The link, which was up, is down; it is reconnecting."""


class _Inputs(Protocol):
    def ready(self, protocol: CommandProtocol) -> None:
        """A connection said hello and may be used."""

    def lost(self, protocol: CommandProtocol, why: str) -> None:
        """A connection went away."""

    def stop(self) -> None:
        """Stop for good."""


@define(eq=False)
class _Core:
    """What the machine works on."""

    link: Link


def _build() -> Callable[[_Core], _Inputs]:
    builder = TypeMachineBuilder(_Inputs, _Core)
    connecting = builder.state("connecting")
    up = builder.state("up")
    down = builder.state("down")
    stopped = builder.state("stopped")

    @connecting.upon(_Inputs.ready).to(up)
    @down.upon(_Inputs.ready).to(up)
    def came_up(inputs: _Inputs, core: _Core, protocol: CommandProtocol) -> None:
        core.link._came_up(protocol)

    @up.upon(_Inputs.lost).to(down)
    def went_down(
        inputs: _Inputs, core: _Core, protocol: CommandProtocol, why: str
    ) -> None:
        core.link._went_down(protocol, why)

    for state in (connecting, down, stopped):
        state.upon(_Inputs.lost).loop().returns(None)

    @stopped.upon(_Inputs.ready).loop()
    def too_late(inputs: _Inputs, core: _Core, protocol: CommandProtocol) -> None:
        protocol.abort()

    @up.upon(_Inputs.stop).to(stopped)
    def stop_up(inputs: _Inputs, core: _Core) -> None:
        core.link._stopped(was_up=True)

    @connecting.upon(_Inputs.stop).to(stopped)
    @down.upon(_Inputs.stop).to(stopped)
    def stop_down(inputs: _Inputs, core: _Core) -> None:
        core.link._stopped(was_up=False)

    stopped.upon(_Inputs.stop).loop().returns(None)
    return builder.build()


_Machine = _build()


@define(eq=False)
class Link(Hooks):
    """
    A command connection to one Redis server, kept up.

    @ivar name: what this link is, for CLIENT SETNAME and logs.
    @ivar run_id: the server's C{run_id} (from INFO) while up: it changes
        whenever Redis restarts.
    """

    address: RedisAddress
    reactor: IReactorCore
    clock: IReactorTime
    name: str = "chat"
    ping_interval: float = PING_INTERVAL
    ping_timeout: float = PING_TIMEOUT
    retry: Callable[[int], float] = field(factory=retry_policy)
    # Lua scripts to SCRIPT LOAD on every connection, before it is up.
    preload: tuple[str, ...] = ()
    state: str = field(default="connecting", init=False)
    run_id: str = field(default="", init=False)
    _protocol: CommandProtocol | None = field(default=None, init=False)
    _candidate: CommandProtocol | None = field(default=None, init=False)
    _observers: list[LinkObserver] = field(factory=list, init=False)
    _waiting: list[Deferred[None]] = field(factory=list, init=False)
    _ping_call: IDelayedCall | None = field(default=None, init=False)
    _pinging: bool = field(default=False, init=False)
    _last_check: float = field(default=0.0, init=False)
    _quiet: float = field(default=0.0, init=False)
    _endpoint: IStreamClientEndpoint | None = field(default=None, init=False)
    _connecting: Deferred[IProtocol] | None = field(default=None, init=False)
    _retry_call: IDelayedCall | None = field(default=None, init=False)
    _failures: int = field(default=0, init=False)
    _closing: list[Deferred[None]] = field(factory=list, init=False)
    _machine: _Inputs = field(init=False)

    log = Logger()

    def __attrs_post_init__(self) -> None:
        self._machine = _Machine(_Core(self))

    # The owner's side

    def observe(self, observer: LinkObserver) -> None:
        """Tell C{observer} each time this link goes up or down."""
        self._observers.append(observer)

    @property
    def is_up(self) -> bool:
        """Whether commands may be given now."""
        return self.state == "up"

    def start(self) -> None:
        """Start connecting (and reconnecting)."""
        self._endpoint = self.address.endpoint(self.reactor)
        self._attempt()

    def stop(self) -> Deferred[None]:
        """Close the connection and stop reconnecting; fires once closed."""
        self._machine.stop()
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        if self._connecting is not None:
            self._connecting.cancel()
        protocol = self._protocol or self._candidate
        self._protocol = None
        if protocol is None or protocol.transport is None:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closing.append(closed)
        protocol.transport.loseConnection()
        return closed

    def when_up(self) -> Deferred[None]:
        """Fires when the link is next up (at once if it is)."""
        if self.is_up:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def command(self, *args: bytes | str | int | float) -> Deferred[Reply]:
        """
        Send one command.  Commands given one after another without waiting
        are pipelined: written together, answered in order.

        @return: the reply; fails with L{LinkDown} if the link is not up, with
            L{LinkLost} if it goes down before the reply, with
            L{RedisReplyError} if Redis answers with an error.
        """
        protocol = self._protocol
        if protocol is None:
            return fail(LinkDown(f"not connected to Redis at {self.address}"))
        return protocol.command(*args)

    def pipeline(
        self, commands: list[tuple[bytes | str | int | float, ...]]
    ) -> Deferred[list[Reply]]:
        """
        Send several commands at once; their replies, in order.  Fails with
        the first error (the other commands still ran).
        """
        return gatherResults(
            [self.command(*command) for command in commands], consumeErrors=True
        ).addErrback(_first_error)

    # What protocols say (Hooks)

    def made(self, protocol: CommandProtocol) -> None:
        self._candidate = protocol

    def lost(self, protocol: CommandProtocol, reason: Failure) -> None:
        if protocol is self._candidate:
            self._candidate = None
        self._machine.lost(protocol, reason.getErrorMessage())
        closing, self._closing = self._closing, []
        for d in closing:
            d.callback(None)
        if self.state != "stopped":
            self._schedule_retry()

    # Connecting, and again after a failure, with backoff.  (Not a
    # ClientService: when its prepareConnection rejects a connection, it
    # leaves that connection open, and closing it ourselves makes its state
    # machine raise NoTransition for a disconnect it does not expect.)

    def _make_protocol(self) -> CommandProtocol:
        return CommandProtocol(self)

    def _attempt(self) -> None:
        self._retry_call = None
        if self.state == "stopped":
            return
        assert self._endpoint is not None, "start() first"
        factory = Factory.forProtocol(lambda: self._make_protocol())
        connecting = self._connecting = self._endpoint.connect(factory)

        def connected(protocol: object) -> None:
            self._connecting = None
            assert isinstance(protocol, CommandProtocol)
            self._say_hello(protocol)

        def failed(failure: Failure) -> None:
            self._connecting = None
            if self.state == "stopped":
                return
            self.log.info(
                "{name}: cannot connect to Redis at {address}: {why}",
                name=self.name,
                address=str(self.address),
                why=failure.getErrorMessage(),
            )
            self._schedule_retry()

        connecting.addCallbacks(connected, failed)

    def _schedule_retry(self) -> None:
        if self._retry_call is not None or self._connecting is not None:
            return
        delay = self.retry(self._failures)
        self._failures += 1
        self._retry_call = self.clock.callLater(delay, self._attempt)

    def _say_hello(self, protocol: CommandProtocol) -> None:
        if self.state == "stopped":
            protocol.abort()
            return

        def ready(_: object) -> None:
            if protocol is self._candidate:
                self._candidate = None
                self._failures = 0
                self._machine.ready(protocol)

        def refused(failure: Failure) -> None:
            if failure.check(LinkLost):
                return
            self.log.error(
                "{name}: Redis at {address} did not accept us: {why}",
                name=self.name,
                address=str(self.address),
                why=failure.getErrorMessage(),
            )
            protocol.abort()

        self._hello(protocol).addCallbacks(ready, refused)

    def _hello(self, protocol: CommandProtocol) -> Deferred[None]:
        """Say who we are, pick the database, and learn the server's run_id."""
        address = self.address
        steps = self._auth(protocol)
        if address.db:
            steps.append(protocol.command("SELECT", address.db))
        steps.append(protocol.command("CLIENT", "SETNAME", self.name))
        steps += [protocol.command("SCRIPT", "LOAD", source) for source in self.preload]
        info = protocol.command("INFO", "server")
        steps.append(info)

        def learn(replies: list[Reply]) -> Deferred[None]:
            text = replies[-1]
            if isinstance(text, bytes):
                for line in text.decode("ascii", "replace").splitlines():
                    if line.startswith("run_id:"):
                        self.run_id = line[len("run_id:") :].strip()
            return self._prepared(protocol)

        return gatherResults(steps, consumeErrors=True).addCallbacks(
            learn, _first_error
        )

    def _auth(self, protocol: CommandProtocol) -> list[Deferred[Reply]]:
        address = self.address
        if address.password is None:
            return []
        if address.username is not None:
            return [protocol.command("AUTH", address.username, address.password)]
        return [protocol.command("AUTH", address.password)]

    def _prepared(self, protocol: CommandProtocol) -> Deferred[None]:
        """More to do on a new connection before it is up (subclasses)."""
        return succeed(None)

    def _came_up(self, protocol: CommandProtocol) -> None:
        self._protocol = protocol
        self.state = "up"
        self.log.info(
            "{name}: connected to Redis at {address}",
            name=self.name,
            address=str(self.address),
        )
        self._schedule_ping()
        for observer in list(self._observers):
            observer.link_up(self)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _went_down(self, protocol: CommandProtocol, why: str) -> None:
        if protocol is not self._protocol:
            # An older connection: not the one that is up.
            return
        self._protocol = None
        self.state = "down"
        self._cancel_ping()
        self.log.warn(
            "{name}: lost the connection to Redis at {address} ({why}); reconnecting",
            name=self.name,
            address=str(self.address),
            why=why,
        )
        for observer in list(self._observers):
            observer.link_down(self, why)

    def _stopped(self, was_up: bool) -> None:
        self.state = "stopped"
        self._cancel_ping()
        self._protocol = None
        if was_up:
            for observer in list(self._observers):
                observer.link_down(self, "stopped")

    # The liveness watchdog

    def _schedule_ping(self) -> None:
        self._pinging = False
        self._quiet = 0.0
        self._last_check = self.clock.seconds()
        self._ping_call = self.clock.callLater(self.ping_interval, self._check)

    def _cancel_ping(self) -> None:
        if self._ping_call is not None and self._ping_call.active():
            self._ping_call.cancel()
        self._ping_call = None

    def _check(self) -> None:
        protocol = self._protocol
        self._ping_call = None
        if protocol is None:
            return
        now = self.clock.seconds()
        # A late check (a busy reactor, which read nothing meanwhile either)
        # counts as one interval at most.
        elapsed = min(max(now - self._last_check, 0.0), self.ping_interval)
        self._last_check = now
        if protocol.heard or not protocol.pending:
            protocol.heard = False
            self._quiet = 0.0
        else:
            self._quiet += elapsed
            if self._quiet >= self.ping_timeout:
                self._dead(protocol)
                return
        if not self._pinging:
            self._pinging = True

            def answered(_: object) -> None:
                if protocol is self._protocol:
                    self._pinging = False

            protocol.command("PING").addBoth(answered)
        self._ping_call = self.clock.callLater(self.ping_interval, self._check)

    def _dead(self, protocol: CommandProtocol) -> None:
        self.log.warn(
            "{name}: Redis at {address} sent nothing for {timeout:g} s while "
            "commands were waiting: the connection is declared dead",
            name=self.name,
            address=str(self.address),
            timeout=self.ping_timeout,
        )
        protocol.abort()


def _first_error(failure: Failure) -> Failure:
    """The first error of a L{gatherResults}, rather than the wrapper."""
    if isinstance(failure.value, FirstError):
        inner = failure.value.subFailure
        assert isinstance(inner, Failure)
        return inner
    return failure


MessageHandler = Callable[[bytes, bytes], None]


@define(eq=False)
class Subscriber(Link):
    """
    A pub/sub connection: the channels this node wants, subscribed again
    after every reconnection (before the link is up again), and their
    messages given to C{handler}.

    A channel is subscribed once Redis has confirmed it: every message
    published after that is received, unless the connection drops, which the
    owner hears of as L{LinkObserver.link_down}.
    """

    handler: MessageHandler = field(default=lambda channel, data: None)
    channels: dict[bytes, None] = field(factory=dict, init=False)
    # Confirmed on the current connection.
    _confirmed: set[bytes] = field(factory=set, init=False)
    # The SUBSCRIBE in flight for each channel, and who waits for it.
    _sends: dict[bytes, object] = field(factory=dict, init=False)
    _waiters: dict[bytes, list[Deferred[None]]] = field(factory=dict, init=False)

    def subscribe(self, channel: bytes) -> Deferred[None]:
        """
        Receive C{channel}'s messages.  Fires once subscribed: now, or after
        the link is next up (or once C{channel} is unsubscribed meanwhile).
        """
        self.channels[channel] = None
        if channel in self._confirmed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.setdefault(channel, []).append(d)
        protocol = self._protocol
        if protocol is not None and channel not in self._sends:
            # Lost with the connection: sent again on the next one (the
            # waiters above fire then), and the owner heard of it as
            # link_down.
            self._send_subscribe(protocol, channel).addErrback(lambda _: None)
        return d

    def unsubscribe(self, channel: bytes) -> None:
        """Stop receiving C{channel}'s messages."""
        if channel not in self.channels:
            return
        del self.channels[channel]
        self._confirmed.discard(channel)
        self._sends.pop(channel, None)
        for d in self._waiters.pop(channel, []):
            d.callback(None)
        protocol = self._protocol
        if protocol is not None:
            assert isinstance(protocol, SubscriberProtocol)
            protocol.unsubscribe_one(channel).addErrback(lambda _: None)

    @property
    def parsing(self) -> bool:
        """Whether messages already received are still being parsed."""
        protocol = self._protocol
        return isinstance(protocol, SubscriberProtocol) and protocol.parsing

    def is_subscribed(self, channel: bytes) -> bool:
        """Whether Redis has confirmed C{channel} on the current connection."""
        return channel in self._confirmed

    def _make_protocol(self) -> CommandProtocol:
        return SubscriberProtocol(self)

    def message(self, channel: bytes, data: bytes) -> None:
        if channel not in self.channels:
            return
        try:
            self.handler(channel, data)
        except Exception:
            self.log.failure(
                "{name}: handling a message of {channel!r}",
                name=self.name,
                channel=channel,
            )

    def _hello(self, protocol: CommandProtocol) -> Deferred[None]:
        # No SELECT, no INFO: pub/sub ignores databases.
        steps = self._auth(protocol)
        steps.append(protocol.command("CLIENT", "SETNAME", self.name))
        return gatherResults(steps, consumeErrors=True).addCallbacks(
            lambda _: self._prepared(protocol), _first_error
        )

    def _prepared(self, protocol: CommandProtocol) -> Deferred[None]:
        """Subscribe again to every channel before the link is up."""
        self._confirmed.clear()
        self._sends.clear()
        if not self.channels:
            return succeed(None)
        return gatherResults(
            [self._send_subscribe(protocol, channel) for channel in self.channels],
            consumeErrors=True,
        ).addCallbacks(lambda _: None, _first_error)

    def _send_subscribe(
        self, protocol: CommandProtocol, channel: bytes
    ) -> Deferred[None]:
        assert isinstance(protocol, SubscriberProtocol)
        token = self._sends[channel] = object()

        def confirmed(_: object) -> None:
            if self._sends.get(channel) is not token:
                return
            del self._sends[channel]
            self._confirmed.add(channel)
            for d in self._waiters.pop(channel, []):
                d.callback(None)

        return protocol.subscribe_one(channel).addCallback(confirmed)

    def _came_up(self, protocol: CommandProtocol) -> None:
        # Channels asked for while the connection was being prepared.
        for channel in self.channels:
            if channel not in self._confirmed and channel not in self._sends:
                self._send_subscribe(protocol, channel).addErrback(lambda _: None)
        super()._came_up(protocol)

    def _went_down(self, protocol: CommandProtocol, why: str) -> None:
        if protocol is self._protocol:
            self._confirmed.clear()
            self._sends.clear()
        super()._went_down(protocol, why)

    def _stopped(self, was_up: bool) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiting in waiters.values():
            for d in waiting:
                d.errback(LinkDown("stopped"))
        super()._stopped(was_up)


class HealthObserver(Protocol):
    """What hears the node become connected or degraded."""

    def cluster_connected(self) -> None:
        """Every link is up: the chat works normally."""

    def cluster_degraded(self, why: str) -> None:
        """A link is down: new lines must be refused until it is back."""


@define(eq=False)
class Health:
    """
    Whether a node can speak for the cluster: I{connected} while every one
    of its links is up, I{degraded} otherwise (from the start until the
    first connection, too).
    """

    links: list[Link]
    connected: bool = field(default=False, init=False)
    why: str = field(default="not connected to Redis yet", init=False)
    _observers: list[HealthObserver] = field(factory=list, init=False)

    log = Logger()

    def __attrs_post_init__(self) -> None:
        for link in self.links:
            link.observe(self)

    def observe(self, observer: HealthObserver) -> None:
        """Tell C{observer} of every change."""
        self._observers.append(observer)

    def link_up(self, link: Link) -> None:
        if not self.connected and all(link.is_up for link in self.links):
            self.connected = True
            self.why = ""
            self.log.info("the cluster is connected")
            for observer in list(self._observers):
                observer.cluster_connected()

    def link_down(self, link: Link, why: str) -> None:
        if self.connected:
            self.connected = False
            self.why = f"the connection to Redis was lost ({why})"
            self.log.warn("the cluster is degraded: {why}", why=self.why)
            for observer in list(self._observers):
                observer.cluster_degraded(self.why)
