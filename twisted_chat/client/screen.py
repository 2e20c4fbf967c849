"""
The full-screen client's screen, as a pure model: the scrollback, the status
line and the input line, rendered to rows of styled text for a terminal of a
given size.

Layout, top to bottom::

    12:01 *** alice has joined #dev          the scrollback: every line with
    12:02 <bob> hi alice                     its local time; lines of a room
    12:02 [#lobby] <carol> lunch?            other than the current one show
    2026-11-30 09:15 <dave> old news         the room; a line of history shows
                                             when it was said, its stamp in
                                             blue
    [alice] [#dev] [1:#lobby 2:#dev] [connected]     the status line
    [#dev] what I am typi_                           the input line

Everything the server sends goes through
L{replace_forbidden_characters} first, so no line can carry a control
sequence to the terminal; colours come only from L{PALETTE} and the few
styles below, chosen here, never from the server.

Pure: the time is passed in, nothing is drawn here
(L{twisted_chat.client.fullscreen} draws what L{Screen.render} returns).
"""

from __future__ import annotations

import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence

from attrs import define, field, frozen

from twisted_chat.client.cells import (
    BLUE,
    CYAN,
    GREEN,
    MAGENTA,
    PLAIN,
    RED,
    YELLOW,
    Row,
    Segment,
    Style,
    char_width,
    text_width,
    wrap,
)
from twisted_chat.client.inputline import InputLine
from twisted_chat.client.server_lines import parse_kicked, parse_left, split_room
from twisted_chat.client.ui import Connection, Status
from twisted_chat.shared.lines import parse_history, parse_joined
from twisted_chat.shared.rules import name_key, replace_forbidden_characters

# Lines kept in the scrollback.
SCROLLBACK = 5000

# Nicknames are coloured from this palette, each always in the same colour
# (chosen from its name), our own in OWN_NICK.
PALETTE = (
    Style(colour=GREEN),
    Style(colour=CYAN),
    Style(colour=MAGENTA),
    Style(colour=YELLOW),
    Style(colour=RED),
    Style(colour=GREEN, bold=True),
    Style(colour=CYAN, bold=True),
    Style(colour=MAGENTA, bold=True),
    Style(colour=YELLOW, bold=True),
    Style(colour=RED, bold=True),
)
OWN_NICK = Style(bold=True)
ROOM_TAG = Style(colour=BLUE, bold=True)
NOTICE = Style(bold=True)
ERROR = Style(colour=RED, bold=True)
CLIENT = Style(colour=YELLOW)
HISTORY = Style(colour=BLUE)
BAR = Style(reverse=True)
BAR_CURRENT = Style(reverse=True, bold=True)

_NAME = r"[A-Za-z][A-Za-z0-9_-]*"
# Lines that start with a nickname: the prefix before it, the nickname, and
# the rest of the line's own punctuation.
_NICK_LINES = (
    re.compile(rf"(<)({_NAME})(> )"),  # <bob> hi
    re.compile(rf"(\* )({_NAME})( |\Z)"),  # * bob waves
    re.compile(rf"(\*)({_NAME})(\* )"),  # *bob* psst
    re.compile(rf"(-> \*)({_NAME})(\* )"),  # -> *bob* psst
    re.compile(rf"(-)({_NAME})(- )"),  # -bob- a notice to the room
)
_SAID = re.compile(rf"(?:<{_NAME}> |\* {_NAME}(?: |\Z)|-{_NAME}- )")


def nick_style(nick: str, own: str | None = None) -> Style:
    """
    The style of C{nick}: always the same palette colour for the same name
    (ignoring case), or L{OWN_NICK} for C{own}.
    """
    if own is not None and name_key(nick) == name_key(own):
        return OWN_NICK
    return PALETTE[zlib.crc32(name_key(nick).encode("ascii")) % len(PALETTE)]


def local_stamp(at: float, now: float) -> str:
    """
    C{at} in local time: C{HH:MM} on the day of C{now}, with the date
    before on any other day (a line replayed from an older conversation).
    """
    when, today = time.localtime(at), time.localtime(now)
    if when[:3] == today[:3]:
        return time.strftime("%H:%M", when)
    return time.strftime("%Y-%m-%d %H:%M", when)


def typable(text: str) -> str:
    """C{text} without what the input line cannot hold (controls, tabs)."""
    return replace_forbidden_characters(text, "").replace("\t", " ")


def _same_room(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and name_key(a) == name_key(b)


def line_room(text: str, current: str | None) -> str | None:
    """
    The room an unmarked line from the server belongs to: the room a join,
    part or kick names; the current room for a message, an action or a
    user's notice to the room; none for anything else (the server's
    notices, errors, private messages).
    """
    joined = parse_joined(text)
    if joined is not None:
        return joined[1]
    left = parse_left(text)
    if left is not None:
        return left[1]
    kicked = parse_kicked(text)
    if kicked is not None:
        return kicked[2]
    if _SAID.match(text):
        return current
    return None


def body_segments(text: str, own: str | None = None) -> list[Segment]:
    """A line's text, styled by what kind of line it is."""
    if text.startswith("!!! "):
        return [Segment(text, ERROR)]
    if text.startswith("--- "):
        return [Segment(text, CLIENT)]
    if text.startswith("*** "):
        return [Segment("***", NOTICE), Segment(text[3:])]
    for pattern in _NICK_LINES:
        match = pattern.match(text)
        if match is not None:
            before, nick, after = match.groups()
            return [
                Segment(before),
                Segment(nick, nick_style(nick, own)),
                Segment(after + text[match.end() :]),
            ]
    return [Segment(text)]


def fit(segments: Sequence[Segment], width: int, fill: Style = PLAIN) -> Row:
    """C{segments} cut or padded (in C{fill}) to exactly C{width} cells."""
    row: list[Segment] = []
    used = 0
    for segment in segments:
        text = []
        for char in segment.text:
            cells = char_width(char)
            if used + cells > width:
                break
            text.append(char)
            used += cells
        if text:
            row.append(Segment("".join(text), segment.style))
        if used >= width:
            break
    if used < width:
        row.append(Segment(" " * (width - used), fill))
    return tuple(row)


@frozen
class Entry:
    """
    One line of the scrollback.

    @ivar at: when it arrived (or was said, for a replayed line).
    @ivar text: the line, made safe, without its C{[#room]} mark (nor, for a
        line of history, its C{[history T]} mark).
    @ivar room: the room it belongs to, if any.
    @ivar history: whether it is a line of a room's history.
    """

    at: float
    text: str
    room: str | None
    history: bool = False


@define
class Screen:
    """
    What the terminal shows, for a terminal of C{width} by C{height}.

    @ivar scroll: how many rows the scrollback is scrolled up (PgUp) from
        the newest line.
    """

    status: Status
    width: int = 80
    height: int = 24
    stamp: Callable[[float, float], str] = local_stamp
    input: InputLine = field(factory=InputLine)
    entries: deque[Entry] = field(factory=lambda: deque(maxlen=SCROLLBACK))
    scroll: int = 0

    @property
    def scrollback_height(self) -> int:
        return max(self.height - 2, 0)

    def add(self, text: str, at: float) -> None:
        """
        Add a line from the server (or from the client, C{--- ...}) to the
        scrollback, said at C{at}.  A scrolled view stays where it is.
        """
        room, body = split_room(replace_forbidden_characters(text))
        body = body.replace("\t", " ")
        # A line of history: its stamp says when it was said.
        replayed = parse_history(body)
        if replayed is not None:
            body = replayed[1]
        if room is None:
            room = line_room(body, self.status.room)
        entry = Entry(at, body, room, replayed is not None)
        self.entries.append(entry)
        if self.scroll:
            self.scroll += len(self._wrap(entry, at))

    def clear(self) -> None:
        self.entries.clear()
        self.scroll = 0

    def resize(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.scroll = 0

    def page_up(self) -> None:
        self.scroll += max(self.scrollback_height - 1, 1)

    def page_down(self) -> None:
        self.scroll = max(self.scroll - max(self.scrollback_height - 1, 1), 0)

    # Rendering

    def render(self, now: float) -> list[Row]:
        """
        Every row of the screen, top to bottom: C{width} cells wide but for
        the last, the input line, one cell shorter.
        """
        rows = self._scrollback(now)
        rows.append(self._status_row())
        rows.append(self._input_row())
        return rows[-self.height :] if self.height > 0 else []

    def cursor(self) -> tuple[int, int]:
        """The cursor's column and row: in the input line."""
        prompt = self._prompt()
        _, column = self.input.view(self.width - text_width(prompt))
        return text_width(prompt) + column, max(self.height - 1, 0)

    def _wrap(self, entry: Entry, now: float) -> list[Row]:
        stamp = self.stamp(entry.at, now) + " "
        segments = [Segment(stamp, HISTORY if entry.history else PLAIN)]
        if entry.room is not None and not _same_room(entry.room, self.status.room):
            segments.append(Segment(f"[#{entry.room}] ", ROOM_TAG))
        segments += body_segments(entry.text, self.status.nick)
        return wrap(segments, self.width, indent=text_width(stamp))

    def _scrollback(self, now: float) -> list[Row]:
        height = self.scrollback_height
        wanted = height + self.scroll
        chunks: list[list[Row]] = []
        count = 0
        for entry in reversed(self.entries):
            chunk = self._wrap(entry, now)
            chunks.append(chunk)
            count += len(chunk)
            if count >= wanted:
                break
        else:
            # Scrolled up past the oldest line: stop there.
            self.scroll = max(min(self.scroll, count - height), 0)
        rows = [row for chunk in reversed(chunks) for row in chunk]
        end = len(rows) - self.scroll
        shown = [fit(row, self.width) for row in rows[max(end - height, 0) : end]]
        blank = fit((), self.width)
        return [blank] * (height - len(shown)) + shown

    def _status_row(self) -> Row:
        status = self.status
        segments = [Segment(f" [{status.nick or '?'}] ", BAR)]
        if status.room is None:
            segments.append(Segment("[no room] ", BAR))
        else:
            segments.append(Segment(f"[#{status.room}] ", BAR_CURRENT))
        if status.rooms:
            segments.append(Segment("[", BAR))
            for i, room in enumerate(status.rooms, 1):
                if i > 1:
                    segments.append(Segment(" ", BAR))
                current = _same_room(room, status.room)
                segments.append(
                    Segment(f"{i}:#{room}", BAR_CURRENT if current else BAR)
                )
            segments.append(Segment("] ", BAR))
        state = status.connection.value
        if status.connection is not Connection.CONNECTED:
            state += f" to {status.server}"
        segments.append(Segment(f"[{state}]", BAR))
        if self.scroll:
            segments.append(Segment(" [-- more --]", BAR_CURRENT))
        return fit(segments, self.width, BAR)

    def _prompt(self) -> str:
        room = self.status.room
        prompt = f"[#{room}] " if room is not None else "> "
        if text_width(prompt) > self.width // 3:
            prompt = "> "
        return prompt

    def _input_row(self) -> Row:
        prompt = self._prompt()
        shown, _ = self.input.view(self.width - text_width(prompt))
        # One cell short: nothing is written in the bottom right corner,
        # where some terminals would scroll.
        return fit([Segment(prompt, NOTICE), Segment(shown)], self.width - 1)
