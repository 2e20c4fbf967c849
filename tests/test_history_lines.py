"""
Tests for the line protocol's form of history: the C{[history T]} mark, its
parser, C{/history [#ROOM] [N]}, and how a L{History} reply is rendered.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import nicks, property_settings, rooms
from twisted_chat.core import events
from twisted_chat.server.line_render import RENDERER, render_reply
from twisted_chat.shared import lines
from twisted_chat.shared.commands import USAGE, History, Invalid, parse_line

# 2026-12-01 14:05:03.75 UTC
WHEN = 1796133903.75
BOB = events.Source("bob", "bob", "line.twisted-chat")
# Characters text may hold (no controls, no line separators).
SAFE = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))


class HistoryLineTests(SynchronousTestCase):
    """The mark of a line of history, written and read back."""

    def test_format(self) -> None:
        """The time is UTC, to the second (truncated), with a Z."""
        self.assertEqual(
            lines.history(WHEN, "<bob> hi"), "[history 2026-12-01 14:05:03Z] <bob> hi"
        )

    def test_parse(self) -> None:
        """The parser gives the time back, to the second, and the line."""
        self.assertEqual(
            lines.parse_history("[history 2026-12-01 14:05:03Z] <bob> hi"),
            (1796133903.0, "<bob> hi"),
        )

    def test_not_history(self) -> None:
        """Other lines, or a mark that is not exactly right, are not history."""
        for line in [
            "<bob> [history 2026-12-01 14:05:03Z] hi",
            "[#dev] [history 2026-12-01 14:05:03Z] <bob> hi",
            "[history 2026-12-01 14:05:03] <bob> hi",
            "[history 2026-12-01T14:05:03Z] <bob> hi",
            "[history 2026-13-01 14:05:03Z] <bob> hi",
            "[history 2026-02-30 14:05:03Z] <bob> hi",
            "[history 2026-12-01 24:05:03Z] <bob> hi",
            "[history 2026-12-01 14:05:03Z]<bob> hi",
        ]:
            self.assertIsNone(lines.parse_history(line), line)

    @given(st.floats(min_value=0, max_value=4e9))
    @property_settings
    def test_round_trip(self, when: float) -> None:
        """Any time is read back as the second it falls in."""
        parsed = lines.parse_history(lines.history(when, "x"))
        self.assertEqual(parsed, (float(int(when)), "x"))

    @given(nicks, st.text(SAFE, min_size=1))
    @property_settings
    def test_cannot_be_forged(self, nick: str, text: str) -> None:
        """No message a user sends is shown as a line of history."""
        for event in (
            events.Message("dev", 1, WHEN, events.Source(nick, nick, "h"), text),
            events.Action("dev", 1, WHEN, events.Source(nick, nick, "h"), text),
        ):
            for variant in (True, False):
                for line in RENDERER.render(event, variant).decode().splitlines():
                    self.assertIsNone(lines.parse_history(line))
                    self.assertFalse(line.startswith("[history"))

    def test_header(self) -> None:
        """The notice before /history's lines counts them."""
        self.assertEqual(
            [lines.history_header("dev", n) for n in (0, 1, 2)],
            [
                "*** No history in #dev.",
                "*** History of #dev: 1 line",
                "*** History of #dev: 2 lines",
            ],
        )


class HistoryCommandTests(SynchronousTestCase):
    """C{/history [#ROOM] [N]}."""

    def test_forms(self) -> None:
        """The room and the count are both optional."""
        self.assertEqual(
            [
                parse_line(line)
                for line in (
                    "/history",
                    "/history 200",
                    "/history #dev",
                    "/history #dev 5",
                    "/HISTORY   7 ",
                )
            ],
            [
                History(),
                History(None, 200),
                History("#dev"),
                History("#dev", 5),
                History(None, 7),
            ],
        )

    def test_usage(self) -> None:
        """A count that is not a whole number of lines is a usage error."""
        usage = Invalid(f"Usage: {USAGE['history']}")
        for line in (
            "/history 0",
            "/history -3",
            "/history x",
            "/history 1 2",
            "/history 2.5",
            "/history \u0663",
            "/history 3 #dev",
        ):
            self.assertEqual(parse_line(line), usage, line)


class RenderTests(SynchronousTestCase):
    """L{events.History} in the line protocol."""

    def setUp(self) -> None:
        self.stored: tuple[events.StoredEvent, ...] = (
            events.Message("dev", 4, WHEN, BOB, "hi"),
            events.Action("dev", 6, WHEN + 60, BOB, "waves"),
            events.RoomNotice("dev", 7, WHEN + 61, BOB, "psst"),
            events.TopicChanged("dev", 9, WHEN + 3600, BOB, "plans"),
        )

    def render(self, reply: events.History) -> list[str]:
        return render_reply(reply, "alice").decode().splitlines()

    def test_replay(self) -> None:
        """A replay on joining is the lines as they were, marked, and nothing more."""
        self.assertEqual(
            self.render(events.History("dev", self.stored)),
            [
                "[history 2026-12-01 14:05:03Z] <bob> hi",
                "[history 2026-12-01 14:06:03Z] * bob waves",
                "[history 2026-12-01 14:06:04Z] -bob- psst",
                "[history 2026-12-01 15:05:03Z] *** bob set the topic of #dev: plans",
            ],
        )

    def test_other_room(self) -> None:
        """Lines of a room that is not the current one say which room."""
        self.assertEqual(
            self.render(events.History("dev", self.stored[:1], True, False)),
            [
                "*** History of #dev: 1 line",
                "[#dev] [history 2026-12-01 14:05:03Z] <bob> hi",
            ],
        )

    def test_empty_request(self) -> None:
        """An answer to /history says when there is nothing."""
        self.assertEqual(
            self.render(events.History("dev", (), True)), ["*** No history in #dev."]
        )

    @given(rooms, st.lists(st.text(SAFE, min_size=1), max_size=5))
    @property_settings
    def test_every_line_marked(self, room: str, texts: list[str]) -> None:
        """Whatever was said, each replayed line parses as history."""
        stored = tuple(
            events.Message(room, i, WHEN + i, BOB, text) for i, text in enumerate(texts)
        )
        rendered = render_reply(events.History(room, stored), "alice")
        shown = rendered.decode().split("\n")[:-1] if rendered else []
        self.assertEqual(len(shown), len(texts))
        for line, text in zip(shown, texts, strict=True):
            parsed = lines.parse_history(line)
            assert parsed is not None
            self.assertEqual(parsed[1], f"<bob> {text}")
