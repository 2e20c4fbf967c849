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
Twisted.
"""

from __future__ import annotations

from twisted.internet import tcp


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
