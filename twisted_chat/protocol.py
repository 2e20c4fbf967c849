"""
The line protocol: bytes on a stream connection in, calls on the core out.

L{ChatProtocol} frames lines, decodes each complete line once and hands it
to the L{ChatServer}; it implements L{IChatClient} by writing to its
transport.  Nothing else lives here.
"""

from __future__ import annotations

import socket

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    ISystemHandle,
    ITCPTransport,
    ITransport,
)
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.core import ChatServer, User
from twisted_chat.interfaces import IChatClient

DEFAULT_MAX_LINE_LENGTH = 4096
_CLOSED = Failure(ConnectionDone())


def describe_address(address: IAddress) -> str:
    """A short printable form of a peer address, for logs."""
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, UNIXAddress):
        raw = address.name
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return f"unix:{name}" if name else "unix"
    return str(address)


def tune_socket(transport: ITransport) -> None:
    """
    Set C{TCP_NODELAY} (chat is many small lines: without it, Nagle's
    algorithm and delayed acknowledgements add up to 40 ms to a line) and
    C{SO_KEEPALIVE} on a TCP connection, including one under TLS.
    """
    tcp = transport
    while not ITCPTransport.providedBy(tcp):
        # TLS wraps the TCP transport: look through the wrapper.
        inner = getattr(tcp, "transport", None)
        if inner is None or inner is tcp:
            return
        tcp = inner
    handle = ISystemHandle(tcp).getHandle()
    if isinstance(handle, socket.socket) and handle.family in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        tcp.setTcpNoDelay(True)
        tcp.setTcpKeepAlive(True)


@implementer(IChatClient)
class ChatProtocol(LineReceiver):
    """
    One user's connection.

    Lines end with C{\\n}; a C{\\r} before it is dropped, so C{nc}, C{telnet}
    and the client all work.  A line longer than C{max_line_length} bytes is
    refused with an error and discarded up to the next newline, without
    buffering more than the limit.
    """

    delimiter = b"\n"
    log = Logger()

    factory: ChatFactory
    transport: ITransport
    user: User | None = None
    peer = "?"
    _discarding = False
    _buffer = b""
    _closed_waiters: list[Deferred[None]] | None = None

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self.peer = describe_address(self.transport.getPeer())
        tune_socket(self.transport)
        self.MAX_LENGTH = self.factory.max_line_length
        self.user = self.factory.chat.connect(self)
        self.log.info("{peer} connected as {nick}", peer=self.peer, nick=self.user.nick)

    def when_closed(self) -> Deferred[None]:
        """A Deferred that fires once this connection is closed."""
        d: Deferred[None] = Deferred()
        if self.factory is not None and self in self.factory.connections:
            if self._closed_waiters is None:
                self._closed_waiters = []
            self._closed_waiters.append(d)
        else:
            d.callback(None)
        return d

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        self.factory.connections.discard(self)
        waiters, self._closed_waiters = self._closed_waiters or [], None
        for waiter in waiters:
            waiter.callback(None)
        user, self.user = self.user, None
        if user is None:
            return
        self.factory.chat.disconnect(user)
        self.log.info(
            "{peer} ({nick}) disconnected: {why}",
            peer=self.peer,
            nick=user.nick,
            why=reason.getErrorMessage(),
        )

    def dataReceived(self, data: bytes) -> None:
        # LineReceiver splits one line at a time and drops the connection on
        # an overlong line; a chat server splits a chunk once and keeps the
        # connection of a user who pasted too much.
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            data = data[end + 1 :]
            self._discarding = False
        if self._buffer:
            data = self._buffer + data
        chunks = data.split(b"\n")
        self._buffer = chunks.pop()
        for line in chunks:
            if self.user is None or self.transport.disconnecting:  # type: ignore[attr-defined]
                return
            if len(line) > self.MAX_LENGTH + 1:
                self._line_too_long()
            else:
                self.lineReceived(line)
        if len(self._buffer) > self.MAX_LENGTH + 1:
            self._buffer = b""
            self._discarding = True
            self._line_too_long()

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.MAX_LENGTH:
            self._line_too_long()
            return
        assert self.user is not None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.factory.chat.refuse(
                self.user, "Your line is not valid UTF-8 and was not sent."
            )
            return
        self.factory.chat.line_received(self.user, text)

    def _line_too_long(self) -> None:
        if self.user is not None:
            self.factory.chat.refuse(
                self.user,
                f"Your line is longer than {self.MAX_LENGTH} bytes and was not sent.",
            )

    # IChatClient

    def send(self, data: bytes) -> None:
        self.transport.write(data)

    def disconnect(self, reason: str) -> None:
        self.log.debug("disconnecting {peer}: {reason}", peer=self.peer, reason=reason)
        self.transport.loseConnection()


class ChatFactory(ServerFactory):
    """
    Builds a L{ChatProtocol} for each connection, all sharing one
    L{ChatServer}.
    """

    protocol = ChatProtocol  # type: ignore[assignment]

    def __init__(
        self, chat: ChatServer, max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    ) -> None:
        self.chat = chat
        self.max_line_length = max_line_length
        self.connections: set[ChatProtocol] = set()
