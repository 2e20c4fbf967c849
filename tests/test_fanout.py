"""
Tests for L{twisted_chat.core.fanout.LocalFanout}, and that the fakes and
implementations provide the interfaces they claim.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from tests.helpers import FakeClient
from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.interfaces import IChatClient, IFanout, IRenderer, View
from twisted_chat.server.line_render import CURRENT, RENDERER
from twisted_chat.shared import lines


class InterfaceTests(SynchronousTestCase):
    """The implementations provide their interfaces."""

    def test_local_fanout(self) -> None:
        """LocalFanout provides IFanout."""
        self.assertTrue(verifyClass(IFanout, LocalFanout))
        self.assertTrue(verifyObject(IFanout, LocalFanout()))

    def test_fake_client(self) -> None:
        """The tests' FakeClient provides IChatClient."""
        self.assertTrue(verifyObject(IChatClient, FakeClient()))


class FakeClientTests(SynchronousTestCase):
    """The fake client records what it is given."""

    def test_records(self) -> None:
        """It records bytes, lines and disconnects, and take() empties them."""
        client = FakeClient()
        client.send(b"a\nb\n")
        client.disconnect("why")
        self.assertEqual(client.sent, [b"a\nb\n"])
        self.assertEqual(client.take(), ["a", "b"])
        self.assertEqual((client.lines, client.sent), ([], []))
        self.assertEqual(client.disconnects, ["why"])

    def test_refuses_partial_lines(self) -> None:
        """Data that is not whole lines breaks the IChatClient contract."""
        self.assertRaises(AssertionError, FakeClient().send, b"partial")


@implementer(IRenderer)
class Identity:
    """A renderer whose events are their own wire form, counting renders."""

    def __init__(self) -> None:
        self.rendered: list[tuple[object, object]] = []

    def render(self, event: object, variant: object) -> bytes:
        self.rendered.append((event, variant))
        assert isinstance(event, bytes)
        return event


IDENTITY = Identity()


class BytesClient(FakeClient):
    """A L{FakeClient} whose events are bytes, rendered as they are."""

    def __init__(self, peer: str = "fake", echo: bool = True) -> None:
        super().__init__(peer)
        self.echo = echo

    def view(self, current: bool) -> View:
        return (IDENTITY, current, self.echo)

    def reply(self, event: object) -> None:
        assert isinstance(event, bytes)
        self.send(event)


class PublishTests(SynchronousTestCase):
    """Subscribing, unsubscribing and publishing."""

    def setUp(self) -> None:
        self.fanout = LocalFanout()
        # Every delivery, in the order it happened: (client, data).
        self.deliveries: list[tuple[str, bytes]] = []

    def client(self, name: str) -> BytesClient:
        client = BytesClient(peer=name)

        def record(data: bytes) -> None:
            self.deliveries.append((name, data))

        client.on_send = record
        return client

    def test_publish(self) -> None:
        """Members get what is published, in subscription then publish order."""
        alice, bob = self.client("alice"), self.client("bob")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.subscribe("lobby", bob, True)
        self.fanout.publish("lobby", b"one\n")
        self.fanout.publish("lobby", b"two\n")
        self.assertEqual(
            self.deliveries,
            [
                ("alice", b"one\n"),
                ("bob", b"one\n"),
                ("alice", b"two\n"),
                ("bob", b"two\n"),
            ],
        )

    def test_same_object(self) -> None:
        """Every member is given the very same bytes object."""
        clients = [self.client(f"c{i}") for i in range(5)]
        for client in clients:
            self.fanout.subscribe("lobby", client, True)
        data = lines.encode("hello")
        self.fanout.publish("lobby", data)
        for client in clients:
            self.assertEqual(len(client.sent), 1)
            self.assertIs(client.sent[0], data)

    def test_rooms_are_separate(self) -> None:
        """A line published to one room reaches only that room's members."""
        alice, bob = self.client("alice"), self.client("bob")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.subscribe("games", bob, True)
        self.fanout.publish("games", b"gg\n")
        self.assertEqual(self.deliveries, [("bob", b"gg\n")])

    def test_subscribe_twice(self) -> None:
        """Subscribing twice delivers once."""
        alice = self.client("alice")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.publish("lobby", b"once\n")
        self.assertEqual(alice.lines, ["once"])

    def test_unsubscribe(self) -> None:
        """An unsubscribed client gets nothing more; the others still do."""
        alice, bob = self.client("alice"), self.client("bob")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.subscribe("lobby", bob, True)
        self.fanout.publish("lobby", b"before\n")
        self.fanout.unsubscribe("lobby", alice)
        self.fanout.publish("lobby", b"after\n")
        self.assertEqual(alice.lines, ["before"])
        self.assertEqual(bob.lines, ["before", "after"])

    def test_resubscribe(self) -> None:
        """A client can leave a room and come back."""
        alice = self.client("alice")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.unsubscribe("lobby", alice)
        self.fanout.publish("lobby", b"missed\n")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.publish("lobby", b"back\n")
        self.assertEqual(alice.lines, ["back"])

    def test_unsubscribe_unknown(self) -> None:
        """Unsubscribing from an unknown room, or a non-member, is harmless."""
        alice, bob = self.client("alice"), self.client("bob")
        self.fanout.unsubscribe("nowhere", alice)
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.unsubscribe("lobby", bob)
        self.fanout.unsubscribe("games", alice)
        self.fanout.unsubscribe("lobby", alice)
        self.fanout.unsubscribe("lobby", alice)
        self.fanout.publish("lobby", b"nobody\n")
        self.assertEqual(self.deliveries, [])

    def test_publish_to_empty_room(self) -> None:
        """Publishing to a room without members delivers nothing, harmlessly."""
        self.fanout.publish("nowhere", b"hello?\n")
        self.assertEqual(self.deliveries, [])

    def test_client_leaves_during_publish(self) -> None:
        """A member leaving while a line is delivered does not stop delivery."""
        alice, bob, carol = (self.client(name) for name in ["alice", "bob", "carol"])
        for client in (alice, bob, carol):
            self.fanout.subscribe("lobby", client, True)

        def leave(data: bytes) -> None:
            self.deliveries.append(("alice", data))
            self.fanout.unsubscribe("lobby", alice)

        alice.on_send = leave
        self.fanout.publish("lobby", b"one\n")
        self.fanout.publish("lobby", b"two\n")
        self.assertEqual(alice.lines, ["one"])
        self.assertEqual(bob.lines, ["one", "two"])
        self.assertEqual(carol.lines, ["one", "two"])

    def test_other_client_leaves_during_publish(self) -> None:
        """A member removed by another's delivery gets no later lines."""
        alice, bob, carol = (self.client(name) for name in ["alice", "bob", "carol"])
        for client in (alice, bob, carol):
            self.fanout.subscribe("lobby", client, True)

        def kick_carol(data: bytes) -> None:
            self.fanout.unsubscribe("lobby", carol)

        bob.on_send = kick_carol
        self.fanout.publish("lobby", b"one\n")
        bob.on_send = None
        self.fanout.publish("lobby", b"two\n")
        self.assertEqual(alice.lines, ["one", "two"])
        self.assertEqual(bob.lines, ["one", "two"])
        # Carol was a member when "one" was published.
        self.assertEqual(carol.lines, ["one"])

    def test_publish_during_publish(self) -> None:
        """
        A line published while another is being delivered reaches every
        member after it.
        """
        alice, bob, carol = (self.client(name) for name in ["alice", "bob", "carol"])
        for client in (alice, bob, carol):
            self.fanout.subscribe("lobby", client, True)

        def react(data: bytes) -> None:
            if data == b"one\n":
                self.fanout.publish("lobby", b"two\n")

        alice.on_send = react
        self.fanout.publish("lobby", b"one\n")
        for client in (alice, bob, carol):
            self.assertEqual(client.lines, ["one", "two"], client.peer)


class DisconnectDuringPublishTests(SynchronousTestCase):
    """The core's use of the fan-out when a client drops mid-delivery."""

    def test_disconnect_during_message(self) -> None:
        """
        A user whose connection drops while a message is delivered is
        announced to the others after the message.
        """
        chat = ChatServer()
        alice, bob, carol = (FakeClient(name) for name in ["alice", "bob", "carol"])
        users = {}
        for client in (alice, bob, carol):
            users[client.peer] = user = chat.connect(client)
            chat.line_received(user, f"/nick {client.peer}")
        for client in (alice, bob, carol):
            client.take()

        def drop(data: bytes) -> None:
            alice.on_send = None
            chat.disconnect(users["alice"])

        alice.on_send = drop
        chat.line_received(users["carol"], "hello")
        expected = ["<carol> hello", "*** alice has quit (connection lost)"]
        self.assertEqual(bob.lines, expected)
        self.assertEqual(carol.lines, expected)


class MembersTests(SynchronousTestCase):
    """The member list of a room."""

    def test_members(self) -> None:
        """members() lists a room's clients in joining order."""
        fanout = LocalFanout()
        alice, bob = FakeClient("alice"), FakeClient("bob")
        fanout.subscribe("lobby", bob, True)
        fanout.subscribe("lobby", alice, True)
        self.assertEqual(fanout.members("lobby"), [bob, alice])
        fanout.unsubscribe("lobby", bob)
        self.assertEqual(fanout.members("lobby"), [alice])
        self.assertEqual(fanout.members("nowhere"), [])


class HoldTests(SynchronousTestCase):
    """Between hold() and release(), delivery may be batched."""

    def setUp(self) -> None:
        self.fanout = LocalFanout()
        self.alice, self.bob = BytesClient("alice"), BytesClient("bob")
        self.fanout.subscribe("lobby", self.alice, True)
        self.fanout.subscribe("lobby", self.bob, True)

    def test_batched(self) -> None:
        """Lines published while held arrive at release, one send per member."""
        self.fanout.hold()
        self.fanout.publish("lobby", b"one\n")
        self.fanout.publish("lobby", b"two\n")
        self.assertEqual(self.alice.sent, [])
        self.fanout.release()
        self.assertEqual(self.alice.sent, [b"one\ntwo\n"])
        self.assertIs(self.bob.sent[0], self.alice.sent[0])

    def test_nested(self) -> None:
        """Only the outermost release delivers."""
        self.fanout.hold()
        self.fanout.hold()
        self.fanout.publish("lobby", b"one\n")
        self.fanout.release()
        self.assertEqual(self.alice.sent, [])
        self.fanout.release()
        self.assertEqual(self.alice.lines, ["one"])

    def test_send_keeps_its_place(self) -> None:
        """A direct send while held comes after what was published before it."""
        self.fanout.hold()
        self.fanout.publish("lobby", b"one\n")
        self.fanout.send(self.alice, b"private\n")
        self.fanout.publish("lobby", b"two\n")
        self.fanout.release()
        self.assertEqual(self.alice.lines, ["one", "private", "two"])
        self.assertEqual(self.bob.lines, ["one", "two"])

    def test_membership_changes_while_held(self) -> None:
        """Members get exactly the lines published while they were members."""
        carol = BytesClient("carol")
        self.fanout.hold()
        self.fanout.publish("lobby", b"before carol\n")
        self.fanout.subscribe("lobby", carol, True)
        self.fanout.publish("lobby", b"with carol\n")
        self.fanout.unsubscribe("lobby", self.bob)
        self.fanout.publish("lobby", b"without bob\n")
        self.fanout.release()
        self.assertEqual(
            self.alice.lines, ["before carol", "with carol", "without bob"]
        )
        self.assertEqual(self.bob.lines, ["before carol", "with carol"])
        self.assertEqual(carol.lines, ["with carol", "without bob"])

    def test_send_not_held(self) -> None:
        """Outside a hold, send() delivers at once."""
        self.fanout.send(self.bob, b"now\n")
        self.assertEqual(self.bob.lines, ["now"])
        self.assertEqual(self.alice.lines, [])


class ViewTests(SynchronousTestCase):
    """Members are grouped by view: one rendering per view, same bytes."""

    def setUp(self) -> None:
        self.fanout = LocalFanout()
        IDENTITY.rendered.clear()

    def test_render_once_per_view(self) -> None:
        """
        Each event is rendered once per variant present in the room, and the
        members of a variant share the same bytes.
        """
        here = [BytesClient(f"here{n}") for n in range(3)]
        away = [BytesClient(f"away{n}") for n in range(2)]
        for client in here:
            self.fanout.subscribe("lobby", client, True)
        for client in away:
            self.fanout.subscribe("lobby", client, False)
        self.fanout.hold()
        self.fanout.publish("lobby", b"one\n", None)
        self.fanout.publish("lobby", b"two\n", None)
        self.fanout.release()
        self.assertEqual(
            sorted(IDENTITY.rendered, key=repr),
            sorted(
                [
                    (b"one\n", True),
                    (b"two\n", True),
                    (b"one\n", False),
                    (b"two\n", False),
                ],
                key=repr,
            ),
        )
        for group in (here, away):
            self.assertEqual(group[0].sent, [b"one\ntwo\n"])
            for client in group[1:]:
                self.assertIs(client.sent[0], group[0].sent[0])

    def test_update_moves_a_member(self) -> None:
        """update() puts a member in the group of its new view."""
        alice = BytesClient("alice")
        self.fanout.subscribe("lobby", alice, True)
        self.fanout.update("lobby", alice, False)
        self.fanout.publish("lobby", b"x\n", None)
        self.assertEqual(IDENTITY.rendered, [(b"x\n", False)])
        self.fanout.update("lobby", alice, False)
        self.fanout.unsubscribe("lobby", alice)
        self.fanout.publish("lobby", b"y\n", None)
        self.assertEqual(alice.sent, [b"x\n"])

    def test_no_echo(self) -> None:
        """
        A member whose view says it does not see its own messages gets the
        others' messages of the batch, and its own join; the rest get all.
        """

        class Quiet(FakeClient):
            def view(self, current: bool) -> View:
                return (RENDERER, CURRENT, False)

        quiet, loud = Quiet("quiet"), FakeClient("loud")
        self.fanout.subscribe("lobby", quiet, True)
        self.fanout.subscribe("lobby", loud, True)
        me, them = events.Source("quiet", "q", "h"), events.Source("loud", "l", "h")
        self.fanout.hold()
        self.fanout.publish("lobby", events.Joined("lobby", 1, 0.0, me), quiet)
        self.fanout.publish("lobby", events.Message("lobby", 2, 0.0, me, "mine"), quiet)
        self.fanout.publish(
            "lobby", events.Message("lobby", 3, 0.0, them, "theirs"), loud
        )
        self.fanout.release()
        self.assertEqual(quiet.lines, ["*** quiet has joined #lobby", "<loud> theirs"])
        self.assertEqual(
            loud.lines,
            ["*** quiet has joined #lobby", "<quiet> mine", "<loud> theirs"],
        )

    def test_user_event_once(self) -> None:
        """
        A user event reaches each member of any of its rooms once, and
        C{also}, after what was pending.
        """
        both, first, second, alone = (BytesClient(n) for n in "abcd")
        for client in (both, first):
            self.fanout.subscribe("one", client, True)
        for client in (both, second):
            self.fanout.subscribe("two", client, False)
        self.fanout.hold()
        self.fanout.publish("one", b"before\n", None)
        self.fanout.publish_user_event(["one", "two"], b"quit\n", alone)
        self.fanout.release()
        self.assertEqual(both.sent, [b"before\n", b"quit\n"])
        self.assertEqual(first.sent, [b"before\n", b"quit\n"])
        self.assertEqual(second.sent, [b"quit\n"])
        self.assertEqual(alone.sent, [b"quit\n"])
