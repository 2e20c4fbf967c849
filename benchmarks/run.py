"""
The fan-out benchmark: twisted-chat against a thread-per-client server, a
naive Twisted chat and ncat --chat, on the same scenarios in the same run.

    python benchmarks/run.py            # full run (about 5 minutes on 2 cores)
    python benchmarks/run.py --quick    # smoke run (well under a minute)
    python benchmarks/run.py --baseline e819180 \
        --scenarios fanout-100,fanout-1000,latency-100 --servers twisted-chat
                                        # this tree against another commit

Each scenario starts a fresh server pinned to one core and the load
generator (benchmarks/loadgen.py, one process) pinned to the other, repeats,
and reports medians.  Results go to benchmarks/results/: results.json,
results.md and fanout.png.  See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from servers import HERE, Server, all_servers, export_revision, twisted_chat

RESULTS = HERE / "results"
LOADGEN = HERE / "loadgen.py"
NOFILE_MARGIN = 200
STEPS_FULL = (0, 1000, 5000, 10000, 20000, 50000)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: str  # "fanout" or "idle"
    clients: int = 0
    senders: int = 0
    lines: int = 0
    rate: float = 0.0
    window: int = 10
    steps: tuple[int, ...] = ()
    repeat: int = 3
    timeout: float = 180.0
    sweep: bool = False
    irc: str = "none"  # which clients speak IRC: none, all, half (loadgen --irc)

    @property
    def deliveries(self) -> int:
        return self.clients * self.senders * self.lines


def scenarios(quick: bool, repeat: int | None) -> list[Scenario]:
    if quick:
        reps = repeat or 1
        return [
            Scenario(
                "fanout-100",
                "100 clients, 10 senders",
                "fanout",
                100,
                10,
                200,
                window=50,
                repeat=reps,
                timeout=60,
            ),
            Scenario(
                "fanout-1000",
                "1,000 clients, 5 senders",
                "fanout",
                1000,
                5,
                40,
                window=50,
                repeat=reps,
                timeout=60,
            ),
            Scenario(
                "latency-100",
                "200 lines/s to 100 clients",
                "fanout",
                100,
                10,
                60,
                rate=200,
                window=1000,
                repeat=reps,
                timeout=60,
            ),
            *irc_scenarios(200, reps, 60),
            Scenario(
                "idle",
                "idle connections",
                "idle",
                steps=(0, 500, 1000),
                repeat=1,
                timeout=60,
            ),
        ]
    reps = repeat or 3
    found = [
        Scenario(
            "fanout-100",
            "100 clients, 10 senders",
            "fanout",
            100,
            10,
            2000,
            window=50,
            repeat=reps,
        ),
        Scenario(
            "fanout-1000",
            "1,000 clients, 5 senders",
            "fanout",
            1000,
            5,
            400,
            window=50,
            repeat=reps,
        ),
        Scenario(
            "latency-100",
            "200 lines/s to 100 clients",
            "fanout",
            100,
            10,
            200,
            rate=200,
            window=1000,
            repeat=reps,
        ),
    ]
    found += irc_scenarios(2000, reps, 180.0)
    for clients in (20, 50, 200, 500, 2000):
        senders = 5
        lines = max(10, 500_000 // (clients * senders))
        found.append(
            Scenario(
                f"sweep-{clients}",
                f"{clients} clients, {senders} senders",
                "fanout",
                clients,
                senders,
                lines,
                window=50,
                repeat=1,
                sweep=True,
            )
        )
    found.append(
        Scenario(
            "idle", "idle connections", "idle", steps=STEPS_FULL, repeat=1, timeout=600
        )
    )
    return found


def irc_scenarios(lines: int, repeat: int, timeout: float) -> list[Scenario]:
    """fanout-100's load with every client on IRC, and with half of them."""
    return [
        Scenario(
            "irc-fanout-100",
            "100 IRC clients, 10 senders",
            "fanout",
            100,
            10,
            lines,
            window=50,
            repeat=repeat,
            timeout=timeout,
            irc="all",
        ),
        Scenario(
            "mixed-fanout-100",
            "50 line-protocol and 50 IRC clients, 10 senders (5 of each)",
            "fanout",
            100,
            10,
            lines,
            window=50,
            repeat=repeat,
            timeout=timeout,
            irc="half",
        ),
    ]


def scaled(scenario: Scenario, factor: int) -> Scenario:
    """C{scenario} with C{factor} times the lines, if it goes as fast as it can."""
    if scenario.kind != "fanout" or scenario.rate or factor < 1:
        return scenario
    return replace(
        scenario,
        lines=scenario.lines * factor,
        timeout=scenario.timeout * max(1, factor // 2),
    )


# Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: int | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv] if core is not None else argv


def listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:C{port} (without connecting to it)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 3 and fields[1] == wanted and fields[3] == "0A":
                return True
    return False


def wait_listening(port: int, proc: subprocess.Popen[bytes], limit: float) -> bool:
    """
    Wait until the server listens.  It is not probed with a connection:
    ncat --chat quits when a client has gone before it asks for its address,
    and twisted-chat would count the probe as a guest.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if listening(port):
            return True
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


@dataclass
class Run:
    server: str
    scenario: str
    rep: int
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    skipped: str | None = None
    server_exit: int | None = None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server_core, self.loadgen_core = self._cores()
        self.nofile = self._raise_nofile()
        self.runs: list[Run] = []
        self.logs = RESULTS / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _cores() -> tuple[int | None, int | None]:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2 or shutil.which("taskset") is None:
            print("WARNING: fewer than 2 cores or no taskset: nothing is pinned")
            return None, None
        return cores[0], cores[1]

    @staticmethod
    def _raise_nofile() -> int:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard

    def max_connections(self) -> int:
        """The most connections one process here can hold (server and load)."""
        return self.nofile - NOFILE_MARGIN

    def loadgen_argv(
        self,
        server: Server,
        scenario: Scenario,
        port: int,
        pid: int,
        irc_port: int | None = None,
    ) -> list[str]:
        argv = [
            sys.executable,
            str(LOADGEN),
            scenario.kind,
            "--port",
            str(port),
            "--server-pid",
            str(pid),
            "--timeout",
            str(scenario.timeout),
            "--connect-concurrency",
            str(server.connect_concurrency),
        ]
        if server.greets:
            argv.append("--greeting")
        if scenario.kind == "fanout":
            argv += [
                "--clients",
                str(scenario.clients),
                "--senders",
                str(scenario.senders),
                "--lines",
                str(scenario.lines),
                "--window",
                str(scenario.window),
                "--rate",
                str(scenario.rate),
            ]
            if not server.echo_to_sender:
                argv.append("--no-echo")
            if scenario.irc != "none":
                argv += ["--irc", scenario.irc, "--irc-port", str(irc_port)]
        else:
            argv += [
                "--steps",
                ",".join(str(s) for s in self.idle_steps(server, scenario)[0]),
            ]
            if server.on_connect_idle:
                argv += ["--on-connect", server.on_connect_idle]
        return pinned(self.loadgen_core, argv)

    def idle_steps(self, server: Server, scenario: Scenario) -> tuple[list[int], str]:
        cap = self.max_connections()
        why = f"RLIMIT_NOFILE hard limit is {self.nofile} here"
        if server.client_limit is not None and server.client_limit < cap:
            cap, why = server.client_limit, server.client_limit_reason
        steps = [s for s in scenario.steps if s <= cap]
        dropped = [s for s in scenario.steps if s > cap]
        if dropped:
            if cap not in steps:
                steps.append(cap)
            return steps, f"steps {dropped} not run ({why}); stopped at {cap}"
        return steps, ""

    def start(
        self, server: Server, port: int, log: Path, irc_port: int | None, cwd: Path
    ) -> subprocess.Popen[bytes]:
        """
        Start C{server} pinned, in C{cwd}: a fresh folder per run, so that
        twisted-chat's history database starts empty and C{python -c} finds
        no checkout in its working directory, ahead of C{server.pythonpath}.
        """
        cwd.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(
                pinned(self.server_core, server.command(port, log, irc_port)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
                env=server.environment(),
            )

    def run_one(self, server: Server, scenario: Scenario, rep: int) -> Run:
        run = Run(server.name, scenario.name, rep)
        if scenario.irc != "none" and not server.irc_args:
            run.skipped = "no IRC front end"
            return run
        limit = server.client_limit
        if scenario.kind == "fanout" and limit is not None and scenario.clients > limit:
            run.skipped = server.client_limit_reason
            return run
        if scenario.kind == "fanout" and scenario.clients > self.max_connections():
            run.skipped = f"RLIMIT_NOFILE hard limit is {self.nofile}"
            return run
        port = free_port()
        irc_port = free_port() if scenario.irc != "none" else None
        tag = f"{scenario.name}-{server.name}-{rep}"
        log = self.logs / f"{tag}.server.log"
        cwd = RESULTS / "work" / tag
        proc = self.start(server, port, log, irc_port, cwd)
        try:
            if not wait_listening(port, proc, 30) or (
                irc_port is not None and not wait_listening(irc_port, proc, 30)
            ):
                run.error = f"server did not start (see {log})"
                return run
            argv = self.loadgen_argv(server, scenario, port, proc.pid, irc_port)
            if scenario.kind == "idle":
                note = self.idle_steps(server, scenario)[1]
                if note:
                    run.result["note"] = note
            try:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=scenario.timeout + 60,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                run.error = "load generator timed out"
                return run
            (self.logs / f"{tag}.loadgen.log").write_text(done.stderr)
            if done.returncode != 0 or not done.stdout.strip():
                run.error = f"load generator failed: {done.stderr.strip()[-500:]}"
                return run
            run.result.update(json.loads(done.stdout))
            if "error" in run.result:
                run.error = run.result["error"]
            if not run.result.get("server_alive", True):
                proc.wait(5)
                run.server_exit = proc.poll()
                run.error = f"server exited with {run.server_exit} during the run"
            return run
        finally:
            stop(proc)
            shutil.rmtree(cwd, ignore_errors=True)

    def profile(self, server: Server, scenario: Scenario) -> dict[str, str]:
        """
        Run C{scenario}, ten times longer, once per output format under
        py-spy; not measured.
        """
        scenario = replace(
            scenario, lines=scenario.lines * 10, timeout=scenario.timeout * 2
        )
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(pyspy).exists():
            return {"error": "py-spy is not installed (pip install py-spy)"}
        stem = "profile" if server.name == "twisted-chat" else f"profile-{server.name}"
        outputs = {
            "flamegraph": RESULTS / f"{stem}.svg",
            "raw": RESULTS / f"{stem}.txt",
        }
        for fmt, path in outputs.items():
            port = free_port()
            irc_port = free_port() if scenario.irc != "none" else None
            log = self.logs / f"profile-{fmt}-{server.name}.server.log"
            cwd = RESULTS / "work" / f"profile-{fmt}-{server.name}"
            proc = self.start(server, port, log, irc_port, cwd)
            try:
                if not wait_listening(port, proc, 30) or (
                    irc_port is not None and not wait_listening(irc_port, proc, 30)
                ):
                    return {"error": "server did not start"}
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--format",
                        fmt,
                        "--rate",
                        "250",
                        "--nonblocking",
                        "-o",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
                subprocess.run(
                    self.loadgen_argv(server, scenario, port, proc.pid, irc_port),
                    capture_output=True,
                    timeout=scenario.timeout + 60,
                    check=False,
                )
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            finally:
                stop(proc)
                shutil.rmtree(cwd, ignore_errors=True)
        return {fmt: str(path) for fmt, path in outputs.items()}


# Summaries


def median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(numbers) if numbers else None


FANOUT_METRICS = (
    "deliveries_per_second",
    "latency_p50_ms",
    "latency_p99_ms",
    "server_cpu_us_per_delivery",
    "rss_growth",
    "rss_before",
    "server_cpu_share",
    "loadgen_cpu_share",
)


def summarize(
    runs: list[Run], servers: list[Server], plan: list[Scenario]
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in plan:
        per: dict[str, Any] = {}
        for server in servers:
            mine = [
                r
                for r in runs
                if r.server == server.name and r.scenario == scenario.name
            ]
            if not mine:
                continue
            entry: dict[str, Any] = {
                "runs": len(mine),
                "skipped": next((r.skipped for r in mine if r.skipped), None),
                "errors": [r.error for r in mine if r.error],
            }
            done = [r.result for r in mine if r.result]
            if scenario.kind == "fanout":
                for metric in FANOUT_METRICS:
                    entry[metric] = median([d.get(metric) for d in done])
                entry["lost"] = sum(d.get("lost", 0) for d in done) if done else None
                entry["out_of_order"] = sum(d.get("out_of_order", 0) for d in done)
                entry["errors_seen"] = sum(d.get("errors_seen", 0) for d in done)
                entry["loadgen_saturated"] = any(
                    d.get("loadgen_saturated") for d in done
                )
                entry["deliveries"] = median([d.get("received") for d in done])
            else:
                entry["steps"] = done[0]["steps"] if done else []
                entry["note"] = done[0].get("note") if done else None
            per[server.name] = entry
        summary[scenario.name] = per
    return summary


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def fanout_table(per: dict[str, Any]) -> list[str]:
    rows = [
        "| server | deliveries/s | lost | p50 ms | p99 ms | server CPU µs/delivery "
        "| server RSS growth MiB | server CPU | load gen CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in per.items():
        if e["skipped"]:
            rows.append(f"| {name} | skipped: {e['skipped']} |||||||")
            continue
        growth = e["rss_growth"] / 2**20 if e["rss_growth"] is not None else None
        sat = " (saturated)" if e["loadgen_saturated"] else ""
        rows.append(
            f"| {name} | {fmt(e['deliveries_per_second'], ',.0f')} "
            f"| {fmt(e['lost'], 'd')} "
            f"| {fmt(e['latency_p50_ms'], '.2f')} | {fmt(e['latency_p99_ms'], '.2f')} "
            f"| {fmt(e['server_cpu_us_per_delivery'], '.3f')} | {fmt(growth, '.1f')} "
            f"| {fmt(e['server_cpu_share'], '.0%')} "
            f"| {fmt(e['loadgen_cpu_share'], '.0%')}{sat} |"
        )
    return rows


def ratios(per: dict[str, Any]) -> list[str]:
    ours = per.get("twisted-chat")
    if not ours or ours["skipped"] or not ours["deliveries_per_second"]:
        return []
    out = []
    for name, e in per.items():
        if name == "twisted-chat" or e["skipped"] or not e["deliveries_per_second"]:
            continue
        speed = ours["deliveries_per_second"] / e["deliveries_per_second"]
        cpu = (
            ours["server_cpu_us_per_delivery"] / e["server_cpu_us_per_delivery"]
            if e["server_cpu_us_per_delivery"] and ours["server_cpu_us_per_delivery"]
            else None
        )
        out.append(
            f"- twisted-chat vs {name}: {speed:.2f}x the deliveries/s, "
            f"{fmt(cpu, '.2f')}x the server CPU per delivery"
        )
    return out


def idle_table(per: dict[str, Any]) -> list[str]:
    rows = [
        "| server | clients | alive | RSS MiB | RSS per connection (bytes) "
        "| connect s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in per.items():
        for step in e["steps"]:
            per_conn = step["rss_per_client"]
            rows.append(
                f"| {name} | {step['clients']:,} | {step['alive']:,} "
                f"| {step['rss'] / 2**20:.1f} | {fmt(per_conn, ',.0f')} "
                f"| {step['connect_seconds']:.1f} |"
            )
        if e.get("note"):
            rows.append(f"| {name} | {e['note']} |||||")
        for error in e["errors"]:
            rows.append(f"| {name} | error: {error} |||||")
    return rows


BASELINE_CPU_LIMIT = 0.10  # issue 8: the line protocol within 10% of before


def baseline_ratio(ours: float | None, theirs: float | None) -> float | None:
    """Our CPU per delivery over the baseline's (None if either is missing)."""
    if not ours or not theirs:
        return None
    return ours / theirs


def baseline_table(
    summary: dict[str, Any],
    plan: list[Scenario],
    baseline: str,
    current: str = "twisted-chat",
) -> list[str]:
    """
    C{current} against C{baseline} (another commit, same run, interleaved),
    scenario by scenario: CPU per delivery and its ratio, with deliveries/s,
    p99 and RSS beside it.
    """
    rows = [
        f"| scenario | CPU µs/delivery: {baseline} | {current} | ratio "
        f"| within {BASELINE_CPU_LIMIT:.0%} | deliveries/s: {baseline} "
        f"| {current} | p99 ms: baseline | {current} "
        f"| RSS MiB with clients: baseline | {current} | lost |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in plan:
        per = summary.get(scenario.name, {})
        ours, theirs = per.get(current), per.get(baseline)
        if scenario.kind != "fanout" or not ours or not theirs:
            continue
        if ours["skipped"] or theirs["skipped"]:
            continue
        ratio = baseline_ratio(
            ours["server_cpu_us_per_delivery"], theirs["server_cpu_us_per_delivery"]
        )
        ok = (
            "-"
            if ratio is None
            else ("yes" if ratio <= 1 + BASELINE_CPU_LIMIT else "**no**")
        )

        def mib(e: dict[str, Any]) -> float | None:
            return e["rss_before"] / 2**20 if e.get("rss_before") else None

        rows.append(
            f"| {scenario.name} | {fmt(theirs['server_cpu_us_per_delivery'], '.3f')} "
            f"| {fmt(ours['server_cpu_us_per_delivery'], '.3f')} "
            f"| {fmt(ratio, '.2f')} | {ok} "
            f"| {fmt(theirs['deliveries_per_second'], ',.0f')} "
            f"| {fmt(ours['deliveries_per_second'], ',.0f')} "
            f"| {fmt(theirs['latency_p99_ms'], '.2f')} "
            f"| {fmt(ours['latency_p99_ms'], '.2f')} "
            f"| {fmt(mib(theirs), '.1f')} | {fmt(mib(ours), '.1f')} "
            f"| {fmt(theirs['lost'], 'd')} / {fmt(ours['lost'], 'd')} |"
        )
    return rows


def paired_ratios(
    runs: list[Run], scenario: str, baseline: str, current: str = "twisted-chat"
) -> list[float | None]:
    """Per repetition, C{current}'s CPU per delivery over the baseline's."""
    out: list[float | None] = []
    reps = sorted({r.rep for r in runs if r.scenario == scenario})
    for rep in reps:
        pair = {
            r.server: r.result.get("server_cpu_us_per_delivery")
            for r in runs
            if r.scenario == scenario and r.rep == rep
        }
        out.append(baseline_ratio(pair.get(current), pair.get(baseline)))
    return out


def targets(summary: dict[str, Any], quick: bool) -> list[str]:
    """twisted-chat against the issue's targets."""
    ours = {name: per.get("twisted-chat") for name, per in summary.items()}
    checks: list[tuple[str, bool | None, str]] = []

    def check(label: str, value: float | None, limit: float, unit: str) -> None:
        ok = None if value is None else value <= limit
        shown = "not measured" if value is None else f"{value:.3g} {unit}"
        checks.append((label, ok, shown))

    for name in ("fanout-100", "fanout-1000"):
        e = ours.get(name)
        if e:
            check(
                f"{name}: server CPU ≤ 0.2 µs/delivery",
                e["server_cpu_us_per_delivery"],
                0.2,
                "µs",
            )
            check(f"{name}: p99 ≤ 50 ms", e["latency_p99_ms"], 50, "ms")
            growth = e["rss_growth"] / 2**20 if e["rss_growth"] is not None else None
            check(f"{name}: RSS growth ≤ 16 MB", growth, 16e6 / 2**20, "MiB")
    e = ours.get("latency-100")
    if e:
        check("latency-100: p99 ≤ 3 ms at 200 lines/s", e["latency_p99_ms"], 3, "ms")
    e = ours.get("idle")
    if e and e["steps"]:
        at = [s for s in e["steps"] if s["clients"] and s["clients"] <= 10000]
        if at:
            step = at[-1]
            check(
                f"idle: ≤ 3 KB per connection (at {step['clients']:,})",
                step["rss_per_client"] / 1000,
                3,
                "KB",
            )
        most = max(s["alive"] for s in e["steps"])
        checks.append(
            (
                "idle: 50,000 concurrent connections",
                most >= 50000,
                f"{most:,} reached" + (f"; {e['note']}" if e.get("note") else ""),
            )
        )
    lost = sum((e.get("lost") or 0) for e in ours.values() if e and "lost" in e)
    checks.append(("0 lines lost in every scenario", lost == 0, f"{lost} lost"))
    mark = {True: "PASS", False: "FAIL", None: "n/a"}
    rows = ["| target (twisted-chat) | result | measured |", "|---|---|---|"]
    rows += [f"| {label} | {mark[ok]} | {shown} |" for label, ok, shown in checks]
    if quick:
        rows.append(
            "\n(quick mode: scenarios are scaled down; run without --quick to judge)"
        )
    return rows


def source_fingerprint() -> str:
    """A digest of twisted-chat's source, to notice it changing mid-run."""
    digest = hashlib.sha256()
    for path in sorted((HERE.parent / "twisted_chat").rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def environment(bench: Bench) -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=10, check=False
            )
        except OSError:
            return "?"
        # A failure (git outside a checkout) says "?", not its error message.
        text = (out.stdout or out.stderr).strip() if out.returncode == 0 else ""
        return text.splitlines()[0] if text else "?"

    import twisted

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in open("/proc/cpuinfo")
                if line.startswith("model name")
            ),
            "?",
        ),
        "loadavg_at_start": os.getloadavg(),
        "nofile_hard_limit": bench.nofile,
        "server_core": bench.server_core,
        "loadgen_core": bench.loadgen_core,
        "ncat": version(["ncat", "--version"]) if shutil.which("ncat") else None,
        "source_fingerprint": source_fingerprint(),
        "git_commit": version(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"]
        ),
    }


def plot(
    summary: dict[str, Any], plan: list[Scenario], servers: list[Server], path: Path
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no plot: pip install -r benchmarks/requirements.txt")
        return False
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for server in servers:
        points = []
        for scenario in plan:
            if scenario.kind != "fanout" or scenario.rate:
                continue
            e = summary.get(scenario.name, {}).get(server.name)
            if e and not e["skipped"] and e["deliveries_per_second"]:
                points.append(
                    (scenario.clients, e["deliveries_per_second"], e["latency_p99_ms"])
                )
        if not points:
            continue
        points.sort()
        xs = [p[0] for p in points]
        top.plot(xs, [p[1] for p in points], marker="o", label=server.name)
        bottom.plot(xs, [p[2] for p in points], marker="o", label=server.name)
    top.set_ylabel("deliveries per second")
    top.set_title(
        "Chat fan-out on loopback (server and load generator on separate cores)"
    )
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel("clients in the room")
    bottom.set_xscale("log")
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def report(
    bench: Bench,
    servers: list[Server],
    plan: list[Scenario],
    summary: dict[str, Any],
    env: dict[str, Any],
    profile: dict[str, str] | None,
) -> str:
    load = ", ".join(f"{x:.2f}" for x in env["loadavg_at_start"])
    lines = [
        f"# Fan-out benchmark results ({'quick' if bench.args.quick else 'full'} run)",
        "",
        f"{env['date']}, {env['cpus']} CPUs ({env['cpu_model']}), "
        f"Linux {env['kernel']}, Python {env['python']}, Twisted {env['twisted']}, "
        f"commit {env['git_commit']}; load average at start {load}; "
        f"server on core {env['server_core']}, "
        f"load generator on core {env['loadgen_core']}; "
        f"RLIMIT_NOFILE {env['nofile_hard_limit']}.",
        "",
        *([f"**WARNING: {env['warning']}**", ""] if env.get("warning") else []),
        "## Servers and the limits set on them",
        "",
    ]
    for server in servers:
        lines.append(f"- **{server.name}**: {server.description}")
        lines += [f"  - limit: {limit}" for limit in server.limits]
        lines += [f"  - note: {note}" for note in server.notes]
    lines += ["", "## Targets", "", *targets(summary, bench.args.quick), ""]
    currents = [
        s.name
        for s in servers
        if s.name == "twisted-chat" or s.name.startswith("twisted-chat+")
    ]
    for baseline, current in (
        (b, c) for b in env.get("baselines", []) for c in currents
    ):
        lines += [
            f"## {current} against {baseline}",
            "",
            "Same run, interleaved (the order alternates between repetitions); "
            f"medians of each; ratio = {current} ÷ {baseline}; RSS is the "
            "server's with every client connected, before the burst.",
            "",
            *baseline_table(summary, plan, baseline, current),
            "",
        ]
        for scenario in plan:
            pairs = paired_ratios(bench.runs, scenario.name, baseline, current)
            if any(p is not None for p in pairs):
                shown = ", ".join(fmt(p, ".2f") for p in pairs)
                lines.append(f"- {scenario.name}: ratio per repetition {shown}")
        lines.append("")
    for scenario in plan:
        per = summary.get(scenario.name, {})
        lines += [f"## {scenario.name}: {scenario.title}", ""]
        if scenario.kind == "fanout":
            mode = (
                f"{scenario.rate:g} lines/s in all"
                if scenario.rate
                else (f"as fast as possible, window {scenario.window} lines per sender")
            )
            lines += [
                f"{scenario.clients:,} clients, {scenario.senders} senders x "
                f"{scenario.lines:,} lines "
                f"({scenario.deliveries:,} deliveries with echo), "
                f"{mode}; median of {scenario.repeat}.",
                "",
                *fanout_table(per),
                "",
                *ratios(per),
            ]
            problems = [
                f"- {name}: {e['errors']}" for name, e in per.items() if e["errors"]
            ] + [
                f"- {name}: {e['out_of_order']} lines out of order, "
                f"{e['errors_seen']} '!!!' refusals seen"
                for name, e in per.items()
                if e.get("out_of_order") or e.get("errors_seen")
            ]
            if problems:
                lines += ["", "Problems:", *problems]
        else:
            lines += idle_table(per)
        lines.append("")
    if profile:
        lines += [f"## Profile of {bench.args.profile_server} during fanout-100", ""]
        lines += [f"- {k}: {v}" for k, v in profile.items()]
        if "summary" in profile:
            lines += ["", Path(profile["summary"]).read_text()]
    return "\n".join(lines) + "\n"


def summarize_profile(raw: Path, top: int = 15) -> str:
    """
    Self and inclusive sample shares of the top functions in a py-spy raw
    (collapsed stacks) file, lines of one function added together; the
    frames of the main loop that every sample shares are left out of the
    inclusive table.
    """
    selfs: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += count
        selfs[frames[-1]] = selfs.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "no samples"

    def table(counts: dict[str, int], title: str) -> list[str]:
        rows = [f"| {title} | share of samples |", "|---|---:|"]
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        ranked = [(f, c) for f, c in ranked if title != "inclusive" or c < 0.8 * total]
        for frame, count in ranked[:top]:
            rows.append(f"| `{frame}` | {count / total:.1%} |")
        return rows

    return "\n".join(
        [
            f"{total} samples (py-spy, 250 Hz).",
            "",
            *table(selfs, "self"),
            "",
            *table(inclusive, "inclusive"),
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description="Run the fan-out benchmark.")
    p.add_argument("--quick", action="store_true", help="scaled-down smoke run")
    p.add_argument("--repeat", type=int, help="repetitions per scenario (3; quick 1)")
    p.add_argument("--servers", help="comma-separated subset of servers")
    p.add_argument("--scenarios", help="comma-separated subset of scenarios")
    p.add_argument(
        "--limits",
        choices=["off", "default"],
        default="off",
        help="twisted-chat's protective limits: off (set explicitly) or defaults",
    )
    p.add_argument("--out", default=str(HERE / "results"), help="results folder")
    p.add_argument(
        "--window",
        type=int,
        help="lines in flight per sender in the as-fast-as-possible scenarios (50)",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=1,
        help="lines per sender times N in the as-fast-as-possible scenarios: "
        "server CPU is read in 10 ms ticks, about 10 in a fanout-100 run",
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy twisted-chat in fanout-100"
    )
    p.add_argument(
        "--profile-server",
        default="twisted-chat",
        help="the server --profile samples (e.g. twisted-chat@REV)",
    )
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="REV",
        help="also run twisted-chat as it was at commit REV (git archive), "
        "named twisted-chat@REV, in every scenario (repeatable)",
    )
    p.add_argument(
        "--current",
        metavar="REV",
        help="run twisted-chat itself from commit REV, not from this tree "
        "(which may hold others' uncommitted work)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="also run twisted-chat with more options, named twisted-chat+NAME, "
        "e.g. no-history=--no-history (repeatable; ARGS split on spaces)",
    )
    args = p.parse_args()

    global RESULTS
    RESULTS = Path(args.out).resolve()
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    servers = all_servers(args.limits)
    if args.servers:
        wanted = args.servers.split(",")
        servers = [s for s in servers if s.name in wanted]
    trees = RESULTS / "trees"
    if args.current:
        tree = export_revision(args.current, trees)
        servers = [
            twisted_chat(
                sys.executable,
                args.limits,
                pythonpath=str(tree),
                origin=f"this project at {tree.name} (git archive)",
            )
            if s.name == "twisted-chat"
            else s
            for s in servers
        ]
    baselines = []
    for rev in args.baseline:
        tree = export_revision(rev, trees)
        baseline = twisted_chat(
            sys.executable,
            args.limits,
            name=f"twisted-chat@{tree.name}",
            pythonpath=str(tree),
            origin=f"this project at {tree.name} (git archive)",
        )
        baselines.append(baseline.name)
        at = next((i + 1 for i, s in enumerate(servers) if s.name == "twisted-chat"), 0)
        servers.insert(at, baseline)
    plan = scenarios(args.quick, args.repeat)
    if args.window:
        plan = [
            replace(s, window=args.window) if s.kind == "fanout" and not s.rate else s
            for s in plan
        ]
    if args.scale != 1:
        plan = [scaled(s, args.scale) for s in plan]
    if args.scenarios:
        wanted = args.scenarios.split(",")
        plan = [s for s in plan if s.name in wanted]
    current = next((s for s in servers if s.name == "twisted-chat"), None)
    for spec in args.variant:
        name, _, extra = spec.partition("=")
        if current is None or not name:
            raise SystemExit(f"--variant {spec!r}: needs NAME=ARGS and twisted-chat")
        variant = replace(
            current,
            name=f"twisted-chat+{name}",
            description=f"{current.description}, with {extra}",
            argv=[*current.argv, *extra.split()],
        )
        servers.insert(servers.index(current) + 1, variant)
    env = environment(bench)
    env["baselines"] = baselines
    env["current"] = args.current
    print(
        f"load average {env['loadavg_at_start']}; RLIMIT_NOFILE {bench.nofile}; "
        f"server core {bench.server_core}, load generator core {bench.loadgen_core}"
    )
    for server in servers:
        print(f"{server.name}: {server.description}")
        for limit in server.limits:
            print(f"    limit: {limit}")
    if not any(s.name == "ncat" for s in servers) and not args.servers:
        print("ncat is not installed: its scenarios are skipped")

    started = time.monotonic()
    for scenario in plan:
        for rep in range(scenario.repeat):
            # Every other repetition runs the servers in the opposite order,
            # so that none is always first after a change of scenario.
            for server in servers if rep % 2 == 0 else servers[::-1]:
                run = bench.run_one(server, scenario, rep)
                bench.runs.append(run)
                r = run.result
                if run.skipped:
                    status = f"skipped: {run.skipped}"
                elif scenario.kind == "fanout" and "deliveries_per_second" in r:
                    status = (
                        f"{r['deliveries_per_second']:>10,.0f}/s lost={r['lost']} "
                        f"p50={fmt(r['latency_p50_ms'], '.2f')}ms "
                        f"p99={fmt(r['latency_p99_ms'], '.2f')}ms "
                        f"cpu={fmt(r['server_cpu_us_per_delivery'], '.3f')}µs/d "
                        f"rss+={r['rss_growth'] / 2**20:.1f}MiB "
                        f"server={r['server_cpu_share']:.0%} "
                        f"loadgen={r['loadgen_cpu_share']:.0%}"
                        + (" SATURATED" if r["loadgen_saturated"] else "")
                    )
                elif scenario.kind == "idle" and r.get("steps"):
                    last = r["steps"][-1]
                    status = (
                        f"{last['alive']:,} alive, "
                        f"{fmt((last['rss_per_client'] or 0) / 1024, '.2f')} KiB/conn"
                    )
                else:
                    status = ""
                if run.error:
                    status += f" ERROR: {run.error}"
                print(
                    f"[{time.monotonic() - started:6.0f}s] {scenario.name} #{rep + 1} "
                    f"{server.name:<13} {status}",
                    flush=True,
                )

    profile = None
    if args.profile:
        ours = next((s for s in servers if s.name == args.profile_server), None)
        fan = next((s for s in plan if s.name == "fanout-100"), None)
        if ours and fan:
            print(f"profiling {ours.name} under fanout-100 with py-spy ...", flush=True)
            profile = bench.profile(ours, fan)
            if "raw" in profile:
                summary_md = Path(profile["raw"]).with_suffix(".md")
                summary_md.write_text(summarize_profile(Path(profile["raw"])))
                profile["summary"] = str(summary_md)

    summary = summarize(bench.runs, servers, plan)
    if not args.current and source_fingerprint() != env["source_fingerprint"]:
        env["warning"] = (
            "twisted_chat/**/*.py changed during the run: its numbers mix versions"
        )
        print("WARNING:", env["warning"])
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "environment": env,
                "servers": [asdict(s) for s in servers],
                "scenarios": [asdict(s) for s in plan],
                "summary": summary,
                "runs": [asdict(r) for r in bench.runs],
                "profile": profile,
            },
            indent=1,
        )
    )
    if plot(summary, plan, servers, RESULTS / "fanout.png"):
        print(f"plot: {RESULTS / 'fanout.png'}")
    text = report(bench, servers, plan, summary, env, profile)
    (RESULTS / "results.md").write_text(text)
    print()
    print(text)
    print(f"results: {RESULTS / 'results.json'}, {RESULTS / 'results.md'}")


if __name__ == "__main__":
    main()
