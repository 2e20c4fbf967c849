"""
Tests for the pure parts of the load tools: C{benchmarks/sustained.py} (read
patterns, the senders' schedule, the line format, the per-line tally, the
server log, the verdict) and C{tools/stress.py} (what it says about the
garbage delivered).  The tools themselves are scripts, loaded here by path.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


def _sustained() -> ModuleType:
    """benchmarks/sustained.py, which imports its siblings by name."""
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module("sustained")
    finally:
        sys.path.remove(folder)


def _stress() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "stress_tool", ROOT / "tools" / "stress.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sustained = _sustained()
stress = _stress()


class ReadPatternTests(SynchronousTestCase):
    """C{--read}: continuous, or so many bytes per period."""

    def test_continuous(self) -> None:
        """C{continuous} has no size and no period."""
        pattern = sustained.parse_read("continuous")
        self.assertTrue(pattern.continuous)
        self.assertEqual(str(pattern), "continuous")

    def test_chunk(self) -> None:
        """C{256K/100ms} is 262,144 bytes every 0.1 s, periods spread."""
        pattern = sustained.parse_read("256K/100ms")
        self.assertEqual(
            (pattern.size, pattern.period, pattern.spread), (262144, 0.1, True)
        )

    def test_same(self) -> None:
        """C{:same} starts every client's period at once; seconds work too."""
        pattern = sustained.parse_read("1M/0.5s:same")
        self.assertEqual(
            (pattern.size, pattern.period, pattern.spread), (1048576, 0.5, False)
        )

    def test_bad(self) -> None:
        """Anything else is refused with a message saying what is allowed."""
        for text in ("fast", "256K", "0/100ms", "256K/0ms", "256K/100ms:odd"):
            with self.assertRaises(ValueError, msg=text):
                sustained.parse_read(text)


class ScheduleTests(SynchronousTestCase):
    """Senders are paced by the clock, each offset within the interval."""

    def setUp(self) -> None:
        self.schedule = sustained.Schedule(senders=2, rate=1000.0, total=5)

    def test_first_line(self) -> None:
        """Sender 0's first line is due at once; sender 1's half an interval on."""
        self.assertEqual(self.schedule.due(0, 0), 1)
        self.assertEqual(self.schedule.due(1, 0), 0)
        self.assertEqual(self.schedule.due(1, 500_000), 1)
        self.assertEqual(self.schedule.due_ns(1, 0), 500_000)

    def test_rate(self) -> None:
        """At 1,000 lines a second, 3 lines are due 2 ms in."""
        self.assertEqual(self.schedule.due(0, 2_000_000), 3)
        self.assertEqual(self.schedule.due_ns(0, 2), 2_000_000)

    def test_total(self) -> None:
        """No more than the total is ever due."""
        self.assertEqual(self.schedule.due(0, 10**12), 5)


class PayloadTests(SynchronousTestCase):
    """The line each sender writes."""

    def test_size(self) -> None:
        """A line has exactly the size asked for, newline included."""
        line = sustained.payload_line(3, 1234, 987654321, 200)
        self.assertEqual(len(line), 200)
        self.assertTrue(line.startswith(b"B|3|1234|987654321|x"))
        self.assertTrue(line.endswith(b"x~\n"))

    def test_too_small(self) -> None:
        """A size that cannot hold the fields is refused."""
        with self.assertRaises(ValueError):
            sustained.payload_line(3, 1234, 987654321, 20)


def _line(sender: int, seq: int, due_ns: int = 0) -> bytes:
    line: bytes = sustained.payload_line(sender, seq, due_ns, 60)
    return b"<guest> " + line


class TallyTests(SynchronousTestCase):
    """Every reader counts every line, per sender, in order."""

    def setUp(self) -> None:
        self.tally: Any = sustained.Tally(readers=2, senders=2)

    def test_count(self) -> None:
        """Lines are counted per reader and per sender."""
        data = _line(0, 0) + _line(1, 0) + _line(0, 1)
        self.assertEqual(self.tally.feed(1, data, 0, 0), 3)
        self.assertEqual(self.tally.got, [[0, 0], [2, 1]])
        self.assertEqual(self.tally.received(1), 3)

    def test_split(self) -> None:
        """A line split across two reads is counted once, when complete."""
        data = _line(0, 0) + _line(0, 1)
        self.assertEqual(self.tally.feed(0, data[:70], 0, 0), 1)
        self.assertEqual(self.tally.feed(0, data[70:], 0, 0), 1)
        self.assertEqual(self.tally.got[0], [2, 0])
        self.assertEqual((self.tally.skipped[0], self.tally.disorder[0]), (0, 0))

    def test_gap(self) -> None:
        """A line missing on an open connection is noticed."""
        self.tally.feed(0, _line(0, 0) + _line(0, 3), 0, 0)
        self.assertEqual(self.tally.skipped[0], 2)

    def test_disorder(self) -> None:
        """A line older than one already received is noticed."""
        self.tally.feed(0, _line(1, 1) + _line(1, 0), 0, 0)
        self.assertEqual(self.tally.disorder[0], 1)

    def test_latency(self) -> None:
        """Latency runs from the line's due time, both relative to the start."""
        self.tally.feed(0, _line(0, 0, due_ns=1_000_000), 5_000_000, 1_000_000)
        self.assertEqual(list(self.tally.latencies), [3_000_000])

    def test_notices(self) -> None:
        """Quit notices and refusals are noted, not counted as lines."""
        data = b"*** guest11 has quit (send queue exceeded)\n!!! no\n" + _line(0, 0)
        self.assertEqual(self.tally.feed(0, data, 2_000_000_000, 0), 1)
        self.assertEqual(self.tally.quits, {("guest11", "send queue exceeded"): 2.0})
        self.assertEqual(self.tally.errors[0], 1)


LOG = """\
2026-12-01T14:45:00+0000 [twisted_chat.server.line.ChatProtocol#info] \
127.0.0.1:40001 connected as guest1
2026-12-01T14:45:00+0000 [twisted_chat.server.line.ChatProtocol#info] \
127.0.0.1:40002 connected as guest2
2026-12-01T14:45:01+0000 [twisted_chat.server.line.ChatProtocol#info] \
127.0.0.1:40002 has stopped reading; its output queues up
2026-12-01T14:45:02+0000 [twisted_chat.server.line.ChatProtocol#info] \
disconnecting guest2 (127.0.0.1:40002): send queue exceeded (262210 bytes waiting)
2026-12-01T14:45:03+0000 [twisted_chat.server.line.ChatProtocol#info] \
127.0.0.1:40001 (guest1) disconnected: Connection was closed cleanly.
"""


class ServerLogTests(SynchronousTestCase):
    """The server's reason for a disconnection comes from its log."""

    def test_reason(self) -> None:
        """A connection the server dropped: its nick, reason and other lines."""
        peer = sustained.parse_server_log(LOG)["127.0.0.1:40002"]
        self.assertEqual(peer.nick, "guest2")
        self.assertEqual(peer.reason, "send queue exceeded (262210 bytes waiting)")
        self.assertEqual(
            peer.other, ["127.0.0.1:40002 has stopped reading; its output queues up"]
        )

    def test_lost(self) -> None:
        """A connection that ended on its own: no reason, how it was lost."""
        peer = sustained.parse_server_log(LOG)["127.0.0.1:40001"]
        self.assertEqual((peer.nick, peer.reason), ("guest1", ""))
        self.assertEqual(peer.lost, "Connection was closed cleanly.")


def _run(lost: int, readers_cut: int = 0, non_reader_cut: bool | None = None) -> Any:
    non_readers = (
        []
        if non_reader_cut is None
        else [{"cut": non_reader_cut, "cut_within_bound": non_reader_cut}]
    )
    return {
        "lost": lost,
        "readers_cut": readers_cut,
        "non_readers": non_readers,
        "server": {"alive": True},
    }


class VerdictTests(SynchronousTestCase):
    """A run passes only with nothing lost and the non-reader cut."""

    def test_pass(self) -> None:
        """Nothing lost, nobody cut but the non-reader: a pass."""
        self.assertTrue(sustained.passed(_run(0, non_reader_cut=True)))

    def test_fail(self) -> None:
        """A loss, a reading client cut or a non-reader kept: a failure."""
        self.assertFalse(sustained.passed(_run(5)))
        self.assertFalse(sustained.passed(_run(0, readers_cut=1)))
        self.assertFalse(sustained.passed(_run(0, non_reader_cut=False)))

    def test_summary(self) -> None:
        """The summary line counts runs, clean runs and non-readers cut."""
        runs = [_run(0, non_reader_cut=True), _run(7, 10, non_reader_cut=True)]
        line = sustained.summary_line("sustained+stalled", runs)
        self.assertTrue(
            line.startswith(
                "sustained+stalled: 2 runs, 1 with 0 deliveries lost by reading "
                "clients, non-reader cut in 2 of 2;"
            ),
            line,
        )


class GarbageReportTests(SynchronousTestCase):
    """tools/stress.py says what it found in the garbage delivered."""

    def test_none(self) -> None:
        """Nothing delivered."""
        self.assertEqual(stress.garbage_delivered(["<p0> p0 1 x"], []), "0")

    def test_clean(self) -> None:
        """Delivered lines without anything unsafe say so."""
        lines = ["<garbage> *** forged", "<garbage> tab\there"]
        self.assertEqual(
            stress.garbage_delivered(lines, []),
            "2 (none with control characters or invalid UTF-8)",
        )

    def test_unsafe(self) -> None:
        """Control characters and invalid UTF-8 are counted, not hidden."""
        lines = ["<garbage> \x1b[2J", "<garbage> caf\ufffd", "<garbage> fine"]
        self.assertEqual(
            stress.garbage_delivered(lines, ["<garbage> caf\ufffd"]),
            "3 (1 with control characters, 1 not valid UTF-8)",
        )
