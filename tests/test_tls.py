"""
The server over TLS, with a real reactor: a listener made from an C{ssl:}
endpoint description (as C{--port} takes it) in front of a real
L{ChatFactory}, and verifying TLS clients on the loopback interface.
"""

from __future__ import annotations

import socket
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.interfaces import IListeningPort, IStreamClientEndpoint
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests.e2e import ChatUser, connect_user, global_reactor, poll, short_temp_dir
from tests.tls_helpers import Authority, ServerFiles, new_authority, write_server_files
from twisted_chat.core.chat import ChatServer
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol
from twisted_chat.server.listen import server_endpoint


class RecordingUser(ChatUser):
    """A L{ChatUser} that keeps why its connection was lost."""

    reason: Failure | None = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        super().connectionLost(reason)


def socket_under(transport: Any) -> socket.socket:
    """The socket under a transport, looking through TLS wrappers."""
    for _ in range(8):
        handle = transport.getHandle()
        if isinstance(handle, socket.socket):
            return handle
        transport = transport.transport
    raise AssertionError("no socket under the transport")


async def read_until(user: ChatUser, line: str) -> list[str]:
    """Read lines until C{line}; return all of them."""
    seen: list[str] = []
    while line not in seen:
        seen += await user.read(1)
    return seen


class TLSServerTests(TestCase):
    """The chat server listening with C{ssl:}."""

    async def serve(self) -> tuple[int, ChatFactory, ServerFiles]:
        """
        Listen with a new CA's server certificate on a free loopback port;
        stop listening (after every connection closed) on clean-up.
        """
        reactor = global_reactor()
        files = write_server_files(short_temp_dir(self), new_authority())
        factory = ChatFactory(ChatServer(), Limits(), clock=reactor)
        endpoint = server_endpoint(reactor, files.description())
        port: IListeningPort = await endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        self.addCleanup(
            poll, reactor, lambda: not factory.connections, "server connections closed"
        )
        address = port.getHost()
        assert isinstance(address, IPv4Address)
        number = address.port
        return number, factory, files

    def client_endpoint(
        self, port: int, ca_pem: bytes, hostname: str = "localhost"
    ) -> IStreamClientEndpoint:
        """A verifying TLS client endpoint that trusts only C{ca_pem}."""
        reactor = global_reactor()
        options = optionsForClientTLS(hostname, trustRoot=Certificate.loadPEM(ca_pem))
        return wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port))

    async def connect(self, port: int, files: ServerFiles) -> ChatUser:
        with open(files.ca, "rb") as ca:
            endpoint = self.client_endpoint(port, ca.read())
        user: ChatUser = await connect_user(self, global_reactor(), endpoint)
        return user

    async def test_chat(self) -> None:
        """
        A verifying client gets the greeting, and a message goes from one TLS
        user to another.
        """
        port, _, files = await self.serve()
        alice = await self.connect(port, files)
        greeting = await read_until(alice, "*** Users in #lobby (1): guest1")
        self.assertEqual(
            greeting[0], "*** Welcome to twisted-chat! Type /help for the commands."
        )
        self.assertIn("*** You are guest1. Change your name with /nick NAME.", greeting)
        bob = await self.connect(port, files)
        await read_until(bob, "*** Users in #lobby (2): guest1, guest2")
        alice.say("/nick alice", "hello over TLS, h\u00e9h\u00e9")
        await read_until(bob, "<alice> hello over TLS, h\u00e9h\u00e9")
        bob.say("hi alice")
        await read_until(alice, "<guest2> hi alice")

    async def test_nodelay(self) -> None:
        """
        Under TLS too, the server sets TCP_NODELAY and SO_KEEPALIVE on the
        connection's socket (which a plain client socket does not have).
        """
        port, factory, files = await self.serve()
        alice = await self.connect(port, files)
        await read_until(alice, "*** Users in #lobby (1): guest1")
        [server_side] = factory.connections
        self.assertIsInstance(server_side, ChatProtocol)
        server_socket = socket_under(server_side.transport)
        assert alice.transport is not None
        client_address = alice.transport.getHost()
        assert isinstance(client_address, IPv4Address)
        self.assertEqual(server_socket.getpeername()[1], client_address.port)
        self.assertNotEqual(
            server_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0
        )
        self.assertNotEqual(
            server_socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 0
        )
        client_socket = socket_under(alice.transport)
        self.assertEqual(
            client_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 0
        )

    async def refused(
        self, endpoint: IStreamClientEndpoint, error: type[Exception]
    ) -> None:
        """
        Connect through C{endpoint}: the TLS handshake fails with C{error}
        and the client reads nothing.
        """
        reactor = global_reactor()
        user = RecordingUser(reactor)
        await connectProtocol(endpoint, user)
        self.addCleanup(user.close)
        await user.wait_closed()
        self.assertEqual(user.lines, [])
        assert user.reason is not None
        self.assertTrue(user.reason.check(error), user.reason)

    async def test_untrusted_ca(self) -> None:
        """A client that trusts another CA refuses the server."""
        port, factory, _ = await self.serve()
        other: Authority = new_authority("another CA")
        await self.refused(self.client_endpoint(port, other.pem), SSL.Error)
        await poll(global_reactor(), lambda: not factory.connections, "server side")
        self.assertEqual(factory.chat.users, {})

    async def test_wrong_name(self) -> None:
        """A client that expects another host name refuses the server."""
        port, factory, files = await self.serve()
        with open(files.ca, "rb") as ca:
            endpoint = self.client_endpoint(port, ca.read(), "chat.example")
        await self.refused(endpoint, VerificationError)
        await poll(global_reactor(), lambda: not factory.connections, "server side")
