"""
Tests for the pure parts of the fan-out benchmark's IRC clients and its
baseline comparison (C{benchmarks/loadgen.py}, C{benchmarks/run.py},
C{benchmarks/servers.py}).  The tools are scripts, loaded here by path.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


def _benchmark(name: str) -> ModuleType:
    """A module of benchmarks/, which imports its siblings by name."""
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)


loadgen = _benchmark("loadgen")
run = _benchmark("run")
servers = _benchmark("servers")


class IRCClientTests(SynchronousTestCase):
    """The load generator's IRC clients."""

    def test_which_clients(self) -> None:
        """half makes the odd clients IRC clients, all every one, none none."""
        self.assertEqual(
            [loadgen.irc_client(i, "half") for i in range(4)],
            [False, True, False, True],
        )
        self.assertTrue(all(loadgen.irc_client(i, "all") for i in range(4)))
        self.assertFalse(any(loadgen.irc_client(i, "none") for i in range(4)))

    def test_hello(self) -> None:
        """An IRC client asks for echo-message, registers and joins #lobby."""
        self.assertEqual(
            loadgen.irc_hello(7),
            b"CAP REQ :echo-message\r\nNICK b7\r\nUSER b7 0 * :b7\r\n"
            b"CAP END\r\nJOIN #lobby\r\n",
        )

    def test_payload_lines(self) -> None:
        """A payload line is a PRIVMSG to #lobby over IRC, a bare line otherwise."""
        self.assertEqual(
            loadgen.payload_line(3, 4, 5, b"xx", True),
            b"PRIVMSG #lobby :B|3|4|5|xx~\r\n",
        )
        self.assertEqual(loadgen.payload_line(3, 4, 5, b"", False), b"B|3|4|5|~\n")

    def test_parse_received_irc_line(self) -> None:
        """A probe parses the payload out of a PRIVMSG the server relays."""
        data = (
            b":b1!~b1@irc.twisted-chat PRIVMSG #lobby :B|1|2|30|~\r\n"
            b"<guest1> B|0|9|40|xx~\n"
        )
        self.assertEqual(
            loadgen.PAYLOAD.findall(data),
            [(b"1", b"2", b"30"), (b"0", b"9", b"40")],
        )

    def test_count_ignores_the_prefix_tilde(self) -> None:
        """The ~ of nick!~user@host is not counted as a payload line."""
        line = b":b1!~b1@irc.twisted-chat PRIVMSG #lobby :B|1|2|30|~\r\n"
        self.assertEqual(loadgen.count_irc_marks(b"", line * 3), 3)

    def test_count_across_reads(self) -> None:
        """A payload end split between two reads counts once, wherever it is cut."""
        stream = b":b1!~b1@h PRIVMSG #lobby :B|1|2|30|~\r\n" * 4
        for cut in range(1, len(stream)):
            first, second = stream[:cut], stream[cut:]
            total = loadgen.count_irc_marks(b"", first) + loadgen.count_irc_marks(
                first[-2:], second
            )
            self.assertEqual(total, 4, cut)

    def test_refusals(self) -> None:
        """404, 417 and ERROR lines count as refusals; a PRIVMSG does not."""
        data = (
            b":s 404 b1 #lobby :Cannot send to channel\r\n"
            b":s 417 b1 :Input line was too long\r\n"
            b":b1!~b1@h PRIVMSG #lobby :B|1|2|30|~\r\n"
            b"ERROR :Closing link\r\n"
        )
        self.assertEqual(loadgen.irc_refusals(data), 3)

    def test_options(self) -> None:
        """--irc and --irc-port reach the load generator's arguments."""
        args = loadgen.parser().parse_args(
            [
                *("fanout", "--port", "1", "--server-pid", "2"),
                *("--irc", "half", "--irc-port", "3"),
            ]
        )
        self.assertEqual((args.irc, args.irc_port), ("half", 3))
        plain = loadgen.parser().parse_args(
            ["fanout", "--port", "1", "--server-pid", "2"]
        )
        self.assertEqual((plain.irc, plain.irc_port), ("none", 0))


class ScenarioTests(SynchronousTestCase):
    """The IRC scenarios of run.py."""

    def test_irc_scenarios(self) -> None:
        """irc-fanout-100 and mixed-fanout-100 carry fanout-100's load."""
        for quick in (False, True):
            plan = {s.name: s for s in run.scenarios(quick, None)}
            base = plan["fanout-100"]
            for name, mode in (("irc-fanout-100", "all"), ("mixed-fanout-100", "half")):
                found = plan[name]
                self.assertEqual(found.irc, mode)
                self.assertEqual(
                    (found.clients, found.senders, found.lines, found.window),
                    (base.clients, base.senders, base.lines, base.window),
                )
            self.assertEqual(base.irc, "none")


class BaselineTests(SynchronousTestCase):
    """The comparison with twisted-chat at another commit."""

    def test_ratio(self) -> None:
        """The ratio is ours over the baseline's, None when one is missing."""
        self.assertAlmostEqual(run.baseline_ratio(0.11, 0.1), 1.1)
        self.assertIsNone(run.baseline_ratio(None, 0.1))
        self.assertIsNone(run.baseline_ratio(0.1, 0.0))

    def test_paired_ratios(self) -> None:
        """Each repetition's ratio pairs the two servers' runs of that repetition."""
        runs = [
            run.Run("twisted-chat", "fanout-100", 0, {"server_cpu_us_per_delivery": 2}),
            run.Run(
                "twisted-chat@abc", "fanout-100", 0, {"server_cpu_us_per_delivery": 1}
            ),
            run.Run("twisted-chat", "fanout-100", 1, {"server_cpu_us_per_delivery": 3}),
            run.Run(
                "twisted-chat@abc", "fanout-100", 1, {"server_cpu_us_per_delivery": 4}
            ),
            run.Run(
                "twisted-chat", "latency-100", 0, {"server_cpu_us_per_delivery": 9}
            ),
        ]
        self.assertEqual(
            run.paired_ratios(runs, "fanout-100", "twisted-chat@abc"), [2.0, 0.75]
        )

    def test_table_verdict(self) -> None:
        """A scenario over 10% slower than the baseline is marked no; within, yes."""

        def entry(cpu: float) -> dict[str, object]:
            return {
                "skipped": None,
                "server_cpu_us_per_delivery": cpu,
                "deliveries_per_second": 1e6,
                "latency_p99_ms": 5.0,
                "rss_before": 2**20,
                "lost": 0,
            }

        plan = [
            s
            for s in run.scenarios(False, None)
            if s.name in ("fanout-100", "fanout-1000")
        ]
        summary = {
            "fanout-100": {
                "twisted-chat": entry(0.109),
                "twisted-chat@abc": entry(0.1),
            },
            "fanout-1000": {
                "twisted-chat": entry(0.12),
                "twisted-chat@abc": entry(0.1),
            },
        }
        rows = run.baseline_table(summary, plan, "twisted-chat@abc")
        self.assertEqual(len(rows), 4)
        self.assertIn("| 1.09 | yes |", rows[2])
        self.assertIn("| 1.20 | **no** |", rows[3])


class ServerTests(SynchronousTestCase):
    """Server entries: the IRC port and another commit's tree."""

    def test_command_with_irc_port(self) -> None:
        """The IRC options are added, with the port, only for an IRC scenario."""
        server = servers.Server(
            name="x",
            description="",
            argv=["chat", "--port", "tcp:{port}"],
            limits=[],
            irc_args=["--irc-port", "tcp:{irc_port}"],
        )
        self.assertEqual(
            server.command(1, Path("log"), 2),
            ["chat", "--port", "tcp:1", "--irc-port", "tcp:2"],
        )
        self.assertEqual(server.command(1, Path("log")), ["chat", "--port", "tcp:1"])

    def test_pythonpath_first(self) -> None:
        """Another tree goes first on the server's PYTHONPATH."""
        env = servers.server_env("/tree")
        self.assertEqual(env["PYTHONPATH"].split(":")[0], "/tree")


class ScaleTests(SynchronousTestCase):
    """--scale lengthens the burst scenarios only."""

    def test_scaled(self) -> None:
        """A burst gets N times the lines; paced and idle scenarios stay as they are."""
        plan = {s.name: s for s in run.scenarios(False, None)}
        self.assertEqual(run.scaled(plan["fanout-100"], 10).lines, 20000)
        self.assertEqual(run.scaled(plan["irc-fanout-100"], 10).lines, 20000)
        self.assertEqual(run.scaled(plan["latency-100"], 10), plan["latency-100"])
        self.assertEqual(run.scaled(plan["idle"], 10), plan["idle"])
