"""
The client's plain adapters: L{ServerProtocol} on the connection to the
server, and L{TerminalProtocol} on standard input and output, the user
interface of the plain mode.  Both only frame and decode lines and forward
them to the client (L{twisted_chat.client.app.ChatClient}); the terminal side
also makes sure nothing it prints can act on a terminal.
"""

from __future__ import annotations

from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol, ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.client.ui import Status
from twisted_chat.shared.rules import replace_forbidden_characters
from twisted_chat.shared.sockets import tune_socket

# Longest line accepted from the server, or from standard input, in bytes.
MAX_LINE = 1 << 20

_CLOSED = Failure(ConnectionDone())


def terminal_safe(text: str) -> str:
    """
    C{text} with every character that could act on a terminal (the ones the
    server refuses in user text: C0 controls but tab, DEL, C1 controls,
    bidirectional overrides, line separators) replaced by U+FFFD, so that a
    hostile server cannot move the cursor, retitle the window or hide text.
    """
    return replace_forbidden_characters(text)


class ServerEvents(TypingProtocol):
    """What L{ServerProtocol} tells the client."""

    def server_connected(self, server: ServerProtocol) -> None: ...

    def server_line(self, server: ServerProtocol, line: str) -> None: ...

    def server_lost(self, server: ServerProtocol, reason: Failure) -> None: ...


class ServerProtocol(LineReceiver):
    """
    The connection to the chat server: each line received is decoded (bytes
    that are not UTF-8 become U+FFFD) and passed on; L{send_line} writes one.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    transport: ITransport

    def __init__(self, events: ServerEvents) -> None:
        self.events = events

    def connectionMade(self) -> None:
        tune_socket(self.transport)
        self.events.server_connected(self)

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.events.server_line(self, line.decode("utf-8", "replace"))

    def send_line(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\n")

    def close(self) -> None:
        """Close the connection once what was sent is written."""
        self.transport.loseConnection()

    def abort(self) -> None:
        """Close the connection now (no TLS shutdown, no waiting)."""
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        self.events.server_lost(self, reason)


class ServerFactory(Factory):
    """Builds a L{ServerProtocol} for each connection, all reporting to one client."""

    def __init__(self, events: ServerEvents) -> None:
        self.events = events

    def buildProtocol(self, addr: IAddress | None) -> ServerProtocol:
        return ServerProtocol(self.events)


class TerminalEvents(TypingProtocol):
    """
    What L{TerminalProtocol} tells the client: part of
    L{twisted_chat.client.ui.UserEvents}.
    """

    def typed(self, line: str) -> None: ...

    def input_ended(self) -> None: ...


@implementer(IHalfCloseableProtocol)
class TerminalProtocol(Protocol):
    """
    Standard input and output, for C{twisted.internet.stdio.StandardIO}.

    A half-closeable protocol: end of input (Ctrl-D, or the end of a pipe)
    calls L{readConnectionLost}, which leaves standard output open, so the
    client can still print the server's replies (see Twisted issue 7546: a
    plain protocol would lose its output with its input).  A last line
    without a newline still counts as a line.
    """

    transport: ITransport

    def __init__(self, events: TerminalEvents) -> None:
        self.events = events
        self._buffer = b""
        self._output_open = True
        self._input_open = True
        self._closed: list[Deferred[None]] = []

    def dataReceived(self, data: bytes) -> None:
        chunks = (self._buffer + data).split(b"\n")
        self._buffer = chunks.pop()
        if len(self._buffer) > MAX_LINE:
            # Hand on an endless line in pieces rather than hold it all; the
            # server refuses the overlong pieces.
            chunks.append(self._buffer)
            self._buffer = b""
        for chunk in chunks:
            if not self._input_open:
                return
            self._deliver(chunk)

    def _deliver(self, chunk: bytes) -> None:
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        self.events.typed(chunk.decode("utf-8", "replace"))

    # IHalfCloseableProtocol

    def readConnectionLost(self) -> None:
        if not self._input_open:
            return
        rest, self._buffer = self._buffer, b""
        if rest:
            self._deliver(rest)
        self._input_open = False
        self.events.input_ended()

    def writeConnectionLost(self) -> None:
        # Standard output is gone (the reader of a pipe went away): nothing
        # more can be shown, so stop as if the input had ended.
        self._output_closed()
        self.readConnectionLost()

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        self._output_closed()
        self.readConnectionLost()

    # Output (a UserInterface)

    def show(self, text: str, at: float | None = None) -> None:
        """Print one line, made safe for a terminal, as it came."""
        if self._output_open:
            self.transport.write(terminal_safe(text).encode("utf-8") + b"\n")

    def status(self, status: Status) -> None:
        """A plain filter has no status line: nothing to do."""

    def close(self) -> Deferred[None]:
        """
        Stop reading, write out whatever is buffered and close standard
        output.

        @return: a Deferred that fires once output is closed.
        """
        if not self._output_open:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        self._input_open = False
        self.transport.loseConnection()
        return closed

    def _output_closed(self) -> None:
        self._output_open = False
        waiters, self._closed = self._closed, []
        for waiter in waiters:
            waiter.callback(None)
