"""
Text as a terminal shows it: styled segments, how many columns (cells) a
character takes, and wrapping a line into rows of a given width.

Pure: no terminal here, only the arithmetic that the full-screen client's
screen model (L{twisted_chat.client.screen}) and input line
(L{twisted_chat.client.inputline}) need to put the cursor in the right place.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from attrs import frozen

# The eight ANSI colours, as SGR foreground offsets (30 + colour).
BLACK, RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN, WHITE = range(8)


@frozen
class Style:
    """
    How a run of text is drawn: an ANSI colour (or the terminal's own),
    bold, reverse video.
    """

    colour: int | None = None
    bold: bool = False
    reverse: bool = False

    def sgr(self) -> tuple[str, ...]:
        """The SGR attributes that select this style from the default one."""
        attributes = ["0"]
        if self.bold:
            attributes.append("1")
        if self.reverse:
            attributes.append("7")
        if self.colour is not None:
            attributes.append(str(30 + self.colour))
        return tuple(attributes)


PLAIN = Style()


@frozen
class Segment:
    """A run of text in one style."""

    text: str
    style: Style = PLAIN


Row = tuple[Segment, ...]


@lru_cache(maxsize=4096)
def char_width(char: str) -> int:
    """
    The cells C{char} takes on a terminal: 2 for wide East Asian characters
    (and most emoji), 0 for combining marks and format characters, else 1.
    """
    if unicodedata.combining(char) or unicodedata.category(char) in (
        "Mn",
        "Me",
        "Cf",
    ):
        return 0
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return 1


def text_width(text: str) -> int:
    """The cells C{text} takes on a terminal."""
    if text.isascii():
        return len(text)
    return sum(char_width(char) for char in text)


def row_width(row: Iterable[Segment]) -> int:
    return sum(text_width(segment.text) for segment in row)


def row_text(row: Iterable[Segment]) -> str:
    """The text of a row, without its styles."""
    return "".join(segment.text for segment in row)


def _join(cells: Sequence[tuple[str, Style]]) -> Row:
    """Merge neighbouring characters of the same style into segments."""
    segments: list[Segment] = []
    text: list[str] = []
    style: Style | None = None
    for char, char_style in cells:
        if char_style != style and text:
            assert style is not None
            segments.append(Segment("".join(text), style))
            text = []
        style = char_style
        text.append(char)
    if text:
        assert style is not None
        segments.append(Segment("".join(text), style))
    return tuple(segments)


def _cells(cells: Sequence[tuple[str, Style]]) -> int:
    return sum(char_width(char) for char, _ in cells)


def wrap(segments: Sequence[Segment], width: int, indent: int = 0) -> list[Row]:
    """
    Wrap a line into rows of at most C{width} cells, breaking after a space
    where there is one, and indenting every row after the first by C{indent}
    cells (at most half the width).

    @param width: at least 4.
    """
    width = max(width, 4)
    indent = min(indent, width // 2)
    margin = [(" ", PLAIN)] * indent
    rows: list[Row] = []
    row: list[tuple[str, Style]] = []
    # Where this row's own text starts (after the indent), and its width.
    start = 0
    used = 0
    for segment in segments:
        for char in segment.text:
            cells = char_width(char)
            if used + cells > width and char == " ":
                # A break at this very space, which goes with it.
                rows.append(_join(row))
                row, start, used = list(margin), indent, indent
                continue
            if used + cells > width:
                rest: list[tuple[str, Style]] = []
                for i in range(len(row) - 1, start, -1):
                    if row[i][0] == " ":
                        word = row[i + 1 :]
                        if indent + _cells(word) + cells <= width:
                            row, rest = row[: i + 1], word
                        break
                rows.append(_join(row))
                row = margin + rest
                start = indent
                used = indent + _cells(rest)
            row.append((char, segment.style))
            used += cells
    rows.append(_join(row))
    return rows


def clip(text: str, width: int) -> str:
    """The longest start of C{text} that fits in C{width} cells."""
    used = 0
    for i, char in enumerate(text):
        used += char_width(char)
        if used > width:
            return text[:i]
    return text
