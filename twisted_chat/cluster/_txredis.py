"""
The only module that touches txredisapi, which has no type hints.

It gives the rest of the package two protocols with typed methods: a command
connection and a pub/sub connection, each telling its owner when it is made
and lost.  txredisapi's own pools and factories (which use the global
reactor and reconnect by themselves) are not used: L{twisted_chat.cluster.link}
connects with a L{twisted.application.internet.ClientService}.

Replies are normalised so that callers see the same values whichever parser
txredisapi picked (its own, or hiredis's when that is installed): bulk
strings and status replies as C{bytes}, integers as C{int}, nil as L{None},
arrays as lists, error replies as L{RedisReplyError}.

Importing txredisapi imports the global reactor (its module does), so this
module must be imported only after a reactor is installed: twistd and trial
do that before they import our code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import txredisapi  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

Reply: TypeAlias = "int | bytes | list[Reply] | None"


class RedisReplyError(Exception):
    """Redis answered a command with an error."""


class LinkLost(Exception):
    """The connection went away before Redis answered."""


def _normal(value: Any) -> Reply:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_normal(item) for item in value]
    if isinstance(value, txredisapi.ResponseError):
        raise RedisReplyError(str(value.args[0]) if value.args else "error")
    if isinstance(value, bytes | int | None):
        return value
    raise RedisReplyError(f"unexpected reply {value!r}")


def _translate(failure: Failure) -> Failure:
    if failure.check(txredisapi.ResponseError):
        assert failure.value is not None
        args = failure.value.args
        return Failure(RedisReplyError(str(args[0]) if args else "error"))
    if failure.check(txredisapi.ConnectionError):
        return Failure(LinkLost(str(failure.value)))
    return failure


class Hooks:
    """What a protocol tells its owner."""

    def made(self, protocol: CommandProtocol) -> None:
        """The connection is made (nothing has been said yet)."""

    def lost(self, protocol: CommandProtocol, reason: Failure) -> None:
        """The connection is gone."""

    def message(self, channel: bytes, data: bytes) -> None:
        """A pub/sub message (pub/sub connections only)."""


class CommandProtocol(txredisapi.RedisProtocol):  # type: ignore[misc]
    """A connection to Redis that runs commands."""

    def __init__(self, hooks: Hooks) -> None:
        # No password or database here: txredisapi's own AUTH and SELECT
        # call back into its factory; the link says them itself.
        super().__init__(charset=None, convertNumbers=False, replyTimeout=None)
        self.hooks = hooks
        # For the link's liveness check: commands sent and not yet answered,
        # and whether any byte has arrived since the link last looked.
        self.pending = 0
        self.heard = False

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        # Called for every chunk the transport reads, and again by
        # txredisapi's own parser each time it resumes a paused chunk: any of
        # them shows that Redis (and this end's reading) is alive.
        self.heard = True
        super().dataReceived(data, unpause)

    def _answered(self, result: object) -> object:
        self.pending -= 1
        return result

    def connectionMade(self) -> None:
        super().connectionMade()
        self.hooks.made(self)

    def connectionLost(self, reason: Failure) -> None:
        # The owner first, so that it knows the link is down before the
        # commands still waiting fail.
        self.hooks.lost(self, reason)
        super().connectionLost(reason)

    def command(self, *args: bytes | str | int | float) -> Deferred[Reply]:
        """Send one command; its reply, normalised."""
        self.pending += 1
        d: Deferred[Any] = maybeDeferred(self.execute_command, *args)
        return d.addBoth(self._answered).addCallbacks(_normal, _translate)

    def abort(self) -> None:
        """Drop the connection at once, whatever is still unsent."""
        if self.transport is not None:
            self.transport.abortConnection()


class SubscriberProtocol(CommandProtocol, txredisapi.SubscriberProtocol):  # type: ignore[misc]
    """
    A connection in pub/sub mode: SUBSCRIBE, UNSUBSCRIBE and PING only; the
    messages of its channels go to L{Hooks.message}.
    """

    def messageReceived(
        self, pattern: object, channel: object, message: object
    ) -> None:
        if isinstance(channel, str):
            channel = channel.encode("utf-8", "surrogateescape")
        if isinstance(message, str):
            message = message.encode("utf-8", "surrogateescape")
        if isinstance(channel, bytes) and isinstance(message, bytes):
            self.hooks.message(channel, message)

    @property
    def parsing(self) -> bool:
        """
        Whether part of what was received still waits to be parsed:
        txredisapi's own parser stops after each bulk string and goes on in
        the next reactor turn (hiredis's parses a whole chunk at once).
        """
        return bool(getattr(self, "paused", False))

    def subscribe_one(self, channel: bytes) -> Deferred[Reply]:
        """SUBSCRIBE one channel (one confirmation per command keeps
        txredisapi's replies in step)."""
        self.pending += 1
        d: Deferred[Any] = maybeDeferred(
            self.execute_command, "SUBSCRIBE", channel, apply_timeout=False
        )
        return d.addBoth(self._answered).addCallbacks(_normal, _translate)

    def unsubscribe_one(self, channel: bytes) -> Deferred[Reply]:
        """UNSUBSCRIBE one channel."""
        return self.command("UNSUBSCRIBE", channel)


ProtocolMaker: TypeAlias = Callable[[Hooks], CommandProtocol]
