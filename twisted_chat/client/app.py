"""
The command-line client: C{python -m twisted_chat.client}.

On a terminal it is a full-screen program (L{FullScreen}: scrollback, status
line, an input line with history).  Otherwise, or with C{--plain}, lines
typed on standard input go to the server and lines from the server go to
standard output, made safe for a terminal (L{TerminalProtocol}).  Either is
a user interface in front of the same L{ChatClient}, which keeps one
connection with L{ClientService}: when a connection that was up drops, it
says so, reconnects with backoff and restores its nickname and rooms; a
server that cannot be reached at start is a one-line error instead.

C{/quit}, or the end of input (Ctrl-D, or the end of a pipe), sends C{/quit},
prints whatever the server still sends and exits with status 0 once the
server closes the connection::

    printf 'hello\\n' | python -m twisted_chat.client --nick bot --room dev
"""

from __future__ import annotations

import io
import os
import random
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.application.internet import ClientService, backoffPolicy
from twisted.conch.insults.insults import ServerProtocol as InsultsServerProtocol
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectError, ConnectionDone, DNSLookupError
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.stdio import StandardIO
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    eventAsText,
    globalLogBeginner,
)
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.client.fullscreen import FullScreen
from twisted_chat.client.localterminal import LocalTerminal, is_terminal
from twisted_chat.client.options import Options, client_endpoint
from twisted_chat.client.protocols import (
    ServerFactory,
    ServerProtocol,
    TerminalProtocol,
)
from twisted_chat.client.server_lines import history_time
from twisted_chat.client.session import ClientSession
from twisted_chat.client.ui import Connection, Status, UserInterface
from twisted_chat.shared.commands import Quit, parse_line

PROGRAM = "twisted-chat"

# How long to wait for the server's greeting on a new connection (a TLS
# server reached without --tls, or something that is not a chat server, may
# never say anything).
GREETING_TIMEOUT = 15.0
# After /quit, how long the server may stay silent before the client closes
# the connection itself.  Each line from the server restarts the wait: a
# server that paces a burst of piped lines (flood control) is still working
# through them, and its echoes show it.
QUIT_GRACE = 5.0

LOST = "--- connection lost; reconnecting..."
RECONNECTED = "--- reconnected"


def default_retry_policy() -> Callable[[int], float]:
    """
    Reconnection delays: 0.75 s, then growing by half each time up to 30 s,
    each plus up to half a second of jitter so that the users of a restarted
    server do not all come back at once.
    """
    return backoffPolicy(
        initialDelay=0.5,
        maxDelay=30.0,
        factor=1.5,
        jitter=lambda: random.random() / 2,
    )


# Connection failures


def describe_failure(reason: Failure) -> str:
    """A short reason for a failed connection, for one line of output."""
    error = reason.value
    if isinstance(error, (ConnectError, DNSLookupError)) and error.args:
        first = error.args[0]
        if isinstance(first, str) and first:
            return first
    if isinstance(error, ConnectionDone):
        return "the server closed the connection"
    if isinstance(error, SSL.Error) and error.args:
        details = error.args[0]
        if isinstance(details, list) and details and isinstance(details[-1], tuple):
            return f"TLS error: {details[-1][-1]}"
    if isinstance(error, VerificationError):
        # The certificate is valid but names another host.
        return "TLS error: the server certificate does not match the host name"
    return reason.getErrorMessage()


# The client


def _is_quit(line: str) -> bool:
    return isinstance(parse_line(line), Quit)


class ChatClient:
    """
    Joins a user interface to the server connection kept by a
    L{ClientService}.

    @ivar done: fires with the exit status once the client has finished: 0
        after C{/quit} or the end of input, 1 when the server could not be
        reached at start.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        endpoint: IStreamClientEndpoint,
        label: str,
        session: ClientSession,
        err: TextIO,
        retry_policy: Callable[[int], float] | None = None,
        greeting_timeout: float = GREETING_TIMEOUT,
        quit_grace: float = QUIT_GRACE,
    ) -> None:
        self.clock = clock
        self.label = label
        self.session = session
        self.err = err
        self.greeting_timeout = greeting_timeout
        self.quit_grace = quit_grace
        self.service = ClientService(
            endpoint,
            ServerFactory(self),
            retryPolicy=retry_policy or default_retry_policy(),
            clock=clock,
        )
        self.done: Deferred[int] = Deferred()
        self._ui: UserInterface | None = None
        self._status: Status | None = None
        self._server: ServerProtocol | None = None
        # A connection has been greeted: from now on a lost connection is
        # retried rather than reported as a failure to connect.
        self._established = False
        # /quit was sent: the next lost connection ends the client.
        self._quitting = False
        self._finished = False
        # Waits for the greeting, or for the server to close after /quit.
        self._timer: IDelayedCall | None = None
        self._not_greeted = False

    def start(self, ui: UserInterface) -> Deferred[int]:
        """Start connecting; return L{done}."""
        self._ui = ui
        self._update_status()
        self.service.startService()
        first = self.service.whenConnected(failAfterFailures=1)
        first.addErrback(self._first_attempt_failed)
        return self.done

    @property
    def connection(self) -> Connection:
        """How the connection stands."""
        if self._quitting:
            return Connection.QUITTING
        if self.session.ready:
            return Connection.CONNECTED
        if self._established:
            return Connection.RECONNECTING
        return Connection.CONNECTING

    def _show(self, text: str, at: float | None = None) -> None:
        if self._ui is not None:
            self._ui.show(text, at)

    def _update_status(self) -> None:
        """Tell the user interface what changed, if anything did."""
        status = Status(
            server=self.label,
            connection=self.connection,
            nick=self.session.nick,
            room=self.session.room,
            rooms=tuple(self.session.rooms),
        )
        if status != self._status and self._ui is not None and not self._finished:
            self._status = status
            self._ui.status(status)

    # ServerEvents

    def server_connected(self, server: ServerProtocol) -> None:
        self.log.debug("connected to {label}", label=self.label)
        self._server = server
        self._not_greeted = False
        self._set_timer(self.greeting_timeout, self._greeting_timed_out)

    def server_line(self, server: ServerProtocol, line: str) -> None:
        if server is not self._server:
            return
        # A line of a room's history is shown with the time it was said.
        self._show(line, history_time(line))
        if self._quitting and not self._finished:
            self._set_timer(self.quit_grace, self._quit_timed_out)
        was_ready = self.session.ready
        answers = self.session.server_line(line)
        if self.session.ready and not was_ready:
            self._cancel_timer()
            if self._established:
                self._show(RECONNECTED)
            self._established = True
        self._send(answers)
        self._update_status()

    def server_lost(self, server: ServerProtocol, reason: Failure) -> None:
        if server is not self._server:
            return
        self._server = None
        self._cancel_timer()
        was_ready = self.session.ready
        self.session.connection_lost()
        if self._finished:
            return
        if self._quitting:
            self._finish(0)
        elif not self._established:
            # Connected, but lost before the greeting (a TLS handshake that
            # failed, a server that closed at once or never spoke): a
            # failure to connect.
            if self._not_greeted:
                self._cannot_connect(
                    None,
                    f"no greeting from the server within "
                    f"{self.greeting_timeout:g} seconds (is it a twisted-chat "
                    "server? does it need --tls?)",
                )
            else:
                self._cannot_connect(reason)
        elif was_ready:
            self._show(LOST)
        self._update_status()

    # UserEvents

    def typed(self, line: str) -> None:
        self._typed(line)
        self._update_status()

    def input_ended(self) -> None:
        self.typed("/quit")

    def interrupted(self) -> None:
        if self._quitting:
            # A second Ctrl-C: do not wait for the server any longer.
            self._finish(0)
        else:
            self.input_ended()

    def _typed(self, line: str) -> None:
        if self._quitting:
            return
        if self._established and not self.session.ready and _is_quit(line):
            # Reconnecting: leave now rather than wait for a server that may
            # not come back.
            dropped = len(self.session.pending)
            if dropped:
                self._show(f"--- not connected: {dropped} unsent lines dropped")
            self._finish(0)
            return
        self._send(self.session.typed(line))

    # Internals

    def _send(self, lines: Sequence[str]) -> None:
        for line in lines:
            if self._quitting or self._server is None:
                return
            self._server.send_line(line)
            if _is_quit(line):
                self._quitting = True
                self._set_timer(self.quit_grace, self._quit_timed_out)

    def _set_timer(self, seconds: float, call: Callable[[], None]) -> None:
        self._cancel_timer()
        self._timer = self.clock.callLater(seconds, call)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _greeting_timed_out(self) -> None:
        self._timer = None
        if self._server is not None:
            self._not_greeted = True
            self._server.abort()

    def _quit_timed_out(self) -> None:
        self._timer = None
        if self._server is not None:
            self._server.abort()

    def _first_attempt_failed(self, reason: Failure) -> None:
        if reason.check(CancelledError) is None:
            self._cannot_connect(reason)

    def _cannot_connect(self, reason: Failure | None, why: str = "") -> None:
        if self._finished:
            return
        if reason is not None:
            why = describe_failure(reason)
        self.err.write(f"{PROGRAM}: cannot connect to {self.label}: {why}\n")
        self.err.flush()
        self._finish(1)

    def _stop_service(self) -> None:
        self.service.stopService().addErrback(
            lambda reason: self.log.failure("stopping the connection", reason)
        )

    def _finish(self, status: int) -> None:
        if self._finished:
            return
        self._finished = True
        self._quitting = True
        self._cancel_timer()
        # Not from inside a callback of the service's own state machine,
        # which cannot be re-entered.
        self.clock.callLater(0, self._stop_service)
        closed = self._ui.close() if self._ui else succeed(None)
        closed.addCallback(lambda ignored: self.done.callback(status))


# The program


def full_screen_wanted(
    options: Options, stdin: int = 0, stdout: int = 1, term: str | None = None
) -> bool:
    """
    Whether to run full-screen: when standard input and output are both a
    terminal that can do it (C{TERM} is set and not C{dumb}), unless
    C{--plain} says otherwise.
    """
    if term is None:
        term = os.environ.get("TERM", "")
    return (
        not options["plain"]
        and term not in ("", "dumb")
        and is_terminal(stdin)
        and is_terminal(stdout)
    )


def run(
    reactor: Any,
    options: Options,
    stdin: int = 0,
    stdout: int = 1,
    err: TextIO | None = None,
) -> Deferred[int]:
    """
    Run the client on standard input and output until it is done: full-screen
    on a terminal, else (or with C{--plain}) as a plain filter.

    @return: a Deferred that fires with the exit status.
    """
    err = sys.stderr if err is None else err
    try:
        endpoint, label = client_endpoint(reactor, options)
    except usage.UsageError as e:
        err.write(f"{PROGRAM}: {e}\n")
        return succeed(2)
    session = ClientSession(wanted_nick=options["nick"], wanted_room=options["room"])
    if full_screen_wanted(options, stdin, stdout):
        return _run_full_screen(reactor, endpoint, label, session, stdin, stdout, err)
    client = ChatClient(reactor, endpoint, label, session, err)
    terminal = TerminalProtocol(client)
    # mypy sees the Windows StandardIO, which takes no descriptors.
    StandardIO(terminal, stdin, stdout, reactor=reactor)  # type: ignore[call-arg,misc]
    return client.start(terminal)


@implementer(ILogObserver)
class _ErrorsOnScreen:
    """
    Errors logged while the screen is taken (Twisted writes critical ones to
    standard error, which would scribble over it): shown as one line on the
    screen, and kept whole for standard error once the terminal is back.
    """

    def __init__(self, ui: FullScreen) -> None:
        self.ui = ui
        self.kept: list[str] = []
        self._showing = False

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_level") not in (LogLevel.error, LogLevel.critical):
            return
        text = eventAsText(event, includeTimestamp=False, includeSystem=False)
        self.kept.append(text + "\n")
        if not self._showing:
            self._showing = True
            try:
                first = text.splitlines()[0] if text else "?"
                self.ui.show(f"--- error: {first}")
            finally:
                self._showing = False


def _run_full_screen(
    reactor: Any,
    endpoint: IStreamClientEndpoint,
    label: str,
    session: ClientSession,
    stdin: int,
    stdout: int,
    err: TextIO,
) -> Deferred[int]:
    # What would go to standard error waits until the terminal is back.
    held = io.StringIO()
    client = ChatClient(reactor, endpoint, label, session, held)
    ui = FullScreen(client, reactor, label)
    errors = _ErrorsOnScreen(ui)
    globalLogBeginner.beginLoggingTo([errors], redirectStandardIO=False)
    local = LocalTerminal(reactor, stdin, stdout)
    local.enter()
    StandardIO(  # type: ignore[call-arg,misc]
        InsultsServerProtocol(lambda: ui), stdin, stdout, reactor=reactor
    )
    ui.terminalSize(*local.size())
    local.watch_size(ui.terminalSize)

    def give_back(status: Any) -> Any:
        local.restore()
        err.write(held.getvalue() + "".join(errors.kept))
        err.flush()
        return status

    return client.start(ui).addBoth(give_back)


def _exit_status(status: int) -> None:
    if status:
        raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The command line: parse the options, then run until done."""
    from twisted.internet.task import react

    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else list(argv))
    except usage.UsageError as e:
        sys.stderr.write(f"{PROGRAM}: {e}\nTry --help for the options.\n")
        raise SystemExit(2) from None
    # react() uses the global reactor and exits with the status.
    react(lambda reactor: run(reactor, options).addCallback(_exit_status))


if __name__ == "__main__":
    main()
