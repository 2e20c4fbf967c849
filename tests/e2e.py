"""
Helpers for end-to-end tests: run the real C{twistd -n chat} as a subprocess
and talk to it over real sockets.

Everything waits on Deferreds with a time limit; nothing sleeps.  A test
starts a server with L{start_server}, which kills it (if it is still running)
when the test is cleaned up, and connects users with L{connect_user}, which
closes them on clean-up too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import (
    IProcessTransport,
    IReactorProcess,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import ProcessProtocol, connectionDone
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

T = TypeVar("T")

# How long a server or a user may take to do what a test waits for.  Long
# enough for a busy shared machine; a passing test never waits this long.
TIMEOUT = 15.0

# What Twisted logs once a listening socket is open (and so accepting).
LISTENING = "starting on"


def global_reactor() -> Any:
    """
    The global reactor, imported when a test runs (under pytest, after
    pytest-twisted has installed it).
    """
    from twisted.internet import reactor

    return reactor


def twistd_command() -> list[str]:
    """
    The command that runs the C{twistd} of this Python: the script next to
    the interpreter if there is one, else the same code run with C{-c}.
    """
    script = Path(sys.executable).with_name("twistd")
    if script.is_file() and os.access(script, os.X_OK):
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def has_ipv6() -> bool:
    """Whether this machine can listen on the IPv6 loopback address."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port(hosts: Iterable[str] = ("127.0.0.1",)) -> int:
    """
    A TCP port number that is free, right now, on every one of C{hosts}
    (IPv4 or IPv6 addresses, wildcards included).

    The port is chosen by the kernel for the first host and then checked on
    the others; it is closed again before returning, so another process could
    take it in between: good enough for tests on one machine.
    """
    first, *others = list(hosts)
    for _ in range(50):
        sockets: list[socket.socket] = []
        try:
            probe = _bound_socket(first, 0)
            sockets.append(probe)
            port: int = probe.getsockname()[1]
            for host in others:
                sockets.append(_bound_socket(host, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
    raise RuntimeError(f"no TCP port is free on all of {hosts}")


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def with_timeout(
    d: Deferred[Any], clock: IReactorTime, what: str, seconds: float = TIMEOUT
) -> Deferred[Any]:
    """
    C{d}, failed with an L{AssertionError} naming C{what} if it has not fired
    within C{seconds}.
    """

    def timed_out(reason: Failure) -> None:
        reason.trap(TimeoutError)
        raise AssertionError(f"{what}: not done within {seconds} seconds")

    return d.addTimeout(seconds, clock).addErrback(timed_out)


def observe(source: Deferred[T]) -> Deferred[T]:
    """
    A new Deferred with the result of C{source}, which must never fail;
    cancelling or timing out the new one leaves C{source} alone.
    """
    d: Deferred[T] = Deferred()

    def relay(result: T) -> T:
        if not d.called:
            d.callback(result)
        return result

    source.addCallback(relay)
    return d


class ServerProcess(ProcessProtocol):
    """
    A running C{twistd}: collects everything it writes (stdout and stderr
    together, as a terminal would show them, and stderr alone too) and says
    when it has ended.

    @ivar ended: fires with the exit status (L{None} if a signal killed it)
        once the process has exited and its output is all read.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.data = b""
        self.error_data = b""
        self.exit_code: int | None = None
        self.exit_signal: int | None = None
        self.running = True
        self.ended: Deferred[int | None] = Deferred()
        self._watches: list[tuple[str, int, Deferred[None]]] = []

    @property
    def output(self) -> str:
        """Everything the process has written so far."""
        return self.data.decode("utf-8", "replace")

    @property
    def errors(self) -> str:
        """What the process has written to stderr so far."""
        return self.error_data.decode("utf-8", "replace")

    def outReceived(self, data: bytes) -> None:
        self.data += data
        self._check_watches()

    def errReceived(self, data: bytes) -> None:
        self.error_data += data
        self.outReceived(data)

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.exit_code = getattr(reason.value, "exitCode", None)
        self.exit_signal = getattr(reason.value, "signal", None)
        watches, self._watches = self._watches, []
        for text, count, d in watches:
            if not d.called:
                d.errback(
                    AssertionError(
                        f"the server exited (status {self.exit_code}, signal "
                        f"{self.exit_signal}) before writing {text!r} {count} "
                        f"times; it wrote:\n{self.output}"
                    )
                )
        self.ended.callback(self.exit_code)

    def _check_watches(self) -> None:
        output = self.output
        for watch in list(self._watches):
            text, count, d = watch
            if output.count(text) >= count:
                self._watches.remove(watch)
                if not d.called:
                    d.callback(None)

    def wait_for(
        self, text: str, count: int = 1, seconds: float = TIMEOUT
    ) -> Deferred[None]:
        """
        Fires once the output holds C{text} at least C{count} times; fails if
        the process ends first or C{seconds} pass.
        """
        d: Deferred[None] = Deferred()
        self._watches.append((text, count, d))
        if not self.running:
            self._watches.remove((text, count, d))
            d.errback(AssertionError(f"the server has ended:\n{self.output}"))
        else:
            self._check_watches()
        return with_timeout(d, self.clock, f"waiting for {text!r} x{count}", seconds)

    def wait_ended(self, seconds: float = TIMEOUT) -> Deferred[int | None]:
        """The exit status, once the process has ended."""
        return with_timeout(
            observe(self.ended), self.clock, "waiting for the server to exit", seconds
        )

    def signal(self, name: str) -> None:
        """Send the process a signal (C{"TERM"}, C{"KILL"}, ...)."""
        assert self.transport is not None
        transport: IProcessTransport = self.transport
        transport.signalProcess(name)

    def kill(self) -> Deferred[int | None]:
        """Kill the process if it is still running, and wait until it is gone."""
        if self.running:
            with suppress(ProcessExitedAlready):
                self.signal("KILL")
        return self.wait_ended()


def spawn_twistd(
    test: SynchronousTestCase,
    reactor: Any,
    args: Sequence[str],
    cwd: str | None = None,
    daemon: bool = False,
) -> ServerProcess:
    """
    Run C{twistd -n --pidfile= ARGS...} (in C{cwd}, by default a new temporary
    directory) and return it at once; it is killed when C{test} is cleaned up.

    With C{daemon}, run C{twistd --pidfile=twistd.pid ARGS...} instead: the
    process is the parent that waits for the daemon to start, and the daemon,
    if it is still running at clean-up, is killed by its pid file.
    """
    process_reactor: IReactorProcess = reactor
    if cwd is None:
        cwd = short_temp_dir(test)
    server = ServerProcess(reactor)
    if daemon:
        pidfile = os.path.join(cwd, "twistd.pid")
        test.addCleanup(_kill_daemon, pidfile)
        argv = [*twistd_command(), f"--pidfile={pidfile}", *args]
    else:
        argv = [*twistd_command(), "-n", "--pidfile=", *args]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    process_reactor.spawnProcess(server, argv[0], argv, env=env, path=cwd)
    test.addCleanup(server.kill)
    return server


def _kill_daemon(pidfile: str) -> None:
    """Kill the daemon whose pid is in C{pidfile}, if there is one."""
    with suppress(OSError, ValueError):
        os.kill(int(Path(pidfile).read_text()), signal.SIGKILL)


def start_server(
    test: SynchronousTestCase,
    reactor: Any,
    ports: Sequence[str],
    options: Sequence[str] = (),
    cwd: str | None = None,
    irc_ports: Sequence[str] = (),
) -> Deferred[ServerProcess]:
    """
    Start C{twistd -n --pidfile= chat} listening on each of C{ports} (values
    for C{--port}) and of C{irc_ports} (for C{--irc-port}); fires with the
    L{ServerProcess} once every listener accepts connections, and fails if
    the server exits first.

    Twisted logs C{starting on} for each listener, after C{listen()} for
    TCP but before C{bind()} for a UNIX socket; so for UNIX sockets this also
    waits until the socket file exists.
    """
    args = ["chat", *options]
    for port in ports:
        args += ["--port", port]
    for port in irc_ports:
        args += ["--irc-port", port]
    server = spawn_twistd(test, reactor, args, cwd)
    every = [*ports, *irc_ports]
    paths = [path for path in map(unix_path, every) if path is not None]
    return Deferred.fromCoroutine(_wait_listening(reactor, server, len(every), paths))


async def _wait_listening(
    clock: IReactorTime, server: ServerProcess, count: int, paths: list[str]
) -> ServerProcess:
    await server.wait_for(LISTENING, count)
    for path in paths:
        await poll(clock, partial(_is_socket_or_ended, path, server), path)
    if not server.running:
        raise AssertionError(f"the server exited:\n{server.output}")
    return server


def unix_path(description: str) -> str | None:
    """The socket path of a C{unix:} endpoint description, else L{None}."""
    kind, _, rest = description.partition(":")
    if kind.lower() != "unix":
        return None
    for argument in re.split(r"(?<!\\):", rest):
        key, equals, value = argument.partition("=")
        if not equals:
            value = argument
        elif key != "address":
            continue
        return re.sub(r"\\(.)", r"\1", value)
    return None


def _is_socket_or_ended(path: str, server: ServerProcess) -> bool:
    if not server.running:
        return True
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


async def poll(
    clock: IReactorTime,
    done: Callable[[], bool],
    what: str,
    seconds: float = TIMEOUT,
    interval: float = 0.01,
) -> None:
    """
    Wait until C{done()} is true, checking every C{interval} seconds; fail
    with an L{AssertionError} naming C{what} after C{seconds}.
    """
    deadline = clock.seconds() + seconds
    while not done():
        if clock.seconds() > deadline:
            raise AssertionError(f"{what}: not done within {seconds} seconds")
        await deferLater(clock, interval, lambda: None)


def short_temp_dir(test: SynchronousTestCase) -> str:
    """
    A new directory in the system's temporary directory, removed when C{test}
    is cleaned up.  Its path is short, as UNIX socket paths must be (about
    100 bytes at most, which trial's C{mktemp} paths may exceed), and it is
    outside the working directory (pytest runs in the source tree, where
    C{mktemp} would create directories).
    """
    path = tempfile.mkdtemp(prefix="chat-")
    test.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class ChatUser(LineReceiver):
    """
    A user at the other end of a real connection: sends lines and reads the
    server's lines in order.

    @ivar lines: every line received, without its C{\\n}.
    @ivar closed: fires when the connection is closed.
    @ivar address: this end's address as the server logs its peer
        (C{host:port}, C{[host]:port}), or C{"?"} for a UNIX socket.
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.lines: list[str] = []
        self.closed: Deferred[None] = Deferred()
        self.is_closed = False
        self._read = 0
        self._waiting: tuple[int, Deferred[list[str]]] | None = None
        self.address = "?"

    def connectionMade(self) -> None:
        assert self.transport is not None
        host = self.transport.getHost()
        if isinstance(host, IPv6Address):
            self.address = f"[{host.host}]:{host.port}"
        elif isinstance(host, IPv4Address):
            self.address = f"{host.host}:{host.port}"

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8"))
        self._check_waiting()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.is_closed = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting[1].called:
            waiting[1].errback(
                AssertionError(
                    f"connection closed while waiting for {waiting[0]} lines; "
                    f"unread: {self.unread()}"
                )
            )
        self.closed.callback(None)

    def say(self, *texts: str) -> None:
        """Send each of C{texts} as one line."""
        assert self.transport is not None
        self.transport.write(b"".join(text.encode("utf-8") + b"\n" for text in texts))

    def unread(self) -> list[str]:
        """The lines received and not yet returned by L{read}."""
        return self.lines[self._read :]

    def read(self, count: int, seconds: float = TIMEOUT) -> Deferred[list[str]]:
        """The next C{count} lines, once they have arrived."""
        assert self._waiting is None, "one read at a time"
        d: Deferred[list[str]] = Deferred()
        if self.is_closed and len(self.unread()) < count:
            d.errback(AssertionError(f"connection closed; unread: {self.unread()}"))
        else:
            self._waiting = (count, d)
            self._check_waiting()

        def forget(result: object) -> object:
            self._waiting = None
            return result

        return with_timeout(
            d.addBoth(forget), self.clock, f"reading {count} lines", seconds
        ).addErrback(self._explain)

    def _explain(self, reason: Failure) -> Failure:
        reason.trap(AssertionError)
        return Failure(AssertionError(f"{reason.value}; unread: {self.unread()}"))

    def _check_waiting(self) -> None:
        if self._waiting is None:
            return
        count, d = self._waiting
        if len(self.unread()) >= count:
            self._waiting = None
            taken = self.unread()[:count]
            self._read += count
            d.callback(taken)

    def wait_closed(self, seconds: float = TIMEOUT) -> Deferred[None]:
        """Fires once the server has closed the connection."""
        return with_timeout(
            observe(self.closed),
            self.clock,
            "waiting for the connection to close",
            seconds,
        )

    def close(self) -> Deferred[None]:
        """Drop the connection if it is open and wait until it is closed."""
        if not self.is_closed and self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        return self.wait_closed()


def connect_user(
    test: SynchronousTestCase,
    reactor: Any,
    endpoint: IStreamClientEndpoint,
) -> Deferred[ChatUser]:
    """
    Connect a L{ChatUser} through C{endpoint}; it is closed when C{test} is
    cleaned up.
    """
    user = ChatUser(reactor)

    def connected(protocol: ChatUser) -> ChatUser:
        test.addCleanup(protocol.close)
        return protocol

    d = connectProtocol(endpoint, user).addCallback(connected)
    return with_timeout(d, reactor, "connecting")


class Terminal:
    """
    A real terminal for a full-screen program: a tmux server on a socket of
    its own, in a temporary directory removed after the test, with one
    detached session; read with C{capture-pane}, typed into with
    C{send-keys}.  Waiting polls the screen with a bound; nothing sleeps.
    """

    def __init__(
        self,
        reactor: Any,
        test: SynchronousTestCase,
        width: int = 120,
        height: int = 40,
    ) -> None:
        tmux = shutil.which("tmux")
        assert tmux is not None, "tmux is not installed"
        self.tmux = tmux
        self.reactor = reactor
        self.width, self.height = width, height
        self.socket = os.path.join(short_temp_dir(test), "tmux")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        test.addCleanup(self.kill)

    async def run(self, *args: str) -> str:
        """Run one tmux command; its standard output."""
        out, err, code = await getProcessOutputAndValue(
            self.tmux,
            ["-S", self.socket, "-f", os.devnull, *args],
            env=self.env,
            reactor=self.reactor,
        )
        if code != 0:
            raise AssertionError(f"tmux {' '.join(args)}: status {code}: {err!r}")
        text: str = out.decode("utf-8", "replace")
        return text

    async def start(self, command: str) -> None:
        """Start the session running C{command}, a shell command line."""
        size = ["-x", str(self.width), "-y", str(self.height)]
        await self.run("new-session", "-d", "-s", "term", *size, command)

    async def kill(self) -> None:
        """Stop the tmux server, and with it what still runs in it."""
        with suppress(AssertionError):  # Already gone.
            await self.run("kill-server")

    async def screen(self) -> list[str]:
        """The terminal's rows, as a user sees them now."""
        return (await self.run("capture-pane", "-p", "-t", "term")).split("\n")[:-1]

    async def keys(self, *keys: str) -> None:
        """Press keys, by tmux's names (C{Enter}, C{M-1})."""
        await self.run("send-keys", "-t", "term", *keys)

    async def line(self, text: str) -> None:
        """Type C{text} and press Enter."""
        await self.run("send-keys", "-t", "term", "-l", text)
        await self.keys("Enter")

    async def wait(
        self, done: Callable[[list[str]], bool], what: str, seconds: float = TIMEOUT
    ) -> list[str]:
        """Poll the screen until C{done(rows)}; fail after C{seconds}."""
        deadline = self.reactor.seconds() + seconds
        while True:
            rows = await self.screen()
            if done(rows):
                return rows
            if self.reactor.seconds() > deadline:
                raise AssertionError(
                    f"{what}: not on the screen within {seconds} seconds; "
                    "the screen:\n" + "\n".join(rows)
                )
            await deferLater(self.reactor, 0.05, lambda: None)

    async def wait_for(self, text: str, what: str | None = None) -> list[str]:
        """Poll the screen until a row holds C{text}."""
        return await self.wait(
            lambda rows: any(text in row for row in rows), what or repr(text)
        )
