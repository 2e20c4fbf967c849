"""
Tests for the full-screen client: the pure pieces (cells and wrapping, the
input line and its history, the screen model, the local commands), the
insults protocol that draws them (L{twisted_chat.client.fullscreen}), driven
through Twisted's own C{insults.ServerProtocol} into a fake terminal that
understands only what the client may send, and the local terminal's raw
mode on a pseudo-terminal.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import signal
import struct
import termios
import time
import unicodedata
from collections.abc import Callable
from typing import Any

from twisted.conch.insults import insults
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.logger import ILogObserver, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_chat.client.app import _ErrorsOnScreen
from twisted_chat.client.cells import (
    CYAN,
    PLAIN,
    RED,
    Segment,
    Style,
    char_width,
    clip,
    row_text,
    text_width,
    wrap,
)
from twisted_chat.client.fullscreen import FullScreen
from twisted_chat.client.inputline import InputLine
from twisted_chat.client.local_commands import (
    KEYS_HELP,
    SWITCH_USAGE,
    Clear,
    Send,
    Show,
    interpret,
)
from twisted_chat.client.localterminal import ENTER, LEAVE, LocalTerminal
from twisted_chat.client.screen import (
    BAR,
    ERROR,
    OWN_NICK,
    PALETTE,
    ROOM_TAG,
    Screen,
    body_segments,
    line_room,
    local_stamp,
    nick_style,
)
from twisted_chat.client.server_lines import (
    is_no_room,
    parse_kicked,
    parse_left,
    parse_now_talking,
    split_room,
)
from twisted_chat.client.ui import Connection, Status


def utc_stamp(at: float, now: float) -> str:
    """A stamp that does not depend on the machine's time zone."""
    return time.strftime("%H:%M", time.gmtime(at))


# 2024-05-01 12:34:00 UTC
NOON = 1714566840.0
SERVER = "chat.example:10001"


def status(
    nick: str | None = "alice",
    room: str | None = "lobby",
    rooms: tuple[str, ...] = ("lobby",),
    connection: Connection = Connection.CONNECTED,
) -> Status:
    return Status(SERVER, connection, nick, room, rooms)


def texts(rows: list[tuple[Segment, ...]]) -> list[str]:
    return [row_text(row).rstrip() for row in rows]


class ServerLinesTests(SynchronousTestCase):
    """The client's parsers of the lines about several rooms."""

    def test_split_room(self) -> None:
        """A line from another room comes apart into the room and the line."""
        self.assertEqual(split_room("[#dev] <bob> hi"), ("dev", "<bob> hi"))
        self.assertEqual(split_room("<bob> [#dev] hi"), (None, "<bob> [#dev] hi"))
        self.assertEqual(split_room("[#9x] <bob> hi"), (None, "[#9x] <bob> hi"))

    def test_notices(self) -> None:
        """Left, kicked, now talking, already in, no room."""
        self.assertEqual(parse_left("*** bob has left #dev"), ("bob", "dev"))
        self.assertEqual(
            parse_left("*** bob has left #dev (see you (soon))"), ("bob", "dev")
        )
        self.assertIsNone(parse_left("*** bob has left #dev now"))
        self.assertEqual(
            parse_kicked("*** op kicked bob from #dev (spam (again))"),
            ("op", "bob", "dev"),
        )
        self.assertIsNone(parse_kicked("*** op kicked bob from #dev"))
        self.assertEqual(parse_now_talking("*** Now talking in #dev."), "dev")
        self.assertEqual(parse_now_talking("*** You are already in #ops."), "ops")
        self.assertIsNone(parse_now_talking("<bob> *** Now talking in #dev."))
        self.assertTrue(is_no_room("*** You are in no room now; /join one to talk."))
        self.assertFalse(is_no_room("<bob> *** You are in no room now"))


class CellsTests(SynchronousTestCase):
    """How many cells text takes, and wrapping it into rows."""

    def test_widths(self) -> None:
        """ASCII 1, CJK and emoji 2, combining marks and joiners 0."""
        self.assertEqual([char_width(c) for c in "a日☕\u0301\u200d"], [1, 2, 2, 0, 0])
        self.assertEqual(text_width("cafe\u0301 日本"), 9)

    def test_clip(self) -> None:
        """A wide character that would not fit is left out whole."""
        self.assertEqual(clip("ab日本", 5), "ab日")
        self.assertEqual(clip("ab日本", 4), "ab日")
        self.assertEqual(clip("ab日本", 3), "ab")

    def test_wrap_at_spaces(self) -> None:
        """Rows break after a space, later rows indented."""
        rows = wrap([Segment("12:00 "), Segment("one two three four")], 14, 6)
        self.assertEqual(texts(rows), ["12:00 one two", "      three", "      four"])

    def test_wrap_long_word(self) -> None:
        """A word longer than a row is cut."""
        rows = wrap([Segment("abcdefghij")], 4, 2)
        self.assertEqual(texts(rows), ["abcd", "  ef", "  gh", "  ij"])

    def test_wrap_wide(self) -> None:
        """A wide character never straddles two rows."""
        rows = wrap([Segment("ab日本語")], 5)
        self.assertEqual(texts(rows), ["ab日", "本語"])

    def test_wrap_keeps_styles(self) -> None:
        """Each row keeps the styles of its characters."""
        bold = Style(bold=True)
        rows = wrap([Segment("ab", bold), Segment(" cd ef")], 5)
        self.assertEqual(rows[0], (Segment("ab", bold), Segment(" cd")))
        self.assertEqual(rows[1], (Segment("ef"),))

    def test_sgr(self) -> None:
        """A style is selected from plain, so nothing of the last one leaks."""
        self.assertEqual(PLAIN.sgr(), ("0",))
        self.assertEqual(
            Style(colour=RED, bold=True, reverse=True).sgr(), ("0", "1", "7", "31")
        )


class InputLineTests(SynchronousTestCase):
    """L{InputLine}: editing and history."""

    def typed(self, *texts: str) -> InputLine:
        line = InputLine()
        for text in texts:
            line.insert(text)
        return line

    def test_editing(self) -> None:
        """Insert, move, delete, backspace, in Unicode."""
        line = self.typed("héllo")
        line.left()
        line.left()
        line.insert("X")
        line.backspace()
        line.backspace()
        line.delete()
        self.assertEqual((line.text, line.cursor), ("héo", 2))
        line.home()
        line.insert("¡")
        line.end()
        line.insert("!")
        self.assertEqual((line.text, line.cursor), ("¡héo!", 5))

    def test_bounds(self) -> None:
        """Moving or deleting past either end does nothing."""
        line = self.typed("ab")
        line.right()
        line.delete()
        line.home()
        line.left()
        line.backspace()
        self.assertEqual((line.text, line.cursor), ("ab", 0))

    def test_kills(self) -> None:
        """Ctrl-W, Ctrl-U and Ctrl-K."""
        line = self.typed("say hello  world")
        line.kill_word()
        self.assertEqual(line.text, "say hello  ")
        line.kill_word()
        self.assertEqual(line.text, "say ")
        line.insert("it twice")
        line.word_left()
        line.kill_to_end()
        self.assertEqual(line.text, "say it ")
        line.word_left()
        line.kill_to_start()
        self.assertEqual((line.text, line.cursor), ("it ", 0))
        line.word_right()
        self.assertEqual(line.cursor, 2)

    def test_history(self) -> None:
        """Up recalls earlier lines, Down comes back to the draft."""
        line = InputLine()
        for text in ["first", "second"]:
            line.insert(text)
            self.assertEqual(line.enter(), text)
        line.insert("draft")
        line.up()
        self.assertEqual((line.text, line.cursor), ("second", 6))
        line.up()
        line.up()
        self.assertEqual(line.text, "first")
        line.down()
        self.assertEqual(line.text, "second")
        line.down()
        self.assertEqual(line.text, "draft")
        line.down()
        self.assertEqual(line.text, "draft")

    def test_history_entries(self) -> None:
        """Blank lines and repeats are not kept; a recalled line is a copy."""
        line = InputLine(limit=3)
        for text in ["a", "a", " ", "b", "c", "d"]:
            line.insert(text)
            line.enter()
        self.assertEqual(line.history, ["b", "c", "d"])
        line.up()
        line.insert("!")
        self.assertEqual(line.enter(), "d!")
        self.assertEqual(line.history, ["c", "d", "d!"])
        self.assertEqual((line.text, line.position), ("", 3))

    def test_view_short(self) -> None:
        """A short line is shown whole, the cursor where it is."""
        line = self.typed("日本 ok")
        line.left()
        self.assertEqual(line.view(20), ("日本 ok", 6))

    def test_view_scrolls(self) -> None:
        """A long line scrolls by half a row so the cursor stays in sight."""
        line = self.typed("abcdefghijklmnopqrstuvwxyz")
        shown, column = line.view(11)
        self.assertEqual((shown, column), ("uvwxyz", 6))
        line.home()
        self.assertEqual(line.view(11), ("abcdefghij", 0))


class ScreenTests(SynchronousTestCase):
    """L{Screen}: what the terminal shows."""

    def screen(self, width: int = 40, height: int = 8, **kw: Any) -> Screen:
        return Screen(status(**kw), width, height, stamp=utc_stamp)

    def test_layout(self) -> None:
        """Scrollback from the bottom up, then the status line, then the input."""
        screen = self.screen()
        screen.add("*** alice has joined #lobby", NOON)
        screen.add("<bob> hi", NOON + 60)
        screen.input.insert("typing")
        rows = screen.render(NOON)
        self.assertEqual(len(rows), 8)
        self.assertEqual(
            texts(rows),
            [
                "",
                "",
                "",
                "",
                "12:34 *** alice has joined #lobby",
                "12:35 <bob> hi",
                " [alice] [#lobby] [1:#lobby] [connected]",
                "[#lobby] typing",
            ],
        )
        self.assertEqual(screen.cursor(), (15, 7))
        # Every row fills the width (the last one but its last cell), so
        # what was drawn before is overwritten.
        self.assertEqual([text_width(row_text(row)) for row in rows], [40] * 7 + [39])

    def test_status(self) -> None:
        """The status line: nick, current room, every room, the connection."""
        screen = self.screen(
            width=70,
            room="dev",
            rooms=("lobby", "dev"),
            connection=Connection.RECONNECTING,
        )
        row = screen.render(NOON)[-2]
        self.assertEqual(
            row_text(row).rstrip(),
            " [alice] [#dev] [1:#lobby 2:#dev] [reconnecting to chat.example:10001]",
        )
        self.assertEqual({segment.style.reverse for segment in row}, {True})
        current = [segment for segment in row if segment.style.bold]
        self.assertEqual([s.text for s in current], ["[#dev] ", "2:#dev"])

    def test_no_room(self) -> None:
        """Not in any room: the status says so, the prompt is plain."""
        screen = self.screen(nick=None, room=None, rooms=())
        rows = texts(screen.render(NOON))
        self.assertEqual(rows[-2], " [?] [no room] [connected]")
        self.assertEqual(rows[-1], ">")

    def test_sanitised(self) -> None:
        """Nothing the server sends reaches the screen as a control character."""
        screen = self.screen(width=60)
        screen.add("<eve> \x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\tx\r", NOON)
        text = texts(screen.render(NOON))[-3]
        self.assertEqual(
            text, "12:34 <eve> \ufffd[2J\ufffd]0;pwned\ufffd\ufffd31m\ufffdevil x\ufffd"
        )
        for row in screen.render(NOON):
            for char in row_text(row):
                self.assertNotEqual(unicodedata.category(char), "Cc")

    def test_wrapping(self) -> None:
        """A long line wraps under its text, past the time stamp."""
        screen = self.screen(width=20, height=5)
        screen.add("<bob> one two three four five", NOON)
        self.assertEqual(
            texts(screen.render(NOON))[:3],
            ["12:34 <bob> one two", "      three four", "      five"],
        )

    def test_other_rooms_marked(self) -> None:
        """
        Lines of other rooms show the room: marked by the server, or said
        in a room that is no longer current.
        """
        screen = self.screen(width=50, room="dev", rooms=("lobby", "dev"))
        screen.add("<bob> in dev", NOON)
        screen.add("[#lobby] <carol> in lobby", NOON)
        screen.add("[#lobby] *** dave has joined #lobby", NOON)
        screen.add("*** erin has quit (bye)", NOON)
        rows = screen.render(NOON)
        self.assertEqual(
            texts(rows)[2:6],
            [
                "12:34 <bob> in dev",
                "12:34 [#lobby] <carol> in lobby",
                "12:34 [#lobby] *** dave has joined #lobby",
                "12:34 *** erin has quit (bye)",
            ],
        )
        self.assertIn(Segment("[#lobby] ", ROOM_TAG), rows[3])
        screen.status = status(room="lobby", rooms=("lobby", "dev"))
        self.assertEqual(
            texts(screen.render(NOON))[2:5],
            [
                "12:34 [#dev] <bob> in dev",
                "12:34 <carol> in lobby",
                "12:34 *** dave has joined #lobby",
            ],
        )

    def test_line_room(self) -> None:
        """Which room an unmarked line belongs to."""
        self.assertEqual(line_room("<bob> hi", "dev"), "dev")
        self.assertEqual(line_room("* bob waves", "dev"), "dev")
        self.assertEqual(line_room("-bob- maintenance at 5", "dev"), "dev")
        self.assertEqual(line_room("*** bob has joined #ops", "dev"), "ops")
        self.assertEqual(line_room("*** bob has left #ops", "dev"), "ops")
        self.assertEqual(line_room("*** op kicked bob from #ops (x)", "dev"), "ops")
        for line in ["*bob* psst", "-> *bob* psst", "*** Users in #dev (1): a", "x"]:
            self.assertIsNone(line_room(line, "dev"))

    def test_nick_colours(self) -> None:
        """Each nick always has the same palette colour; ours stands out."""
        self.assertEqual(nick_style("Bob"), nick_style("bob"))
        self.assertIn(nick_style("bob"), PALETTE)
        self.assertEqual(nick_style("alice", own="Alice"), OWN_NICK)
        self.assertNotIn(OWN_NICK, PALETTE)
        self.assertNotIn(ROOM_TAG, PALETTE)
        colours = {nick_style(f"user{i}") for i in range(200)}
        self.assertEqual(colours, set(PALETTE))

    def test_line_styles(self) -> None:
        """Messages, actions and private messages colour the nick only."""
        bob = nick_style("bob")
        cases = {
            "<bob> hi": [Segment("<"), Segment("bob", bob), Segment("> hi")],
            "* bob waves": [Segment("* "), Segment("bob", bob), Segment(" waves")],
            "*bob* psst": [Segment("*"), Segment("bob", bob), Segment("* psst")],
            "-> *bob* ok": [Segment("-> *"), Segment("bob", bob), Segment("* ok")],
            "-bob- all": [Segment("-"), Segment("bob", bob), Segment("- all")],
            "!!! No.": [Segment("!!! No.", ERROR)],
        }
        for text, segments in cases.items():
            self.assertEqual(body_segments(text, "alice"), segments)
        self.assertEqual(
            body_segments("<alice> me", "alice")[1], Segment("alice", OWN_NICK)
        )

    def test_stamps(self) -> None:
        """Local time; a line from another day (a replay) shows its date."""
        at = time.mktime((2024, 5, 1, 9, 5, 0, 0, 0, -1))
        self.assertEqual(local_stamp(at, at + 3600), "09:05")
        self.assertEqual(local_stamp(at, at + 2 * 86400), "2024-05-01 09:05")
        screen = Screen(status(), 40, 5)
        screen.add("<bob> old news", at)
        self.assertEqual(
            texts(screen.render(at + 2 * 86400))[2], "2024-05-01 09:05 <bob> old news"
        )

    def test_scrolling(self) -> None:
        """PgUp and PgDn move through the scrollback; new lines keep the view."""
        screen = self.screen(width=60, height=6)
        for i in range(10):
            screen.add(f"<bob> {i}", NOON)
        screen.page_up()
        rows = texts(screen.render(NOON))
        self.assertEqual(rows[:4], [f"12:34 <bob> {i}" for i in range(3, 7)])
        self.assertIn("[-- more --]", rows[4])
        screen.add("<bob> new", NOON)
        self.assertEqual(texts(screen.render(NOON))[0], "12:34 <bob> 3")
        for _ in range(5):
            screen.page_up()
        self.assertEqual(texts(screen.render(NOON))[0], "12:34 <bob> 0")
        screen.page_down()
        screen.page_down()
        screen.page_down()
        screen.page_down()
        rows = texts(screen.render(NOON))
        self.assertEqual(rows[3], "12:34 <bob> new")
        self.assertNotIn("more", rows[4])

    def test_tiny(self) -> None:
        """A terminal too short for the scrollback still has the input line."""
        screen = self.screen(width=10, height=1)
        screen.add("<bob> hi", NOON)
        screen.input.insert("abc")
        self.assertEqual(texts(screen.render(NOON)), ["> abc"])
        self.assertEqual(screen.cursor(), (5, 0))

    def test_long_input(self) -> None:
        """The input line scrolls sideways; the prompt stays."""
        screen = self.screen(width=30, height=3)
        screen.input.insert("0123456789" * 3)
        self.assertEqual(
            texts(screen.render(NOON))[-1], "[#lobby] 01234567890123456789"
        )
        self.assertEqual(screen.cursor(), (29, 2))
        screen.input.home()
        self.assertEqual(
            texts(screen.render(NOON))[-1], "[#lobby] 01234567890123456789"
        )
        self.assertEqual(screen.cursor(), (9, 2))
        narrow = self.screen(width=20, height=3)
        self.assertEqual(texts(narrow.render(NOON))[-1], ">")


class LocalCommandsTests(SynchronousTestCase):
    """What the full-screen client does itself with an entered line."""

    rooms = ("lobby", "dev")

    def test_switch(self) -> None:
        """C{/switch ROOM} and C{/switch N} are a /join of a room we are in."""
        self.assertEqual(interpret("/switch #dev", self.rooms), [Send("/join dev")])
        self.assertEqual(interpret("/SWITCH 1", self.rooms), [Send("/join lobby")])
        self.assertEqual(
            interpret("/switch 3", self.rooms),
            [Show("--- There is no room 3 (you are in 2).")],
        )
        self.assertEqual(interpret("/switch", self.rooms), [Show(SWITCH_USAGE)])

    def test_others(self) -> None:
        """C{/clear} is local, C{/help} adds the keys, the rest is sent."""
        self.assertEqual(interpret("/clear", self.rooms), [Clear()])
        self.assertEqual(
            interpret("/help", self.rooms), [Send("/help"), Show(KEYS_HELP)]
        )
        for line in ["hello", "//switch 1", "/join ops", "/clear all"]:
            self.assertEqual(interpret(line, self.rooms), [Send(line)])


class FakeTerminal:
    """
    A terminal that understands exactly what the full-screen client may
    send (cursor position, erase, SGR, cursor visibility, UTF-8 text) and
    records anything else as unknown.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.cells = [[(" ", PLAIN)] * width for _ in range(height)]
        self.x = self.y = 0
        self.style = PLAIN
        self.cursor_visible = True
        self.unknown: list[bytes] = []
        self._pending = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, data: bytes) -> None:
        data, self._pending = self._pending + data, b""
        i = 0
        while i < len(data):
            byte = data[i]
            if byte == 0x1B:
                if i + 1 >= len(data):
                    self._pending = data[i:]
                    return
                if data[i + 1] != ord("["):
                    self.unknown.append(data[i : i + 2])
                    i += 2
                    continue
                j = i + 2
                while j < len(data) and not 0x40 <= data[j] <= 0x7E:
                    j += 1
                if j >= len(data):
                    self._pending = data[i:]
                    return
                self._csi(data[i + 2 : j].decode("ascii"), chr(data[j]))
                i = j + 1
            elif byte < 0x20 or byte == 0x7F:
                self.unknown.append(bytes([byte]))
                i += 1
            else:
                j = i
                while j < len(data) and data[j] >= 0x20 and data[j] not in (0x7F, 0x1B):
                    j += 1
                self._put(self._decoder.decode(data[i:j]))
                i = j

    def _csi(self, params: str, final: str) -> None:
        if final == "H":
            row, _, column = params.partition(";")
            self.y, self.x = int(row or 1) - 1, int(column or 1) - 1
        elif final == "K" and params == "":
            self.cells[self.y][self.x :] = [(" ", self.style)] * (self.width - self.x)
        elif final == "J" and params == "2":
            self.cells = [[(" ", self.style)] * self.width for _ in range(self.height)]
        elif final == "m":
            style = PLAIN
            for attribute in params.split(";"):
                if attribute in ("", "0"):
                    style = PLAIN
                elif attribute == "1":
                    style = Style(style.colour, True, style.reverse)
                elif attribute == "7":
                    style = Style(style.colour, style.bold, True)
                elif 30 <= int(attribute) <= 37:
                    style = Style(int(attribute) - 30, style.bold, style.reverse)
                else:
                    self.unknown.append(f"\x1b[{params}m".encode())
            self.style = style
        elif final in "hl" and params == "?25":
            self.cursor_visible = final == "h"
        else:
            self.unknown.append(f"\x1b[{params}{final}".encode())

    def _put(self, text: str) -> None:
        for char in text:
            if unicodedata.category(char) == "Cc":
                self.unknown.append(char.encode())
                continue
            width = char_width(char)
            if width == 0:
                previous, style = self.cells[self.y][max(self.x - 1, 0)]
                self.cells[self.y][max(self.x - 1, 0)] = (previous + char, style)
                continue
            if self.x + width > self.width:
                self.unknown.append(b"(past the right edge)")
                continue
            self.cells[self.y][self.x] = (char, self.style)
            if width == 2:
                self.cells[self.y][self.x + 1] = ("", self.style)
            self.x += width

    def row(self, y: int) -> str:
        return "".join(char for char, _ in self.cells[y]).rstrip()

    def rows(self) -> list[str]:
        return [self.row(y) for y in range(self.height)]

    def style_of(self, text: str, y: int) -> Style:
        """The style of the first character of C{text} in row C{y}."""
        x = len(self.row(y)[: self.row(y).index(text)])
        return self.cells[y][x][1]


class RecordingEvents:
    """What the full-screen interface tells the client."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []
        self.fail_typed = False

    def typed(self, line: str) -> None:
        if self.fail_typed:
            raise RuntimeError("boom")
        self.events.append(("typed", line))

    def input_ended(self) -> None:
        self.events.append(("ended", None))

    def interrupted(self) -> None:
        self.events.append(("interrupted", None))


class FullScreenTests(SynchronousTestCase):
    """
    L{FullScreen} under insults' C{ServerProtocol}, on a fake terminal:
    keys in, drawing out.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOON)
        self.events = RecordingEvents()
        self.ui = FullScreen(self.events, self.clock, SERVER, stamp=utc_stamp)
        self.transport = StringTransportWithDisconnection()
        self.insults = insults.ServerProtocol(lambda: self.ui)
        self.transport.protocol = self.insults
        self.insults.makeConnection(self.transport)
        self.resize(50, 10)
        self.ui.status(status())

    def resize(self, width: int, height: int) -> None:
        self.terminal = FakeTerminal(width, height)
        self.ui.terminalSize(width, height)

    def draw(self) -> bytes:
        """Let the reactor turn end; what was written, fed to the terminal."""
        self.clock.advance(0)
        written: bytes = self.transport.value()
        self.transport.clear()
        self.terminal.feed(written)
        self.assertEqual(self.terminal.unknown, [])
        return written

    def keys(self, data: bytes) -> None:
        self.insults.dataReceived(data)

    def test_screen(self) -> None:
        """The first drawing: scrollback, status line, input line, cursor."""
        self.ui.show("*** Welcome!")
        self.draw()
        self.assertEqual(
            self.terminal.rows()[-3:],
            [
                "12:34 *** Welcome!",
                " [alice] [#lobby] [1:#lobby] [connected]",
                "[#lobby]",
            ],
        )
        self.assertEqual((self.terminal.x, self.terminal.y), (9, 9))
        self.assertTrue(self.terminal.cursor_visible)
        self.assertEqual(self.terminal.style_of("[alice]", 8), BAR)

    def test_typing_during_a_flood(self) -> None:
        """Lines arriving while typing never disturb the input line."""
        self.draw()
        self.keys(b"hel")
        for i in range(500):
            self.ui.show(f"<bob> flood {i}")
            if i == 250:
                self.keys("lo wörld".encode())
        written = self.draw()
        self.assertEqual(self.terminal.row(9), "[#lobby] hello wörld")
        self.assertEqual((self.terminal.x, self.terminal.y), (20, 9))
        self.assertEqual(self.terminal.row(7), "12:34 <bob> flood 499")
        # Drawn once for the whole burst, not once per line.
        self.assertLess(len(written), 10 * 50 * 4)

    def test_only_changes_drawn(self) -> None:
        """A key redraws the input line only."""
        self.draw()
        self.keys(b"x")
        written = self.draw()
        self.assertIn(b"\x1b[10;1H", written)
        for row in range(1, 10):
            self.assertNotIn(f"\x1b[{row};1H".encode(), written)
        self.assertEqual(self.terminal.row(9), "[#lobby] x")

    def test_enter_and_history(self) -> None:
        """Enter sends the line and clears the input; Up recalls it."""
        self.keys("héllo\r".encode())
        self.draw()
        self.assertEqual(self.events.events, [("typed", "héllo")])
        self.assertEqual(self.terminal.row(9), "[#lobby]")
        self.keys(b"\x1b[A")
        self.draw()
        self.assertEqual(self.terminal.row(9), "[#lobby] héllo")
        self.keys(b"\x1b[B\r")
        self.assertEqual(self.events.events, [("typed", "héllo")])

    def test_editing_keys(self) -> None:
        """Arrows, Home, End, Ctrl-A/E/U/K/W, Backspace and Delete edit the line."""
        self.keys(b"world\x1b[H" + b"hello \x05!\x7f")
        self.keys(b"\x01\x1b[3~\x1b[4~ x\x17\x1b[D\x1b[D\x0b\r")
        self.keys(b"one two\x15three\r")
        self.assertEqual(
            self.events.events, [("typed", "ello worl"), ("typed", "three")]
        )

    def test_utf8_split(self) -> None:
        """A character whose bytes come in two reads is typed once, whole."""
        data = "日".encode()
        self.keys(data[:1])
        self.keys(data[1:] + b"\r")
        self.assertEqual(self.events.events, [("typed", "日")])

    def test_controls_not_typed(self) -> None:
        """Tabs, C1 controls and stray escapes never reach the input line."""
        self.keys(b"a\tb\xc2\x9bc\x1b[99~d\r")
        self.assertEqual(self.events.events, [("typed", "abcd")])

    def test_switch_rooms(self) -> None:
        """Alt+N and C{/switch} make a room current with /join."""
        self.ui.status(status(room="dev", rooms=("lobby", "dev")))
        self.keys(b"\x1b1\x1b2\x1b3")
        self.keys(b"/switch ops\r")
        self.assertEqual(
            self.events.events,
            [("typed", "/join lobby"), ("typed", "/join dev"), ("typed", "/join ops")],
        )
        self.draw()
        self.assertIn(
            "12:34 --- There is no room 3 (you are in 2).", self.terminal.rows()
        )

    def test_typed_while_reconnecting(self) -> None:
        """A line typed while reconnecting says that it waits."""
        self.resize(70, 10)
        self.ui.status(status(connection=Connection.RECONNECTING))
        self.keys(b"later\r")
        self.draw()
        self.assertEqual(self.events.events, [("typed", "later")])
        self.assertEqual(
            self.terminal.row(7), "12:34 --- not connected; to be sent: later"
        )
        self.assertIn("[reconnecting to chat.example:10001]", self.terminal.row(8))

    def test_status_follows(self) -> None:
        """The status line shows the room after a join, and the connection."""
        self.draw()
        self.ui.status(
            status(room="dev", rooms=("lobby", "dev"), connection=Connection.CONNECTED)
        )
        self.draw()
        self.assertEqual(
            self.terminal.row(8), " [alice] [#dev] [1:#lobby 2:#dev] [connected]"
        )
        self.assertEqual(self.terminal.row(9), "[#dev]")

    def test_hostile_server(self) -> None:
        """Escape sequences from the server are shown as U+FFFD, never sent."""
        self.ui.show("<eve> \x1b[2J\x1b]0;x\x07\x9b1m\x1bc boo")
        written = self.draw()
        self.assertNotIn(b"\x1b]", written)
        self.assertNotIn(b"\x1bc", written)
        self.assertEqual(
            self.terminal.row(7),
            "12:34 <eve> \ufffd[2J\ufffd]0;x\ufffd\ufffd1m\ufffdc boo",
        )

    def test_colours(self) -> None:
        """A nick is drawn in its palette colour, the rest of the line plain."""
        self.ui.show("<bob> hi")
        self.ui.show("!!! No.")
        self.draw()
        self.assertEqual(self.terminal.style_of("bob", 6), nick_style("bob"))
        self.assertEqual(self.terminal.style_of("hi", 6), PLAIN)
        self.assertEqual(self.terminal.style_of("!!!", 7), ERROR)
        self.assertEqual(ERROR.colour, RED)
        self.assertNotEqual(nick_style("bob").colour, None)
        self.assertIsNot(CYAN, None)

    def test_resize(self) -> None:
        """A new size is drawn whole, the input line kept."""
        self.keys(b"typing")
        self.ui.show("<bob> a line long enough to wrap at thirty")
        self.draw()
        self.resize(30, 6)
        self.draw()
        self.assertEqual(
            self.terminal.rows(),
            [
                "",
                "",
                "12:34 <bob> a line long enough",
                "      to wrap at thirty",
                " [alice] [#lobby] [1:#lobby] [",
                "[#lobby] typing",
            ],
        )

    def test_ctrl_c(self) -> None:
        """Ctrl-C asks the client to leave, whatever else is going on."""
        self.events.fail_typed = True
        self.keys(b"x\r")
        self.keys(b"\x03")
        self.assertEqual(self.events.events, [("interrupted", None)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.draw()
        self.assertIn("internal error", "\n".join(self.terminal.rows()))

    def test_ctrl_d(self) -> None:
        """Ctrl-D deletes under the cursor, or on an empty line leaves."""
        self.keys(b"ab\x01\x04\r\x04")
        self.assertEqual(self.events.events, [("typed", "b"), ("ended", None)])

    def test_close(self) -> None:
        """Closing leaves plain attributes and a visible cursor, then closes."""
        self.draw()
        closed = self.ui.close()
        self.assertEqual(self.transport.value(), b"\x1b[0m\x1b[?25h")
        self.assertFalse(self.transport.connected)
        self.assertIsNone(self.successResultOf(closed))
        self.assertEqual(self.events.events, [])
        self.ui.show("after")
        self.clock.advance(0)
        self.assertIsNone(self.successResultOf(self.ui.close()))

    def test_terminal_gone(self) -> None:
        """A terminal that goes away counts as the end of input."""
        self.insults.connectionLost(Failure(Exception("hung up")))
        self.assertEqual(self.events.events, [("ended", None)])
        self.assertIsNone(self.successResultOf(self.ui.close()))

    def test_errors_on_screen(self) -> None:
        """Errors logged while the screen is taken are shown there, and kept."""
        errors = _ErrorsOnScreen(self.ui)
        self.assertTrue(verifyObject(ILogObserver, errors))
        errors({"log_level": LogLevel.info, "log_format": "fine"})
        errors({"log_level": LogLevel.critical, "log_format": "bad\nthings"})
        self.draw()
        self.assertEqual(self.terminal.row(7), "12:34 --- error: bad")
        self.assertEqual(errors.kept, ["bad\nthings\n"])


class FakeReactor:
    """The two reactor methods L{LocalTerminal} uses."""

    def __init__(self) -> None:
        self.triggers: list[tuple[str, str, Callable[[], None]]] = []
        self.calls: list[Callable[[], None]] = []

    def addSystemEventTrigger(
        self, phase: str, event: str, f: Callable[[], None]
    ) -> None:
        self.triggers.append((phase, event, f))

    def callFromThread(self, f: Callable[[], None]) -> None:
        self.calls.append(f)


class LocalTerminalTests(SynchronousTestCase):
    """L{LocalTerminal} on a pseudo-terminal: taken over and given back."""

    def setUp(self) -> None:
        self.master, self.slave = os.openpty()
        self.addCleanup(os.close, self.master)
        self.addCleanup(os.close, self.slave)
        os.set_blocking(self.master, False)
        self.reactor = FakeReactor()
        self.local = LocalTerminal(self.reactor, self.slave, self.slave)
        self.addCleanup(self.local.restore)

    def output(self) -> bytes:
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""

    def test_raw_and_back(self) -> None:
        """Raw mode and the alternate screen, then everything as it was."""
        before = termios.tcgetattr(self.slave)
        self.assertTrue(before[3] & termios.ECHO)
        self.local.enter()
        raw = termios.tcgetattr(self.slave)
        for flag in (termios.ECHO, termios.ICANON, termios.ISIG):
            self.assertFalse(raw[3] & flag)
        self.assertEqual(self.output(), ENTER)
        self.assertEqual(
            self.reactor.triggers, [("after", "shutdown", self.local.restore)]
        )
        os.set_blocking(self.slave, False)
        self.local.restore()
        self.assertEqual(termios.tcgetattr(self.slave), before)
        self.assertTrue(os.get_blocking(self.slave))
        self.assertEqual(self.output(), LEAVE)
        self.local.restore()
        self.assertEqual(self.output(), b"")

    def test_not_entered(self) -> None:
        """Restoring a terminal never taken over does nothing."""
        self.local.restore()
        self.assertEqual(self.output(), b"")

    def test_size(self) -> None:
        """The size, and a change of size reported through the reactor."""
        sizes: list[tuple[int, int]] = []
        previous = signal.getsignal(signal.SIGWINCH)
        self.set_size(100, 30)
        self.assertEqual(self.local.size(), (100, 30))
        self.local.enter()
        self.local.watch_size(lambda width, height: sizes.append((width, height)))
        self.set_size(60, 20)
        os.kill(os.getpid(), signal.SIGWINCH)
        self.assertEqual(len(self.reactor.calls), 1)
        self.reactor.calls[0]()
        self.assertEqual(sizes, [(60, 20)])
        self.local.restore()
        self.assertEqual(signal.getsignal(signal.SIGWINCH), previous)

    def set_size(self, width: int, height: int) -> None:
        fcntl.ioctl(
            self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0)
        )
