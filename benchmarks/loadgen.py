"""
The load generator: many chat clients in one process, on raw non-blocking
sockets and epoll, talking to a chat server on loopback.

Two modes:

- C{fanout}: open N connections, wait until the server is quiet (the join
  storm has been delivered and read), then have S of them send M lines each,
  either as fast as the server takes them (each sender keeps at most
  C{--window} lines that the observer client has not yet received) or at a
  fixed total rate.  Every client reads everything; payload lines are
  C{B|sender|seq|t_ns|} and are counted per (receiver, sender) with a check
  of sequence order.  Reports deliveries per second, lines lost, latency
  percentiles, the server's CPU time per delivered line (from
  C{/proc/PID/stat}) and its RSS before, at its peak during (C{VmHWM}, reset
  through C{/proc/PID/clear_refs} before the burst) and after the burst.

  With C{--irc-port}, some or all clients (C{--irc all|half}) are IRC
  clients instead: each negotiates C{echo-message} (so that it gets its own
  lines back, as line-protocol clients do), registers (NICK, USER), joins
  C{#lobby} and counts as open once the server has sent the end of the
  channel's names (366); it sends C{PRIVMSG #lobby :B|sender|seq|t_ns|~}.

- C{idle}: open connections in steps (0, 1000, ...), wait after each step
  until the server is quiet and read its RSS (from C{/proc/PID/statm}).

It prints one JSON object on stdout; progress goes to stderr.  Run by
C{benchmarks/run.py}, or by hand::

    python benchmarks/loadgen.py fanout --port 10001 --server-pid PID \\
        --clients 100 --senders 10 --lines 2000
"""

from __future__ import annotations

import argparse
import array
import errno
import json
import os
import re
import resource
import select
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

PAYLOAD = re.compile(rb"B\|(\d+)\|(\d+)\|(\d+)\|x*~\r?\n")
MARK = b"~"  # once per payload line, in no line a line-protocol server writes
# IRC prefixes carry a "~" too (nick!~user@host, no ident): IRC clients count
# the payload's end with its CR LF instead, across recv boundaries.
IRC_MARK = b"~\r\n"
IRC_CHANNEL = "#lobby"
IRC_JOINED = b" 366 "  # RPL_ENDOFNAMES: the JOIN is complete
IRC_REFUSALS = (b" 404 ", b" 417 ", b"\nERROR ")  # cannot send, too long, closing
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
RECV_SIZE = 256 * 1024
CONNECTING, OPEN, CLOSED = 0, 1, 2
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_ERR = select.EPOLLERR | select.EPOLLHUP


def log(message: str) -> None:
    print(f"[loadgen] {message}", file=sys.stderr, flush=True)


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one; return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads included."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def reset_peak_rss(pid: int) -> bool:
    """Reset a process's peak RSS (C{VmHWM}) to its current RSS, if allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss(pid: int) -> int:
    """The peak RSS (C{VmHWM}) of a process, in bytes."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def process_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")


def percentile(ordered: list[int], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, int(fraction * len(ordered)))
    return ordered[index] / 1e6


def irc_client(index: int, mode: str) -> bool:
    """Whether client C{index} speaks IRC: C{none}, C{all}, or C{half} (odd ones)."""
    if mode == "all":
        return True
    if mode == "half":
        return index % 2 == 1
    return False


def irc_nick(index: int) -> str:
    return f"b{index}"


def irc_hello(index: int) -> bytes:
    """What an IRC client sends on connecting: CAP, registration and JOIN."""
    nick = irc_nick(index)
    return (
        f"CAP REQ :echo-message\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"
        f"CAP END\r\nJOIN {IRC_CHANNEL}\r\n"
    ).encode()


def payload_line(sender: int, seq: int, t_ns: int, pad: bytes, irc: bool) -> bytes:
    """One payload line as C{sender} sends it, over IRC or the line protocol."""
    if irc:
        return b"PRIVMSG %s :B|%d|%d|%d|%s~\r\n" % (
            IRC_CHANNEL.encode(),
            sender,
            seq,
            t_ns,
            pad,
        )
    return b"B|%d|%d|%d|%s~\n" % (sender, seq, t_ns, pad)


def count_irc_marks(tail: bytes, data: bytes) -> int:
    """
    Payload ends (C{~ CR LF}) in C{data}, and the one that C{tail} (the
    previous chunk's last two bytes) and C{data} may share.
    """
    return data.count(IRC_MARK) + (tail + data[:2]).count(IRC_MARK)


def irc_refusals(data: bytes) -> int:
    return sum(data.count(code) for code in IRC_REFUSALS)


class LoadGen:
    """A set of client connections on one epoll, and the counts they make."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pid: int = args.server_pid
        self.epoll = select.epoll()
        self.socks: list[socket.socket | None] = []
        self.state: list[int] = []
        self.pending: list[bytes] = []
        self.outbuf: list[bytes] = []
        self.fd_index: dict[int, int] = {}
        self.rx_bytes = 0
        self.last_rx = time.monotonic()
        self.closed_by_server = 0
        self.connect_failed = 0
        self.connecting = 0
        self.greeted: list[bool] = []
        self.ungreeted = 0
        self.irc: list[bool] = []
        self.tail: list[bytes] = []
        self.errors_seen = 0
        # Payload accounting, set up by prepare_payload().
        self.parse = False
        self.senders = 0
        self.next_seq: list[int] = []
        self.received = 0
        self.out_of_order = 0
        self.latencies: array.array[int] = array.array("q")
        self.last_payload = 0.0
        self.observer = -1
        self.counts: list[int] = []
        self.probe: list[bool] = []
        self.rss_peak = 0
        self.last_sample = 0.0
        self.sampling = False
        self.addresses = self._source_addresses()

    # Connections

    def _source_addresses(self) -> list[str]:
        per = self.args.clients_per_source
        total = max(self.args.clients, *self.args.steps) if self.args.steps else 0
        total = max(total, self.args.clients)
        count = max(1, -(-total // per))
        if count == 1:
            return ["127.0.0.1"]
        return [f"127.0.0.{2 + i}" for i in range(count)]

    def _open(self) -> None:
        index = len(self.socks)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        source = self.addresses[index // self.args.clients_per_source]
        if source != "127.0.0.1":
            # Let connect() choose the port per 4-tuple, not bind().
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
        irc = irc_client(index, self.args.irc)
        self.socks.append(sock)
        self.state.append(CONNECTING)
        self.greeted.append(False)
        self.irc.append(irc)
        self.tail.append(b"")
        self.pending.append(b"")
        self.outbuf.append(b"")
        self.fd_index[sock.fileno()] = index
        port = self.args.irc_port if irc else self.args.port
        code = sock.connect_ex((self.args.host, port))
        if code not in (0, errno.EINPROGRESS):
            self._fail(index)
            return
        self.connecting += 1
        self.epoll.register(sock.fileno(), _OUT | _IN)

    def _fail(self, index: int) -> None:
        sock = self.socks[index]
        assert sock is not None
        self.connect_failed += 1
        self.state[index] = CLOSED
        self.socks[index] = None
        del self.fd_index[sock.fileno()]
        sock.close()

    def _connected(self, index: int) -> None:
        sock = self.socks[index]
        assert sock is not None
        self.connecting -= 1
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.epoll.unregister(sock.fileno())
            self._fail(index)
            return
        self.state[index] = OPEN
        # An open connection that is not yet greeted is waited for.
        if self.args.greeting or self.irc[index]:
            self.ungreeted += 1
        else:
            self.greeted[index] = True
        self.epoll.modify(sock.fileno(), _IN)
        if self.irc[index]:
            self.write(index, irc_hello(index))
            return
        template: str = self.args.on_connect
        if template:
            line = template.format(index=index, group=index // self.args.group_size)
            self.write(index, line.encode() + b"\n")

    def _close(self, index: int) -> None:
        sock = self.socks[index]
        if sock is None:
            return
        self.closed_by_server += 1
        if self.state[index] == OPEN and not self.greeted[index]:
            self.ungreeted -= 1
            self.greeted[index] = True
        self.state[index] = CLOSED
        self.socks[index] = None
        self.epoll.unregister(sock.fileno())
        del self.fd_index[sock.fileno()]
        sock.close()

    def connect(self, total: int, deadline: float) -> bool:
        """
        Open connections until C{total} exist, reading all the while.  At
        most C{--connect-concurrency} are in flight: connecting, or (with
        C{--greeting}) connected but not yet greeted by the server, so that
        a server's accept queue never overflows.
        """
        concurrency = self.args.connect_concurrency
        while len(self.socks) < total or self.connecting or self.ungreeted:
            while (
                len(self.socks) < total
                and self.connecting + self.ungreeted < concurrency
            ):
                self._open()
            self.poll(0.01)
            if time.monotonic() > deadline:
                return False
        return True

    # I/O

    def write(self, index: int, data: bytes) -> None:
        sock = self.socks[index]
        if sock is None:
            return
        if self.outbuf[index]:
            self.outbuf[index] += data
            return
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(index)
            return
        if sent < len(data):
            self.outbuf[index] = data[sent:]
            self.epoll.modify(sock.fileno(), _IN | _OUT)

    def _flush(self, index: int) -> None:
        sock = self.socks[index]
        assert sock is not None
        data = self.outbuf[index]
        try:
            sent = sock.send(data)
        except BlockingIOError:
            return
        except OSError:
            self._close(index)
            return
        self.outbuf[index] = data[sent:]
        if not self.outbuf[index]:
            self.epoll.modify(sock.fileno(), _IN)

    def poll(self, timeout: float) -> None:
        """Wait up to C{timeout} seconds for events and handle them."""
        events = self.epoll.poll(timeout)
        if events:
            if self.parse:
                self._run_events(events)
            else:
                now_ns = time.monotonic_ns()
                for fd, event in events:
                    self._event(fd, event, now_ns)
            self.last_rx = time.monotonic()
        self._sample()

    def _run_events(self, events: list[tuple[int, int]]) -> None:
        """
        The hot path while lines fly: a client that only counts does one
        C{recv} and one C{bytes.count} per event; the rest goes the long way.
        """
        now_ns = time.monotonic_ns()
        fd_index = self.fd_index
        socks = self.socks
        probe = self.probe
        counts = self.counts
        received = 0
        refused = 0
        irc = self.irc
        tail = self.tail
        for fd, event in events:
            index = fd_index.get(fd, -1)
            if event != _IN or index < 0 or probe[index]:
                self._event(fd, event, now_ns)
                continue
            sock = socks[index]
            try:
                data = sock.recv(RECV_SIZE)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError:
                self._close(index)
                continue
            if not data:
                self._close(index)
                continue
            if irc[index]:
                found = count_irc_marks(tail[index], data)
                tail[index] = data[-2:]
                refused += irc_refusals(data)
            else:
                found = data.count(MARK)
                refused += data.count(b"!!! ")
            counts[index] += found
            received += found
        self.errors_seen += refused
        if received:
            self.received += received
            self.last_payload = time.monotonic()

    def _event(self, fd: int, event: int, now_ns: int) -> None:
        index = self.fd_index.get(fd)
        if index is None:
            return
        if self.state[index] == CONNECTING:
            self._connected(index)
            if self.state[index] != OPEN or not event & (_IN | _ERR):
                return
        if event & (_IN | _ERR):
            sock = self.socks[index]
            assert sock is not None
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self._close(index)
                return
            if not data:
                self._close(index)
                return
            self.rx_bytes += len(data)
            if not self.greeted[index]:
                self._greet(index, data)
            if self.parse:
                if self.probe[index]:
                    self._payload(index, data, now_ns)
                elif self.irc[index]:
                    found = count_irc_marks(self.tail[index], data)
                    self.tail[index] = data[-2:]
                    self.counts[index] += found
                    self.received += found
                    self.errors_seen += irc_refusals(data)
                    if found:
                        self.last_payload = time.monotonic()
                else:
                    found = data.count(MARK)
                    self.counts[index] += found
                    self.received += found
                    self.errors_seen += data.count(b"!!! ")
        if event & _OUT and self.outbuf[index]:
            self._flush(index)

    def _greet(self, index: int, data: bytes) -> None:
        """
        A line-protocol client is greeted by its first bytes; an IRC client
        once its JOIN is complete (366, which may straddle two reads).
        """
        if self.irc[index]:
            seen = self.pending[index][-8:] + data
            if IRC_JOINED not in seen:
                self.pending[index] = seen[-8:]
                return
            self.pending[index] = b""
        self.greeted[index] = True
        self.ungreeted -= 1

    def _sample(self) -> None:
        if not self.sampling:
            return
        now = time.monotonic()
        if now - self.last_sample >= 0.02:
            self.last_sample = now
            rss = process_rss(self.pid)
            if rss > self.rss_peak:
                self.rss_peak = rss

    def _payload(self, index: int, data: bytes, now_ns: int) -> None:
        pending = self.pending[index]
        if pending:
            data = pending + data
        cut = data.rfind(b"\n") + 1
        self.pending[index] = data[cut:]
        if not cut:
            return
        if self.irc[index]:
            self.errors_seen += irc_refusals(data[:cut])
        else:
            self.errors_seen += data.count(b"!!! ", 0, cut)
        found = PAYLOAD.findall(data, 0, cut)
        if not found:
            return
        next_seq = self.next_seq
        base = index * self.senders
        bad = 0
        append = self.latencies.append
        for sender, seq, sent_ns in found:
            key = base + int(sender)
            number = int(seq)
            if number != next_seq[key]:
                bad += 1
            next_seq[key] = number + 1
            append(now_ns - int(sent_ns))
        self.counts[index] += len(found)
        self.received += len(found)
        self.out_of_order += bad
        self.last_payload = time.monotonic()

    # Phases

    def settle(self, quiet: float, limit: float) -> tuple[bool, float]:
        """
        Read until nothing has arrived for C{quiet} seconds and the server
        used (almost) no CPU meanwhile; give up after C{limit} seconds.
        """
        start = time.monotonic()
        mark = start
        mark_rx = self.rx_bytes
        mark_cpu = process_cpu(self.pid)
        while True:
            self.poll(0.05)
            now = time.monotonic()
            if self.rx_bytes != mark_rx:
                mark, mark_rx, mark_cpu = now, self.rx_bytes, process_cpu(self.pid)
            elif now - mark >= quiet:
                cpu = process_cpu(self.pid)
                if cpu - mark_cpu <= 0.02:
                    return True, now - start
                mark, mark_cpu = now, cpu
            if now - start > limit:
                return False, now - start

    def prepare_payload(self, senders: int, clients: int, probes: int) -> None:
        """
        Count payload lines and refusals (C{!!!} lines) on every client;
        parse payload lines fully (order and latency) on C{probes} clients
        spread over the joining order, always including the first and the
        last client, which observes the senders' windows.
        """
        self.senders = senders
        self.next_seq = [0] * (senders * clients)
        self.pending = [b""] * clients
        self.tail = [b""] * clients
        self.counts = [0] * clients
        self.observer = clients - 1
        self.probe = [False] * clients
        probes = max(2, min(probes, clients))
        for k in range(probes):
            self.probe[round(k * (clients - 1) / (probes - 1))] = True
        self.parse = True


def fanout(args: argparse.Namespace) -> dict[str, Any]:
    gen = LoadGen(args)
    clients: int = args.clients
    senders: int = args.senders
    lines: int = args.lines
    if not 0 < senders < clients:
        raise SystemExit("need 0 < senders < clients (the last client observes)")
    result: dict[str, Any] = {
        "mode": "fanout",
        "clients": clients,
        "senders": senders,
        "lines_per_sender": lines,
        "rate": args.rate,
        "window": args.window,
        "echo_to_sender": args.echo,
        "irc": args.irc,
    }
    if args.irc != "none" and not args.irc_port:
        raise SystemExit("--irc needs --irc-port")
    start = time.monotonic()
    deadline = start + args.timeout
    rss_empty = process_rss(gen.pid)
    if not gen.connect(clients, deadline):
        result["error"] = "timed out connecting"
    connect_time = time.monotonic() - start
    settled, settle_time = gen.settle(args.quiet, max(1.0, deadline - time.monotonic()))
    log(
        f"{clients - gen.connect_failed} connected in {connect_time:.2f}s, "
        f"settled={settled} after {settle_time:.2f}s"
    )
    result.update(
        connect_seconds=connect_time,
        settle_seconds=settle_time,
        settled=settled,
        rss_no_clients=rss_empty,
    )
    if gen.connect_failed or gen.closed_by_server:
        result.setdefault("error", "connections refused or closed before the run")
    gen.prepare_payload(senders, clients, args.probes)
    per_line = clients if args.echo else clients - 1
    expected = senders * lines * per_line
    pad = b"x" * args.pad
    sent = [0] * senders
    observer_base = gen.observer * senders
    next_seq = gen.next_seq
    window = args.window
    rate = args.rate
    interval_ns = int(1e9 / rate) if rate else 0

    rss_before = process_rss(gen.pid)
    gen.rss_peak = rss_before
    exact_peak = reset_peak_rss(gen.pid)
    gen.sampling = True
    cpu_before = process_cpu(gen.pid)
    own_before = time.process_time()
    t0 = time.monotonic()
    t0_ns = time.monotonic_ns()
    gen.last_payload = t0

    def due(sender: int, seq: int) -> int:
        return t0_ns + (seq * senders + sender) * interval_ns

    def pump() -> float:
        """Send what may be sent now; return seconds until the next line."""
        wait = 0.01
        now_ns = time.monotonic_ns()
        for s in range(senders):
            q = sent[s]
            if q >= lines:
                continue
            room = window - (q - next_seq[observer_base + s])
            if room <= 0:
                continue
            if rate:
                count = 0
                while (
                    count < room and q + count < lines and due(s, q + count) <= now_ns
                ):
                    count += 1
                if q + count < lines:
                    wait = min(wait, (due(s, q + count) - now_ns) / 1e9)
            else:
                count = min(room, lines - q)
            if count <= 0:
                continue
            irc = gen.irc[s]
            gen.write(
                s,
                b"".join(
                    payload_line(s, seq, now_ns, pad, irc)
                    for seq in range(q, q + count)
                ),
            )
            sent[s] = q + count
        return max(0.0, wait)

    stalled = False
    while gen.received < expected:
        wait = pump()
        gen.poll(wait)
        now = time.monotonic()
        if now > deadline:
            result.setdefault("error", "timed out during the run")
            break
        if all(n >= lines for n in sent) and now - gen.last_payload > args.stall:
            stalled = True
            break
    end = gen.last_payload
    cpu_after = process_cpu(gen.pid)
    own_after = time.process_time()
    wall = max(end - t0, 1e-9)
    gen.sampling = False
    rss_after = process_rss(gen.pid)
    if exact_peak:
        gen.rss_peak = max(gen.rss_peak, peak_rss(gen.pid))
    # Whatever is still arriving after a stall is lost, but is read so that
    # the server is not left blocked while the harness stops it.
    ordered = sorted(gen.latencies)
    delivered = gen.received
    server_cpu = cpu_after - cpu_before
    own_cpu = own_after - own_before
    result.update(
        expected=expected,
        received=delivered,
        lost=expected - delivered,
        clients_short=sum(
            1
            for i, got in enumerate(gen.counts)
            if got < lines * (senders if args.echo or i >= senders else senders - 1)
        ),
        irc_clients=sum(gen.irc),
        latency_samples=len(ordered),
        probes=sum(gen.probe),
        out_of_order=gen.out_of_order,
        stalled=stalled,
        errors_seen=gen.errors_seen,
        closed_by_server=gen.closed_by_server,
        connect_failed=gen.connect_failed,
        lines_sent=sum(sent),
        seconds=wall,
        deliveries_per_second=delivered / wall,
        latency_p50_ms=percentile(ordered, 0.50),
        latency_p99_ms=percentile(ordered, 0.99),
        latency_max_ms=ordered[-1] / 1e6 if ordered else None,
        server_cpu_seconds=server_cpu,
        server_cpu_us_per_delivery=(server_cpu / delivered * 1e6)
        if delivered
        else None,
        server_cpu_share=server_cpu / wall,
        loadgen_cpu_seconds=own_cpu,
        loadgen_cpu_share=own_cpu / wall,
        loadgen_saturated=own_cpu / wall >= args.saturation,
        rss_before=rss_before,
        rss_peak=gen.rss_peak,
        rss_after=rss_after,
        rss_growth=gen.rss_peak - rss_before,
        rss_peak_source="VmHWM reset before the burst" if exact_peak else "sampled",
    )
    return result


def idle(args: argparse.Namespace) -> dict[str, Any]:
    gen = LoadGen(args)
    start = time.monotonic()
    deadline = start + args.timeout
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {"mode": "idle", "steps": steps}
    baseline = None
    for target in args.steps:
        step_start = time.monotonic()
        ok = gen.connect(target, deadline)
        connect_time = time.monotonic() - step_start
        settled, settle_time = gen.settle(
            args.quiet, max(1.0, deadline - time.monotonic())
        )
        samples = []
        for _ in range(3):
            samples.append(process_rss(gen.pid))
            gen.poll(0.05)
        rss = sorted(samples)[1]
        if baseline is None:
            baseline = rss
        alive = sum(1 for state in gen.state if state == OPEN)
        step = {
            "clients": target,
            "alive": alive,
            "connect_failed": gen.connect_failed,
            "closed_by_server": gen.closed_by_server,
            "connect_seconds": connect_time,
            "settled": settled,
            "settle_seconds": settle_time,
            "rss": rss,
            "rss_per_client": (rss - baseline) / target if target else None,
            "server_cpu_seconds": process_cpu(gen.pid),
        }
        steps.append(step)
        log(
            f"idle step {target}: alive={alive} rss={rss / 2**20:.1f} MiB "
            f"connect={connect_time:.1f}s settle={settle_time:.1f}s"
        )
        if not ok or alive < target:
            result["error"] = f"only {alive} of {target} connections open"
            break
        if time.monotonic() > deadline:
            result["error"] = "timed out"
            break
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("mode", choices=["fanout", "idle"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--senders", type=int, default=10)
    p.add_argument("--lines", type=int, default=1000, help="lines per sender")
    p.add_argument("--rate", type=float, default=0.0, help="total lines/s (0: fast)")
    p.add_argument(
        "--window",
        type=int,
        default=10,
        help="lines a sender may have in flight (not yet seen by the observer)",
    )
    p.add_argument("--pad", type=int, default=0, help="extra bytes per line")
    p.add_argument(
        "--probes",
        type=int,
        default=8,
        help="clients that check order and latency of every line (all count)",
    )
    p.add_argument(
        "--no-echo",
        dest="echo",
        action="store_false",
        help="the server does not send a line back to its sender",
    )
    p.add_argument(
        "--irc",
        choices=["none", "all", "half"],
        default="none",
        help="which clients speak IRC (half: the odd ones), on --irc-port",
    )
    p.add_argument("--irc-port", type=int, default=0, help="the server's IRC port")
    p.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=[])
    p.add_argument("--on-connect", default="", help="a line each client sends first")
    p.add_argument("--group-size", type=int, default=100)
    p.add_argument("--clients-per-source", type=int, default=20000)
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument(
        "--greeting",
        action="store_true",
        help="the server sends something on connect: wait for it",
    )
    p.add_argument("--quiet", type=float, default=0.3)
    p.add_argument("--stall", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--saturation", type=float, default=0.9)
    p.add_argument("--cpu", type=int, default=None, help="pin to this core")
    return p


MODES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "fanout": fanout,
    "idle": idle,
}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    nofile = raise_nofile()
    result = MODES[args.mode](args)
    result["server_alive"] = process_alive(args.server_pid)
    result["loadgen_nofile"] = nofile
    result["loadgen_affinity"] = sorted(os.sched_getaffinity(0))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    # Skip closing tens of thousands of sockets one by one.
    os._exit(0)


if __name__ == "__main__":
    main()
