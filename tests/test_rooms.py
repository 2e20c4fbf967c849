"""
Tests for what the core does with several rooms per user and for the
commands every front end shares: the current room, /part, operators, the
topic, /kick, /away, /whois; registration as a step of its own; and the
events' sequence numbers and times.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from tests.helpers import FakeClient
from tests.test_core import ChatTestCase
from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.events import ErrorCode
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.interfaces import IChatClient
from twisted_chat.shared.commands import PartAll, Say


class CurrentRoomTests(ChatTestCase):
    """Plain lines go to the current room; the others are marked."""

    def test_join_makes_current(self) -> None:
        """After /join, the new room is current; the old one still heard."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join dev")
        alice.take()
        self.type(alice_user, "hello dev")
        self.type(bob_user, "hello lobby")
        self.assertEqual(
            alice.lines, ["<alice> hello dev", "[#lobby] <bob> hello lobby"]
        )
        self.assertEqual(bob.lines, ["<bob> hello lobby"])

    def test_switch_back(self) -> None:
        """/join of a room one is in makes it current, marks move with it."""
        alice, alice_user = self.connect("alice")
        _bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join dev", "/join lobby")
        self.assertEqual(alice.take()[-1], "*** Now talking in #lobby.")
        self.type(alice_user, "back")
        self.type(bob_user, "hi")
        self.assertEqual(alice.take(), ["<alice> back", "<bob> hi"])
        self.assertIs(alice_user.current, self.chat.rooms["lobby"])

    def test_part_current(self) -> None:
        """Leaving the current room makes the last joined one current."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/join dev", "/join ops")
        alice.take()
        self.type(alice_user, "/part")
        self.assertEqual(
            alice.take(), ["*** alice has left #ops", "*** Now talking in #dev."]
        )
        self.type(alice_user, "/part dev see you")
        self.assertEqual(
            alice.take(),
            ["*** alice has left #dev (see you)", "*** Now talking in #lobby."],
        )
        self.assertEqual(bob.take(), [])

    def test_part_other(self) -> None:
        """Leaving another room keeps the current one; its members see it."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/join dev")
        alice.take(), bob.take()
        self.type(alice_user, "/part #lobby")
        self.assertEqual(alice.take(), ["[#lobby] *** alice has left #lobby"])
        self.assertEqual(bob.take(), ["*** alice has left #lobby"])
        self.assertIs(alice_user.current, self.chat.rooms["dev"])

    def test_no_room(self) -> None:
        """With no room left, plain lines are refused with a clear error."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/part", "anyone?")
        self.assertEqual(
            alice.take(),
            [
                "*** alice has left #lobby",
                "*** You are in no room now; /join one to talk.",
                "!!! You are in no room; /join one to talk.",
            ],
        )

    def test_part_not_in(self) -> None:
        """Parting a room one is not in, or that does not exist, is refused."""
        alice, alice_user = self.connect("alice")
        self.connect("bob")
        self.type(self.chat.users["bob"], "/join dev")
        alice.take()
        self.type(alice_user, "/part #dev", "/part #nowhere")
        self.assertEqual(
            alice.take(),
            ["!!! You are not in #dev.", "!!! There is no room #nowhere."],
        )

    def test_part_all(self) -> None:
        """PartAll (IRC's JOIN 0) leaves every room."""
        _alice, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev")
        self.chat.execute(alice_user, PartAll(None))
        self.assertEqual(alice_user.rooms, {})
        self.assertIsNone(alice_user.current)

    def test_quit_once(self) -> None:
        """A user in two rooms with someone is seen to quit once."""
        alice, alice_user = self.connect("alice")
        _bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join dev")
        self.type(bob_user, "/join dev")
        alice.take()
        self.chat.disconnect(bob_user, "gone")
        self.assertEqual(alice.take(), ["*** bob has quit (gone)"])

    def test_nick_once_and_to_self(self) -> None:
        """A rename is seen once by those who share rooms, and by the user."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        carol, carol_user = self.connect("carol")
        self.type(alice_user, "/join dev", "/part lobby")
        self.type(bob_user, "/join dev")
        self.type(carol_user, "/join elsewhere", "/part lobby")
        alice.take(), bob.take(), carol.take()
        self.type(alice_user, "/nick alicia")
        self.assertEqual(alice.take(), ["*** alice is now known as alicia"])
        self.assertEqual(bob.take(), ["*** alice is now known as alicia"])
        self.assertEqual(carol.take(), [])
        self.type(alice_user, "/part", "/nick alice2")
        self.assertEqual(alice.take()[-1], "*** alicia is now known as alice2")


class OperatorTests(ChatTestCase):
    """A room's creator is its operator: topic and kick."""

    def test_topic(self) -> None:
        """The operator sets the topic; members see it; others may not."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join dev")
        self.type(bob_user, "/join dev")
        alice.take(), bob.take()
        self.type(bob_user, "/topic mine now")
        self.assertEqual(
            bob.take(), ["!!! Only an operator of #dev can set its topic."]
        )
        self.type(alice_user, "/topic release day")
        self.assertEqual(alice.take(), ["*** alice set the topic of #dev: release day"])
        self.assertEqual(bob.take(), ["*** alice set the topic of #dev: release day"])
        self.type(bob_user, "/topic")
        self.assertEqual(bob.take(), ["*** Topic of #dev: release day (set by alice)"])

    def test_topic_shown_on_join(self) -> None:
        """Someone joining a room with a topic is shown it before the names."""
        _, alice_user = self.connect("alice")
        carol, carol_user = self.connect("carol")
        self.type(alice_user, "/join dev", "/topic hello")
        carol.take()
        self.type(carol_user, "/join dev")
        self.assertEqual(
            carol.take(),
            [
                "*** carol has joined #dev",
                "*** Topic of #dev: hello (set by alice)",
                "*** Users in #dev (2): alice, carol",
            ],
        )

    def test_kick(self) -> None:
        """The operator kicks; the room and the kicked user see it."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join dev")
        self.type(bob_user, "/join dev")
        alice.take(), bob.take()
        self.type(alice_user, "/kick bob behave")
        self.assertEqual(alice.take(), ["*** alice kicked bob from #dev (behave)"])
        self.assertEqual(
            bob.take(),
            ["*** alice kicked bob from #dev (behave)", "*** Now talking in #lobby."],
        )
        self.assertNotIn("dev", bob_user.rooms)

    def test_kick_refused(self) -> None:
        """Not an operator, no such user, user not in the room: refused."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join dev")
        alice.take(), bob.take()
        self.type(bob_user, "/kick alice")
        self.assertEqual(bob.take(), ["!!! Only an operator of #lobby can kick."])
        self.type(alice_user, "/kick nobody", "/kick bob")
        self.assertEqual(
            alice.take(),
            ["!!! There is no user called nobody.", "!!! bob is not in #dev."],
        )
        codes = [
            reply.code for reply in alice.replies if isinstance(reply, events.Error)
        ]
        self.assertEqual(codes, [ErrorCode.NO_SUCH_NICK, ErrorCode.USER_NOT_IN_ROOM])


class UserInfoTests(ChatTestCase):
    """/away and /whois."""

    def test_away(self) -> None:
        """A private message to an away user tells the sender."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(bob_user, "/away lunch")
        self.assertEqual(bob.take(), ["*** You have been marked as being away."])
        self.type(alice_user, "/msg bob hi")
        self.assertEqual(alice.take(), ["-> *bob* hi", "*** bob is away: lunch"])
        self.type(bob_user, "/away")
        self.assertEqual(
            bob.take(), ["*alice* hi", "*** You are no longer marked as being away."]
        )
        self.type(alice_user, "/msg bob back?")
        self.assertEqual(alice.take(), ["-> *bob* back?"])

    def test_whois(self) -> None:
        """/whois shows the rooms, idle time and away message."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev", "/away busy", "/whois alice", "/whois x")
        self.assertEqual(
            alice.take()[-2:],
            [
                "*** alice (alice@) is in #lobby, #dev; idle 0 s; away: busy",
                "!!! There is no user called x.",
            ],
        )


class RegistrationTests(ChatTestCase):
    """attach() then register(): nobody sees an unregistered connection."""

    def test_unregistered_is_invisible(self) -> None:
        """An attached connection is in no list until it registers."""
        client = FakeClient()
        user = self.chat.attach(client)
        self.assertEqual(self.chat.users, {})
        self.chat.execute(user, Say("hello?"))
        self.assertEqual(client.lines, [])
        self.assertTrue(self.chat.register(user, "dave", "d", realname="Dave"))
        self.assertEqual(self.chat.users, {"dave": user})
        self.assertEqual(user.rooms, {})
        self.assertIsInstance(client.replies[0], events.Welcome)

    def test_nick_taken(self) -> None:
        """Registering under a nickname in use is refused with its code."""
        self.connect("alice")
        client = FakeClient()
        user = self.chat.attach(client)
        self.assertFalse(self.chat.register(user, "ALICE"))
        [error] = client.replies
        assert isinstance(error, events.Error)
        self.assertEqual((error.code, error.args), (ErrorCode.NICK_IN_USE, ("ALICE",)))
        self.assertFalse(user.registered)


class SequenceTests(ChatTestCase):
    """Room events carry the room, a growing sequence number and the time."""

    def test_sequence_and_time(self) -> None:
        """Each room counts its own events; the time is the clock's."""
        clock = Clock()
        clock.advance(1_700_000_000)
        seen: list[object] = []

        class Recording(LocalFanout):
            def publish(
                self, room: str, event: object, origin: IChatClient | None = None
            ) -> None:
                seen.append(event)
                super().publish(room, event, origin)

        self.chat = ChatServer(fanout=Recording(), clock=clock)
        _, alice_user = self.connect("alice")
        self.type(alice_user, "one")
        clock.advance(2.5)
        self.type(alice_user, "two", "/join dev", "three")
        published = [e for e in seen if isinstance(e, events.Message)]
        self.assertEqual(
            [(m.room, m.seq, m.time, m.text) for m in published],
            [
                ("lobby", published[0].seq, 1_700_000_000.0, "one"),
                ("lobby", published[0].seq + 1, 1_700_000_002.5, "two"),
                ("dev", 2, 1_700_000_002.5, "three"),
            ],
        )
        joined = [e for e in seen if isinstance(e, events.Joined)]
        self.assertEqual([(e.room, e.seq) for e in joined], [("lobby", 1), ("dev", 1)])
