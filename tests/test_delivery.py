"""
Tests for L{twisted_chat.server.delivery}: the hub every front end of one
server shares (batches, the end of the turn, the connection count) and
L{MessageEcho}, which scopes a view's echo flag to messages.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.irc_protocol import IRCFactory
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol

SOURCE = events.Source("al", "al", "h")


class DeliveryTests(SynchronousTestCase):
    """One hub for every front end."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.chat = ChatServer(clock=self.clock)
        self.delivery = Delivery(self.chat, Limits(), self.clock)
        self.line = ChatFactory(self.chat, delivery=self.delivery)
        self.irc = IRCFactory(self.delivery)

    def connect(self) -> tuple[ChatProtocol, StringTransport]:
        address = IPv4Address("TCP", "127.0.0.1", 5000 + len(self.delivery.connections))
        protocol = self.line.buildProtocol(address)
        assert isinstance(protocol, ChatProtocol)
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        transport.clear()
        return protocol, transport

    def test_shared_state(self) -> None:
        """Both factories show the one delivery's connections and rules."""
        self.assertIs(self.line.connections, self.irc.connections)
        self.assertIs(self.line.pressure, self.irc.pressure)
        self.assertIs(self.irc.chat, self.chat)
        self.connect()
        irc = self.irc.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert irc is not None
        irc.makeConnection(StringTransport())
        self.assertEqual(self.delivery.counter.total, 2)

    def test_nested_batches(self) -> None:
        """Output is written when the outermost batch ends, once."""
        protocol, transport = self.connect()
        with self.delivery.batch():
            with self.delivery.batch():
                protocol.send(b"one\n")
            self.assertEqual(transport.value(), b"")
            protocol.send(b"two\n")
        self.assertEqual(transport.value(), b"one\ntwo\n")

    def test_outside_a_batch(self) -> None:
        """Outside any batch, a send is written at once."""
        protocol, transport = self.connect()
        protocol.send(b"now\n")
        self.assertEqual(transport.value(), b"now\n")

    def test_lost_while_queued(self) -> None:
        """A connection lost with output queued is forgotten, not flushed."""
        protocol, transport = self.connect()
        with self.delivery.batch():
            protocol.send(b"lost\n")
            protocol.connectionLost()
            self.assertNotIn(protocol, self.delivery.dirty)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.delivery.counter.total, 0)

    def test_a_line_user_and_a_shared_delivery(self) -> None:
        """A factory given a delivery may not be given other limits or a
        clock: the delivery brings them."""
        with self.assertRaises(ValueError):
            ChatFactory(self.chat, Limits(), delivery=self.delivery)
        with self.assertRaises(ValueError):
            ChatFactory(ChatServer(), delivery=self.delivery)
