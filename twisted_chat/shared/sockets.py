"""
Socket options that both the server and the client set on their connections.
"""

from __future__ import annotations

import socket

from twisted.internet.interfaces import ITCPTransport, ITransport


def tune_socket(transport: ITransport, send_buffer: int = 0) -> None:
    """
    Set C{TCP_NODELAY} (chat is many small lines: without it, Nagle's
    algorithm and delayed acknowledgements add up to 40 ms to a line) and
    C{SO_KEEPALIVE} on a TCP connection, including one under TLS.

    @param send_buffer: if not 0, the socket's send buffer (C{SO_SNDBUF})
        in bytes.  Left alone, Linux grows it to megabytes for a peer that
        does not read, hiding that peer from the send queue limit.
    """
    current: object = transport
    for _ in range(8):
        # TLS wraps the TCP transport, copying its interfaces while its handle
        # is the OpenSSL connection: look through wrappers until the handle
        # is a socket.
        handle = getattr(current, "getHandle", lambda: None)()
        if isinstance(handle, socket.socket):
            if ITCPTransport.providedBy(current) and handle.family in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                current.setTcpNoDelay(True)
                current.setTcpKeepAlive(True)
                if send_buffer:
                    handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            return
        inner = getattr(current, "transport", None)
        if inner is None or inner is current:
            return
        current = inner
