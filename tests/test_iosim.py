"""
Many users and a real L{ChatFactory}, connected in memory with
L{twisted.test.iosim}: whole conversations, and exactly what each user read.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.conversation import Conversation, LinePeer
from tests.helpers import ChatNetwork, UserSide
from twisted_chat.shared import lines


class ConversationTests(SynchronousTestCase):
    """Three users in two rooms."""

    def setUp(self) -> None:
        self.network = ChatNetwork()
        self.alice = self.login("alice")
        self.bob = self.login("bob")
        self.carol = self.login("carol")
        for user in (self.alice, self.bob, self.carol):
            user.take()

    def login(self, nick: str) -> UserSide:
        """Connect, check the greeting, and take a nickname."""
        before = sorted(user.nick for user in self.network.chat.users.values())
        user = self.network.connect()
        greeting = user.take()
        guest = lines.parse_self_nick(greeting[1])
        assert guest is not None
        self.assertEqual(
            greeting,
            [
                lines.welcome(),
                lines.self_nick(guest),
                lines.joined(guest, "lobby"),
                lines.who("lobby", [*before, guest]),
            ],
        )
        user.type(f"/nick {nick}")
        self.network.flush()
        self.assertEqual(user.take(), [lines.nick_change(guest, nick)])
        return user

    def test_conversation(self) -> None:
        """Messages, a room change, a private message, a rename and a quit."""
        alice, bob, carol = self.alice, self.bob, self.carol

        carol.type("/join #games", "/part lobby")
        self.network.flush()
        alice.type("hi bob")
        bob.type("hi alice", "/me waves")
        carol.type("anyone for chess?")
        self.network.flush()
        alice.type("/msg carol want to play later?")
        self.network.flush()
        carol.type("/msg ALICE sure!")
        self.network.flush()
        bob.type("/nick robert")
        self.network.flush()
        bob.type("/who")
        self.network.flush()
        alice.type("/quit see you")
        self.network.flush()

        self.assertEqual(
            alice.take(),
            [
                "*** carol has left #lobby",
                "<alice> hi bob",
                "<bob> hi alice",
                "* bob waves",
                "-> *carol* want to play later?",
                "*carol* sure!",
                "*** bob is now known as robert",
                "*** Goodbye (see you)",
            ],
        )
        self.assertEqual(
            bob.take(),
            [
                "*** carol has left #lobby",
                "<alice> hi bob",
                "<bob> hi alice",
                "* bob waves",
                "*** bob is now known as robert",
                "*** Users in #lobby (2): alice, robert",
                "*** alice has quit (see you)",
            ],
        )
        self.assertEqual(
            carol.take(),
            [
                "*** carol has joined #games",
                "*** Users in #games (1): carol",
                "[#lobby] *** carol has left #lobby",
                "<carol> anyone for chess?",
                "*alice* want to play later?",
                "-> *alice* sure!",
            ],
        )
        self.assertTrue(alice.closed)
        self.assertFalse(bob.closed or carol.closed)
        self.assertEqual(sorted(self.network.chat.users), ["carol", "robert"])

    def test_dropped_connection(self) -> None:
        """A user whose connection drops is announced to their room."""
        self.bob.transport.loseConnection()  # type: ignore[union-attr]
        self.network.flush()
        self.assertEqual(self.alice.take(), ["*** bob has quit (connection lost)"])
        self.assertEqual(self.carol.take(), ["*** bob has quit (connection lost)"])
        self.assertEqual(sorted(self.network.chat.users), ["alice", "carol"])
        self.assertEqual(len(self.network.factory.connections), 2)

    def test_lines_in_pieces(self) -> None:
        """Bytes arriving in odd pieces make the same lines for everyone."""
        assert self.alice.transport is not None
        for piece in [b"hel", b"lo\r", b"\nw\xc3", b"\xa9b\n", b"/me ", b"nods\n"]:
            self.alice.transport.write(piece)
            self.network.flush()
        expected = ["<alice> hello", "<alice> wéb", "* alice nods"]
        self.assertEqual(self.alice.take(), expected)
        self.assertEqual(self.bob.take(), expected)
        self.assertEqual(self.carol.take(), expected)

    def test_errors_are_private(self) -> None:
        """Refusals go to the user who made the mistake only."""
        self.alice.type("/nick bob", "/join 9", "/msg dave hi", "/frob")
        assert self.alice.transport is not None
        self.alice.transport.write(b"\xff\n\x1b[31mred\n")
        self.network.flush()
        self.assertEqual(
            self.alice.take(),
            [
                "!!! The nickname bob is taken; choose another.",
                "!!! A room name must start with a letter and contain only "
                "letters, digits, '_' and '-' (ASCII), optionally after a '#'.",
                "!!! There is no user called dave.",
                "!!! Unknown command /frob. Type /help for the list of commands, "
                "or start a message with // to send a line beginning with /.",
                "!!! Your line is not valid UTF-8 and was not sent.",
                "!!! Your line contains control characters (such as terminal "
                "escape sequences) and was not sent.",
            ],
        )
        self.assertEqual(self.bob.take(), [])
        self.assertEqual(self.carol.take(), [])

    def test_rooms_and_help(self) -> None:
        """/rooms and /help answer the asker alone."""
        self.carol.type("/join games", "/part lobby")
        self.network.flush()
        self.alice.take(), self.bob.take(), self.carol.take()
        self.bob.type("/rooms", "/help")
        self.network.flush()
        self.assertEqual(
            self.bob.take(),
            ["*** Rooms (2): #games (1), #lobby (2)", *lines.help_lines()],
        )
        self.assertEqual(self.alice.take() + self.carol.take(), [])

    def test_shutdown(self) -> None:
        """A shutdown tells everyone and closes every connection."""
        self.network.chat.shutdown("maintenance")
        self.network.flush()
        for user in (self.alice, self.bob, self.carol):
            self.assertEqual(user.take(), ["*** Server shutting down: maintenance"])
            self.assertTrue(user.closed)
        self.assertEqual(self.network.factory.connections, set())


class LineConversationTests(Conversation, SynchronousTestCase):
    """The conversation suite, every user on the line protocol."""

    front_ends = (LinePeer,)
