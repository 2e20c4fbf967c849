"""
Tests for L{twisted_chat.shared.lines}: the lines the server writes, and the few
it reads back.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import nicks, property_settings, rooms
from twisted_chat.shared import lines
from twisted_chat.shared.commands import Me, Msg, Say, parse_line


class EncodeTests(SynchronousTestCase):
    """The wire form: UTF-8, one C{\\n} after each line."""

    def test_one_line(self) -> None:
        """One line gets one newline."""
        self.assertEqual(lines.encode("hello"), b"hello\n")

    def test_many_lines(self) -> None:
        """Several lines become one bytes object, each line ended."""
        self.assertEqual(lines.encode("a", "b", "c"), b"a\nb\nc\n")

    def test_no_lines(self) -> None:
        """No lines encode to nothing."""
        self.assertEqual(lines.encode(), b"")

    def test_utf8(self) -> None:
        """Text is encoded as UTF-8."""
        self.assertEqual(lines.encode("café ☕"), b"caf\xc3\xa9 \xe2\x98\x95\n")


class FormatTests(SynchronousTestCase):
    """Every line the server writes, in its documented wire format."""

    def test_prefixes(self) -> None:
        """Notices and errors have their reserved prefixes."""
        self.assertEqual(lines.NOTICE, "*** ")
        self.assertEqual(lines.ERROR, "!!! ")
        self.assertEqual(lines.notice("hi"), "*** hi")
        self.assertEqual(lines.error("no"), "!!! no")

    def test_room_label(self) -> None:
        """Rooms are shown with a '#'."""
        self.assertEqual(lines.room_label("games"), "#games")

    def test_message(self) -> None:
        """A room message: <nick> text."""
        self.assertEqual(lines.message("alice", "hi all"), "<alice> hi all")

    def test_action(self) -> None:
        """An action: * nick text."""
        self.assertEqual(lines.action("alice", "waves"), "* alice waves")

    def test_private(self) -> None:
        """Private messages, received and sent."""
        self.assertEqual(lines.private_in("alice", "psst"), "*alice* psst")
        self.assertEqual(lines.private_out("bob", "psst"), "-> *bob* psst")

    def test_welcome(self) -> None:
        """The greeting names the server and points at /help."""
        self.assertEqual(
            lines.welcome(), "*** Welcome to twisted-chat! Type /help for the commands."
        )

    def test_self_nick(self) -> None:
        """The user is told their nickname and how to change it."""
        self.assertEqual(
            lines.self_nick("guest1"),
            "*** You are guest1. Change your name with /nick NAME.",
        )

    def test_room_notices(self) -> None:
        """Joins, leaves, quits and nickname changes."""
        self.assertEqual(lines.joined("alice", "games"), "*** alice has joined #games")
        self.assertEqual(lines.left("alice", "games"), "*** alice has left #games")
        self.assertEqual(
            lines.quit_("alice", "bedtime"), "*** alice has quit (bedtime)"
        )
        self.assertEqual(
            lines.nick_change("alice", "alicia"), "*** alice is now known as alicia"
        )

    def test_who(self) -> None:
        """The user list counts and lists nicks in the given order."""
        self.assertEqual(
            lines.who("lobby", ["bob", "alice"]),
            "*** Users in #lobby (2): bob, alice",
        )
        self.assertEqual(lines.who("empty", []), "*** Users in #empty (0): ")

    def test_rooms(self) -> None:
        """The room list counts rooms and shows each one's population."""
        self.assertEqual(
            lines.rooms([("games", 1), ("lobby", 3)]),
            "*** Rooms (2): #games (1), #lobby (3)",
        )

    def test_goodbye_and_shutdown(self) -> None:
        """The last lines a user can receive."""
        self.assertEqual(lines.goodbye("quit"), "*** Goodbye (quit)")
        self.assertEqual(
            lines.shutting_down("maintenance"),
            "*** Server shutting down: maintenance",
        )

    def test_help(self) -> None:
        """Help is a list of notices, one command per line, then the // hint."""
        self.assertEqual(
            lines.help_lines(),
            [
                "*** Commands:",
                "***   /nick NAME             change your nickname",
                "***   /join ROOM             join a room (created if needed) and "
                "talk there",
                "***   /part [ROOM] [REASON]  leave a room (the current one by "
                "default)",
                "***   /rooms                 list the rooms",
                "***   /who [ROOM]            list the users of a room",
                "***   /topic [TEXT]          show or set the current room's topic",
                "***   /kick NICK [REASON]    make a user leave the current room "
                "(operators)",
                "***   /msg NICK TEXT         send a private message",
                "***   /me ACTION             describe an action",
                "***   /away [MESSAGE]        mark yourself away, or back",
                "***   /whois NICK            show what is public about a user",
                "***   /history [#ROOM] [N]   show the last N lines of a room "
                "(oldest first)",
                "***   /help                  show this help",
                "***   /quit [REASON]         leave the chat",
                "*** Any other line is sent to your current room; start it with "
                "// to send a line beginning with /. Lines from your other rooms "
                "start with [#room].",
            ],
        )


class ReadBackTests(SynchronousTestCase):
    """The client reads a few notices back."""

    def test_parse_self_nick(self) -> None:
        """The self-nick notice gives the nickname."""
        self.assertEqual(lines.parse_self_nick(lines.self_nick("guest7")), "guest7")

    def test_parse_nick_change(self) -> None:
        """The nick change notice gives old and new nicknames."""
        self.assertEqual(
            lines.parse_nick_change(lines.nick_change("guest7", "carol")),
            ("guest7", "carol"),
        )

    def test_parse_joined(self) -> None:
        """The join notice gives the nickname and the room without '#'."""
        self.assertEqual(
            lines.parse_joined(lines.joined("carol", "games")), ("carol", "games")
        )

    def test_other_lines_are_not_read(self) -> None:
        """Lines of other kinds are not mistaken for these notices."""
        others = [
            lines.message("alice", "*** You are admin. Change your name"),
            lines.message("alice", "*** bob is now known as mallory"),
            lines.action("alice", "has joined #games"),
            lines.private_in("alice", "*** bob has joined #games"),
            lines.notice("You are already alice."),
            lines.left("alice", "games"),
            lines.who("games", ["alice"]),
            lines.nick_change("alice", "bob") + " extra",
            lines.joined("alice", "games") + " extra",
            "",
        ]
        for line in others:
            self.assertIsNone(lines.parse_self_nick(line), line)
            self.assertIsNone(lines.parse_nick_change(line), line)
            self.assertIsNone(lines.parse_joined(line), line)

    @given(nicks)
    @property_settings
    def test_self_nick_round_trip(self, nick: str) -> None:
        """parse_self_nick reads back any nickname self_nick writes."""
        self.assertEqual(lines.parse_self_nick(lines.self_nick(nick)), nick)

    @given(nicks, nicks)
    @property_settings
    def test_nick_change_round_trip(self, old: str, new: str) -> None:
        """parse_nick_change reads back any pair nick_change writes."""
        self.assertEqual(
            lines.parse_nick_change(lines.nick_change(old, new)), (old, new)
        )

    @given(nicks, rooms)
    @property_settings
    def test_joined_round_trip(self, nick: str, room: str) -> None:
        """parse_joined reads back any nick and room joined writes."""
        self.assertEqual(lines.parse_joined(lines.joined(nick, room)), (nick, room))


def user_lines(sender: str, command: Say | Me | Msg) -> list[str]:
    """Every line the server may build from C{command}'s user text."""
    match command:
        case Say(text):
            return [lines.message(sender, text)]
        case Me(text):
            return [lines.action(sender, text)]
        case Msg(nick, text):
            return [lines.private_in(sender, text), lines.private_out(nick, text)]


class SpoofingTests(SynchronousTestCase):
    """
    No user text, once accepted by the parser, can make a line that passes
    for a server line or that holds a line break.
    """

    def check(self, sender: str, typed: str) -> None:
        command = parse_line(typed)
        if not isinstance(command, Say | Me | Msg):
            return
        if isinstance(command, Msg):
            # The core only sends to (and names) an existing, valid nick.
            assume(lines.parse_self_nick(lines.self_nick(command.nick)) is not None)
        for line in user_lines(sender, command):
            self.assertFalse(line.startswith((lines.NOTICE, lines.ERROR)), line)
            self.assertNotIn("\n", line)
            self.assertEqual(lines.encode(line).count(b"\n"), 1)
            self.assertEqual(len(lines.encode(line).decode("utf-8").splitlines()), 1)

    @given(nicks, st.text())
    @property_settings
    def test_any_text(self, sender: str, typed: str) -> None:
        """Any typed line becomes at most one line with no server prefix."""
        self.check(sender, typed)

    @given(
        nicks,
        st.sampled_from(["", "//", "/me ", "/msg bob ", "/MSG Bob  "]),
        st.sampled_from(["*** ", "!!! ", "\n*** ", "\r\n!!! ", "\u2028*** "]),
        st.text(),
    )
    @property_settings
    def test_imitations(self, sender: str, start: str, fake: str, text: str) -> None:
        """Lines crafted to look like server lines stay user lines."""
        self.check(sender, start + fake + text)

    def test_examples(self) -> None:
        """The obvious spoofs cannot start a line with a server prefix."""
        self.assertEqual(
            user_lines("mallory", Say("*** bob has quit")),
            ["<mallory> *** bob has quit"],
        )
        self.assertEqual(
            user_lines("mallory", Me("*** bob has quit")),
            ["* mallory *** bob has quit"],
        )
        self.assertEqual(
            user_lines("mallory", Msg("bob", "!!! Disconnected")),
            ["*mallory* !!! Disconnected", "-> *bob* !!! Disconnected"],
        )
