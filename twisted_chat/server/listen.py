"""
Listening on endpoint descriptions, with the fixes a chat server needs:
an IPv6 listener that does not also grab IPv4, a C{reuseport:} listener
that several processes can share, and a one-line error when a port cannot
be opened.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from OpenSSL import SSL, crypto
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import defer, endpoints
from twisted.internet.error import CannotListenError, VerifyError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IReactorSocket,
    IStreamServerEndpoint,
)
from zope.interface import implementer


def _adopt(
    reactor: IReactorSocket,
    factory: IProtocolFactory,
    family: socket.AddressFamily,
    options: list[tuple[int, int]],
    interface: str,
    port: int,
    backlog: int,
) -> IListeningPort:
    """
    Listen on a socket of our own, with C{options} (level, name) set to 1
    before it is bound, and give it to the reactor.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        for level, name in options:
            sock.setsockopt(level, name, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
        sock.setblocking(False)
        return reactor.adoptStreamPort(
            sock.fileno(),
            family,
            factory,  # type: ignore[arg-type]
        )
    except OSError as e:
        raise CannotListenError(interface, port, e) from e
    finally:
        # adoptStreamPort duplicated the descriptor.
        sock.close()


class _AdoptedEndpoint:
    """
    A TCP listening socket made here, with the socket options Twisted's own
    endpoints cannot set, then adopted by the reactor.
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
        raise NotImplementedError


@implementer(IStreamServerEndpoint)
class V6OnlyTCP6ServerEndpoint(_AdoptedEndpoint):
    """
    Listens on an IPv6 address with C{IPV6_V6ONLY} set, so that
    C{tcp6:10001:interface=\\:\\:} and C{tcp:10001} can be used together, as
    with nginx's C{ipv6only=on}.  (Linux otherwise makes an IPv6 wildcard
    socket take the IPv4 port too.)
    """

    def _listen(self, factory: IProtocolFactory) -> IListeningPort:
        return _adopt(
            self._reactor,
            factory,
            socket.AF_INET6,
            [
                (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
                (socket.SOL_SOCKET, socket.SO_REUSEADDR),
            ],
            self._interface,
            self._port,
            self._backlog,
        )


# The endpoint type of L{ReusePortTCPServerEndpoint}'s descriptions.
REUSEPORT = "reuseport"


@implementer(IStreamServerEndpoint)
class ReusePortTCPServerEndpoint(_AdoptedEndpoint):
    """
    Listens on TCP with C{SO_REUSEPORT} set (C{reuseport:10001}), so that
    several processes, the nodes of one chat, can listen on the same port:
    Linux gives each new connection to one of them, spread by a hash of its
    addresses.  Every listener on the port must set it (and run as the same
    user): a plain C{tcp:10001} there still fails as a port in use.

    An IPv6 C{interface} (C{reuseport:10001:interface=\\:\\:}) makes an
    IPv6-only listener, as C{tcp6} does.
    """

    def _listen(self, factory: IProtocolFactory) -> IListeningPort:
        options = [
            (socket.SOL_SOCKET, socket.SO_REUSEADDR),
            (socket.SOL_SOCKET, socket.SO_REUSEPORT),
        ]
        family = socket.AF_INET
        if ":" in self._interface:
            family = socket.AF_INET6
            options.insert(0, (socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
        return _adopt(
            self._reactor,
            factory,
            family,
            options,
            self._interface,
            self._port,
            self._backlog,
        )


def twisted_description(description: str) -> str:
    """
    The description Twisted parses for C{description}: a C{reuseport:}
    one takes C{tcp:}'s parameters (port, C{interface}, C{backlog}).
    """
    kind, colon, rest = description.partition(":")
    if colon and kind.lower() == REUSEPORT:
        return f"tcp:{rest}"
    return description


def server_endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    L{endpoints.serverFromString}, except that a C{tcp6} listener is IPv6 only,
    an C{ssl} one has loaded all its files, and C{reuseport:} gives a
    L{ReusePortTCPServerEndpoint}.
    """
    parsed = twisted_description(description)
    endpoint: IStreamServerEndpoint = endpoints.serverFromString(reactor, parsed)
    # The parsed values live in private attributes; the tests of this
    # function would notice if Twisted renamed them.  An IPv6-only option in
    # Twisted (https://github.com/twisted/twisted/issues/5997) and an
    # SO_REUSEPORT one (https://github.com/twisted/twisted/issues/9101)
    # would remove the need; the context factory of an ssl endpoint has no
    # public getter either (no Twisted issue asks for one).
    if parsed != description:
        assert isinstance(endpoint, endpoints.TCP4ServerEndpoint)
        return ReusePortTCPServerEndpoint(
            reactor,
            endpoint._port,
            endpoint._backlog,
            endpoint._interface,
        )
    if isinstance(endpoint, endpoints.TCP6ServerEndpoint):
        return V6OnlyTCP6ServerEndpoint(
            reactor,
            endpoint._port,
            endpoint._backlog,
            endpoint._interface,
        )
    if isinstance(endpoint, endpoints.SSL4ServerEndpoint):
        # Twisted reads the certificate and key while parsing, but the
        # dhParameters file only when the first client connects, failing
        # every connection if it is missing: make the TLS context now.
        endpoint._sslContextFactory.getContext()
    return endpoint


class ListenFailed(SystemExit, Exception):
    """
    A port cannot be listened on: one line for twistd to print before it
    exits with status 1.

    A L{SystemExit}, so that twistd prints the line and no traceback.  Also
    an L{Exception}: a daemonizing twistd (without C{-n}) tells its waiting
    parent only about an L{Exception}, and otherwise leaves it waiting for
    ever (U{https://github.com/twisted/twisted/issues/7745}); with this the
    parent prints the line and exits with status 1.
    """


def why_not_listening(error: BaseException, description: str) -> str:
    """
    Why listening on C{description} failed with C{error}, in a few words for
    the user: the system's message, the file it is about, or what to fix.
    """
    if isinstance(error, CannotListenError):
        reason = error.socketError
        if reason == "Cannot acquire lock":  # unix: another process has it
            lock = os.fsdecode(error.port) + ".lock"
            return f"another process holds {lock} (is a server running there?)"
        if not isinstance(reason, BaseException):
            return str(reason)
        why = why_not_listening(reason, description)
        port = error.port
        denied = getattr(reason, "errno", None) == errno.EACCES
        if denied and isinstance(port, int) and 0 < port < 1024:
            why += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        return why
    if isinstance(error, OSError):
        why = error.strerror or str(error)
        # os.symlink (the unix: endpoint's lock file) names its target second.
        path = error.filename if error.filename2 is None else error.filename2
        if isinstance(path, (str, bytes)):
            return f"{os.fsdecode(path)}: {why}"
        return why
    if isinstance(error, crypto.Error):
        return (
            "certKey and privateKey must hold a PEM certificate and its private "
            f"key ({_openssl_reasons(error)})"
        )
    if isinstance(error, SSL.Error):
        return f"cannot set up TLS ({_openssl_reasons(error)})"
    if isinstance(error, VerifyError):
        return str(error)
    if isinstance(error, IndexError) and description.lower().startswith("systemd:"):
        return "systemd passed no socket with that index (see LISTEN_FDS)"
    return f"{type(error).__name__}: {error}"


def _openssl_reasons(error: Exception) -> str:
    """The reasons in an OpenSSL error: C{OpenSSL: PEM routines: no start line}."""
    queue = error.args[0] if error.args and isinstance(error.args[0], list) else []
    reasons = [f"{library}: {reason}" for library, _, reason in queue if reason]
    return "OpenSSL: " + ("; ".join(reasons) or str(error))


class ListenService(StreamServerEndpointService):
    """
    Listens on one endpoint description.  A port that cannot be opened stops
    start-up with one clear line and exit status 1 instead of a traceback
    (L{ListenFailed}): files an C{ssl} port names (missing, unreadable, not
    a certificate and its key) when the service is made, before twistd
    starts logging, so the line is all that stderr shows; the socket itself
    (in use, no permission, no such address or directory) when it starts,
    so the line goes to twistd's log.
    """

    def __init__(
        self,
        reactor: IReactorCore,
        description: str,
        factory: IProtocolFactory,
        label: str | None = None,
    ) -> None:
        self.description = description
        self.label = label or description
        try:
            endpoint = server_endpoint(reactor, description)
        except Exception as e:
            raise self._failed(e) from None
        super().__init__(endpoint, factory)
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except Exception as e:
            raise self._failed(e) from None

    def _failed(self, error: Exception) -> ListenFailed:
        why = why_not_listening(error, self.description)
        return ListenFailed(f"twistd chat: cannot listen on {self.label}: {why}")
