"""
A throwaway redis-server for the tests that need a real one.

L{start_redis} starts C{redis-server} on a free loopback port, with its data
in a temporary directory, and stops it when the test ends.  The server can
be stopped and started again with the same data and port (L{RedisServer.restart}),
killed (SIGKILL), and paused (SIGSTOP) to play a Redis that no longer answers.

If C{redis-server} is not installed the tests are skipped, saying so, except
when the environment variable C{CI} is set: CI installs it, and a test that
cannot find it there must fail, not quietly skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

# How long a redis-server may take to say it is ready, or to exit.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def redis_server_path() -> str:
    """
    Where redis-server is.

    @raise SkipTest: if it is not installed, outside CI.
    @raise RuntimeError: if it is not installed, in CI.
    """
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if path is None:
        why = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            raise RuntimeError(f"{why}, and CI must run the cluster tests")
        raise SkipTest(why)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Process(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.ready: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if not self.ready.called and b"Ready to accept connections" in self.output:
            self.ready.callback(None)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(
                RuntimeError(
                    "redis-server exited before it was ready:\n"
                    + self.output.decode("utf-8", "replace")
                )
            )
        if reason.check(ProcessDone, ProcessTerminated):
            self.ended.callback(None)
        else:
            self.ended.errback(reason)


class RedisServer:
    """One redis-server process (and its successors, after a restart)."""

    def __init__(
        self,
        reactor: Any,
        directory: str,
        password: str | None = None,
        persistence: bool = True,
    ) -> None:
        self.reactor: IReactorProcess = reactor
        self.clock: IReactorTime = reactor
        self.directory = directory
        self.password = password
        self.persistence = persistence
        self.port = free_port()
        self.unix_path = os.path.join(directory, "redis.sock")
        self._process: _Process | None = None
        self._transport: object = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        credentials = f":{self.password}@" if self.password else ""
        return f"redis://{credentials}127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and not self._process.ended.called

    def _arguments(self) -> list[str]:
        arguments = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            self.unix_path,
            "--dir",
            self.directory,
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--save",
            "",
            "--databases",
            "16",
        ]
        if self.persistence:
            # Every write on disk before Redis answers: a restart, or even a
            # SIGKILL, loses nothing.
            arguments += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            arguments += ["--appendonly", "no"]
        if self.password:
            arguments += ["--requirepass", self.password]
        return arguments

    def start(self) -> Deferred[None]:
        """Start the server; fires once it accepts connections."""
        assert not self.running, "already running"
        process = self._process = _Process()
        self._transport = self.reactor.spawnProcess(
            process,
            redis_server_path(),
            self._arguments(),
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        self.starts += 1
        return process.ready.addTimeout(START_TIMEOUT, self.clock)

    def _signal(self, signum: int) -> None:
        if self.running:
            self._transport.signalProcess(signum)  # type: ignore[attr-defined]

    def stop(self) -> Deferred[None]:
        """SIGTERM: Redis shuts down cleanly, keeping its data."""
        return self._end(signal.SIGTERM)

    def kill(self) -> Deferred[None]:
        """SIGKILL: Redis dies at once."""
        return self._end(signal.SIGKILL)

    def _end(self, signum: int) -> Deferred[None]:
        process = self._process
        if process is None or process.ended.called:
            return succeed(None)
        self._signal(signal.SIGCONT)
        self._signal(signum)
        return process.ended.addTimeout(STOP_TIMEOUT, self.clock)

    def pause(self) -> None:
        """SIGSTOP: Redis keeps its connections open but answers nothing."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self._signal(signal.SIGCONT)

    async def restart(self) -> None:
        """Stop cleanly and start again, with the same data and port."""
        await self.stop()
        await self.start()


async def start_redis(
    test: TestCase, password: str | None = None, persistence: bool = True
) -> RedisServer:
    """
    Start a redis-server for C{test}, killed when the test ends.

    @raise SkipTest: if redis-server is not installed, outside CI.
    """
    redis_server_path()
    # A short path: a UNIX socket's path may not be long.
    directory = tempfile.mkdtemp(prefix="chat-redis-")
    test.addCleanup(shutil.rmtree, directory, True)
    server = RedisServer(global_reactor(), directory, password, persistence)
    test.addCleanup(server.kill)
    await server.start()
    return server


def global_reactor() -> Any:
    """The reactor trial runs (imported here, not at module level)."""
    from twisted.internet import reactor

    return reactor


async def poll(
    done: Callable[[], bool], what: str, seconds: float = 10.0, interval: float = 0.01
) -> None:
    """
    Wait until C{done()} is true, checking every C{interval} seconds; fail
    with an L{AssertionError} naming C{what} after C{seconds}.
    """
    clock: IReactorTime = global_reactor()
    deadline = clock.seconds() + seconds
    while not done():
        if clock.seconds() > deadline:
            raise AssertionError(f"{what}: not done within {seconds:g} seconds")
        await deferLater(clock, interval, lambda: None)
