"""
Stress test: a real C{twistd chat} on loopback, well-behaved users, and
abusive ones at the same time.  Not part of the unit suite; run it by hand::

    python tools/stress.py [--duration 20] [--readers 20] [--talkers 6]

It starts C{twistd -n chat} with explicit limits on a free loopback port,
then, in this one process (non-blocking sockets and C{selectors}):

- connects the well-behaved users, each from its own loopback address
  (127.0.1.N), in two rooms: all of them read everything, and some of them
  (the talkers) send numbered lines of random length at a polite rate;
- C{slowpoke} never reads (its receive buffer is made small before it
  connects) while the traffic flows: it must not hold up anyone else, and
  the server must drop it once its send queue is full (the report also shows
  how much the server's kernel buffered for it before that);
- C{flooder} sends lines as fast as the socket takes them: it must be
  delayed with one notice, then disconnected for excess flood;
- C{garbage} sends invalid UTF-8, terminal escapes, NULs, bidi overrides,
  forged notices and lines far over the limit: each must be refused with an
  error, and nothing of it may reach anyone else;
- C{crowd} opens more connections from one address (127.0.0.2) than the
  per-IP limit allows: the extra ones must be refused with one line, and
  once one of its connections closes, a new one must be accepted.

After C{--duration} seconds the talkers stop, the readers get a few seconds
to receive what is in flight, and it reports: lines lost or reordered for
the well-behaved users (must be 0), control characters or foreign-room lines
they received (must be 0), the server's peak memory, and what each abuser
got.  The exit status is 1 if a line was lost or reordered, something unsafe
was delivered, or the server died; else 0.
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from attrs import define, field

# The limits the server runs with: every one is given explicitly.  The flood
# rate leaves room for the talkers' polite rate; the send queue is small so
# that the reader that never reads can be dropped within the run.
LIMITS = {
    "max-line-length": 4096,
    "flood-burst": 20,
    "flood-rate": 10,
    "flood-kick": 100,
    "max-send-queue": 64 * 1024,
    "max-clients": 200,
    "max-per-ip": 8,
    "idle-timeout": 0,
}

# What must never reach a user (see twisted_chat.shared.rules), written out here so
# that the check does not trust the code under test.
FORBIDDEN = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
TALK = re.compile(r"<(p\d+)> (p\d+) (\d+) x*\Z")
ROOM_MARK = re.compile(r"\[#[A-Za-z][\w-]*\] ")
AUTHORED = re.compile(r"(?:<[A-Za-z][\w-]*> |\* [A-Za-z][\w-]* |\*[A-Za-z][\w-]*\* )")
STARTING = re.compile(rb"starting on (\d+)")

ROOMS = ("lobby", "quiet")


def log(message: str) -> None:
    print(f"[stress] {message}", file=sys.stderr, flush=True)


@define(eq=False)
class Client:
    """One connection: what it sends, what it receives, how it ended."""

    name: str
    sock: socket.socket
    reads: bool = True
    connected: bool = False
    closed: bool = False
    how_closed: str = ""
    inbuf: bytes = b""
    outbuf: bytearray = field(factory=bytearray)
    lines: list[str] = field(factory=list)
    bad_bytes: int = 0
    # The lines that were not valid UTF-8, as decoded with U+FFFD.
    undecodable: list[str] = field(factory=list)
    # Called with each line; returns whether it consumed the line (which is
    # then not kept in lines).
    on_line: Callable[[Client, str], bool] | None = None

    def send(self, data: bytes) -> None:
        self.outbuf += data

    def line(self, text: str) -> None:
        self.send(text.encode("utf-8") + b"\n")

    def saw(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines)

    def renamed(self, nick: str) -> bool:
        """Whether the server has announced this client's new nickname."""
        return any(line.endswith(f" is now known as {nick}") for line in self.lines)


class Loop:
    """A minimal event loop over non-blocking client sockets."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.clients: list[Client] = []
        # Clients with nothing to do, which the selector cannot hold.
        self._idle: list[Client] = []
        # Called on every turn of the loop (for sampling).
        self.hooks: list[Callable[[], None]] = []

    def open(
        self,
        name: str,
        source: str,
        reads: bool = True,
        rcvbuf: int | None = None,
    ) -> Client:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so that the advertised window stays small.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        sock.setblocking(False)
        error = sock.connect_ex(("127.0.0.1", self.port))
        if error not in (0, errno.EINPROGRESS):
            raise OSError(error, os.strerror(error))
        client = Client(name, sock, reads=reads)
        self.clients.append(client)
        self.selector.register(sock, selectors.EVENT_WRITE, client)
        return client

    def close(self, client: Client, how: str) -> None:
        if client.closed:
            return
        client.closed = True
        client.how_closed = how
        self.selector.unregister(client.sock)
        client.sock.close()

    def _interest(self, client: Client) -> int:
        events = selectors.EVENT_READ if client.reads and client.connected else 0
        if client.outbuf or not client.connected:
            events |= selectors.EVENT_WRITE
        return events

    def _update(self, client: Client) -> None:
        if client.closed:
            return
        events = self._interest(client)
        key = self.selector.get_key(client.sock)
        if events == 0:
            self.selector.unregister(client.sock)
            self._idle.append(client)
        elif key.events != events:
            self.selector.modify(client.sock, events, client)

    def run(self, seconds: float, tick: Callable[[], bool] | None = None) -> None:
        """
        Run for C{seconds}, calling C{tick} about every 10 ms; stop early
        when it returns C{True}.
        """
        deadline = time.monotonic() + seconds
        while True:
            # Clients with nothing to do were unregistered; take back those
            # that now have something to send.
            for client in list(self._idle):
                if client.closed:
                    self._idle.remove(client)
                elif self._interest(client):
                    self._idle.remove(client)
                    self.selector.register(client.sock, self._interest(client), client)
            for client in self.clients:
                if not client.closed and client not in self._idle:
                    self._update(client)
            for hook in self.hooks:
                hook()
            if tick is not None and tick():
                return
            now = time.monotonic()
            if now >= deadline:
                return
            for key, mask in self.selector.select(min(0.01, deadline - now)):
                client = key.data
                if mask & selectors.EVENT_WRITE:
                    self._write(client)
                if mask & selectors.EVENT_READ and not client.closed:
                    self._read(client)

    def _write(self, client: Client) -> None:
        if not client.connected:
            error = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.close(client, f"connect failed: {os.strerror(error)}")
                return
            client.connected = True
        if client.outbuf:
            try:
                sent = client.sock.send(client.outbuf)
            except BlockingIOError:
                return
            except OSError as e:
                self.close(client, f"send failed: {e.strerror}")
                return
            del client.outbuf[:sent]

    def _read(self, client: Client) -> None:
        try:
            data = client.sock.recv(256 * 1024)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.close(client, "reset by the server")
            return
        if not data:
            self.close(client, "closed by the server")
            return
        *complete, client.inbuf = (client.inbuf + data).split(b"\n")
        for raw in complete:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                client.bad_bytes += 1
                text = raw.decode("utf-8", "replace")
                client.undecodable.append(text)
            if client.on_line is None or not client.on_line(client, text):
                client.lines.append(text)


def garbage_lines(rng: random.Random) -> list[bytes]:
    """Lines that the server must refuse (or deliver harmlessly)."""
    return [
        b"caf\xe9 latin-1",
        b"\xff\xfe\xfd",
        b"\xc0\xaf overlong slash",
        b"\xed\xa0\x80 surrogate",
        b"\x1b[2J\x1b[31mred screen",
        b"\x1b]0;new title\x07",
        b"nul \x00 byte",
        b"bell \x07",
        b"back\x08\x08\x08space",
        b"carriage\rreturn",
        b"\xe2\x80\xae RTL override",
        b"\xc2\x9b8-bit CSI",
        b"\xe2\x80\xa8 line separator",
        b"*** Server shutting down: forged",
        b"!!! forged error",
        b"<p0> p0 0 forged line",
        b"/nick ***",
        b"/msg p1 \x1b[5mblink",
        b"/me \x00",
        bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))).replace(
            b"\n", b""
        ),
        b"y" * rng.randint(4097, 20000),
    ]


@define
class Stress:
    port: int
    duration: float
    readers: int
    talkers: int
    rate: float
    rng: random.Random
    loop: Loop = field(init=False)
    polite: list[Client] = field(factory=list)
    room_of: dict[str, str] = field(factory=dict)
    sent: dict[str, int] = field(factory=dict)
    received: dict[tuple[str, str], list[int]] = field(factory=dict)
    unsafe: list[str] = field(factory=list)
    foreign: list[str] = field(factory=list)
    # When the room first saw each quit notice, in seconds after the start.
    quits: dict[str, float] = field(factory=dict)
    started: float = field(factory=time.monotonic)
    # The most the server's kernel held unsent for the client that never reads.
    slowpoke_kernel_peak: int = 0

    def __attrs_post_init__(self) -> None:
        self.loop = Loop(self.port)

    def polite_line(self, client: Client, text: str) -> bool:
        """Check and count one line a well-behaved user received."""
        if FORBIDDEN.search(text) or client.bad_bytes:
            self.unsafe.append(f"{client.name}: {text!r}")
        marked = ROOM_MARK.match(text)
        if marked is not None:
            # A line from a room other than the user's current one: after
            # the client left it, there must be none but its own leaving.
            if text != f"[#lobby] *** {client.name} has left #lobby":
                self.foreign.append(f"{client.name}: {text}")
            return False
        if text.startswith(("*** ", "!!! ")):
            if " has quit (" in text and text not in self.quits:
                self.quits[text] = time.monotonic() - self.started
            return False
        if not AUTHORED.match(text):
            self.unsafe.append(f"{client.name}: unattributed {text!r}")
        talk = TALK.match(text)
        if talk is None:
            return False
        nick, first, seq = talk.group(1), talk.group(2), int(talk.group(3))
        if nick != first:
            self.unsafe.append(f"{client.name}: forged {text!r}")
        elif self.room_of.get(nick) != self.room_of[client.name]:
            room = self.room_of[client.name]
            self.foreign.append(f"{client.name} in #{room}: {text}")
        else:
            self.received.setdefault((client.name, nick), []).append(seq)
            return True
        return False

    def wait(self, what: str, done: Callable[[], bool], seconds: float = 15) -> None:
        start = time.monotonic()
        self.loop.run(seconds, done)
        if not done():
            for client in self.loop.clients:
                log(
                    f"{client.name}: {client.how_closed or 'open'}, {client.lines[-3:]}"
                )
            raise SystemExit(f"stress: {what}: not done within {seconds} s")
        log(f"{what} ({time.monotonic() - start:.1f} s)")

    def setup(self) -> None:
        loop = self.loop
        for i in range(self.readers):
            name = f"p{i}"
            client = loop.open(name, f"127.0.1.{i + 1}")
            client.on_line = self.polite_line
            room = ROOMS[i % 2]
            self.room_of[name] = room
            client.line(f"/nick {name}")
            if room != "lobby":
                # Moves: joins the room, then leaves the lobby (a user may
                # be in several rooms; these stay in one).
                client.line(f"/join {room}")
                client.line("/part lobby")
            self.polite.append(client)

        def ready() -> bool:
            for client in self.polite:
                room = self.room_of[client.name]
                if not client.renamed(client.name) or (
                    room != "lobby"
                    and not client.saw(f"[#lobby] *** {client.name} has left #lobby")
                ):
                    return False
            return True

        self.wait(f"{self.readers} well-behaved users connected", ready)

    def run(self) -> dict[str, Client | list[Client]]:
        loop, rng = self.loop, self.rng
        self.setup()
        slowpoke = loop.open("slowpoke", "127.0.2.1", reads=False, rcvbuf=4096)
        slowpoke.line("/nick slowpoke")
        flooder = loop.open("flooder", "127.0.2.2")
        flooder.line("/nick flooder")
        garbage = loop.open("garbage", "127.0.2.3")
        garbage.line("/nick garbage")
        per_ip = int(LIMITS["max-per-ip"])
        crowd = [loop.open(f"crowd{i}", "127.0.0.2") for i in range(per_ip + 4)]
        self.wait(
            "abusers connected",
            lambda: (
                flooder.renamed("flooder")
                and garbage.renamed("garbage")
                and all(c.lines or c.closed for c in crowd)
            ),
        )

        talkers = self.polite[: self.talkers]
        for talker in talkers:
            self.sent[talker.name] = 0
        start = self.started = time.monotonic()
        next_send = {t.name: start + rng.uniform(0, 1 / self.rate) for t in talkers}
        next_garbage = start
        bad = garbage_lines(rng)
        crowd_state = {"replaced": False}

        def tick() -> bool:
            now = time.monotonic()
            for talker in talkers:
                while now >= next_send[talker.name]:
                    seq = self.sent[talker.name]
                    self.sent[talker.name] = seq + 1
                    talker.line(f"{talker.name} {seq} " + "x" * rng.randint(0, 4000))
                    next_send[talker.name] += 1 / self.rate
            if not flooder.closed and len(flooder.outbuf) < 64 * 1024:
                flooder.send(b"".join(b"flood %d\n" % i for i in range(200)))
            nonlocal next_garbage
            if now >= next_garbage and not garbage.closed:
                garbage.send(rng.choice(bad) + rng.choice([b"\n", b"\r\n"]))
                next_garbage = now + 0.3
            if not crowd_state["replaced"] and now - start > 2:
                # One of the crowd leaves; a new one must be let in.
                accepted = [c for c in crowd if c.saw("*** Welcome")]
                if accepted:
                    loop.close(accepted[0], "closed by the client")
                    crowd.append(loop.open(f"crowd{len(crowd)}", "127.0.0.2"))
                crowd_state["replaced"] = True
            return False

        sampled = [0.0]

        def sample_slowpoke() -> None:
            now = time.monotonic()
            if now - sampled[0] < 0.1:
                return
            sampled[0] = now
            queued = kernel_send_queue(self.port, slowpoke)
            if queued is not None:
                self.slowpoke_kernel_peak = max(self.slowpoke_kernel_peak, queued)

        loop.hooks.append(sample_slowpoke)
        log(f"traffic for {self.duration:g} s")
        loop.run(self.duration, tick)
        loop.hooks.remove(sample_slowpoke)

        def delivered() -> bool:
            return all(
                len(self.received.get((reader.name, talker.name), []))
                >= self.sent[talker.name]
                for reader in self.polite
                for talker in talkers
                if self.room_of[reader.name] == self.room_of[talker.name]
                and not reader.closed
            )

        start = time.monotonic()
        loop.run(10, delivered)
        log(f"in-flight lines delivered ({time.monotonic() - start:.1f} s)")
        # What the server did to the client that never reads: read it now.
        if not slowpoke.closed:
            slowpoke.reads = True
            loop.run(2, lambda: slowpoke.closed)
        return {
            "slowpoke": slowpoke,
            "flooder": flooder,
            "garbage": garbage,
            "crowd": crowd,
        }

    def lost(self) -> tuple[int, int, int]:
        """Lines lost, (receiver, talker) pairs out of order, lines expected."""
        lost = disorder = expected = 0
        for reader in self.polite:
            for talker, count in self.sent.items():
                if self.room_of[reader.name] != self.room_of[talker]:
                    continue
                seqs = self.received.get((reader.name, talker), [])
                expected += count
                lost += count - len(set(seqs) & set(range(count)))
                if seqs != sorted(set(seqs)):
                    disorder += 1
        return lost, disorder, expected


def kernel_send_queue(server_port: int, client: Client) -> int | None:
    """
    How many bytes the server's kernel holds unsent for C{client}'s
    connection (its Send-Q, from C{/proc/net/tcp}), or L{None}.
    """
    if client.closed:
        return None
    host, port = client.sock.getsockname()
    local = f"0100007F:{server_port:04X}"
    remote = (
        "".join(f"{int(b):02X}" for b in reversed(host.split("."))) + f":{port:04X}"
    )
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for row in table:
        fields = row.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[0], 16)
    return None


def free_source(address: str) -> bool:
    try:
        with socket.socket() as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


class ServerProcess:
    """The real server: C{twistd -n chat} in a temporary directory."""

    def __init__(self, directory: str) -> None:
        self.log_path = Path(directory) / "twistd.log"
        options: list[str] = []
        for name, value in LIMITS.items():
            options += [f"--{name}", str(value)]
        # "python -m twisted.scripts.twistd" would do nothing: that module
        # has no main block.  This is what the twistd script runs.
        self.argv = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "chat",
            "--port",
            "tcp:0:interface=127.0.0.1",
            *options,
        ]
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=directory, stdout=out, stderr=subprocess.STDOUT
            )
        self.rss_peak = 0
        self._sampled = 0.0

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def wait_port(self, seconds: float = 20) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = STARTING.search(self.log_path.read_bytes())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"stress: the server did not start:\n{self.log_text()}")

    def sample(self) -> None:
        """Note the server's memory now (at most every 100 ms)."""
        now = time.monotonic()
        if now - self._sampled >= 0.1:
            self._sampled = now
            self.rss_peak = max(self.rss_peak, self.status("VmRSS"))

    def status(self, field_name: str) -> int:
        """A C{/proc/PID/status} value in KiB (0 once the process is gone)."""
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) if match else 0

    def stop(self, seconds: float = 10) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def describe(client: Client, interesting: Callable[[str], bool]) -> list[str]:
    shown = [line for line in client.lines if interesting(line)]
    out = [f"    got: {line[:100]}" for line in shown[:6]]
    if len(shown) > 6:
        out.append(f"    ... and {len(shown) - 6} more such lines")
    out.append(f"    connection: {client.how_closed or 'still open'}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds")
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--talkers", type=int, default=6)
    parser.add_argument(
        "--rate", type=float, default=4.0, help="lines a second per talker"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if not 0 < args.talkers <= args.readers <= 250:
        parser.error("need 0 < talkers <= readers <= 250")
    if args.rate >= float(LIMITS["flood-rate"]):
        parser.error("talkers must stay under the flood rate")
    for source in ("127.0.0.2", "127.0.1.1", "127.0.2.1"):
        if not free_source(source):
            raise SystemExit(f"stress: cannot bind to {source} (loopback /8 needed)")
    seed = args.seed if args.seed is not None else random.randrange(2**32)

    with tempfile.TemporaryDirectory(prefix="chat-stress-") as directory:
        server = ServerProcess(directory)
        try:
            port = server.wait_port()
            log(f"server pid {server.process.pid} on 127.0.0.1:{port}, seed {seed}")
            rss_start = server.status("VmRSS")
            stress = Stress(
                port,
                args.duration,
                args.readers,
                args.talkers,
                args.rate,
                random.Random(seed),
            )
            stress.loop.hooks.append(server.sample)
            abusers = stress.run()
            alive = server.process.poll() is None
            hwm = server.status("VmHWM")
        finally:
            code = server.stop()
        log_text = server.log_text()

    lost, disorder, expected = stress.lost()
    slowpoke = abusers["slowpoke"]
    flooder = abusers["flooder"]
    garbage = abusers["garbage"]
    crowd = abusers["crowd"]
    assert isinstance(slowpoke, Client) and isinstance(flooder, Client)
    assert isinstance(garbage, Client) and isinstance(crowd, list)
    lobby = [c for c in stress.polite if stress.room_of[c.name] == "lobby"]
    seen_by_lobby = lobby[0].lines if lobby else []

    report = [
        f"twisted-chat stress test: {args.duration:g} s, {args.readers} "
        f"well-behaved users in #lobby and #quiet, {args.talkers} talking at "
        f"{args.rate:g} lines/s (seed {seed})",
        "limits: " + " ".join(f"--{k} {v}" for k, v in LIMITS.items()),
        "",
        f"lines sent by talkers:        {sum(stress.sent.values())}",
        f"deliveries expected:          {expected}",
        f"lines lost:                   {lost}",
        f"receivers out of order:       {disorder}",
        f"unsafe lines delivered:       {len(stress.unsafe)}",
        f"lines from another room:      {len(stress.foreign)}",
        f"well-behaved users dropped:   {sum(1 for c in stress.polite if c.closed)}",
        f"server RSS:                   {rss_start / 1024:.1f} MiB at start, "
        f"peak {max(hwm, server.rss_peak) / 1024:.1f} MiB",
        f"server:                       "
        f"{'alive' if alive else 'DIED'} at the end; after SIGTERM, "
        + (f"ended by signal {-code}" if code and code < 0 else f"exit status {code}"),
        "",
        "slowpoke (never reads, SO_RCVBUF 4096):",
        *(
            f"    room saw, {at:.1f} s into the run: {line}"
            for line, at in stress.quits.items()
            if line.startswith("*** slowpoke has quit")
        ),
        f"    bytes the server's kernel held for it (Send-Q), at most: "
        f"{stress.slowpoke_kernel_peak / 1024:.0f} KiB",
        f"    connection: {slowpoke.how_closed or 'still open'}",
        "flooder (sends as fast as it can):",
        f"    lines of it delivered to the room: "
        f"{sum(1 for line in seen_by_lobby if line.startswith('<flooder> '))}",
        *describe(
            flooder, lambda line: line.startswith(("*** You are sending", "!!! "))
        ),
        *(
            f"    room saw, {at:.1f} s into the run: {line}"
            for line, at in stress.quits.items()
            if line.startswith("*** flooder has quit")
        ),
        "garbage (bad bytes, escapes, forgeries, overlong lines):",
        f"    errors it got: "
        f"{sum(1 for line in garbage.lines if line.startswith('!!! '))}",
        *(
            f"    {count:4d} x {error}"
            for error, count in sorted(
                count_errors(garbage.lines).items(), key=lambda kv: -kv[1]
            )
        ),
        f"    lines of it delivered to the room: "
        f"{garbage_delivered(seen_by_lobby, lobby[0].undecodable if lobby else [])}",
        f"    connection: {garbage.how_closed or 'still open'}",
        f"crowd ({len(crowd)} connections from 127.0.0.2, "
        f"--max-per-ip {LIMITS['max-per-ip']}):",
        f"    accepted: {sum(1 for c in crowd if c.saw('*** Welcome'))} "
        f"(the last one after another left: "
        f"{'accepted' if crowd[-1].saw('*** Welcome') else 'NOT accepted'})",
        f"    refused:  {sum(1 for c in crowd if c.saw('!!! '))}, each with one "
        "line and closed:",
        *sorted(
            {f"      {c.lines!r} -> {c.how_closed}" for c in crowd if c.saw("!!! ")}
        ),
        "",
        "server log, lines about the abusers:",
        *[
            "    " + line.split("] ", 1)[-1][:110]
            for line in log_text.splitlines()
            if re.search(r"slowpoke|flooder|garbage \(|refused 127|not reading", line)
            and "refused input" not in line
        ][:12],
    ]
    for problem in (stress.unsafe + stress.foreign)[:10]:
        report.append(f"PROBLEM: {problem}")
    failed = bool(lost or disorder or stress.unsafe or stress.foreign or not alive)
    report.append("")
    report.append("RESULT: " + ("FAIL" if failed else "PASS"))
    print("\n".join(report))
    return 1 if failed else 0


def garbage_delivered(lines: list[str], undecodable: list[str]) -> str:
    """
    How many of C{garbage}'s lines a user received, and what was wrong with
    them: control characters (the server's rule, written out in
    L{FORBIDDEN}) or bytes that were not UTF-8 (C{undecodable}).
    """
    mine = [line for line in lines if line.startswith("<garbage> ")]
    if not mine:
        return "0"
    bad_text = set(undecodable)
    control = sum(1 for line in mine if FORBIDDEN.search(line))
    invalid = sum(1 for line in mine if line in bad_text)
    if not control and not invalid:
        return f"{len(mine)} (none with control characters or invalid UTF-8)"
    found = []
    if control:
        found.append(f"{control} with control characters")
    if invalid:
        found.append(f"{invalid} not valid UTF-8")
    return f"{len(mine)} ({', '.join(found)})"


def count_errors(lines: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        if line.startswith("!!! "):
            counts[line[4:80]] = counts.get(line[4:80], 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
