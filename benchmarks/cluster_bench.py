"""
What running twisted-chat as a cluster on Redis costs, and how far it goes.

    python benchmarks/cluster_bench.py              # (a), 3 repetitions (~6 minutes)
    python benchmarks/cluster_bench.py --quick      # smoke run of (a)
    python benchmarks/cluster_bench.py --idle       # (b) alone: 52,000 idle connections
    python benchmarks/cluster_bench.py --idle --idle-clients 4000   # (b), small

(a) The fan-out benchmark's fanout-100 and latency-100 scenarios
(benchmarks/run.py, with the load of benchmarks/loadgen.py) against three
set-ups, in the same run, interleaved:

  - single: one twistd chat, no Redis (the default, SQLite history);
  - redis-1: one node with --redis, on a fresh redis-server;
  - redis-2: two nodes with --redis on one port (--port reuseport:N), the
    kernel splitting the same clients across them.

Everything on the server side (the nodes and redis-server) is pinned to one
core, the load generator to the other, so the deliveries per second of each
set-up are what one core does.  Server CPU per delivery is the CPU of the
nodes and of Redis over the load generator's whole run, divided by the
deliveries; the latency is the load generator's (p50 and p99 over every line
the probes received).

(b) Idle connections past 50,000 on this host, across processes: four
nodes (each may hold at most RLIMIT_NOFILE descriptors, 20,000 here) behind
one reuseport port on one Redis, four load generators, each with 13,000
connections from four 127.0.0.x source addresses (a source address has about
28,000 ephemeral ports to one destination).  Each client waits for its
greeting, then joins a room of 100 (as in run.py's idle scenario).  Once all
are connected and the nodes are quiet, the per-node connections (open
descriptors) and RSS are read, and KB per connection is RSS growth over
connections.  It takes a few minutes, so it is an option of its own, and
part of no test.

Results go to benchmarks/results/cluster/ (results.json, results.md, logs/).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import run
from loadgen import process_cpu, process_rss
from servers import HERE, Server, twisted_chat

OUT = HERE / "results" / "cluster"
SCENARIOS = ("fanout-100", "latency-100")
VARIANTS = ("single", "redis-1", "redis-2")
CONNECTED_MARK = "the cluster is connected"
IDLE_NODES = 4
IDLE_LOADGENS = 4
IDLE_CLIENTS = 52_000
IDLE_PER_SOURCE = 3_500  # 4 sources per load generator, 14,000 per source
IDLE_QUIET = 1.0  # a load generator settles when its node is quiet this long
# Joins are announced in rooms of at most this many local members: the rooms
# of 100, and the start of the lobby (each node counts its own members, so
# a lobby of 52,000 would otherwise announce 4 x 500 joins to everyone).
IDLE_ANNOUNCE_LIMIT = "100"
STEP_MARK = "idle step "


@dataclass
class Cluster:
    """redis-server and the nodes of one run."""

    redis: subprocess.Popen[bytes] | None = None
    redis_dir: str = ""
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        server = [self.redis.pid] if self.redis is not None else []
        return [node.pid for node in self.nodes] + server

    def stop(self) -> None:
        for proc in self.nodes:
            run.stop(proc)
        if self.redis is not None:
            run.stop(self.redis)
        if self.redis_dir:
            shutil.rmtree(self.redis_dir, ignore_errors=True)


def redis_argv(port: int, directory: str) -> list[str]:
    """A loopback redis-server with the durability the README recommends."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        directory,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--logfile",
        "",
    ]


def node_server(base: Server, redis_port: int | None, shared: bool) -> Server:
    """twisted-chat as C{base}, on Redis, on a reuseport port if C{shared}."""
    argv = list(base.argv)
    if shared:
        argv[argv.index("tcp:{port}:interface=127.0.0.1")] = (
            "reuseport:{port}:interface=127.0.0.1"
        )
    if redis_port is not None:
        argv += ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
    return replace(base, argv=argv)


def listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:C{port}."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return sum(
            1
            for line in table
            if (fields := line.split())[1:2] == [wanted] and fields[3] == "0A"
        )


def descriptors(pid: int) -> int:
    """How many descriptors a process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(done: Any, limit: float, interval: float = 0.1) -> bool:
    """Poll C{done()} until it is true; give up after C{limit} seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(interval)
    return False


class ClusterBench(run.Bench):
    """The fan-out benchmark's runner, starting Redis and N nodes per run."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.logs = OUT / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.base = twisted_chat(sys.executable, "off")

    def start_cluster(
        self,
        tag: str,
        nodes: int,
        redis: bool,
        core: int | None,
        extra: tuple[str, ...] = (),
    ) -> tuple[Cluster, int, str | None]:
        """Start Redis (if C{redis}) and C{nodes} nodes on one port."""
        cluster = Cluster()
        port = run.free_port()
        redis_port = None
        if redis:
            redis_port = run.free_port()
            cluster.redis_dir = tempfile.mkdtemp(prefix="chat-bench-redis-")
            with open(self.logs / f"{tag}.redis.log", "ab") as out:
                cluster.redis = subprocess.Popen(
                    run.pinned(core, redis_argv(redis_port, cluster.redis_dir)),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if not run.wait_listening(redis_port, cluster.redis, 30):
                return cluster, port, "redis-server did not start"
        server = node_server(self.base, redis_port, shared=nodes > 1)
        server = replace(server, argv=[*server.argv, *extra])
        saved, self.server_core = self.server_core, core
        try:
            for n in range(nodes):
                log = self.logs / f"{tag}.node{n}.log"
                log.unlink(missing_ok=True)
                cluster.logs.append(log)
                cwd = OUT / "work" / f"{tag}-{n}"
                cluster.nodes.append(self.start(server, port, log, None, cwd))
        finally:
            self.server_core = saved
        if not wait_for(lambda: listeners(port) == nodes, 60):
            return cluster, port, "the nodes did not all listen"
        if redis and not wait_for(
            lambda: all(CONNECTED_MARK in _read(log) for log in cluster.logs), 60
        ):
            return cluster, port, "the nodes did not all connect to Redis"
        return cluster, port, None

    def run_variant(self, variant: str, scenario: run.Scenario, rep: int) -> run.Run:
        result = run.Run(variant, scenario.name, rep)
        tag = f"{scenario.name}-{variant}-{rep}"
        nodes = 2 if variant == "redis-2" else 1
        cluster, port, error = self.start_cluster(
            tag, nodes, variant != "single", self.server_core
        )
        try:
            if error is not None:
                result.error = error
                return result
            argv = self.loadgen_argv(
                self.base, scenario, port, cluster.nodes[0].pid, None
            )
            cpu_before = [process_cpu(pid) for pid in cluster.pids]
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=scenario.timeout + 60,
                check=False,
            )
            cpu_after = [process_cpu(pid) for pid in cluster.pids]
            (self.logs / f"{tag}.loadgen.log").write_text(done.stderr)
            if done.returncode != 0 or not done.stdout.strip():
                result.error = f"load generator failed: {done.stderr.strip()[-500:]}"
                return result
            result.result.update(json.loads(done.stdout))
            pairs = zip(cpu_before, cpu_after, strict=True)
            spent = [after - before for before, after in pairs]
            delivered = result.result.get("received") or 0
            redis_cpu = spent[-1] if variant != "single" else 0.0
            nodes_cpu = sum(spent) - redis_cpu
            result.result.update(
                nodes=nodes,
                nodes_cpu_seconds=nodes_cpu,
                redis_cpu_seconds=redis_cpu,
                cpu_us_per_delivery=(nodes_cpu + redis_cpu) / delivered * 1e6
                if delivered
                else None,
                nodes_cpu_us_per_delivery=nodes_cpu / delivered * 1e6
                if delivered
                else None,
                redis_cpu_us_per_delivery=redis_cpu / delivered * 1e6
                if delivered
                else None,
            )
            if "error" in result.result:
                result.error = result.result["error"]
            return result
        finally:
            cluster.stop()
            for n in range(nodes):
                shutil.rmtree(OUT / "work" / f"{tag}-{n}", ignore_errors=True)

    # (b)

    def idle(self, total: int, nodes: int, loadgens: int) -> dict[str, Any]:
        """Hold C{total} idle connections on C{nodes} nodes; measure them."""
        tag = f"idle-{total}"
        cluster, port, error = self.start_cluster(
            tag, nodes, True, None, ("--announce-limit", IDLE_ANNOUNCE_LIMIT)
        )
        report: dict[str, Any] = {
            "clients": total,
            "nodes": nodes,
            "loadgens": loadgens,
            "node_nofile": self.nofile,
        }
        procs: list[subprocess.Popen[str]] = []
        try:
            if error is not None:
                report["error"] = error
                return report
            pids = [node.pid for node in cluster.nodes]
            assert cluster.redis is not None
            base_fds = [descriptors(pid) for pid in pids]
            base_rss = [process_rss(pid) for pid in pids]
            redis_base = process_rss(cluster.redis.pid)
            each = -(-total // loadgens)
            per_source = min(IDLE_PER_SOURCE, each)
            started = time.monotonic()
            for g in range(loadgens):
                count = min(each, total - g * each)
                argv = [
                    sys.executable,
                    str(run.LOADGEN),
                    "idle",
                    "--port",
                    str(port),
                    "--server-pid",
                    str(pids[g % nodes]),
                    "--steps",
                    f"{count},{count}",
                    "--greeting",
                    "--on-connect",
                    f"/join idle-{g}-{{group}}",
                    "--clients-per-source",
                    str(per_source),
                    "--quiet",
                    str(IDLE_QUIET),
                    "--timeout",
                    "900",
                ]
                procs.append(
                    subprocess.Popen(
                        argv,
                        stdout=subprocess.PIPE,
                        stderr=open(self.logs / f"{tag}.loadgen{g}.log", "w"),  # noqa: SIM115
                        text=True,
                    )
                )

            def connections() -> list[int]:
                return [
                    descriptors(pid) - base
                    for pid, base in zip(pids, base_fds, strict=True)
                ]

            # Once a load generator has all its connections greeted (its
            # first step is logged), it is stopped (SIGSTOP) so that it
            # holds them, whatever its own settling says, until all are in.
            logs = [self.logs / f"{tag}.loadgen{g}.log" for g in range(loadgens)]
            stopped = [False] * loadgens

            def all_in() -> bool:
                for g, proc in enumerate(procs):
                    if stopped[g]:
                        continue
                    if proc.poll() is not None:
                        raise RuntimeError(f"load generator {g} ended early")
                    if STEP_MARK in _read(logs[g]):
                        proc.send_signal(signal.SIGSTOP)
                        stopped[g] = True
                return all(stopped)

            if not wait_for(all_in, 900, 0.2):
                report["error"] = f"only {sum(connections())} connections"
                return report
            report["connect_seconds"] = time.monotonic() - started
            report["first_steps"] = [
                line
                for log in logs
                for line in _read(log).splitlines()
                if STEP_MARK in line
            ]

            # Quiet: the joins' fan-out is over (under 2% of a core each).
            def quiet() -> bool:
                before = [process_cpu(pid) for pid in cluster.pids]
                time.sleep(1.0)
                after = [process_cpu(pid) for pid in cluster.pids]
                return all(b - a < 0.02 for a, b in zip(before, after, strict=True))

            report["quiet"] = wait_for(quiet, 120, 0)
            held = connections()
            rss = [process_rss(pid) for pid in pids]
            report["per_node"] = [
                {
                    "connections": c,
                    "rss_before": b,
                    "rss": r,
                    "kb_per_connection": (r - b) / c / 1024 if c else None,
                }
                for c, b, r in zip(held, base_rss, rss, strict=True)
            ]
            report["held"] = sum(held)
            redis_rss = process_rss(cluster.redis.pid)
            report["redis_rss_before"] = redis_base
            report["redis_rss"] = redis_rss
            report["redis_kb_per_connection"] = (
                (redis_rss - redis_base) / sum(held) / 1024 if sum(held) else None
            )
            results = []
            for proc in procs:
                proc.send_signal(signal.SIGCONT)
            for proc in procs:
                out, _ = proc.communicate(timeout=900)
                results.append(json.loads(out) if out.strip() else {"error": "none"})
            report["loadgens_result"] = results
            report["greeted"] = sum(
                r["steps"][-1]["alive"] for r in results if r.get("steps")
            )
            report["errors"] = [r["error"] for r in results if "error" in r]
            report["nodes_alive"] = all(n.poll() is None for n in cluster.nodes)
            return report
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            cluster.stop()
            for n in range(nodes):
                shutil.rmtree(OUT / "work" / f"{tag}-{n}", ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# Reports


def median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(numbers) if numbers else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def summarize(runs: list[run.Run]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        per: dict[str, Any] = {}
        for variant in VARIANTS:
            done = [
                r.result
                for r in runs
                if r.server == variant and r.scenario == scenario and not r.error
            ]
            per[variant] = {
                "runs": len(done),
                "errors": [
                    r.error
                    for r in runs
                    if r.server == variant and r.scenario == scenario and r.error
                ],
                "lost": sum(r.get("lost", 0) for r in done),
                "out_of_order": sum(r.get("out_of_order", 0) for r in done),
                **{
                    key: median([r.get(key) for r in done])
                    for key in (
                        "deliveries_per_second",
                        "latency_p50_ms",
                        "latency_p99_ms",
                        "cpu_us_per_delivery",
                        "nodes_cpu_us_per_delivery",
                        "redis_cpu_us_per_delivery",
                        "server_cpu_share",
                    )
                },
            }
        summary[scenario] = per
    return summary


def report_a(summary: dict[str, Any]) -> list[str]:
    lines = []
    for scenario, per in summary.items():
        lines += [
            f"### {scenario}",
            "",
            "| set-up | deliveries/s | p50 ms | p99 ms | CPU µs/delivery "
            "(nodes + Redis) | lost | out of order | runs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for variant, row in per.items():
            cpu = (
                f"{fmt(row['cpu_us_per_delivery'])} "
                f"({fmt(row['nodes_cpu_us_per_delivery'])} + "
                f"{fmt(row['redis_cpu_us_per_delivery'])})"
            )
            lines.append(
                f"| {variant} | {fmt(row['deliveries_per_second'], ',.0f')} | "
                f"{fmt(row['latency_p50_ms'])} | {fmt(row['latency_p99_ms'])} | "
                f"{cpu} | {row['lost']} | {row['out_of_order']} | {row['runs']} |"
            )
        single = per["single"]
        for variant in ("redis-1", "redis-2"):
            row = per[variant]
            if None in (row["latency_p50_ms"], single["latency_p50_ms"]):
                continue
            lines.append("")
            lines.append(
                f"{variant} vs single: latency +"
                f"{row['latency_p50_ms'] - single['latency_p50_ms']:.2f} ms (p50), +"
                f"{row['latency_p99_ms'] - single['latency_p99_ms']:.2f} ms (p99); "
                f"CPU per delivery x"
                f"{row['cpu_us_per_delivery'] / single['cpu_us_per_delivery']:.2f}"
            )
        lines.append("")
    return lines


def report_b(idle: dict[str, Any]) -> list[str]:
    if "per_node" not in idle:
        return [f"idle: {idle.get('error', 'no result')}"]
    lines = [
        f"### {idle['held']:,} idle connections on {idle['nodes']} nodes",
        "",
        f"Connected (greeting received) in {idle['connect_seconds']:.0f} s; "
        f"greeted: {idle['greeted']:,} of {idle['clients']:,}; "
        f"load generator errors: {idle['errors'] or 'none'}; "
        f"nodes alive: {idle['nodes_alive']}.",
        "",
        "| node | connections | RSS before MiB | RSS MiB | KB per connection |",
        "|---|---:|---:|---:|---:|",
    ]
    for n, node in enumerate(idle["per_node"]):
        lines.append(
            f"| {n} | {node['connections']:,} | {node['rss_before'] / 2**20:.0f} | "
            f"{node['rss'] / 2**20:.0f} | {fmt(node['kb_per_connection'], '.1f')} |"
        )
    total = sum(node["rss"] - node["rss_before"] for node in idle["per_node"])
    lines += [
        f"| all | {idle['held']:,} | | {total / 2**20:.0f} (growth) | "
        f"{total / idle['held'] / 1024:.1f} |",
        "",
        f"Redis: {idle['redis_rss_before'] / 2**20:.0f} → "
        f"{idle['redis_rss'] / 2**20:.0f} MiB "
        f"({fmt(idle['redis_kb_per_connection'], '.2f')} KB per connection).",
        "",
    ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description="The cluster benchmark.")
    p.add_argument("--quick", action="store_true", help="scaled-down smoke run of (a)")
    p.add_argument("--repeat", type=int, help="repetitions of (a) (3; quick 1)")
    p.add_argument(
        "--idle", action="store_true", help="run (b), the idle connections, alone"
    )
    p.add_argument("--idle-clients", type=int, default=IDLE_CLIENTS)
    p.add_argument("--idle-nodes", type=int, default=IDLE_NODES)
    p.add_argument("--idle-loadgens", type=int, default=IDLE_LOADGENS)
    args = p.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    OUT.mkdir(parents=True, exist_ok=True)
    args.out = str(OUT)
    bench = ClusterBench(args)
    started = time.monotonic()
    if args.idle:
        idle = bench.idle(args.idle_clients, args.idle_nodes, args.idle_loadgens)
        (OUT / "idle.json").write_text(json.dumps(idle, indent=2))
        text = report_b(idle)
    else:
        chosen = [
            s for s in run.scenarios(args.quick, args.repeat) if s.name in SCENARIOS
        ]
        runs = []
        for rep in range(chosen[0].repeat):
            for scenario in chosen:
                for variant in VARIANTS:
                    print(f"{scenario.name} {variant} #{rep + 1}", flush=True)
                    done = bench.run_variant(variant, scenario, rep)
                    if done.error:
                        print(f"  error: {done.error}", flush=True)
                    runs.append(done)
        summary = summarize(runs)
        (OUT / "results.json").write_text(
            json.dumps(
                {"summary": summary, "runs": [r.__dict__ for r in runs]}, indent=2
            )
        )
        text = report_a(summary)
    text.append(f"(took {time.monotonic() - started:.0f} s)")
    name = "idle.md" if args.idle else "results.md"
    (OUT / name).write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
