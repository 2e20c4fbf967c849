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
from zope.interface.verify import verifyObject

from tests.helpers import FakeClient
from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.interfaces import IFanout
from twisted_chat.server.delivery import Delivery, MessageEcho
from twisted_chat.server.irc_protocol import IRCFactory
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol

SOURCE = events.Source("al", "al", "h")


class RecordingFanout(LocalFanout):
    """A LocalFanout that records the origin of every publish."""

    def __init__(self) -> None:
        super().__init__()
        self.origins: list[tuple[str, object]] = []

    def publish(self, room: str, event: object, origin: object = None) -> None:
        self.origins.append((type(event).__name__, origin))
        super().publish(room, event, origin)  # type: ignore[arg-type]


class MessageEchoTests(SynchronousTestCase):
    """The origin of messages only reaches the fan-out behind."""

    def test_interface(self) -> None:
        """MessageEcho provides IFanout."""
        self.assertTrue(verifyObject(IFanout, MessageEcho(LocalFanout())))

    def test_origin_of_messages_only(self) -> None:
        """Messages, actions and room notices keep their origin; joins,
        parts, kicks and topic changes lose it."""
        inner = RecordingFanout()
        fanout = MessageEcho(inner)
        client = FakeClient()
        for event in [
            events.Message("r", 1, 0.0, SOURCE, "hi"),
            events.Action("r", 2, 0.0, SOURCE, "waves"),
            events.RoomNotice("r", 3, 0.0, SOURCE, "note"),
            events.Joined("r", 4, 0.0, SOURCE),
            events.Parted("r", 5, 0.0, SOURCE, ""),
            events.Kicked("r", 6, 0.0, SOURCE, "bob", "x"),
            events.TopicChanged("r", 7, 0.0, SOURCE, "t"),
        ]:
            fanout.publish("r", event, client)
        self.assertEqual(
            inner.origins,
            [
                ("Message", client),
                ("Action", client),
                ("RoomNotice", client),
                ("Joined", None),
                ("Parted", None),
                ("Kicked", None),
                ("TopicChanged", None),
            ],
        )

    def test_passes_the_rest_through(self) -> None:
        """Every other call is the fan-out's own, extras included."""
        inner = LocalFanout()
        fanout = MessageEcho(inner)
        self.assertEqual(fanout.subscribe, inner.subscribe)
        self.assertEqual(fanout.hold, inner.hold)
        client = FakeClient()
        fanout.subscribe("r", client, True)
        self.assertEqual(fanout.members("r"), [client])

    def test_installed_once(self) -> None:
        """A Delivery puts it in front of the chat's fan-out, once."""
        chat = ChatServer()
        inner = chat.fanout
        Delivery(chat, clock=Clock())
        Delivery(chat, clock=Clock())
        assert isinstance(chat.fanout, MessageEcho)
        self.assertIs(chat.fanout.fanout, inner)


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
