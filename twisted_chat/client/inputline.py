"""
The full-screen client's input line: the text being typed, the cursor in it,
editing, and the history of lines entered (Up and Down), in the manner of
C{twisted.conch.recvline.HistoricRecvLine} but on Unicode text rather than
bytes, with the draft kept while browsing the history.

Pure: keys arrive as method calls, and L{InputLine.view} says what part of
the line a row of a given width shows and where its cursor is.
"""

from __future__ import annotations

from attrs import define, field

from twisted_chat.client.cells import char_width, clip, text_width

HISTORY = 500


@define
class InputLine:
    """
    A line being edited.

    @ivar chars: the line, one code point per item.
    @ivar cursor: where the next character goes: an index into C{chars}.
    @ivar history: the lines entered, oldest first, at most C{limit}.
    @ivar position: which history line is shown: C{len(history)} for the
        line being written (the draft).
    @ivar draft: the line being written, kept while the history is shown.
    """

    limit: int = HISTORY
    chars: list[str] = field(factory=list, init=False)
    cursor: int = field(default=0, init=False)
    history: list[str] = field(factory=list, init=False)
    position: int = field(default=0, init=False)
    draft: str = field(default="", init=False)

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def _set(self, text: str) -> None:
        self.chars = list(text)
        self.cursor = len(self.chars)

    # Editing

    def insert(self, text: str) -> None:
        self.chars[self.cursor : self.cursor] = list(text)
        self.cursor += len(text)

    def backspace(self) -> None:
        if self.cursor > 0:
            self.cursor -= 1
            del self.chars[self.cursor]

    def delete(self) -> None:
        if self.cursor < len(self.chars):
            del self.chars[self.cursor]

    def left(self) -> None:
        self.cursor = max(self.cursor - 1, 0)

    def right(self) -> None:
        self.cursor = min(self.cursor + 1, len(self.chars))

    def home(self) -> None:
        self.cursor = 0

    def end(self) -> None:
        self.cursor = len(self.chars)

    def _word_start(self) -> int:
        i = self.cursor
        while i > 0 and self.chars[i - 1] == " ":
            i -= 1
        while i > 0 and self.chars[i - 1] != " ":
            i -= 1
        return i

    def word_left(self) -> None:
        self.cursor = self._word_start()

    def word_right(self) -> None:
        i, n = self.cursor, len(self.chars)
        while i < n and self.chars[i] == " ":
            i += 1
        while i < n and self.chars[i] != " ":
            i += 1
        self.cursor = i

    def kill_word(self) -> None:
        """Ctrl-W: delete the word before the cursor."""
        start = self._word_start()
        del self.chars[start : self.cursor]
        self.cursor = start

    def kill_to_start(self) -> None:
        """Ctrl-U: delete everything before the cursor."""
        del self.chars[: self.cursor]
        self.cursor = 0

    def kill_to_end(self) -> None:
        """Ctrl-K: delete everything from the cursor on."""
        del self.chars[self.cursor :]

    # History

    def up(self) -> None:
        """Show the line entered before the one shown."""
        if self.position == 0:
            return
        if self.position == len(self.history):
            self.draft = self.text
        self.position -= 1
        self._set(self.history[self.position])

    def down(self) -> None:
        """Show the line entered after the one shown, or the draft."""
        if self.position == len(self.history):
            return
        self.position += 1
        if self.position == len(self.history):
            self._set(self.draft)
            self.draft = ""
        else:
            self._set(self.history[self.position])

    def enter(self) -> str:
        """
        Take the line: it is cleared, and added to the history unless it is
        blank or the same as the last line entered.
        """
        line = self.text
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[: -self.limit]
        self.chars = []
        self.cursor = 0
        self.position = len(self.history)
        self.draft = ""
        return line

    # Showing

    def view(self, width: int) -> tuple[str, int]:
        """
        What a row of C{width} cells shows of the line, and the cell the
        cursor is in.  A line too long for the row scrolls sideways by half
        a row at a time, so that the cursor stays in sight; the last cell is
        left free for the cursor.
        """
        room = max(width - 1, 1)
        step = max(room // 2, 1)
        start = 0
        while start < self.cursor and (
            text_width("".join(self.chars[start : self.cursor])) > room
        ):
            start += step
        start = min(start, self.cursor)
        shown = clip("".join(self.chars[start:]), room)
        column = sum(char_width(c) for c in self.chars[start : self.cursor])
        return shown, column
