"""
The IRC front end's connection: L{IRCProtocol} is a L{Connection} (framing,
limits, output queue and backpressure, as for every front end) that feeds
each line to an L{IRCSession} and carries out what the session asks for.
L{IRCFactory} builds them.

Lines: the connection accepts lines of up to
L{twisted_chat.server.irc_wire.MAX_CLIENT_LINE_BYTES} with their CR LF
(4094 bytes of tags, the C{@} and a space, and 512 of message); within
that, the session refuses a message over 512 bytes or tags over 4094 with
417 ERR_INPUTTOOLONG, and so does the connection for a longer line, which it
discards without buffering it.  Flood control counts every line, PING and
PONG included.

Keepalive: a connection that sends nothing for C{ping_interval} seconds
(C{--ping-interval}, 120 by default) is sent C{PING}; if nothing at all
arrives in the next C{ping_interval} seconds, it is dropped, and its rooms
see it quit with C{Ping timeout: N seconds} (N the seconds of silence).  Any
line answers a PING, not only a PONG.  A connection that has not registered
(NICK and USER, and CAP END if it started CAP) within
C{registration_timeout} seconds is dropped too.  The idle timeout
(C{--idle-timeout}) counts what the user does: lines other than PING and
PONG, which clients send on their own.
"""

from __future__ import annotations

import time

from twisted.logger import Logger

from twisted_chat.core.events import ErrorCode
from twisted_chat.core.interfaces import View
from twisted_chat.server.connection import Connection, ConnectionFactory
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.irc import (
    REGISTER,
    SUPPORTED_CAPABILITIES,
    Close,
    Context,
    Execute,
    IRCRenderer,
    IRCServerInfo,
    IRCSession,
    Output,
    Register,
    Send,
)
from twisted_chat.server.irc_wire import CRLF, MAX_CLIENT_LINE_BYTES, format_message
from twisted_chat.shared.commands import Command

# The displayed host of IRC users (nick!user@host): like line-protocol users,
# IRC users do not see each other's addresses.
IRC_HOST = "irc.twisted-chat"

# The name the server gives itself: the source of numerics and server
# notices.  It has a dot, so that clients take it for a server, not a nick.
SERVER_NAME = "server.twisted-chat"

# Seconds of silence before the server sends PING, and then before it drops a
# connection that still sent nothing.
DEFAULT_PING_INTERVAL = 120.0

# Seconds a connection may take to register (NICK, USER, CAP END).
REGISTRATION_TIMEOUT = 60.0

# Commands that clients send on their own: not the user being active.
_KEEPALIVE = frozenset({"PING", "PONG", ""})


class IRCProtocol(Connection):
    """
    One IRC client's connection (see the module docstring).  It is a user
    of the chat once registered; before that it is attached to the core,
    but in no list and no room.
    """

    factory: IRCFactory
    session: IRCSession
    log = Logger()

    # The IRC request whose replies the core is giving (see Context).
    _context: Context | None = None
    # When the server sent its PING, while it waits for an answer.
    _pinged_at: float | None = None
    # When the user last did something (not PING or PONG).
    _last_active = 0.0
    _opened_at = 0.0

    def line_limit(self) -> int:
        return MAX_CLIENT_LINE_BYTES - len(CRLF)

    def connection_opened(self) -> None:
        factory = self.factory
        self.session = IRCSession(factory.renderer, factory.capabilities)
        self.user = self.delivery.chat.attach(self, IRC_HOST)
        self._opened_at = self._last_active = self._last_line
        self.log.info("{peer} connected (IRC)", peer=self.peer)

    # Input

    def line_received(self, line: bytes) -> None:
        session = self.session
        before = (session.server_time, session.echo_message)
        outputs = session.line_received(line)
        command = session.last_command
        if command not in _KEEPALIVE:
            self._last_active = self._last_line
        self._carry_out(outputs)
        if command == "CAP":
            self._view_changed(before)

    def line_too_long(self) -> None:
        self._carry_out(self.session.line_too_long())

    def _carry_out(self, outputs: list[Output]) -> None:
        """Do what the session asked, in order, while the connection is open."""
        for output in outputs:
            if self._out is None:
                return
            match output:
                case Send(data):
                    self.send(data)
                case Execute(command, context):
                    self._execute(command, context)
                case Register():
                    self._register(output)
                case Close(reason):
                    self.disconnect(reason)

    def _execute(self, command: Command, context: Context) -> None:
        user = self.user
        if user is None:
            return
        previous, self._context = self._context, context
        try:
            self.delivery.chat.execute(user, command)
        finally:
            self._context = previous
        if user.registered and user.nick != self.session.nick:
            # The core renamed the user (NICK): numerics now go to the new
            # nickname.  The NICK message itself came with the room traffic.
            self.session.nick_changed(user.nick)

    def _register(self, request: Register) -> None:
        user = self.user
        if user is None:
            return
        previous, self._context = self._context, REGISTER
        try:
            self.delivery.chat.register(
                user,
                request.nick,
                request.user,
                join_default=False,
                realname=request.realname,
            )
        finally:
            self._context = previous
        if user.registered:
            self.registered()
            self.log.info(
                "{peer} registered as {nick} (IRC)", peer=self.peer, nick=user.nick
            )

    def _view_changed(self, before: tuple[bool, bool]) -> None:
        """After CAP: if the view changed, tell the fan-out, room by room."""
        session = self.session
        user = self.user
        if user is None or before == (session.server_time, session.echo_message):
            return
        fanout = self.delivery.chat.fanout
        for key, room in list(user.rooms.items()):
            fanout.update(key, self, room is user.current)

    # Keepalive, registration and idle timeouts

    def first_idle_check(self) -> float:
        factory = self.factory
        delays = (
            factory.registration_timeout,
            factory.ping_interval,
            self.delivery.limits.idle_timeout,
        )
        return min((delay for delay in delays if delay > 0), default=0.0)

    def check_idle(self, now: float) -> float:
        factory = self.factory
        delays: list[float] = []
        if self.state == "registering" and factory.registration_timeout > 0:
            waited = now - self._opened_at
            if waited >= factory.registration_timeout:
                self.kick(
                    "registration timed out",
                    "Send NICK and USER to register.",
                    ErrorCode.IDLE,
                )
                return 0.0
            delays.append(factory.registration_timeout - waited)
        idle_timeout = self.delivery.limits.idle_timeout
        if idle_timeout > 0:
            idle = now - self._last_active
            if idle >= idle_timeout:
                self.kick(
                    "idle timeout",
                    f"You sent nothing for {idle_timeout:g} seconds.",
                    ErrorCode.IDLE,
                )
                return 0.0
            delays.append(idle_timeout - idle)
        interval = factory.ping_interval
        if interval > 0:
            silent = now - self._last_line
            pinged = self._pinged_at
            if pinged is not None and self._last_line < pinged:
                waited = now - pinged
                if waited >= interval:
                    self.kick(
                        f"Ping timeout: {silent:.0f} seconds",
                        "The connection seems to be dead.",
                        ErrorCode.IDLE,
                    )
                    return 0.0
                delays.append(interval - waited)
            elif silent >= interval:
                self._pinged_at = now
                server = factory.renderer.info.server_name
                self.send(format_message("PING", trailing=server))
                delays.append(interval)
            else:
                delays.append(interval - silent)
        return min(delays, default=0.0)

    # Output: IChatClient

    def view(self, current: bool) -> View:
        session = self.session
        return (self.factory.renderer, session.server_time, session.echo_message)

    def reply(self, event: object) -> None:
        self._reply_in(event, self._context)

    def bound(self) -> _Answering:
        """
        This connection as it is answering now: a reply given to it later
        (by a cluster's directory) is rendered for the same request.
        """
        return _Answering(self, self._context)

    def _reply_in(self, event: object, context: Context | None) -> None:
        user = self.user
        if user is not None and user.registered and user.nick != self.session.nick:
            # Renamed by the core later than the NICK (a cluster's claim).
            self.session.nick_changed(user.nick)
        self._carry_out(
            self.session.reply_received(event, context)  # type: ignore[arg-type]
        )
        if (
            context == REGISTER
            and self._context != REGISTER
            and user is not None
            and user.registered
            and self.state == "registering"
        ):
            # Registered later than the NICK and USER (a cluster's claim).
            self.registered()
            self.log.info(
                "{peer} registered as {nick} (IRC)", peer=self.peer, nick=user.nick
            )


class _Answering:
    """An L{IRCProtocol} answering one request (see L{IRCProtocol.bound})."""

    __slots__ = ("connection", "context")

    def __init__(self, connection: IRCProtocol, context: Context | None) -> None:
        self.connection = connection
        self.context = context

    @property
    def peer(self) -> str:
        return self.connection.peer

    def view(self, current: bool) -> View:
        return self.connection.view(current)

    def send(self, data: bytes) -> None:
        self.connection.send(data)

    def reply(self, event: object) -> None:
        self.connection._reply_in(event, self.context)

    def disconnect(self, reason: str) -> None:
        self.connection.disconnect(reason)


class IRCFactory(ConnectionFactory):
    """
    Builds an L{IRCProtocol} for each connection, on the server's shared
    L{Delivery}.

    @ivar renderer: renders every IRC connection's events and replies.
    @ivar capabilities: the capabilities advertised in C{CAP LS}.
    @ivar ping_interval: seconds of silence before a PING, and then before
        the connection is dropped; C{0} turns the keepalive off.
    @ivar registration_timeout: seconds a connection may take to register;
        C{0} for no limit.

    @param history_limit: the most lines one CHATHISTORY returns, when the
        server keeps history (C{--history-limit}); C{0} when it keeps none.
        Ignored when C{info} is given (it says so itself).
    """

    protocol = IRCProtocol

    def __init__(
        self,
        delivery: Delivery,
        info: IRCServerInfo | None = None,
        capabilities: frozenset[str] = SUPPORTED_CAPABILITIES,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        registration_timeout: float = REGISTRATION_TIMEOUT,
        history_limit: int = 0,
    ) -> None:
        super().__init__(delivery)
        if info is None:
            created = time.strftime(
                "%a %b %d %Y at %H:%M:%S UTC", time.gmtime(delivery.clock.seconds())
            )
            info = IRCServerInfo(
                server_name=SERVER_NAME, created=created, history_limit=history_limit
            )
        self.renderer = IRCRenderer(info)
        self.capabilities = capabilities
        self.ping_interval = ping_interval
        self.registration_timeout = registration_timeout

    def refusal(self, reason: str) -> bytes:
        return self.renderer.fatal(f"Closing link: {reason}")
