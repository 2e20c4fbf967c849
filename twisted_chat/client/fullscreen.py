"""
The full-screen client: an insults terminal protocol, in the manner of
Twisted's manhole (C{twisted.conch.manhole}, on
C{twisted.conch.recvline.HistoricRecvLine}), that shows the
L{twisted_chat.client.screen.Screen} model and edits its input line.

It runs under C{twisted.conch.insults.insults.ServerProtocol}, which turns
the bytes of the keyboard into keystrokes and offers the terminal's
operations; L{twisted_chat.client.localterminal} puts the local terminal in
raw mode around it and gives it back.

Thin: keys become calls on the model, the model's rows become drawing.  A
redraw is scheduled for the end of the reactor turn, so a burst of lines
from the server is drawn once, and only the rows that changed are written.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from twisted.conch.insults import insults
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_chat.client.cells import Row, row_width
from twisted_chat.client.local_commands import (
    Action,
    Clear,
    Send,
    Show,
    interpret,
    switch_to,
)
from twisted_chat.client.screen import Screen, local_stamp, typable
from twisted_chat.client.ui import Connection, Status, UserEvents

_keys = insults.ServerProtocol
ALT = _keys.ALT  # type: ignore[attr-defined]
CURSOR = insults.privateModes.CURSOR_MODE

# While the client cannot send, lines typed wait for the connection.
_WAITING = (Connection.CONNECTING, Connection.RECONNECTING)

CTRL_C = b"\x03"
CTRL_D = b"\x04"

# Sequences insults does not name: Ctrl+arrows (word motion), and the arrow
# keys of a terminal in application cursor mode (ESC O A).
_SEQUENCES = {
    b"\x1b[1;5D": "word_left",
    b"\x1b[1;5C": "word_right",
    b"\x1b[1;3D": "word_left",
    b"\x1b[1;3C": "word_right",
    b"\x1b[OA": "up",
    b"\x1b[OB": "down",
    b"\x1b[OC": "right",
    b"\x1b[OD": "left",
    b"\x1b[OH": "home",
    b"\x1b[OF": "end",
}


class FullScreen(insults.TerminalProtocol):
    """
    The chat on a whole terminal: scrollback, status line, input line.

    A L{twisted_chat.client.ui.UserInterface} for the client, which it tells
    what the user does (L{twisted_chat.client.ui.UserEvents}).
    """

    log = Logger()
    terminal: Any

    def __init__(
        self,
        events: UserEvents,
        clock: IReactorTime,
        server: str,
        stamp: Callable[[float, float], str] = local_stamp,
    ) -> None:
        self.events = events
        self.clock = clock
        self.screen = Screen(Status(server, Connection.CONNECTING), stamp=stamp)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._drawn: list[Row] | None = None
        self._draw_call: IDelayedCall | None = None
        self._closing = False
        self._lost = False
        self._closed: list[Deferred[None]] = []
        line = self.screen.input
        self._function_keys = {
            _keys.LEFT_ARROW: line.left,  # type: ignore[attr-defined]
            _keys.RIGHT_ARROW: line.right,  # type: ignore[attr-defined]
            _keys.HOME: line.home,  # type: ignore[attr-defined]
            _keys.END: line.end,  # type: ignore[attr-defined]
            _keys.UP_ARROW: line.up,  # type: ignore[attr-defined]
            _keys.DOWN_ARROW: line.down,  # type: ignore[attr-defined]
            _keys.DELETE: line.delete,  # type: ignore[attr-defined]
            _keys.PGUP: self.screen.page_up,  # type: ignore[attr-defined]
            _keys.PGDN: self.screen.page_down,  # type: ignore[attr-defined]
        }
        self._controls = {
            b"\r": self._enter,
            b"\n": self._enter,
            b"\x7f": line.backspace,
            b"\x08": line.backspace,
            b"\x01": line.home,  # Ctrl-A
            b"\x05": line.end,  # Ctrl-E
            b"\x02": line.left,  # Ctrl-B
            b"\x06": line.right,  # Ctrl-F
            b"\x0b": line.kill_to_end,  # Ctrl-K
            b"\x15": line.kill_to_start,  # Ctrl-U
            b"\x17": line.kill_word,  # Ctrl-W
            b"\x10": line.up,  # Ctrl-P
            b"\x0e": line.down,  # Ctrl-N
            b"\x0c": self._redraw,  # Ctrl-L
            CTRL_D: self._ctrl_d,
        }
        self._alt_keys = {
            b"b": line.word_left,
            b"f": line.word_right,
            b"\x7f": line.kill_word,
        }

    # ITerminalProtocol

    def connectionMade(self) -> None:
        self._redraw()

    def terminalSize(self, width: int, height: int) -> None:
        self.screen.resize(width, height)
        self._redraw()

    def keystrokeReceived(self, keyID: bytes, modifier: bytes | None) -> None:
        if keyID == CTRL_C:
            # First, so that nothing can keep the user from leaving.
            self.events.interrupted()
            return
        try:
            self._key(keyID, modifier)
        except Exception:
            self.log.failure("handling the key {key!r}", key=keyID)
            self.show("--- internal error (see above); Ctrl-C leaves")
        self._schedule()

    def unhandledControlSequence(self, seq: bytes) -> None:
        name = _SEQUENCES.get(seq)
        if name is not None:
            getattr(self.screen.input, name)()
            self._schedule()

    def connectionLost(self, reason: Failure) -> None:
        # The terminal is gone (or closed by close()).
        self._lost = True
        self._cancel_draw()
        waiters, self._closed = self._closed, []
        for waiter in waiters:
            waiter.callback(None)
        if not self._closing:
            self.events.input_ended()

    # UserInterface

    def show(self, text: str, at: float | None = None) -> None:
        self.screen.add(text, self.clock.seconds() if at is None else at)
        self._schedule()

    def status(self, status: Status) -> None:
        self.screen.status = status
        self._schedule()

    def close(self) -> Deferred[None]:
        """
        Stop drawing, leave the terminal's attributes plain and its cursor
        visible, and close standard output once everything is written.
        """
        if self._lost:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        if not self._closing:
            self._closing = True
            self._cancel_draw()
            self.terminal.selectGraphicRendition("0")
            self.terminal.setPrivateModes([CURSOR])
            self.terminal.transport.loseConnection()
        return closed

    # Keys

    def _key(self, key: bytes, modifier: bytes | None) -> None:
        if modifier == ALT and key < b"\x80":
            if key.isdigit():
                self._do([switch_to(int(key) or 10, self.screen.status.rooms)])
                return
            alt = self._alt_keys.get(key)
            if alt is not None:
                alt()
            return
        function = self._function_keys.get(key)
        if function is not None:
            function()
            return
        control = self._controls.get(key)
        if control is not None:
            control()
            return
        if len(key) != 1 or key < b" ":
            return  # Tab, other controls, keys we do not use.
        text = typable(self._decoder.decode(key))
        if text:
            self.screen.input.insert(text)

    def _ctrl_d(self) -> None:
        if self.screen.input.chars:
            self.screen.input.delete()
        else:
            self.events.input_ended()

    def _enter(self) -> None:
        line = self.screen.input.enter()
        self.screen.scroll = 0
        if line.strip():
            self._do(interpret(line, self.screen.status.rooms))

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self.screen.status.connection in _WAITING:
                    self.show(f"--- not connected; to be sent: {action.line}")
                self.events.typed(action.line)
            elif isinstance(action, Show):
                self.show(action.text)
            elif isinstance(action, Clear):
                self.screen.clear()

    # Drawing

    def _schedule(self) -> None:
        if self._draw_call is None and not (self._closing or self._lost):
            self._draw_call = self.clock.callLater(0, self._draw)

    def _cancel_draw(self) -> None:
        if self._draw_call is not None and self._draw_call.active():
            self._draw_call.cancel()
        self._draw_call = None

    def _redraw(self) -> None:
        """Draw every row next time, not only those that changed."""
        self._drawn = None
        self._schedule()

    def _draw(self) -> None:
        self._draw_call = None
        if self._closing or self._lost:
            return
        terminal = self.terminal
        rows = self.screen.render(self.clock.seconds())
        terminal.resetPrivateModes([CURSOR])
        drawn = self._drawn
        if drawn is None or len(drawn) != len(rows):
            terminal.eraseDisplay()
            drawn = []
        for y, row in enumerate(rows):
            if y < len(drawn) and drawn[y] == row:
                continue
            terminal.cursorPosition(0, y)
            style = None
            for segment in row:
                if segment.style != style:
                    style = segment.style
                    terminal.selectGraphicRendition(*style.sgr())
                terminal.write(segment.text.encode("utf-8"))
            terminal.selectGraphicRendition("0")
            if row_width(row) < self.screen.width:
                terminal.eraseToLineEnd()
        self._drawn = rows
        column, line = self.screen.cursor()
        terminal.cursorPosition(column, line)
        terminal.setPrivateModes([CURSOR])
