"""
Writing to a TCP connection without a trip through the reactor.

Twisted's C{transport.write} only appends to a buffer and asks the reactor
to watch the socket; the C{send} happens on the next turn, after an
C{epoll_ctl} to add the socket and before another to remove it.  A chat
server writes one short burst to every member of a room for every event, so
that round trip is most of its cost per recipient and adds to every line's
latency.  L{write_now} sends straight away (several chunks with one
C{sendmsg}) when nothing is waiting in the transport's buffer, and hands
Twisted only what the socket did not take.

It reads three attributes that Twisted's C{FileDescriptor} keeps for its
own buffer (C{dataBuffer}, C{_tempDataLen}, C{socket}); it is used only
for the exact class L{twisted.internet.tcp.Server} (not TLS, not UNIX
sockets), and the tests check its assumptions against the installed
Twisted.  A transport that writes at once when its buffer is empty
(U{https://github.com/twisted/twisted/issues/5303}) would make it
unnecessary.
"""

from __future__ import annotations

from twisted.internet import abstract, tcp


def can_write_now(transport: object) -> bool:
    """Whether L{write_now} may be used on C{transport}."""
    return type(transport) is tcp.Server


def write_now(transport: tcp.Server, chunks: list[bytes]) -> None:
    """
    Write C{chunks} to C{transport} as C{transport.write} would, sending them
    at once (with one C{sendmsg}, without joining them) if the transport has
    nothing buffered.
    """
    if (
        transport.dataBuffer
        or transport._tempDataLen
        or not transport.connected
        or transport.disconnecting
    ):
        transport.writeSequence(chunks)
        return
    try:
        if len(chunks) == 1:
            sent = transport.socket.send(chunks[0])
        else:
            sent = transport.socket.sendmsg(chunks)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # Let Twisted meet the error on its own write and close properly.
        transport.writeSequence(chunks)
        return
    for chunk in chunks:
        if sent >= len(chunk):
            sent -= len(chunk)
            continue
        # What the socket did not take, Twisted sends when it can.
        transport.write(chunk[sent:] if sent else chunk)
        sent = 0


def unsent_bytes(transport: object) -> int | None:
    """
    How many bytes C{transport} holds that it has not yet written to its
    socket, or L{None} if that cannot be known.

    Twisted has no public way to ask: U{https://github.com/twisted/twisted/issues/7397}
    (refactor transports' producer support, exposing their buffer state)
    would remove the need.  Every stream
    transport keeps its buffer in a L{FileDescriptor}'s C{dataBuffer} (from
    C{offset} on) and C{_tempDataLen}; a TLS transport wraps one, so its
    unsent bytes are those of the socket underneath, in ciphertext.  The
    tests check these attributes against the installed Twisted.
    """
    current = transport
    for _ in range(4):
        if isinstance(current, abstract.FileDescriptor):
            return len(current.dataBuffer) - current.offset + current._tempDataLen
        inner = getattr(current, "transport", None)
        if inner is None or inner is current:
            return None
        current = inner
    return None
