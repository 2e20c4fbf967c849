"""
The local terminal under the full-screen client: raw mode and the alternate
screen while it runs, its size and its changes (SIGWINCH), and giving all of
it back afterwards, as C{twisted.conch.stdio.runWithProtocol} does for
manhole with C{tty.setraw} and C{termios.tcsetattr}.

L{LocalTerminal.restore} is safe to call more than once and from anywhere:
the client calls it when it is done, and it is also registered to run when
the reactor stops and when the interpreter exits, so an error on the way
out still gives the terminal back.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import signal
import termios
import tty
from collections.abc import Callable
from types import FrameType
from typing import Any

# Alternate screen on (the shell's screen comes back afterwards), cleared.
ENTER = b"\x1b[?1049h\x1b[H\x1b[2J"
# Plain attributes, cursor visible, back to the shell's screen.
LEAVE = b"\x1b[0m\x1b[?25h\x1b[?1049l"

DEFAULT_SIZE = (80, 24)


def is_terminal(fd: int) -> bool:
    return os.isatty(fd)


class LocalTerminal:
    """
    The terminal on C{stdin} and C{stdout}, taken over by L{enter} and given
    back by L{restore}.

    @param reactor: an L{twisted.internet.interfaces.IReactorThreads}, to
        hand a size change from the signal handler to the reactor.
    """

    def __init__(self, reactor: Any, stdin: int = 0, stdout: int = 1) -> None:
        self.reactor = reactor
        self.stdin = stdin
        self.stdout = stdout
        self._saved: list[Any] | None = None
        self._flags: dict[int, int] = {}
        self._previous_handler: Any = None
        self._watching = False
        self.entered = False
        self.restored = False

    def size(self) -> tuple[int, int]:
        """The terminal's width and height, in cells."""
        try:
            size = os.get_terminal_size(self.stdout)
        except OSError:
            return DEFAULT_SIZE
        return size.columns or DEFAULT_SIZE[0], size.lines or DEFAULT_SIZE[1]

    def enter(self) -> None:
        """Raw mode (no echo, no signals from keys), the alternate screen."""
        self._saved = termios.tcgetattr(self.stdin)
        for fd in (self.stdin, self.stdout):
            self._flags[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
        self.entered = True
        self.reactor.addSystemEventTrigger("after", "shutdown", self.restore)
        atexit.register(self.restore)
        tty.setraw(self.stdin, termios.TCSADRAIN)
        os.write(self.stdout, ENTER)

    def watch_size(self, resized: Callable[[int, int], None]) -> None:
        """Call C{resized(width, height)} in the reactor when the size changes."""

        def changed(signum: int, frame: FrameType | None) -> None:
            self.reactor.callFromThread(lambda: resized(*self.size()))

        self._previous_handler = signal.signal(signal.SIGWINCH, changed)
        self._watching = True

    def restore(self) -> None:
        """
        Give the terminal back as it was: the shell's screen, plain
        attributes, a visible cursor, the saved mode and file flags.
        """
        if not self.entered or self.restored:
            return
        self.restored = True
        atexit.unregister(self.restore)
        if self._watching:
            signal.signal(signal.SIGWINCH, self._previous_handler)
            self._watching = False
        # Blocking again first (the reactor made them non-blocking; they may
        # be shared with the shell), so that the last write is not refused.
        for fd, flags in self._flags.items():
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        with contextlib.suppress(OSError):
            os.write(self.stdout, LEAVE)
        try:
            assert self._saved is not None
            termios.tcsetattr(self.stdin, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass
