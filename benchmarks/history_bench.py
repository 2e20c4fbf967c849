"""
What room history costs: twisted-chat with history off (--no-history) and on
(a SQLite file, the default), on the fan-out benchmark's own scenarios, in
the same run, interleaved.

    python benchmarks/history_bench.py            # 3 repetitions (~3 minutes)
    python benchmarks/history_bench.py --repeat 5 # steadier medians
    python benchmarks/history_bench.py --quick    # smoke run

It reuses the fan-out benchmark (benchmarks/run.py: its scenarios, server
pinning and process handling; benchmarks/loadgen.py: the load) and checks
issue 9's targets:

  - fanout-100 (100 clients, 10 senders, as fast as the server goes, five
    times longer than in run.py by default, see --scale): server CPU per
    delivery with history on within 25% of history off;
  - latency-100 (200 lines/s from 10 senders to 100 clients): p99 latency
    rises by 5 ms at most.

With history on, every line is committed to the database before anyone
receives it, and the server's writer reports, when it stops, how many lines
it committed, how fast, and in batches of what size; those are reported too.
Results go to benchmarks/results/history/ (results.json, results.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import run
from servers import HERE, Server, twisted_chat

OUT = HERE / "results" / "history"
STATS_MARK = "writer stats: "
SCENARIOS = ("fanout-100", "latency-100")
CPU_LIMIT = 0.25  # history on may cost 25% more CPU per delivery
P99_LIMIT_MS = 5.0  # and add 5 ms to the p99 latency at 200 lines/s


def variants(python: str) -> list[Server]:
    """twisted-chat without history, and with it in a fresh file per run."""
    base = twisted_chat(python, "off")
    off = replace(
        base,
        name="history-off",
        description="twisted-chat --no-history",
        argv=[*base.argv, "--no-history"],
    )
    on = replace(
        base,
        name="history-on",
        description="twisted-chat --database FILE (SQLite, WAL, synchronous=NORMAL)",
        argv=[*base.argv, "--database", "{log}.sqlite3"],
    )
    return [off, on]


def database_files(log: Path) -> list[Path]:
    return [Path(f"{log}.sqlite3{suffix}") for suffix in ("", "-wal", "-shm")]


def writer_stats(log: Path) -> dict[str, Any] | None:
    """The stats the history writer logged when the server stopped."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    found = [line for line in text.splitlines() if STATS_MARK in line]
    if not found:
        return None
    stats: dict[str, Any] = json.loads(found[-1].split(STATS_MARK, 1)[1])
    return stats


class HistoryBench(run.Bench):
    """The fan-out benchmark's runner, with a fresh database per run."""

    def log_path(self, server: Server, scenario: run.Scenario, rep: int) -> Path:
        return self.logs / f"{scenario.name}-{server.name}-{rep}.server.log"

    def run_one(self, server: Server, scenario: run.Scenario, rep: int) -> run.Run:
        log = self.log_path(server, scenario, rep)
        for path in [log, *database_files(log)]:
            path.unlink(missing_ok=True)
        result = super().run_one(server, scenario, rep)
        stats = writer_stats(log)
        if stats is not None:
            result.result["writer"] = stats
        size = sum(p.stat().st_size for p in database_files(log) if p.exists())
        if server.name == "history-on":
            result.result["database_bytes"] = size
        for path in database_files(log):
            path.unlink(missing_ok=True)
        return result


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[run.Run]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        for name in ("history-off", "history-on"):
            done = [
                r
                for r in runs
                if r.scenario == scenario and r.server == name and not r.error
            ]
            results = [r.result for r in done]

            def values(key: str, among: list[dict[str, Any]] = results) -> list[float]:
                return [x[key] for x in among if x.get(key) is not None]

            writers = [x["writer"] for x in results if "writer" in x]
            summary[f"{scenario}/{name}"] = {
                "runs": len(done),
                "failed": [
                    r.error
                    for r in runs
                    if r.scenario == scenario and r.server == name and r.error
                ],
                "cpu_us_per_delivery": median(values("server_cpu_us_per_delivery")),
                "deliveries_per_second": median(values("deliveries_per_second")),
                "latency_p50_ms": median(values("latency_p50_ms")),
                "latency_p99_ms": median(values("latency_p99_ms")),
                "lost": sum(values("lost")),
                "lines_committed_per_second": median(
                    [
                        w["lines_per_second"]
                        for w in writers
                        if w.get("lines_per_second")
                    ]
                ),
                "commit_ms_mean": median(
                    [w["commit_ms_mean"] for w in writers if w.get("commit_ms_mean")]
                ),
                "batch_mean": median(
                    [w["batch_mean"] for w in writers if w.get("batch_mean")]
                ),
                "batch_p50": median([w["batch_p50"] for w in writers]),
                "batch_p99": median([w["batch_p99"] for w in writers]),
                "batch_max": max([w["batch_max"] for w in writers], default=None),
                "lines_stored": sum(w["lines"] for w in writers),
                "commits": sum(w["commits"] for w in writers),
            }
    return summary


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def report(summary: dict[str, Any]) -> tuple[list[str], bool]:
    off, on = summary["fanout-100/history-off"], summary["fanout-100/history-on"]
    loff, lon = summary["latency-100/history-off"], summary["latency-100/history-on"]
    ok = True
    lines = [
        "| | history off | history on | change | target |",
        "|---|---:|---:|---:|---|",
    ]
    cpu_change = None
    if off["cpu_us_per_delivery"] and on["cpu_us_per_delivery"]:
        cpu_change = on["cpu_us_per_delivery"] / off["cpu_us_per_delivery"] - 1
    cpu_ok = cpu_change is not None and cpu_change <= CPU_LIMIT
    ok &= cpu_ok
    lines.append(
        "| fanout-100: server CPU per delivery (µs) | "
        f"{fmt(off['cpu_us_per_delivery'])} | {fmt(on['cpu_us_per_delivery'])} | "
        f"{fmt(None if cpu_change is None else 100 * cpu_change, '+.1f')}% | "
        f"≤ +{CPU_LIMIT:.0%}: {'met' if cpu_ok else 'NOT MET'} |"
    )
    lines.append(
        f"| fanout-100: deliveries/s | {fmt(off['deliveries_per_second'], ',.0f')} | "
        f"{fmt(on['deliveries_per_second'], ',.0f')} | | |"
    )
    lines.append(
        f"| fanout-100: p99 latency (ms) | {fmt(off['latency_p99_ms'], '.1f')} | "
        f"{fmt(on['latency_p99_ms'], '.1f')} | | |"
    )
    p99_change = None
    if loff["latency_p99_ms"] is not None and lon["latency_p99_ms"] is not None:
        p99_change = lon["latency_p99_ms"] - loff["latency_p99_ms"]
    p99_ok = p99_change is not None and p99_change <= P99_LIMIT_MS
    ok &= p99_ok
    lines.append(
        f"| latency-100: p50 latency (ms) | {fmt(loff['latency_p50_ms'], '.2f')} | "
        f"{fmt(lon['latency_p50_ms'], '.2f')} | | |"
    )
    lines.append(
        f"| latency-100: p99 latency (ms) | {fmt(loff['latency_p99_ms'], '.2f')} | "
        f"{fmt(lon['latency_p99_ms'], '.2f')} | "
        f"{fmt(p99_change, '+.2f')} ms | ≤ +{P99_LIMIT_MS:g} ms: "
        f"{'met' if p99_ok else 'NOT MET'} |"
    )
    lost = sum(summary[key]["lost"] for key in summary)
    ok &= lost == 0
    lines.append(f"| lines lost (all runs) | | | {lost} | 0 |")
    lines += [
        "",
        "The history writer, with history on:",
        "",
        "| scenario | lines stored | commits | lines committed/s | commit (ms, mean) "
        "| batch mean | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        s = summary[f"{scenario}/history-on"]
        lines.append(
            f"| {scenario} | {s['lines_stored']:,} | {s['commits']:,} | "
            f"{fmt(s['lines_committed_per_second'], ',.0f')} | "
            f"{fmt(s['commit_ms_mean'], '.3f')} | {fmt(s['batch_mean'], '.1f')} | "
            f"{fmt(s['batch_p50'], '.0f')} | {fmt(s['batch_p99'], '.0f')} | "
            f"{fmt(s['batch_max'], '.0f')} |"
        )
    return lines, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions")
    parser.add_argument(
        "--scale",
        type=int,
        default=5,
        help="lines per sender, times the fan-out benchmark's, in fanout-100 "
        "(CPU is counted in ticks of 10 ms: a 25%% difference needs seconds)",
    )
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run.RESULTS = out
    plan = [
        replace(s, lines=s.lines * args.scale, timeout=s.timeout * args.scale)
        if s.name == "fanout-100"
        else s
        for s in run.scenarios(args.quick, args.repeat)
        if s.name in SCENARIOS
    ]
    servers = variants(sys.executable)
    bench = HistoryBench(argparse.Namespace(quick=args.quick))
    runs: list[run.Run] = []
    started = time.monotonic()
    for scenario in plan:
        for rep in range(1, scenario.repeat + 1):
            # Interleaved, so that a change in the machine hits both.
            for server in servers:
                print(f"{scenario.name} {server.name} #{rep}", flush=True)
                done = bench.run_one(server, scenario, rep)
                if done.error:
                    print(f"  error: {done.error}", flush=True)
                runs.append(done)
    summary = summarize(runs)
    table, ok = report(summary)
    heading = [
        f"# Room history: cost ({'quick' if args.quick else 'full'} run, "
        f"{time.monotonic() - started:.0f} s)",
        "",
        "Servers pinned to one core (the writer thread shares it with the "
        "reactor), the load generator to another; medians of "
        f"{max((s.repeat for s in plan), default=1)} runs, history on and off "
        "interleaved.",
        "",
    ]
    text = "\n".join([*heading, *table, ""])
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps(
            {
                "summary": summary,
                "runs": [r.__dict__ for r in runs],
                "environment": run.environment(bench),
            },
            indent=1,
            default=str,
        )
    )
    print(text)
    if not ok:
        print("Some targets were not met.")


if __name__ == "__main__":
    main()
