"""
Tests for L{twisted_chat.server.listen}: the IPv6-only endpoint, the
C{reuseport:} endpoint that several processes share, and the listening
service that fails with one clear line, whatever the reason.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    UNIXServerEndpoint,
    connectProtocol,
    quoteStringArgument,
)
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.internet.testing import MemoryReactor, RaisingMemoryReactor
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.e2e import free_port, global_reactor, has_ipv6, short_temp_dir
from tests.redis_helpers import poll
from tests.tls_helpers import new_authority, write_server_files
from twisted_chat.server.listen import (
    ListenFailed,
    ListenService,
    ReusePortTCPServerEndpoint,
    V6OnlyTCP6ServerEndpoint,
    server_endpoint,
    twisted_description,
)
from twisted_chat.server.tap import Options, endpoint_description


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

    def test_reuseport(self) -> None:
        """
        A C{reuseport} description gives a L{ReusePortTCPServerEndpoint} with
        the port, backlog and interface it names, as C{tcp} would.
        """
        reactor = MemoryReactor()
        endpoint = server_endpoint(
            reactor, "reuseport:10001:backlog=7:interface=127.0.0.2"
        )
        self.assertIsInstance(endpoint, ReusePortTCPServerEndpoint)
        assert isinstance(endpoint, ReusePortTCPServerEndpoint)
        verifyObject(IStreamServerEndpoint, endpoint)
        self.assertEqual(
            (endpoint._reactor, endpoint._port, endpoint._backlog, endpoint._interface),
            (reactor, 10001, 7, "127.0.0.2"),
        )

    def test_reuseport_defaults(self) -> None:
        """Without them, a C{reuseport} endpoint listens on every address
        with Twisted's backlog; the type's case does not matter."""
        endpoint = server_endpoint(MemoryReactor(), "ReusePort:10001")
        assert isinstance(endpoint, ReusePortTCPServerEndpoint)
        self.assertEqual(
            (endpoint._port, endpoint._backlog, endpoint._interface),
            (10001, 50, ""),
        )

    def test_twisted_description(self) -> None:
        """Twisted parses a C{reuseport} description as C{tcp}, and any other
        as it is."""
        cases = {
            "reuseport:10001:interface=127.0.0.1": "tcp:10001:interface=127.0.0.1",
            "tcp:10001": "tcp:10001",
            "unix:/run/reuseport:x": "unix:/run/reuseport:x",
            "reuseport": "reuseport",
        }
        self.assertEqual({d: twisted_description(d) for d in cases}, cases)

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


class Counting(Protocol):
    """Counts itself in its factory's C{accepted}."""

    factory: CountingFactory

    def connectionMade(self) -> None:
        self.factory.accepted += 1


class CountingFactory(ServerFactory):
    protocol = Counting  # type: ignore[assignment]

    def __init__(self) -> None:
        self.accepted = 0


class ReusePortListenTests(TestCase):
    """L{ReusePortTCPServerEndpoint} listening on the real reactor."""

    def setUp(self) -> None:
        self.reactor = global_reactor()

    async def listen(self, description: str, factory: Factory) -> IListeningPort:
        port: IListeningPort = await server_endpoint(self.reactor, description).listen(
            factory
        )
        self.addCleanup(port.stopListening)
        return port

    async def test_option_set(self) -> None:
        """The listening socket has C{SO_REUSEPORT} set."""
        port = await self.listen("reuseport:0:interface=127.0.0.1", Factory())
        fileno = port.fileno()  # type: ignore[attr-defined]
        with socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM) as handle:
            self.assertEqual(
                handle.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT), 1
            )

    async def test_both_accept(self) -> None:
        """
        Two listeners on one port both listen, and the kernel gives each some
        of the connections (by a hash of the client's port: all 64 going to
        one has odds of 2**-63).
        """
        first, second = CountingFactory(), CountingFactory()
        port = await self.listen("reuseport:0:interface=127.0.0.1", first)
        number = port.getHost().port  # type: ignore[attr-defined]
        other = await self.listen(f"reuseport:{number}:interface=127.0.0.1", second)
        self.assertEqual(other.getHost().port, number)  # type: ignore[attr-defined]
        clients = []
        for _ in range(64):
            client = socket.create_connection(("127.0.0.1", number), timeout=10)
            self.addCleanup(client.close)
            clients.append(client)
        await poll(
            lambda: first.accepted + second.accepted == len(clients), "every accept"
        )
        self.assertGreater(first.accepted, 0)
        self.assertGreater(second.accepted, 0)

    async def test_ipv6(self) -> None:
        """An IPv6 interface gives IPv6-only listeners that share the port."""
        if not has_ipv6():
            raise SkipTest("this machine cannot listen on ::1")
        port = await self.listen("reuseport:0:interface=\\:\\:1", Factory())
        address = port.getHost()
        assert isinstance(address, IPv6Address)
        other = await self.listen(
            f"reuseport:{address.port}:interface=\\:\\:1", Factory()
        )
        self.assertEqual(other.getHost(), address)
        fileno = other.fileno()  # type: ignore[attr-defined]
        with socket.fromfd(fileno, socket.AF_INET6, socket.SOCK_STREAM) as handle:
            self.assertEqual(
                handle.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1
            )


class ReusePortOptionTests(SynchronousTestCase):
    """C{--port reuseport:N} is checked and given a backlog like C{tcp:N}."""

    def test_accepted(self) -> None:
        """C{reuseport} descriptions are valid C{--port} and C{--irc-port}
        values, and get the listen backlog."""
        options = Options()
        options.parseOptions(
            ["--port", "reuseport:10001", "--irc-port", "reuseport:6667"]
        )
        self.assertEqual(
            (options["port"], options["irc-port"]),
            (["reuseport:10001"], ["reuseport:6667"]),
        )
        self.assertEqual(
            endpoint_description("reuseport:10001", 9), "reuseport:10001:backlog=9"
        )

    def test_refused(self) -> None:
        """A mistake in a C{reuseport} description is a usage error naming it."""
        cases = {
            "reuseport:abc": "abc",
            "reuseport:70000": "70000 is not a port number",
            "reuseport:1:bogus=2": "bogus",
        }
        for port, word in cases.items():
            with self.assertRaises(UsageError, msg=port) as caught:
                Options().parseOptions(["--irc-port", port])
            message = str(caught.exception)
            self.assertTrue(message.startswith(f"--irc-port {port}: "), message)
            self.assertIn(word, message)


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

    def test_reuseport_shared(self) -> None:
        """
        Two C{reuseport} services start on one port; a plain C{tcp} one on
        that port still fails with the one line, as does a C{reuseport} one
        on a port a plain listener holds.
        """
        port = free_port()
        for _ in range(2):
            self.start(
                ListenService(
                    self.reactor,
                    f"reuseport:{port}:interface=127.0.0.1",
                    ServerFactory(),
                )
            )
        plain = f"tcp:{port}:interface=127.0.0.1"
        self.assertEqual(
            self.failure(plain),
            f"twistd chat: cannot listen on {plain}: Address already in use",
        )
        taken = self.taken_port("127.0.0.1")
        shared = f"reuseport:{taken}:interface=127.0.0.1"
        self.assertEqual(
            self.failure(shared),
            f"twistd chat: cannot listen on {shared}: Address already in use",
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

    def failure(self, description: str) -> object:
        """The code of the L{ListenFailed} that starting C{description} raises."""
        service = ListenService(self.reactor, description, ServerFactory())
        with self.assertRaises(ListenFailed) as caught:
            self.start(service)
        return caught.exception.code

    def test_address_not_here(self) -> None:
        """An interface address this machine does not have is refused."""
        description = "tcp:0:interface=192.0.2.1"  # TEST-NET-1
        self.assertEqual(
            self.failure(description),
            f"twistd chat: cannot listen on {description}: "
            + os.strerror(errno.EADDRNOTAVAIL),
        )

    def test_unix_missing_directory(self) -> None:
        """
        A UNIX socket in a directory that does not exist names the lock file
        Twisted tries to create there first.
        """
        path = os.path.join(short_temp_dir(self), "missing", "chat.sock")
        self.assertEqual(
            self.failure(f"unix:{path}"),
            f"twistd chat: cannot listen on unix:{path}: {path}.lock: "
            + os.strerror(errno.ENOENT),
        )

    def test_unix_no_permission(self) -> None:
        """A UNIX socket in a directory without write permission is refused."""
        if os.geteuid() == 0:
            raise SkipTest("root writes in any directory")
        directory = os.path.join(short_temp_dir(self), "locked")
        os.mkdir(directory, 0o500)
        path = os.path.join(directory, "chat.sock")
        self.assertEqual(
            self.failure(f"unix:{path}"),
            f"twistd chat: cannot listen on unix:{path}: {path}.lock: "
            + os.strerror(errno.EACCES),
        )

    def test_unix_in_use(self) -> None:
        """
        A UNIX socket another server listens on is refused, naming the lock
        file that shows it.
        """
        path = os.path.join(short_temp_dir(self), "chat.sock")
        self.start(ListenService(self.reactor, f"unix:{path}", ServerFactory()))
        self.assertEqual(
            self.failure(f"unix:{path}"),
            f"twistd chat: cannot listen on unix:{path}: another process holds "
            f"{path}.lock (is a server running there?)",
        )


class StartupErrorTests(SynchronousTestCase):
    """
    Every way a port can fail at start-up is one line in a L{ListenFailed}:
    exit status 1, no traceback.
    """

    def setUp(self) -> None:
        self.directory = short_temp_dir(self)
        self.files = write_server_files(self.directory, new_authority())

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def ssl(self, key: str, certificate: str, *extra: str) -> str:
        """An C{ssl} description with these files."""
        return ":".join(
            [
                "ssl:6697",
                f"privateKey={quoteStringArgument(key)}",
                f"certKey={quoteStringArgument(certificate)}",
                *extra,
            ]
        )

    def failure(self, reactor: Any, description: str) -> str:
        """
        The line with which listening on C{description} fails, whether when
        the service is made or when it starts.
        """
        with self.assertRaises(SystemExit) as caught:
            service = ListenService(reactor, description, ServerFactory())
            service.privilegedStartService()
        self.assertIsInstance(caught.exception, ListenFailed)
        code = caught.exception.code
        assert isinstance(code, str)
        self.assertEqual(code.splitlines(), [code])
        prefix = f"twistd chat: cannot listen on {description}: "
        self.assertTrue(code.startswith(prefix), code)
        return code[len(prefix) :]

    def test_daemon_sees_it(self) -> None:
        """
        L{ListenFailed} is also an L{Exception}, the only kind a daemonizing
        twistd reports to its waiting parent.
        """
        self.assertTrue(issubclass(ListenFailed, SystemExit))
        self.assertTrue(issubclass(ListenFailed, Exception))

    def test_ssl_files_missing(self) -> None:
        """A certificate file that does not exist is named."""
        missing = self.path("missing.pem")
        self.assertEqual(
            self.failure(MemoryReactor(), self.ssl(missing, missing)),
            f"{missing}: No such file or directory",
        )

    def test_ssl_key_is_a_directory(self) -> None:
        """A key file that cannot be read is named, with the reason."""
        self.assertEqual(
            self.failure(
                MemoryReactor(), self.ssl(self.directory, self.files.certificate)
            ),
            f"{self.directory}: Is a directory",
        )

    def test_ssl_key_unreadable(self) -> None:
        """A key file without read permission is named."""
        if os.geteuid() == 0:
            raise SkipTest("root reads any file")
        os.chmod(self.files.key, 0)
        self.assertEqual(
            self.failure(
                MemoryReactor(), self.ssl(self.files.key, self.files.certificate)
            ),
            f"{self.files.key}: Permission denied",
        )

    def test_ssl_not_pem(self) -> None:
        """A certificate that is not PEM is said to be one, with OpenSSL's words."""
        not_pem = self.path("not-pem.pem")
        with open(not_pem, "w") as file:
            file.write("not a certificate\n")
        why = self.failure(MemoryReactor(), self.ssl(self.files.key, not_pem))
        self.assertTrue(
            why.startswith(
                "certKey and privateKey must hold a PEM certificate and its "
                "private key (OpenSSL: "
            ),
            why,
        )

    def test_ssl_key_does_not_match(self) -> None:
        """A key that is not the certificate's is refused."""
        other = write_server_files(short_temp_dir(self), new_authority())
        self.assertEqual(
            self.failure(MemoryReactor(), self.ssl(other.key, self.files.certificate)),
            "Certificate public and private keys do not match.",
        )

    def test_ssl_dh_parameters_missing(self) -> None:
        """
        A missing C{dhParameters} file fails at start-up, not at each
        connection as it would in Twisted, which reads it lazily.
        """
        description = self.ssl(
            self.files.key, self.files.certificate, "dhParameters=missing.pem"
        )
        why = self.failure(MemoryReactor(), description)
        self.assertTrue(why.startswith("cannot set up TLS (OpenSSL: "), why)

    def test_ssl_good(self) -> None:
        """Good files make an SSL endpoint that listens."""
        reactor = MemoryReactor()
        description = self.ssl(self.files.key, self.files.certificate)
        service = ListenService(reactor, description, ServerFactory())
        self.assertIsInstance(service.endpoint, SSL4ServerEndpoint)
        service.privilegedStartService()
        self.assertEqual([port for port, *_ in reactor.sslServers], [6697])

    def test_privileged_port(self) -> None:
        """
        A port below 1024 without the privilege to bind it says what is
        needed; a higher port refused for another reason does not.
        """
        cases = {80: True, 8080: False}
        for port, hinted in cases.items():
            denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            reactor = RaisingMemoryReactor(CannotListenError("", port, denied))
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            self.assertEqual(
                self.failure(reactor, f"tcp:{port}"),
                os.strerror(errno.EACCES) + (hint if hinted else ""),
            )

    def test_unix_no_permission(self) -> None:
        """
        A UNIX socket in a directory the server may not write to names the
        lock file Twisted creates first (as C{os.symlink} fails: the pid,
        then the path).
        """
        lock = "/run/chat/chat.sock.lock"
        # As os.symlink("1234", lock) raises it: (errno, strerror, filename,
        # winerror, filename2).
        denied = PermissionError(
            errno.EACCES, os.strerror(errno.EACCES), "1234", None, lock.encode()
        )
        self.assertEqual(
            self.failure(RaisingMemoryReactor(denied), "unix:/run/chat/chat.sock"),
            f"{lock}: {os.strerror(errno.EACCES)}",
        )

    def test_systemd_no_socket(self) -> None:
        """A systemd socket that was not passed is explained."""
        self.assertEqual(
            self.failure(MemoryReactor(), "systemd:domain=INET:index=99"),
            "systemd passed no socket with that index (see LISTEN_FDS)",
        )

    def test_unknown_error(self) -> None:
        """Any other failure is still one line, naming the exception."""
        self.assertEqual(
            self.failure(RaisingMemoryReactor(RuntimeError("boom")), "tcp:1"),
            "RuntimeError: boom",
        )
