"""
Tests for L{twisted_chat.server.listen}: the IPv6-only endpoint and the listening
service that fails with one clear line.
"""

from __future__ import annotations

import errno
import socket

from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    UNIXServerEndpoint,
    connectProtocol,
)
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.e2e import free_port, global_reactor, has_ipv6
from twisted_chat.server.listen import (
    ListenService,
    V6OnlyTCP6ServerEndpoint,
    server_endpoint,
)


class ServerEndpointTests(SynchronousTestCase):
    """L{server_endpoint} parses a description as Twisted does, but for tcp6."""

    def test_tcp6(self) -> None:
        """
        A C{tcp6} description gives a L{V6OnlyTCP6ServerEndpoint} with the
        port, backlog and interface it names.
        """
        reactor = MemoryReactor()
        endpoint = server_endpoint(reactor, "tcp6:10001:backlog=7:interface=\\:\\:1")
        self.assertIsInstance(endpoint, V6OnlyTCP6ServerEndpoint)
        assert isinstance(endpoint, V6OnlyTCP6ServerEndpoint)
        verifyObject(IStreamServerEndpoint, endpoint)
        self.assertEqual(
            (endpoint._reactor, endpoint._port, endpoint._backlog, endpoint._interface),
            (reactor, 10001, 7, "::1"),
        )

    def test_tcp6_defaults(self) -> None:
        """Without them, a C{tcp6} endpoint has Twisted's backlog and C{::}."""
        endpoint = server_endpoint(MemoryReactor(), "tcp6:10001")
        assert isinstance(endpoint, V6OnlyTCP6ServerEndpoint)
        self.assertEqual(
            (endpoint._port, endpoint._backlog, endpoint._interface),
            (10001, 50, "::"),
        )

    def test_others_unchanged(self) -> None:
        """Other descriptions give Twisted's own endpoints."""
        reactor = MemoryReactor()
        self.assertEqual(
            [
                type(server_endpoint(reactor, description))
                for description in ("tcp:10001", "unix:/run/chat.sock")
            ],
            [TCP4ServerEndpoint, UNIXServerEndpoint],
        )


class Accepted(Protocol):
    """Fires C{factory.accepted} when a connection is made."""

    factory: AcceptingFactory

    def connectionMade(self) -> None:
        self.factory.accepted.callback(self)


class AcceptingFactory(ServerFactory):
    protocol = Accepted  # type: ignore[assignment]

    def __init__(self) -> None:
        self.accepted: Deferred[Accepted] = Deferred()


class V6OnlyListenTests(TestCase):
    """L{V6OnlyTCP6ServerEndpoint} listening on the real reactor."""

    def setUp(self) -> None:
        if not has_ipv6():
            raise SkipTest("this machine cannot listen on ::1")
        self.reactor = global_reactor()

    async def listen(self, description: str, factory: Factory) -> IListeningPort:
        port: IListeningPort = await server_endpoint(self.reactor, description).listen(
            factory
        )
        self.addCleanup(port.stopListening)
        return port

    async def test_ipv6_only(self) -> None:
        """
        A listener on the IPv6 wildcard address has C{IPV6_V6ONLY} set.

        It must be the wildcard: Linux sets the option itself on a socket
        bound to a specific address such as ::1.  The port is random and
        closed at once.
        """
        port = await self.listen("tcp6:0:interface=\\:\\:", Factory())
        # A duplicate of the listening descriptor shares its options.
        fileno = port.fileno()  # type: ignore[attr-defined]
        with socket.fromfd(fileno, socket.AF_INET6, socket.SOCK_STREAM) as handle:
            self.assertEqual(handle.family, socket.AF_INET6)
            self.assertEqual(
                handle.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1
            )

    async def test_accepts(self) -> None:
        """The adopted port is on the address asked for and accepts connections."""
        factory = AcceptingFactory()
        port = await self.listen("tcp6:0:interface=\\:\\:1", factory)
        address = port.getHost()
        assert isinstance(address, IPv6Address)
        self.assertEqual(address.host, "::1")
        client = await connectProtocol(
            TCP6ClientEndpoint(self.reactor, "::1", address.port), Protocol()
        )
        self.addCleanup(client.transport.loseConnection)
        server = await factory.accepted
        self.assertIsInstance(server, Accepted)
        server.transport.loseConnection()  # type: ignore[union-attr]

    async def test_in_use(self) -> None:
        """A port in use fails the listen with L{CannotListenError}."""
        port = await self.listen("tcp6:0:interface=\\:\\:1", Factory())
        number = port.getHost().port  # type: ignore[attr-defined]
        endpoint = server_endpoint(self.reactor, f"tcp6:{number}:interface=\\:\\:1")
        with self.assertRaises(CannotListenError) as caught:
            await endpoint.listen(Factory())
        error = caught.exception
        self.assertEqual(
            (error.interface, error.port, error.socketError.errno),
            ("::1", number, errno.EADDRINUSE),
        )


class ListenServiceTests(TestCase):
    """L{ListenService} on the real reactor."""

    def setUp(self) -> None:
        self.reactor = global_reactor()

    def taken_port(self, host: str) -> int:
        """A port on C{host} that something else is listening on."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        taken = socket.socket(family, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind((host, 0))
        taken.listen()
        port: int = taken.getsockname()[1]
        return port

    def start(self, service: ListenService) -> None:
        """Start C{service} as twistd would, stopping it on clean-up."""
        self.addCleanup(lambda: service.running and service.stopService())
        service.privilegedStartService()
        service.startService()

    def test_in_use(self) -> None:
        """
        A port in use stops start-up with a L{SystemExit} holding one line
        that names the port as the user typed it.
        """
        port = self.taken_port("127.0.0.1")
        service = ListenService(
            self.reactor,
            f"tcp:{port}:interface=127.0.0.1:backlog=50",
            ServerFactory(),
            label=f"{port}",
        )
        with self.assertRaises(SystemExit) as caught:
            self.start(service)
        self.assertEqual(
            caught.exception.code,
            f"twistd chat: cannot listen on {port}: Address already in use",
        )

    def test_in_use_ipv6(self) -> None:
        """The IPv6-only endpoint fails the same way."""
        if not has_ipv6():
            raise SkipTest("this machine cannot listen on ::1")
        port = self.taken_port("::1")
        typed = f"tcp6:{port}:interface=\\:\\:1"
        service = ListenService(self.reactor, typed, ServerFactory())
        with self.assertRaises(SystemExit) as caught:
            self.start(service)
        self.assertEqual(
            caught.exception.code,
            f"twistd chat: cannot listen on {typed}: Address already in use",
        )

    def test_label(self) -> None:
        """The label defaults to the description."""
        description = "tcp:0:interface=127.0.0.1"
        service = ListenService(self.reactor, description, ServerFactory())
        self.assertEqual(
            (service.description, service.label), (description, description)
        )

    async def test_listens(self) -> None:
        """A free port is listened on until the service stops."""
        port = free_port()
        service = ListenService(
            self.reactor,
            f"tcp:{port}:interface=127.0.0.1",
            Factory.forProtocol(Protocol),
        )
        self.start(service)
        self.assertEqual(self.connect(port), 0)
        stopped = service.stopService()
        assert stopped is not None
        await stopped
        self.assertEqual(self.connect(port), errno.ECONNREFUSED)

    def connect(self, port: int) -> int:
        """Try a blocking connection to C{port} on 127.0.0.1: the errno."""
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port))
