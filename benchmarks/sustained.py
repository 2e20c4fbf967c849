"""
Sustained load on one room, with exact accounting of every line (issue 7).

    python benchmarks/sustained.py sustained                  # one 10 s run
    python benchmarks/sustained.py sustained+stalled --runs 20
    python benchmarks/sustained.py steady-slow --runs 5 --out /tmp/slow

Each run starts a fresh server pinned to one core, as in the report::

    twistd -n --pidfile= --logfile=LOG chat --port tcp:PORT:interface=127.0.0.1 \\
        --flood-rate 0 --max-clients 0 --max-per-ip 0

(every other option at its default), and drives it from this process,
pinned to the other core, with the load generator's connection machinery
(L{loadgen.LoadGen}: non-blocking sockets on one epoll).  The clients all
join C{#lobby} on connect; once the join storm has settled:

- each of the C{--clients} reading clients sends C{--rate} lines a second
  of C{--line-size} bytes for C{--duration} seconds.  Sending is paced by
  the clock, not by reading: line I{k} of sender I{s} is due at
  C{t0 + (k + s / clients) / rate}, carries its sender, its sequence number
  and that due time (C{B|sender|seq|due_ns|xxx~}), and is handed to the
  socket as soon as the socket takes it.  A server that reads less makes
  the lines late (the latency shows it), never skipped;
- the load generator works in turns of C{--turn-ms} (1 ms): in each, the
  senders write what is due and every readable client reads once;
- every reading client reads with C{--read}: C{continuous} (once per turn
  whenever the socket is readable; the longest turn is reported, and
  bounds the gap between two reads) or C{SIZE/PERIOD[:spread|:same]} such
  as C{256K/100ms:same} (up to SIZE bytes per PERIOD; the clients' periods
  spread evenly, or all at the same moment);
- C{sustained+stalled} adds a client that stops reading when the senders
  start (it read everything before) and never sends;
- C{--pause-server SECONDS} stops the server once (SIGSTOP, then SIGCONT)
  halfway through, as a busy host or a long pause would: the rare event
  behind issue 7, made to happen on every run.

Every reading client parses every line, so each run reports exactly: the
deliveries expected (lines scheduled x reading clients), received and lost
(a client that was cut loses everything after the cut; lines a cut sender
could not send are lost for everyone), lines missing or out of order on an
open connection, which reading clients were disconnected, when, and the
server's reason (from its log), whether the non-reader was cut and how long
after it stopped reading, the server's peak RSS (C{VmHWM}, reset when the
senders start) and CPU, the latency from each line's due time, and the wall
time until everything was delivered.  After the senders stop, it waits
(at most C{--drain-timeout} seconds) until every reading client has every
line or its connection closed.

A run passes when no reading client lost a delivery or was cut, every
non-reader was cut within C{--cut-within} seconds, and the server lived.
The exit status is 1 if any run failed.  Results: one JSON object per run in
C{OUT/sustained-STAMP.jsonl} and each server's log in C{OUT/logs/}.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import hashlib
import json
import math
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loadgen
from run import free_port, pinned, stop, wait_listening
from servers import HERE, TWISTD

# What the report's server ran with; everything else at its default.
SERVER_OPTIONS = ("--flood-rate", "0", "--max-clients", "0", "--max-per-ip", "0")
PAYLOAD = re.compile(rb"B\|(\d+)\|(\d+)\|(\d+)\|")
QUIT = re.compile(rb"\*\*\* (\S+) has quit \(([^)\n]*)\)")
RECV_SIZE = 256 * 1024
SEND_BATCH = 256  # most lines formatted for one sender in one loop turn
_IN = select.EPOLLIN
_HUP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}
# A turn longer than this is a stall of the load generator itself (the
# machine is busy), worth a word next to the verdict.
STALL_MS = 50.0


# The parts without sockets


@dataclass(frozen=True)
class ReadPattern:
    """How a reading client reads: C{size} bytes per C{period}, or at once."""

    size: int = 0  # 0: continuous
    period: float = 0.0
    spread: bool = True  # the clients' periods spread evenly, or all together

    @property
    def continuous(self) -> bool:
        return self.size == 0

    def __str__(self) -> str:
        if self.continuous:
            return "continuous"
        return (
            f"{self.size // 1024}K every {self.period * 1000:g} ms "
            f"({'spread' if self.spread else 'all at the same time'})"
        )


def parse_read(text: str) -> ReadPattern:
    """
    C{continuous}, or C{SIZE/PERIOD[:spread|:same]}: C{256K/100ms},
    C{65536/0.05s:same}, C{1M/1s} (sizes in bytes, K or M; periods in ms or
    s; the clients' periods spread evenly, or all starting at once).
    """
    if text == "continuous":
        return ReadPattern()
    match = re.fullmatch(
        r"(\d+)([kKmM]?)/(\d+(?:\.\d+)?)(ms|s)(?::(spread|same))?", text
    )
    if match is None:
        raise ValueError(
            f"read pattern {text!r}: continuous or SIZE/PERIOD[:spread|:same]"
        )
    size = int(match.group(1)) * UNITS[match.group(2).lower()]
    period = float(match.group(3)) / (1000 if match.group(4) == "ms" else 1)
    if size <= 0 or period <= 0:
        raise ValueError(f"read pattern {text!r}: size and period must be > 0")
    return ReadPattern(size, period, match.group(5) != "same")


@dataclass(frozen=True)
class Schedule:
    """When each sender's lines are due, paced by the clock."""

    senders: int
    rate: float  # lines a second per sender
    total: int  # lines per sender

    def due(self, sender: int, elapsed_ns: int) -> int:
        """How many of C{sender}'s lines are due C{elapsed_ns} after the start."""
        ticks = elapsed_ns * self.rate * self.senders / 1e9 - sender
        if ticks < 0:
            return 0
        return min(self.total, math.floor(ticks / self.senders) + 1)

    def due_ns(self, sender: int, seq: int) -> int:
        """When line C{seq} of C{sender} is due, in ns after the start."""
        return round((seq * self.senders + sender) * 1e9 / (self.rate * self.senders))


def payload_line(sender: int, seq: int, due_ns: int, size: int) -> bytes:
    """A line of exactly C{size} bytes, newline included."""
    head = b"B|%d|%d|%d|" % (sender, seq, due_ns)
    pad = size - len(head) - 2
    if pad < 0:
        raise ValueError(f"a {size}-byte line cannot hold {head!r}")
    return head + b"x" * pad + b"~\n"


class Tally:
    """
    What each reading client received, line by line: per (reader, sender)
    the count and the next sequence number expected, so that a line missing
    on an open connection or arriving out of order is seen.
    """

    def __init__(self, readers: int, senders: int) -> None:
        self.senders = senders
        self.got = [[0] * senders for _ in range(readers)]
        self.next = [[0] * senders for _ in range(readers)]
        self.skipped = [0] * readers  # lines jumped over on an open connection
        self.disorder = [0] * readers  # lines older than one already received
        self.errors = [0] * readers  # '!!! ' lines
        self.pending = [b""] * readers
        self.latencies: array.array[int] = array.array("q")
        # (nick, reason) of quit notices, with when they were first seen.
        self.quits: dict[tuple[str, str], float] = {}

    def feed(self, reader: int, data: bytes, now_ns: int, base_ns: int) -> int:
        """
        Count the complete lines in C{data}; C{now_ns - base_ns - due} is a
        line's latency.  Return how many payload lines were complete.
        """
        pending = self.pending[reader]
        if pending:
            data = pending + data
        cut = data.rfind(b"\n") + 1
        self.pending[reader] = data[cut:]
        if not cut:
            return 0
        found = PAYLOAD.findall(data, 0, cut)
        if b"!!! " in data:
            self.errors[reader] += data.count(b"!!! ", 0, cut)
        if b" has quit (" in data:
            for nick, reason in QUIT.findall(data, 0, cut):
                key = (nick.decode(), reason.decode(errors="replace"))
                self.quits.setdefault(key, (now_ns - base_ns) / 1e9)
        got = self.got[reader]
        expected = self.next[reader]
        append = self.latencies.append
        now = now_ns - base_ns
        for sender_text, seq_text, due_text in found:
            sender = int(sender_text)
            seq = int(seq_text)
            want = expected[sender]
            if seq != want:
                if seq > want:
                    self.skipped[reader] += seq - want
                else:
                    self.disorder[reader] += 1
            expected[sender] = seq + 1
            got[sender] += 1
            append(now - int(due_text))
        return len(found)

    def received(self, reader: int) -> int:
        return sum(self.got[reader])


LOG_PREFIX = re.compile(r"^\S+ \[[^\]]*\] ")
LOG_CONNECTED = re.compile(r"^(\S+) connected as (\S+)$")
LOG_DISCONNECTING = re.compile(r"^disconnecting (\S+) \(([^)]+)\): (.*)$")
LOG_DISCONNECTED = re.compile(r"^(\S+) \(([^)]+)\) disconnected: (.*)$")


@dataclass
class PeerLog:
    """What the server's log says about one connection."""

    nick: str = ""
    reason: str = ""  # why the server disconnected it, if it did
    lost: str = ""  # the connection-lost message
    other: list[str] = field(default_factory=list)


def parse_server_log(text: str) -> dict[str, PeerLog]:
    """Per peer address (C{127.0.0.1:PORT}), what the server logged about it."""
    peers: dict[str, PeerLog] = {}
    for raw in text.splitlines():
        message = LOG_PREFIX.sub("", raw, count=1)
        if match := LOG_CONNECTED.match(message):
            peers.setdefault(match.group(1), PeerLog()).nick = match.group(2)
        elif match := LOG_DISCONNECTING.match(message):
            peers.setdefault(match.group(2), PeerLog()).reason = match.group(3)
        elif match := LOG_DISCONNECTED.match(message):
            peers.setdefault(match.group(1), PeerLog()).lost = match.group(3)
        else:
            for peer, entry in peers.items():
                if peer in message:
                    entry.other.append(message)
    return peers


def percentile(ordered: Sequence[int], fraction: float) -> float | None:
    """A percentile of sorted nanoseconds, in milliseconds."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


def passed(run: dict[str, Any]) -> bool:
    """Whether a run shows the expected behaviour (see the module docstring)."""
    return (
        run["lost"] == 0
        and not run["readers_cut"]
        and all(n["cut"] and n["cut_within_bound"] for n in run["non_readers"])
        and run["server"]["alive"]
        and not run.get("error")
    )


def summary_line(scenario: str, runs: Sequence[dict[str, Any]]) -> str:
    """One line per scenario: runs, runs without loss, runs with the non-reader cut."""
    clean = sum(1 for r in runs if r["lost"] == 0)
    with_stalled = [r for r in runs if r["non_readers"]]
    cut = sum(1 for r in with_stalled if all(n["cut"] for n in r["non_readers"]))
    stalled = (
        f"non-reader cut in {cut} of {len(with_stalled)}"
        if with_stalled
        else "no non-reader"
    )
    worst = max((r["lost"] for r in runs if r["lost"] is not None), default=0)
    cuts = sum(1 for r in runs if r["readers_cut"])
    good = sum(1 for r in runs if passed(r))
    busy = sum(
        1 for r in runs if r.get("loadgen", {}).get("longest_turn_ms", 0) > STALL_MS
    )
    return (
        f"{scenario}: {len(runs)} runs, {clean} with 0 deliveries lost by reading "
        f"clients, {stalled}; runs with a reading client cut: {cuts}; "
        f"most lost in a run: {worst:,}; passed: {good} of {len(runs)}; "
        f"load generator stalled (> {STALL_MS:g} ms) in {busy}"
    )


# Scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    read: str = "continuous"
    stalled: int = 0


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("sustained", "paced senders that all read continuously"),
        Scenario(
            "sustained+stalled",
            "paced senders that all read continuously, and one client that never reads",
            stalled=1,
        ),
        Scenario(
            "steady-slow",
            "paced senders that all read 256 KB every 100 ms, at the same time",
            read="256K/100ms:same",
        ),
    )
}


# The load: sockets


class PacedRoom:
    """
    One run's clients, on a L{loadgen.LoadGen}'s connections: the first
    C{clients} send and read, the rest (C{stalled}) never read.
    """

    def __init__(
        self,
        gen: loadgen.LoadGen,
        clients: int,
        stalled: int,
        schedule: Schedule,
        line_size: int,
        read: ReadPattern,
        turn_seconds: float = 0.001,
    ) -> None:
        self.gen = gen
        self.turn_seconds = turn_seconds
        self.clients = clients
        self.stalled = stalled
        self.schedule = schedule
        self.line_size = line_size
        self.read = read
        self.tally = Tally(clients, clients)
        count = clients + stalled
        self.socks: list[socket.socket | None] = list(gen.socks[:count])
        self.ports = [s.getsockname()[1] if s else 0 for s in self.socks]
        self.fd_index = {s.fileno(): i for i, s in enumerate(self.socks) if s}
        self.closed_at: list[float | None] = [None] * count
        self.how: list[str] = [""] * count
        self.sent_bytes = [0] * clients
        self.formatted = [0] * clients
        self.partial = [bytearray() for _ in range(clients)]
        self.budget = [0] * clients
        self.next_period = [0.0] * clients
        self.reading = [True] * clients
        self.t0 = 0.0
        self.t0_ns = 0
        self.last_delivery = 0.0
        self.turns = 0
        self.turn_max = 0.0
        self.turns_over = {2: 0, 5: 0, 10: 0}  # turns longer than N ms
        # Things to do at given times after the start, in order.
        self.timed: list[tuple[float, Callable[[], None]]] = []

    # Sending

    def written(self, sender: int) -> int:
        """Lines of C{sender} wholly handed to its socket."""
        return self.sent_bytes[sender] // self.line_size

    def _send(self, sender: int, now_ns: int) -> None:
        sock = self.socks[sender]
        if sock is None:
            return
        buf = self.partial[sender]
        if not buf:
            due = self.schedule.due(sender, now_ns - self.t0_ns)
            first = self.formatted[sender]
            last = min(due, first + SEND_BATCH)
            if last <= first:
                return
            due_ns = self.schedule.due_ns
            size = self.line_size
            buf += b"".join(
                payload_line(sender, seq, due_ns(sender, seq), size)
                for seq in range(first, last)
            )
            self.formatted[sender] = last
        try:
            sent = sock.send(buf)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self._closed(sender, "reset by the server")
            return
        except OSError as e:
            self._closed(sender, f"send failed: {e.strerror}")
            return
        self.sent_bytes[sender] += sent
        del buf[:sent]

    def senders_done(self) -> bool:
        total = self.schedule.total
        return all(
            self.socks[s] is None or self.written(s) >= total
            for s in range(self.clients)
        )

    # Reading

    def _recv(self, index: int, size: int) -> bool:
        """One C{recv}; return whether the connection is still open."""
        sock = self.socks[index]
        assert sock is not None
        try:
            data = sock.recv(size)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            self._closed(index, "reset by the server", drain=False)
            return False
        except OSError as e:
            self._closed(index, f"recv failed: {e.strerror}", drain=False)
            return False
        if not data:
            self._closed(index, "closed by the server", drain=False)
            return False
        if index < self.clients:
            if self.tally.feed(index, data, time.monotonic_ns(), self.t0_ns):
                self.last_delivery = time.monotonic()
            if not self.read.continuous:
                self.budget[index] -= len(data)
        return True

    def _closed(self, index: int, how: str, drain: bool = True) -> None:
        """
        The connection ended (C{how}, a first guess): a reading client reads
        what its kernel still holds, which also tells a reset from a close.
        """
        sock = self.socks[index]
        if sock is None:
            return
        if drain and index < self.clients:
            # Bounded: the kernel holds a few megabytes at most.
            for _ in range(1000):
                try:
                    data = sock.recv(RECV_SIZE)
                except BlockingIOError:
                    break
                except ConnectionResetError:
                    how = "reset by the server"
                    break
                except OSError:
                    break
                if not data:
                    # A send may already have taken the reset's error.
                    if not how.startswith("reset"):
                        how = "closed by the server"
                    break
                self.tally.feed(index, data, time.monotonic_ns(), self.t0_ns)
        self.closed_at[index] = time.monotonic() - self.t0
        self.how[index] = how
        self.socks[index] = None
        del self.fd_index[sock.fileno()]
        with contextlib.suppress(OSError, ValueError):
            self.gen.epoll.unregister(sock.fileno())
        sock.close()

    def _set_reading(self, index: int, on: bool) -> None:
        sock = self.socks[index]
        if sock is None or self.reading[index] == on:
            return
        self.reading[index] = on
        self.gen.epoll.modify(sock.fileno(), (_IN if on else 0) | _HUP)

    def _periods(self, now: float) -> None:
        """Chunked readers: a new period gives a new budget."""
        for index in range(self.clients):
            if self.socks[index] is None or now < self.next_period[index]:
                continue
            while self.next_period[index] <= now:
                self.next_period[index] += self.read.period
            self.budget[index] = self.read.size
            self._set_reading(index, True)

    def _event(self, fd: int, event: int) -> None:
        index = self.fd_index.get(fd)
        if index is None:
            return
        if index >= self.clients:
            # The non-reader: only its end is of interest.
            if event & _HUP:
                how = "reset" if event & select.EPOLLERR else "closed"
                self._closed(index, f"{how} by the server")
            return
        if not self.reading[index]:
            if event & _HUP:
                how = "reset" if event & select.EPOLLERR else "closed"
                self._closed(index, f"{how} by the server")
            return
        if self.read.continuous:
            self._recv(index, RECV_SIZE)
        elif (
            self._recv(index, min(self.budget[index], RECV_SIZE))
            and self.budget[index] <= 0
        ):
            self._set_reading(index, False)

    # The run

    def start(self) -> None:
        """The senders start now; the non-readers stop reading now."""
        self.t0 = time.monotonic()
        self.t0_ns = time.monotonic_ns()
        self.last_delivery = self.t0
        for index, sock in enumerate(self.socks):
            if sock is None:
                continue
            if index >= self.clients:
                self.gen.epoll.modify(sock.fileno(), _HUP)
            else:
                self.gen.epoll.modify(sock.fileno(), _IN | _HUP)
                if not self.read.continuous:
                    offset = index / self.clients if self.read.spread else 0
                    self.next_period[index] = self.t0 + offset * self.read.period
                    self.budget[index] = 0
                    self._set_reading(index, False)

    def complete(self) -> bool:
        """Every open reading client has every line its senders wrote."""
        if not self.senders_done():
            return False
        written = [self.written(s) for s in range(self.clients)]
        return all(
            self.tally.got[r][s] >= written[s]
            for r in range(self.clients)
            if self.socks[r] is not None
            for s in range(self.clients)
        )

    def turn(self) -> None:
        """Send what is due, then read every readable client once."""
        now_ns = time.monotonic_ns()
        for sender in range(self.clients):
            self._send(sender, now_ns)
        if not self.read.continuous:
            self._periods(time.monotonic())
        for fd, event in self.gen.epoll.poll(0):
            self._event(fd, event)

    def loop(self, duration: float, drain: float, quiet: float) -> str:
        """
        Run the senders for C{duration} seconds, then wait until everything
        is delivered, nothing arrived for C{quiet} seconds after the senders
        finished, or C{drain} seconds passed.  Returns why it stopped.

        A turn starts every C{turn_seconds} (or at once when the previous
        one took longer): between two reads of a client there is one turn,
        which is measured.
        """
        stop_sending = self.t0 + duration
        deadline = stop_sending + drain
        previous = next_turn = time.monotonic()
        finished_at: float | None = None
        while True:
            now = time.monotonic()
            if now < next_turn:
                time.sleep(next_turn - now)
                now = time.monotonic()
            next_turn = max(next_turn + self.turn_seconds, now)
            gap = now - previous
            previous = now
            self.turns += 1
            self.turn_max = max(self.turn_max, gap)
            for ms in self.turns_over:
                if gap > ms / 1000:
                    self.turns_over[ms] += 1
            while self.timed and now >= self.t0 + self.timed[0][0]:
                self.timed.pop(0)[1]()
            self.turn()
            if all(s is None for s in self.socks[: self.clients]):
                return "every reading client was disconnected"
            if now < stop_sending:
                continue
            if self.complete():
                return "complete"
            if finished_at is None and self.senders_done():
                finished_at = now
            if (
                finished_at is not None
                and now - max(self.last_delivery, finished_at) > quiet
            ):
                return f"nothing more arrived for {quiet:g} s"
            if now > deadline:
                return f"drain timeout ({drain:g} s after the senders stopped)"

    def close_all(self) -> None:
        for index, sock in enumerate(self.socks):
            if sock is not None:
                self.socks[index] = None
                sock.close()


# Processes and the report


def source_fingerprint(root: Path) -> str:
    """A digest of the twisted_chat source under C{root}."""
    digest = hashlib.sha256()
    for path in sorted((root / "twisted_chat").rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def server_env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
    return env


def server_code(pythonpath: str | None, cwd: Path) -> Path:
    """Where the server's interpreter, started in C{cwd}, finds twisted_chat."""
    done = subprocess.run(
        [sys.executable, "-c", "import twisted_chat; print(twisted_chat.__file__)"],
        env=server_env(pythonpath),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(done.stdout.strip()).parent.parent


def server_argv(port: int, log: Path, extra: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-c",
        TWISTD,
        "-n",
        "--pidfile=",
        f"--logfile={log}",
        "chat",
        "--port",
        f"tcp:{port}:interface=127.0.0.1",
        *SERVER_OPTIONS,
        *extra,
    ]


def cores() -> tuple[int | None, int | None]:
    found = sorted(os.sched_getaffinity(0))
    if len(found) < 2:
        return None, None
    return found[0], found[1]


def load_args(port: int, pid: int, clients: int) -> argparse.Namespace:
    return loadgen.parser().parse_args(
        [
            "fanout",
            "--port",
            str(port),
            "--server-pid",
            str(pid),
            "--clients",
            str(clients),
            "--greeting",
        ]
    )


@dataclass
class Settings:
    scenario: Scenario
    clients: int
    stalled: int
    rate: float
    line_size: int
    duration: float
    read: ReadPattern
    turn_ms: float
    pause: float
    pause_at: float
    drain: float
    quiet: float
    cut_within: float
    server_args: list[str]
    pythonpath: str | None
    server_core: int | None
    out: Path

    @property
    def lines_per_sender(self) -> int:
        return round(self.rate * self.duration)

    def describe(self) -> str:
        stalled = f" plus {self.stalled} that never reads" if self.stalled else ""
        return (
            f"{self.clients} clients in #lobby{stalled}; each sends "
            f"{self.rate:,g} lines/s of {self.line_size} bytes for "
            f"{self.duration:g} s ({self.clients * self.rate:,g} lines/s in all, "
            f"{self.clients**2 * self.rate:,g} deliveries/s with the echo) and "
            f"reads {self.read}"
            + (
                f"; the server is stopped for {self.pause:g} s at {self.pause_at:g} s"
                if self.pause > 0
                else ""
            )
        )


def run_once(settings: Settings, number: int, stamp: str) -> dict[str, Any]:
    """One run against a fresh server."""
    logs = settings.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{settings.scenario.name}-{stamp}-{number}.server.log"
    port = free_port()
    argv = pinned(settings.server_core, server_argv(port, log, settings.server_args))
    result: dict[str, Any] = {
        "scenario": settings.scenario.name,
        "run": number,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg": os.getloadavg(),
        "server_command": argv,
        "server_log": str(log),
    }
    # twistd logs to C{log}; anything it prints before that goes here.
    with open(log.with_suffix(".out"), "wb") as early:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=early,
            stderr=subprocess.STDOUT,
            env=server_env(settings.pythonpath),
            cwd=logs,
            start_new_session=True,
        )
    room: PacedRoom | None = None
    try:
        if not wait_listening(port, proc, 30):
            raise RuntimeError(f"the server did not start (see {log})")
        total = settings.clients + settings.stalled
        gen = loadgen.LoadGen(load_args(port, proc.pid, total))
        if not gen.connect(total, time.monotonic() + 60):
            raise RuntimeError("could not connect every client within 60 s")
        settled, _ = gen.settle(0.3, 30)
        if gen.closed_by_server or gen.connect_failed or not settled:
            raise RuntimeError("connections closed or the server busy before the run")
        schedule = Schedule(settings.clients, settings.rate, settings.lines_per_sender)
        room = PacedRoom(
            gen,
            settings.clients,
            settings.stalled,
            schedule,
            settings.line_size,
            settings.read,
            settings.turn_ms / 1000,
        )
        rss_start = loadgen.process_rss(proc.pid)
        exact_peak = loadgen.reset_peak_rss(proc.pid)
        cpu_before = loadgen.process_cpu(proc.pid)
        own_before = time.process_time()
        if settings.pause > 0:
            # The server is descheduled for a moment, as on a busy host.
            at = settings.pause_at
            room.timed += [
                (at, lambda: os.kill(proc.pid, signal.SIGSTOP)),
                (at + settings.pause, lambda: os.kill(proc.pid, signal.SIGCONT)),
            ]
            result["server_paused"] = {"at": at, "seconds": settings.pause}
        room.start()
        ended = room.loop(settings.duration, settings.drain, settings.quiet)
        end = time.monotonic()
        cpu = loadgen.process_cpu(proc.pid) - cpu_before
        own = time.process_time() - own_before
        alive = loadgen.process_alive(proc.pid)
        peak = loadgen.peak_rss(proc.pid) if alive else 0
        result["ended"] = ended
        result.update(
            account(room, settings, end - room.t0),
            server={
                "pid": proc.pid,
                "alive": alive,
                "cpu_seconds": cpu,
                "cpu_share": cpu / max(end - room.t0, 1e-9),
                "rss_start": rss_start,
                "peak_rss": peak,
                "peak_rss_source": "VmHWM reset when the senders started"
                if exact_peak
                else "VmHWM since the server started",
            },
            loadgen={
                "cpu_share": own / max(end - room.t0, 1e-9),
                "turns": room.turns,
                "longest_turn_ms": room.turn_max * 1000,
                "turns_over_ms": {str(k): v for k, v in room.turns_over.items()},
            },
        )
    except (RuntimeError, OSError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        if room is not None:
            room.close_all()
        if settings.pause > 0 and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        stop(proc)
    text = log.read_text("utf-8", "replace") if log.exists() else ""
    peers = parse_server_log(text)
    for entry in result.get("readers", []) + result.get("non_readers", []):
        found = peers.get(f"127.0.0.1:{entry['port']}", PeerLog())
        entry["nick"] = found.nick
        entry["server_reason"] = found.reason
        entry["server_lost"] = found.lost
        entry["server_other"] = found.other[:3]
    if "lost" not in result:
        result.update(lost=None, readers_cut=0, non_readers=[], server={"alive": False})
    return result


def account(room: PacedRoom, settings: Settings, wall: float) -> dict[str, Any]:
    """The per-run figures from a finished L{PacedRoom}."""
    tally = room.tally
    total = settings.lines_per_sender
    clients = settings.clients
    expected = total * clients * clients
    received = sum(tally.received(r) for r in range(clients))
    written = [room.written(s) for s in range(clients)]
    readers = []
    for r in range(clients):
        readers.append(
            {
                "index": r,
                "port": room.ports[r],
                "cut": room.closed_at[r] is not None,
                "cut_at": room.closed_at[r],
                "how": room.how[r],
                "received": tally.received(r),
                "lost": total * clients - tally.received(r),
                "skipped": tally.skipped[r],
                "out_of_order": tally.disorder[r],
                "errors": tally.errors[r],
            }
        )
    non_readers = []
    for k in range(room.stalled):
        index = clients + k
        cut_at = room.closed_at[index]
        non_readers.append(
            {
                "index": index,
                "port": room.ports[index],
                "cut": cut_at is not None,
                "cut_after": cut_at,
                "cut_within_bound": cut_at is not None
                and cut_at <= settings.cut_within,
                "how": room.how[index],
            }
        )
    ordered = sorted(tally.latencies)
    complete = received == expected
    return {
        "settings": {
            "clients": clients,
            "stalled": room.stalled,
            "rate": settings.rate,
            "line_size": settings.line_size,
            "duration": settings.duration,
            "read": str(settings.read),
            "turn_ms": settings.turn_ms,
        },
        "lines_scheduled": total * clients,
        "lines_sent": sum(written),
        "lines_not_sent": total * clients - sum(written),
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "skipped_while_open": sum(tally.skipped),
        "out_of_order": sum(tally.disorder),
        "readers_cut": sum(1 for r in readers if r["cut"]),
        "readers": readers,
        "non_readers": non_readers,
        "quit_notices_seen": [
            {"nick": nick, "reason": reason, "at": at}
            for (nick, reason), at in sorted(tally.quits.items(), key=lambda kv: kv[1])
        ],
        "complete": complete,
        "deliver_seconds": room.last_delivery - room.t0,
        "wall_seconds": wall,
        "latency_p50_ms": percentile(ordered, 0.5),
        "latency_p99_ms": percentile(ordered, 0.99),
        "latency_max_ms": ordered[-1] / 1e6 if ordered else None,
    }


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def report_run(run: dict[str, Any], runs: int) -> list[str]:
    head = f"{run['scenario']} run {run['run']}/{runs}"
    if run.get("error"):
        return [f"{head}: ERROR {run['error']}"]
    g = run["loadgen"]
    stalled = g["longest_turn_ms"] > STALL_MS
    out = [
        f"{head} (load average {run['loadavg'][0]:.2f}): "
        f"{'PASS' if passed(run) else 'FAIL'}"
        + (
            f" (the load generator stalled: {g['longest_turn_ms']:.0f} ms without "
            "reading or sending)"
            if stalled
            else ""
        ),
        f"  deliveries to reading clients: expected {run['expected']:,}, "
        f"received {run['received']:,}, lost {run['lost']:,} "
        f"({run['lost'] / max(run['expected'], 1):.1%})",
        f"  lines: scheduled {run['lines_scheduled']:,}, sent "
        f"{run['lines_sent']:,}, not sent {run['lines_not_sent']:,} (sender cut, "
        "or still held back at the end); "
        f"missing on an open connection {run['skipped_while_open']:,}, "
        f"out of order {run['out_of_order']:,}",
        f"  reading clients cut: {run['readers_cut']} of {len(run['readers'])}",
    ]
    for r in run["readers"]:
        if r["cut"]:
            out.append(
                f"    {r['nick'] or '?'} (:{r['port']}) cut {r['cut_at']:.2f} s in, "
                f"{r['how']}; got {r['received']:,}, lost {r['lost']:,}; "
                f"server: {r['server_reason'] or r['server_lost'] or '-'}"
            )
    for n in run["non_readers"]:
        if n["cut"]:
            out.append(
                f"  non-reader {n['nick'] or '?'} (:{n['port']}): cut "
                f"{n['cut_after']:.2f} s after it stopped reading ({n['how']}); "
                f"server: {n['server_reason'] or n['server_lost'] or '-'}"
            )
        else:
            out.append(
                f"  non-reader {n['nick'] or '?'} (:{n['port']}): NOT cut "
                f"({run['wall_seconds']:.1f} s after it stopped reading)"
            )
    s = run["server"]
    out.append(
        f"  server: peak RSS {s['peak_rss'] / 2**20:.1f} MiB (VmHWM; "
        f"{s['rss_start'] / 2**20:.1f} at the start), CPU {s['cpu_seconds']:.2f} s "
        f"= {s['cpu_share']:.0%} of a core, "
        f"{'alive' if s['alive'] else 'DIED'}"
    )
    done = (
        f"everything delivered {run['deliver_seconds']:.2f} s after the start"
        if run["complete"]
        else f"incomplete; last delivery {run['deliver_seconds']:.2f} s after the start"
    )
    out.append(
        f"  delivery: {done} (senders ran {run['settings']['duration']:g} s; "
        f"stopped: {run['ended']}); latency from due time p50 "
        f"{fmt(run['latency_p50_ms'], '.1f', ' ms')}, p99 "
        f"{fmt(run['latency_p99_ms'], '.1f', ' ms')}, max "
        f"{fmt(run['latency_max_ms'], '.0f', ' ms')}"
    )
    out.append(
        f"  load generator: {g['cpu_share']:.0%} of its core; longest loop turn "
        f"{g['longest_turn_ms']:.1f} ms, turns over 2/5/10 ms: "
        f"{g['turns_over_ms']['2']}/{g['turns_over_ms']['5']}/"
        f"{g['turns_over_ms']['10']} of {g['turns']:,}"
    )
    return out


def positive(kind: type[float] | type[int]) -> Any:
    def convert(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be > 0")
        return value

    return convert


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Sustained load on one room of twisted-chat (issue 7).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  {s.name}: {s.what}" for s in SCENARIOS.values()),
    )
    p.add_argument(
        "scenarios",
        nargs="+",
        choices=sorted(SCENARIOS),
        metavar="SCENARIO",
        help="one or more of: " + ", ".join(SCENARIOS),
    )
    p.add_argument(
        "--runs",
        type=positive(int),
        default=1,
        help="runs of each scenario, each on a fresh server (1)",
    )
    p.add_argument(
        "--duration",
        type=positive(float),
        default=10.0,
        help="seconds the senders send (10)",
    )
    p.add_argument(
        "--rate",
        type=positive(float),
        default=2000.0,
        help="lines a second per sender (2000)",
    )
    p.add_argument(
        "--line-size",
        type=int,
        default=200,
        help="bytes per line sent, newline included (200)",
    )
    p.add_argument(
        "--clients",
        type=positive(int),
        default=10,
        help="reading clients, each also a sender (10)",
    )
    p.add_argument(
        "--read",
        type=parse_read,
        help="continuous, or SIZE/PERIOD[:spread|:same] such as 256K/100ms:same "
        "(default: the scenario's)",
    )
    p.add_argument(
        "--turn-ms",
        type=positive(float),
        default=1.0,
        help="the load generator's turn: senders write what is due and every "
        "readable client reads once per turn (1 ms)",
    )
    p.add_argument(
        "--pause-server",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop the server (SIGSTOP) this long once, as a busy host or a "
        "long GC would; off by default",
    )
    p.add_argument(
        "--pause-at",
        type=float,
        metavar="SECONDS",
        help="when to pause it, after the senders start (half the duration)",
    )
    p.add_argument(
        "--drain-timeout",
        type=positive(float),
        default=60.0,
        help="seconds to wait for delayed lines after the senders stop (60)",
    )
    p.add_argument(
        "--quiet",
        type=positive(float),
        default=2.0,
        help="stop waiting once nothing arrived for this long (2)",
    )
    p.add_argument(
        "--cut-within",
        type=positive(float),
        default=5.0,
        help="a non-reader must be cut this soon after it stops reading (5)",
    )
    p.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="one more server option (repeat), "
        "e.g. --server-arg=--max-send-queue=1048576",
    )
    p.add_argument(
        "--server-pythonpath",
        help="run the server's code from this directory, e.g. a `git archive` "
        "of another commit",
    )
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="let server and load generator share the cores (as an unpinned "
        "deployment would)",
    )
    p.add_argument(
        "--out",
        default=str(HERE / "results" / "sustained"),
        help="results folder (benchmarks/results/sustained)",
    )
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = parser().parse_args(None if argv is None else list(argv))
    if not 48 <= args.line_size <= 4096:
        raise SystemExit("--line-size must be between 48 and 4096 bytes")
    server_core, own_core = (None, None) if args.no_pin else cores()
    if own_core is not None:
        os.sched_setaffinity(0, {own_core})
    elif not args.no_pin:
        print("WARNING: fewer than 2 cores: nothing is pinned")
    loadgen.raise_nofile()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results_path = out / f"sustained-{stamp}.jsonl"
    # The server runs in the logs folder: "python -c" puts its working
    # directory first on sys.path, ahead of PYTHONPATH, and a checkout there
    # would shadow --server-pythonpath.
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    code = server_code(args.server_pythonpath, logs)
    fingerprint = source_fingerprint(code)
    print(
        f"server code: {code / 'twisted_chat'} (source digest {fingerprint}); "
        f"server on core {server_core}, load generator on core {own_core}"
    )
    options = " ".join((*SERVER_OPTIONS, *args.server_arg))
    print(
        "server: twistd -n --pidfile= --logfile=LOG chat --port "
        f"tcp:PORT:interface=127.0.0.1 {options}"
    )
    summaries = []
    failed = False
    with open(results_path, "w") as results:
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            settings = Settings(
                scenario=scenario,
                clients=args.clients,
                stalled=scenario.stalled,
                rate=args.rate,
                line_size=args.line_size,
                duration=args.duration,
                read=args.read or parse_read(scenario.read),
                turn_ms=args.turn_ms,
                pause=args.pause_server,
                pause_at=args.pause_at
                if args.pause_at is not None
                else args.duration / 2,
                drain=args.drain_timeout,
                quiet=args.quiet,
                cut_within=args.cut_within,
                server_args=list(args.server_arg),
                pythonpath=args.server_pythonpath,
                server_core=server_core,
                out=out,
            )
            print(f"\n== {name}: {settings.describe()}", flush=True)
            runs = []
            for number in range(1, args.runs + 1):
                run = run_once(settings, number, stamp)
                run["server_code"] = str(code)
                run["server_source_digest"] = fingerprint
                run["server_args"] = list(args.server_arg)
                results.write(json.dumps(run) + "\n")
                results.flush()
                runs.append(run)
                failed |= not passed(run)
                print("\n".join(report_run(run, args.runs)), flush=True)
            summaries.append(summary_line(name, runs))
    if source_fingerprint(code) != fingerprint:
        print(f"WARNING: {code / 'twisted_chat'} changed during the runs")
    print()
    for line in summaries:
        print("SUMMARY " + line)
    print(f"results: {results_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
