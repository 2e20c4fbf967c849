"""
Listening on endpoint descriptions, with the fixes a chat server needs:
an IPv6 listener that does not also grab IPv4, and a one-line error when a
port cannot be opened.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IReactorSocket,
    IStreamServerEndpoint,
)
from zope.interface import implementer


@implementer(IStreamServerEndpoint)
class V6OnlyTCP6ServerEndpoint:
    """
    Listens on an IPv6 address with C{IPV6_V6ONLY} set, so that
    C{tcp6:10001:interface=\\:\\:} and C{tcp:10001} can be used together, as
    with nginx's C{ipv6only=on}.  (Linux otherwise makes an IPv6 wildcard
    socket take the IPv4 port too.)
    """

    def __init__(
        self, reactor: IReactorSocket, port: int, backlog: int, interface: str
    ) -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface

    def listen(self, factory: IProtocolFactory) -> defer.Deferred[IListeningPort]:
        return defer.execute(self._listen, factory)

    def _listen(self, factory: IProtocolFactory) -> IListeningPort:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._interface, self._port))
            sock.listen(self._backlog)
            sock.setblocking(False)
            return self._reactor.adoptStreamPort(
                sock.fileno(),
                socket.AF_INET6,
                factory,  # type: ignore[arg-type]
            )
        except OSError as e:
            raise CannotListenError(self._interface, self._port, e) from e
        finally:
            # adoptStreamPort duplicated the descriptor.
            sock.close()


def server_endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    L{endpoints.serverFromString}, except that a C{tcp6} listener is IPv6 only.
    """
    endpoint: IStreamServerEndpoint = endpoints.serverFromString(reactor, description)
    if isinstance(endpoint, endpoints.TCP6ServerEndpoint):
        # The parsed values live in private attributes; the tests of this
        # function would notice if Twisted renamed them.
        return V6OnlyTCP6ServerEndpoint(
            reactor,
            endpoint._port,
            endpoint._backlog,
            endpoint._interface,
        )
    return endpoint


class ListenService(StreamServerEndpointService):
    """
    Listens on one endpoint description.  A port that cannot be opened (in
    use, no permission, bad address) stops start-up with one clear line and
    exit status 1 instead of a traceback.
    """

    def __init__(
        self,
        reactor: IReactorCore,
        description: str,
        factory: IProtocolFactory,
        label: str | None = None,
    ) -> None:
        super().__init__(server_endpoint(reactor, description), factory)
        self.description = description
        self.label = label or description
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except (CannotListenError, OSError) as e:
            reason = e.socketError if isinstance(e, CannotListenError) else e
            why = getattr(reason, "strerror", None) or str(reason)
            # SystemExit, not a logged traceback: twistd prints the one line
            # and exits with status 1.
            raise SystemExit(
                f"twistd chat: cannot listen on {self.label}: {why}"
            ) from None
