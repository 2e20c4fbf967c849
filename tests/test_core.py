"""
Tests for L{twisted_chat.core.chat.ChatServer}, driven with fake clients: what
every user sees for every command.
"""

from __future__ import annotations

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.helpers import FakeClient, observe_logs
from twisted_chat.core.chat import (
    DEFAULT_ROOM,
    ChatServer,
    User,
)
from twisted_chat.core.chat import NAMES_LIMIT as WHO_LIMIT
from twisted_chat.core.events import Message
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.interfaces import IChatClient, IFanout
from twisted_chat.server.line_render import JOIN_LIST_LIMIT
from twisted_chat.shared import lines
from twisted_chat.shared.commands import Help, Say
from twisted_chat.shared.rules import name_key, nick_error, room_error


class ChatTestCase(SynchronousTestCase):
    """A chat server and a way to connect fake clients to it."""

    def setUp(self) -> None:
        self.chat = ChatServer()

    def connect(self, nick: str | None = None) -> tuple[FakeClient, User]:
        """
        Connect a fake client, optionally rename it, and forget what it has
        received so far; everyone else's lines are forgotten too.
        """
        client = FakeClient(peer=f"10.0.0.{len(self.chat.users) + 1}:5000")
        user = self.chat.connect(client)
        client.user = user
        if nick is not None:
            self.chat.line_received(user, f"/nick {nick}")
            self.assertEqual(user.nick, nick)
        for other in self.chat.users.values():
            assert isinstance(other.client, FakeClient)
            other.client.take()
        return client, user

    def type(self, user: User, *typed: str) -> None:
        """C{user} types each of C{typed}."""
        for line in typed:
            self.chat.line_received(user, line)


class ConnectTests(ChatTestCase):
    """A new connection is greeted, named and put in the lobby."""

    def test_greeting(self) -> None:
        """A first user gets welcome, nickname, join and user list."""
        client = FakeClient()
        user = self.chat.connect(client)
        self.assertEqual(
            client.lines,
            [
                lines.welcome(),
                lines.self_nick(user.nick),
                lines.joined(user.nick, "lobby"),
                lines.who("lobby", [user.nick]),
            ],
        )
        self.assertEqual(DEFAULT_ROOM, "lobby")
        self.assertIs(user.client, client)
        self.assertTrue(user.connected)

    def test_guest_nick(self) -> None:
        """The guest nickname is a valid nickname starting with 'guest'."""
        _, user = self.connect()
        self.assertIsNone(nick_error(user.nick))
        self.assertTrue(user.nick.startswith("guest"), user.nick)

    def test_unique_guest_nicks(self) -> None:
        """Every connection gets a different nickname."""
        users = [self.connect()[1] for _ in range(10)]
        self.assertEqual(len({name_key(user.nick) for user in users}), 10)

    def test_others_see_the_join(self) -> None:
        """Users already in the lobby see the newcomer join."""
        alice, _ = self.connect("alice")
        bob, bob_user = self.connect()
        self.assertEqual(alice.lines, [])  # connect() took them
        carol = FakeClient()
        carol_user = self.chat.connect(carol)
        self.assertEqual(alice.take(), [lines.joined(carol_user.nick, "lobby")])
        self.assertEqual(bob.take(), [lines.joined(carol_user.nick, "lobby")])
        self.assertEqual(
            carol.lines[-1],
            lines.who("lobby", ["alice", bob_user.nick, carol_user.nick]),
        )

    def test_guest_skips_taken_nicks(self) -> None:
        """A guest nickname a user has taken (in any case) is not given out."""
        first = self.connect()[1]
        # Take the next two guest names the server would hand out, if it
        # numbers guests: one exactly, one in another case.
        number = int(first.nick.removeprefix("guest"))
        self.connect(f"guest{number + 1}")
        self.connect(f"GUEST{number + 2}")
        taken = {name_key(user.nick) for user in self.chat.users.values()}
        _, newcomer = self.connect()
        self.assertNotIn(name_key(newcomer.nick), taken)
        self.assertEqual(len(self.chat.users), 4)

    def test_registry(self) -> None:
        """Connected users are registered under their case-folded nick."""
        _, alice = self.connect("Alice")
        self.assertEqual(self.chat.users, {"alice": alice})
        self.assertEqual(list(self.chat.rooms), ["lobby"])
        self.assertEqual(list(self.chat.room_members("#LOBBY")), [alice])

    def test_custom_default_room(self) -> None:
        """The default room can be chosen."""
        self.chat = ChatServer(default_room="welcome")
        client = FakeClient()
        user = self.chat.connect(client)
        self.assertEqual(
            client.lines[2:],
            [
                lines.joined(user.nick, "welcome"),
                lines.who("welcome", [user.nick]),
            ],
        )


class RoomTrafficTests(ChatTestCase):
    """Messages and actions go to everyone in the sender's room only."""

    def test_message(self) -> None:
        """A message reaches the whole room, sender included, not other rooms."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        carol, carol_user = self.connect("carol")
        self.type(carol_user, "/join games", "/part lobby")
        alice.take(), bob.take(), carol.take()
        self.type(alice_user, "hello, lobby")
        self.assertEqual(alice.lines, ["<alice> hello, lobby"])
        self.assertEqual(bob.lines, ["<alice> hello, lobby"])
        self.assertEqual(carol.lines, [])

    def test_order(self) -> None:
        """Messages arrive in the order they were sent, for everyone."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "one")
        self.type(bob_user, "two")
        self.type(alice_user, "three")
        expected = ["<alice> one", "<bob> two", "<alice> three"]
        self.assertEqual(alice.lines, expected)
        self.assertEqual(bob.lines, expected)

    def test_same_bytes_object(self) -> None:
        """A message is encoded once: every member gets the same bytes object."""
        clients = [self.connect(f"user{i}")[0] for i in range(4)]
        sender = self.chat.users["user0"]
        for line in ["hello", "/me waves"]:
            self.type(sender, line)
            first = clients[0].sent[-1]
            for client in clients[1:]:
                self.assertIs(client.sent[-1], first)
        self.assertEqual(clients[3].take(), ["<user0> hello", "* user0 waves"])

    def test_me(self) -> None:
        """/me is shown as an action to the room."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/me  waves at everyone ")
        self.assertEqual(alice.lines, ["* alice waves at everyone"])
        self.assertEqual(bob.lines, ["* alice waves at everyone"])

    def test_literal_slash(self) -> None:
        """'//' sends a message starting with '/'."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "//join is a command")
        self.assertEqual(alice.lines, ["<alice> /join is a command"])
        self.assertEqual(alice_user.room and alice_user.room.name, "lobby")

    def test_blank_ignored(self) -> None:
        """Blank lines send nothing to anyone."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "", "   ", "\t")
        self.assertEqual(alice.sent + bob.sent, [])

    def test_invalid(self) -> None:
        """A refused line is explained to its sender alone."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "\x1b[31mred", "/dance", "/nick")
        self.assertEqual(
            alice.lines,
            [
                lines.error(
                    "Your line contains control characters (such as terminal "
                    "escape sequences) and was not sent."
                ),
                lines.error(
                    "Unknown command /dance. Type /help for the list of commands, "
                    "or start a message with // to send a line beginning with /."
                ),
                lines.error("Usage: /nick NAME"),
            ],
        )
        self.assertEqual(bob.lines, [])

    def test_execute(self) -> None:
        """execute() runs an already parsed command."""
        alice, alice_user = self.connect("alice")
        self.chat.execute(alice_user, Say("/not a command"))
        self.assertEqual(alice.lines, ["<alice> /not a command"])

    def test_goes_through_the_fanout(self) -> None:
        """Room traffic is delivered through the given IFanout."""
        published: list[tuple[str, object, object]] = []

        @implementer(IFanout)
        class RecordingFanout(LocalFanout):
            def publish(
                self, room: str, event: object, origin: IChatClient | None = None
            ) -> None:
                published.append((room, event, origin))
                super().publish(room, event, origin)

        self.chat = ChatServer(fanout=RecordingFanout())
        alice, alice_user = self.connect("Alice")
        self.type(alice_user, "/join Games", "hi")
        room, event, origin = published[-1]
        self.assertEqual(room, "games")
        assert isinstance(event, Message)
        self.assertEqual(
            (event.room, event.source.nick, event.text), ("Games", "Alice", "hi")
        )
        self.assertIs(origin, alice)
        self.assertEqual(alice.lines[-1], "<Alice> hi")


class NickTests(ChatTestCase):
    """Changing nicknames."""

    def test_rename(self) -> None:
        """The room sees the change, and the registry follows it."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/nick alicia")
        self.assertEqual(alice.lines, ["*** alice is now known as alicia"])
        self.assertEqual(bob.lines, ["*** alice is now known as alicia"])
        self.assertIs(alice.sent[-1], bob.sent[-1])
        self.assertEqual(alice_user.nick, "alicia")
        self.assertEqual(sorted(self.chat.users), ["alicia", "bob"])
        self.type(alice_user, "hi")
        self.assertEqual(bob.lines[-1], "<alicia> hi")

    def test_old_nick_is_free(self) -> None:
        """After a rename, someone else can take the old nickname."""
        _, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/nick alicia")
        bob.take()
        self.type(bob_user, "/nick alice")
        self.assertEqual(bob.lines, ["*** bob is now known as alice"])

    def test_other_rooms_do_not_see(self) -> None:
        """A rename is announced in the user's room only."""
        alice, _ = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(bob_user, "/join games", "/part lobby")
        alice.take()
        self.type(bob_user, "/nick robert")
        self.assertEqual(alice.lines, [])
        self.assertEqual(bob.take()[-1], "*** bob is now known as robert")

    def test_taken(self) -> None:
        """A nickname in use, in any case, is refused."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/nick bob", "/nick BOB")
        self.assertEqual(
            alice.lines,
            [
                "!!! The nickname bob is taken; choose another.",
                "!!! The nickname BOB is taken; choose another.",
            ],
        )
        self.assertEqual(bob.lines, [])
        self.assertEqual(alice_user.nick, "alice")

    def test_invalid(self) -> None:
        """An invalid nickname is refused with the rule it breaks."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        bad = ["9lives", "x" * 21, "al.ice"]
        self.type(alice_user, *(f"/nick {nick}" for nick in bad))
        self.assertEqual(
            alice.lines, [lines.error(str(nick_error(nick))) for nick in bad]
        )
        self.assertNotIn(None, [nick_error(nick) for nick in bad])
        self.assertEqual(bob.lines, [])
        self.assertEqual(alice_user.nick, "alice")

    def test_same(self) -> None:
        """Renaming to the current nickname only says so."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/nick alice")
        self.assertEqual(alice.lines, ["*** You are already alice."])
        self.assertEqual(bob.lines, [])

    def test_case_only(self) -> None:
        """Changing only the case of one's own nickname is allowed."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/nick Alice")
        self.assertEqual(alice.lines, ["*** alice is now known as Alice"])
        self.assertEqual(bob.lines, ["*** alice is now known as Alice"])
        self.assertIs(self.chat.users["alice"], alice_user)
        self.type(bob_user, "/msg alice hi")
        self.assertEqual(bob.lines[-1], "-> *Alice* hi")

    def test_who_order_kept(self) -> None:
        """A rename keeps the user's place in the room's joining order."""
        _, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/nick alicia")
        self.type(bob_user, "/who")
        self.assertEqual(bob.lines[-1], "*** Users in #lobby (2): alicia, bob")
        self.assertEqual(
            [user.nick for user in self.chat.room_members("lobby")],
            ["alicia", "bob"],
        )


class JoinTests(ChatTestCase):
    """Moving between rooms."""

    def test_join_new_room(self) -> None:
        """
        Joining creates the room and makes it current; the user stays in the
        old room, which sees nothing.
        """
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/join games")
        self.assertEqual(
            alice.lines,
            ["*** alice has joined #games", "*** Users in #games (1): alice"],
        )
        self.assertEqual(bob.lines, [])
        self.assertEqual(sorted(self.chat.rooms), ["games", "lobby"])
        self.assertIs(alice_user.room, self.chat.rooms["games"])
        self.assertEqual(sorted(alice_user.rooms), ["games", "lobby"])

    def test_join_existing_room(self) -> None:
        """Members of the room joined see the newcomer; case and '#' don't matter."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        carol, _ = self.connect("carol")
        self.type(alice_user, "/join Games")
        alice.take(), bob.take(), carol.take()
        self.type(bob_user, "/join #GAMES")
        self.assertEqual(alice.lines, ["*** bob has joined #Games"])
        self.assertEqual(
            bob.lines,
            ["*** bob has joined #Games", "*** Users in #Games (2): alice, bob"],
        )
        self.assertEqual(carol.lines, [])
        self.assertEqual(sorted(self.chat.rooms), ["games", "lobby"])

    def test_messages_follow_the_user(self) -> None:
        """
        After a join, plain lines go to the new room; lines from the old
        room still arrive, marked with its name.
        """
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "/join games")
        alice.take(), bob.take()
        self.type(alice_user, "anyone here?")
        self.type(bob_user, "where did alice go?")
        self.assertEqual(
            alice.lines, ["<alice> anyone here?", "[#lobby] <bob> where did alice go?"]
        )
        self.assertEqual(bob.lines, ["<bob> where did alice go?"])

    def test_already_there(self) -> None:
        """Joining one's own room only says so."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/join lobby", "/join #LOBBY")
        self.assertEqual(alice.lines, ["*** You are already in #lobby."] * 2)
        self.assertEqual(bob.lines, [])

    def test_invalid_room(self) -> None:
        """An invalid room name is refused with the rule it breaks."""
        alice, alice_user = self.connect("alice")
        bad = ["9lives", "##games", "r" * 33, "#"]
        self.type(alice_user, *(f"/join {room}" for room in bad))
        self.assertEqual(
            alice.lines,
            [lines.error(str(room_error(room.removeprefix("#")))) for room in bad],
        )
        self.assertNotIn(None, [room_error(room.removeprefix("#")) for room in bad])
        self.assertEqual(alice_user.room and alice_user.room.name, "lobby")

    def test_empty_room_deleted(self) -> None:
        """A room other than the lobby goes when its last member leaves."""
        _, alice_user = self.connect("alice")
        _, bob_user = self.connect("bob")
        self.type(alice_user, "/join games")
        self.type(bob_user, "/join games")
        self.type(alice_user, "/part games")
        self.assertEqual(sorted(self.chat.rooms), ["games", "lobby"])
        self.type(bob_user, "/join music", "/part games")
        self.assertEqual(sorted(self.chat.rooms), ["lobby", "music"])
        self.assertEqual(list(self.chat.room_members("games")), [])

    def test_recreated_room_is_new(self) -> None:
        """A room deleted and joined again takes the new spelling."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/join games", "/part games", "/join GAMES")
        self.assertEqual(alice.lines[-1], "*** Users in #GAMES (1): alice")

    def test_lobby_persists(self) -> None:
        """The lobby stays when everyone has left it."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/join games", "/part lobby", "/rooms")
        self.assertEqual(alice.lines[-1], "*** Rooms (2): #games (1), #lobby (0)")
        self.type(alice_user, "/who lobby")
        self.assertEqual(alice.lines[-1], "*** Users in #lobby (0): ")


class RoomsWhoTests(ChatTestCase):
    """Listing rooms and users."""

    def test_rooms(self) -> None:
        """/rooms lists every room, sorted without regard to case, with counts."""
        alice, alice_user = self.connect("alice")
        _, bob_user = self.connect("bob")
        _, carol_user = self.connect("carol")
        self.type(bob_user, "/join Zoo", "/part lobby")
        self.type(carol_user, "/join music", "/part lobby")
        alice.take()
        self.type(alice_user, "/rooms")
        self.assertEqual(
            alice.lines, ["*** Rooms (3): #lobby (1), #music (1), #Zoo (1)"]
        )

    def test_who_own_room(self) -> None:
        """/who lists the user's room in joining order."""
        alice, alice_user = self.connect("alice")
        self.connect("bob")
        self.connect("carol")
        self.type(alice_user, "/who")
        self.assertEqual(alice.lines, ["*** Users in #lobby (3): alice, bob, carol"])

    def test_who_other_room(self) -> None:
        """/who ROOM lists another room, with or without '#', in any case."""
        alice, alice_user = self.connect("alice")
        _, bob_user = self.connect("bob")
        self.type(bob_user, "/join Games")
        alice.take()
        self.type(alice_user, "/who games", "/who #GAMES")
        self.assertEqual(alice.lines, ["*** Users in #Games (1): bob"] * 2)

    def test_who_no_such_room(self) -> None:
        """/who of a room that does not exist says so."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/who nowhere")
        self.assertEqual(alice.lines, ["!!! There is no room #nowhere."])

    def test_who_no_such_room_with_hash(self) -> None:
        """The '#' typed before a missing room is not doubled in the error."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/who #nowhere")
        self.assertEqual(alice.lines, ["!!! There is no room #nowhere."])

    def test_who_usage(self) -> None:
        """/who with two rooms is a usage error."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/who a b")
        self.assertEqual(alice.lines, ["!!! Usage: /who [ROOM]"])


class PrivateMessageTests(ChatTestCase):
    """Private messages."""

    def test_only_the_two_see_it(self) -> None:
        """The recipient gets it, the sender a copy, nobody else anything."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        carol, _ = self.connect("carol")
        self.type(alice_user, "/msg bob the password is swordfish")
        self.assertEqual(bob.lines, ["*alice* the password is swordfish"])
        self.assertEqual(alice.lines, ["-> *bob* the password is swordfish"])
        self.assertEqual(carol.lines, [])

    def test_across_rooms(self) -> None:
        """A private message reaches a user in another room."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(bob_user, "/join games")
        alice.take(), bob.take()
        self.type(alice_user, "/msg bob hi")
        self.assertEqual(bob.lines, ["*alice* hi"])
        self.assertEqual(alice.lines, ["-> *bob* hi"])

    def test_case_insensitive(self) -> None:
        """The recipient is found in any case and named as they spell it."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("Bob")
        self.type(alice_user, "/msg BOB hi")
        self.assertEqual(bob.lines, ["*alice* hi"])
        self.assertEqual(alice.lines, ["-> *Bob* hi"])

    def test_unknown_nick(self) -> None:
        """A message to nobody is refused."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/msg nobody hello?")
        self.assertEqual(alice.lines, ["!!! There is no user called nobody."])

    def test_to_self(self) -> None:
        """A message to oneself arrives once."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/msg Alice note to self")
        self.assertEqual(alice.lines, ["*alice* note to self"])

    def test_usage(self) -> None:
        """/msg without text is a usage error."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/msg bob")
        self.assertEqual(alice.lines, ["!!! Usage: /msg NICK TEXT"])


class HelpTests(ChatTestCase):
    """/help."""

    def test_help(self) -> None:
        """The help goes to the user alone, as one send."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.chat.execute(alice_user, Help())
        self.assertEqual(alice.lines, lines.help_lines())
        self.assertEqual(alice.sent, [lines.encode(*lines.help_lines())])
        self.assertEqual(bob.lines, [])


class QuitTests(ChatTestCase):
    """Leaving: /quit, lost connections and server shutdown."""

    def test_quit(self) -> None:
        """/quit says goodbye, tells the room and disconnects the client."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/quit")
        self.assertEqual(alice.lines, ["*** Goodbye (quit)"])
        self.assertEqual(alice.disconnects, ["quit"])
        self.assertEqual(bob.lines, ["*** alice has quit (quit)"])
        self.assertEqual(list(self.chat.users), ["bob"])
        self.assertFalse(alice_user.connected)

    def test_quit_reason(self) -> None:
        """The reason given to /quit is shown to the room."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/quit time for bed")
        self.assertEqual(alice.lines, ["*** Goodbye (time for bed)"])
        self.assertEqual(alice.disconnects, ["time for bed"])
        self.assertEqual(bob.lines, ["*** alice has quit (time for bed)"])

    def test_nothing_after_quit(self) -> None:
        """Lines from a user who quit are ignored; disconnect adds nothing."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "/quit", "still here?", "/quit again")
        self.chat.disconnect(alice_user)
        self.assertEqual(alice.lines, ["*** Goodbye (quit)"])
        self.assertEqual(alice.disconnects, ["quit"])
        self.assertEqual(bob.lines, ["*** alice has quit (quit)"])

    def test_connection_lost(self) -> None:
        """A lost connection is announced to the room."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.chat.disconnect(alice_user)
        self.assertEqual(bob.lines, ["*** alice has quit (connection lost)"])
        self.assertEqual(alice.lines, [])
        self.assertEqual(alice.disconnects, [])
        self.assertEqual(list(self.chat.users), ["bob"])
        self.assertEqual(
            [user.nick for user in self.chat.room_members("lobby")], ["bob"]
        )

    def test_disconnect_idempotent(self) -> None:
        """Disconnecting twice announces once."""
        _, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.chat.disconnect(alice_user, "ping timeout")
        self.chat.disconnect(alice_user, "ping timeout")
        self.chat.disconnect(alice_user)
        self.assertEqual(bob.lines, ["*** alice has quit (ping timeout)"])

    def test_nick_freed(self) -> None:
        """The nickname of a user who left can be taken."""
        _, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.chat.disconnect(alice_user)
        bob.take()
        self.type(bob_user, "/nick alice")
        self.assertEqual(bob.lines, ["*** bob is now known as alice"])

    def test_last_member_quits(self) -> None:
        """The room of a user who leaves last is deleted."""
        _, alice_user = self.connect("alice")
        self.type(alice_user, "/join games")
        self.chat.disconnect(alice_user)
        self.assertEqual(list(self.chat.rooms), ["lobby"])

    def test_shutdown(self) -> None:
        """Everyone is told and disconnected; nobody sees anyone quit."""
        clients = [self.connect(f"user{i}")[0] for i in range(3)]
        self.type(self.chat.users["user2"], "/join games")
        for client in clients:
            client.take()
        self.chat.shutdown("maintenance")
        for client in clients:
            self.assertEqual(client.lines, ["*** Server shutting down: maintenance"])
            self.assertEqual(client.disconnects, ["server shutdown"])
        self.assertEqual(self.chat.users, {})
        self.assertEqual(self.chat.rooms, {})

    def test_disconnect_after_shutdown(self) -> None:
        """Connections closing after shutdown are harmless and silent."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.chat.shutdown("bye")
        self.chat.disconnect(alice_user)
        self.chat.disconnect(bob_user)
        self.type(bob_user, "hello?")
        self.assertEqual(alice.lines, ["*** Server shutting down: bye"])
        self.assertEqual(bob.lines, ["*** Server shutting down: bye"])


class RefuseTests(ChatTestCase):
    """Refusing input: the user is told, and the refusal is logged."""

    def refusals(self, events: EventLoggingObserver) -> list[dict[str, object]]:
        return [
            dict(event)
            for event in events
            if event.get("log_format", "").startswith("refused input")
        ]

    def test_refuse(self) -> None:
        """refuse() sends one error line and logs who was refused."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        events = observe_logs(self)
        self.chat.refuse(alice_user, "Too much.")
        self.assertEqual(alice.lines, ["!!! Too much."])
        self.assertEqual(bob.lines, [])
        [event] = self.refusals(events)
        self.assertEqual(
            (
                event["log_level"],
                event["log_namespace"],
                event["nick"],
                event["peer"],
            ),
            (LogLevel.info, "twisted_chat.core.chat.ChatServer", "alice", alice.peer),
        )

    def test_parser_refusals_logged(self) -> None:
        """
        A line the parser refuses (control characters, an unknown command, a
        wrong usage) is logged against its sender with the reason.
        """
        _, alice_user = self.connect("alice")
        events = observe_logs(self)
        self.type(alice_user, "\x1b[31mred", "/dance", "/nick")
        self.assertEqual(
            [formatEvent(event) for event in self.refusals(events)],
            [
                "refused input from alice (10.0.0.1:5000): Your line contains "
                "control characters (such as terminal escape sequences) and was "
                "not sent.",
                "refused input from alice (10.0.0.1:5000): Unknown command "
                "/dance. Type /help for the list of commands, or start a "
                "message with // to send a line beginning with /.",
                "refused input from alice (10.0.0.1:5000): Usage: /nick NAME",
            ],
        )

    def test_refusal_logged_with_reason(self) -> None:
        """The logged refusal says why, for every log observer."""
        _, alice_user = self.connect("alice")
        events = observe_logs(self)
        self.chat.refuse(alice_user, "Too much.")
        [event] = self.refusals(events)
        self.assertEqual(
            formatEvent(event), "refused input from alice (10.0.0.1:5000): Too much."
        )


class RoomMembersTests(ChatTestCase):
    """room_members() lists a room's users."""

    def test_members(self) -> None:
        """Members come in joining order; '#' and case are ignored."""
        _, alice = self.connect("alice")
        _, bob = self.connect("bob")
        self.assertEqual(list(self.chat.room_members("#Lobby")), [alice, bob])

    def test_no_such_room(self) -> None:
        """An unknown room has no members."""
        self.assertEqual(list(self.chat.room_members("nowhere")), [])


class BigRoomTests(ChatTestCase):
    """Large rooms stay quiet about joins and quits, and lists stay short."""

    def setUp(self) -> None:
        self.chat = ChatServer(announce_limit=3)

    def test_announced_up_to_the_limit(self) -> None:
        """Joins are announced to the room while it has at most the limit."""
        first, _ = self.connect("a")
        self.connect("b")
        self.chat.connect(FakeClient())
        self.assertEqual(first.take(), [lines.joined("guest3", DEFAULT_ROOM)])

    def test_quiet_past_the_limit(self) -> None:
        """
        Past the limit, only the joining user sees their join, and quits are
        not announced; renames and messages still are.
        """
        first, _ = self.connect("a")
        self.connect("b")
        self.connect("c")
        newcomer = FakeClient()
        user = self.chat.connect(newcomer)
        self.assertEqual(first.take(), [])
        self.assertIn(lines.joined(user.nick, DEFAULT_ROOM), newcomer.take())
        self.type(user, "/nick d", "hi")
        self.assertEqual(first.take(), [lines.nick_change("guest4", "d"), "<d> hi"])
        self.chat.disconnect(user)
        self.assertEqual(first.take(), [])

    def test_unlimited(self) -> None:
        """An announce limit of 0 announces in rooms of any size."""
        self.chat = ChatServer(announce_limit=0)
        first, _ = self.connect("a")
        for _ in range(5):
            self.chat.connect(FakeClient())
        self.assertEqual(len(first.take()), 5)

    def test_join_list_is_cut(self) -> None:
        """
        The list sent on joining shows the first JOIN_LIST_LIMIT names and
        how many more there are; /who shows up to WHO_LIMIT.
        """
        self.chat = ChatServer(announce_limit=0)
        for _ in range(JOIN_LIST_LIMIT + 4):
            self.chat.connect(FakeClient())
        client = FakeClient()
        user = self.chat.connect(client)
        nicks = [f"guest{n}" for n in range(1, JOIN_LIST_LIMIT + 1)]
        self.assertEqual(
            client.take()[-1],
            lines.notice(
                f"Users in #lobby ({JOIN_LIST_LIMIT + 5}): "
                f"{', '.join(nicks)} and 5 more"
            ),
        )
        self.type(user, "/who")
        everyone = [f"guest{n}" for n in range(1, JOIN_LIST_LIMIT + 6)]
        self.assertEqual(
            client.take(),
            [lines.notice(f"Users in #lobby ({len(everyone)}): {', '.join(everyone)}")],
        )

    def test_who_is_cut(self) -> None:
        """/who names at most WHO_LIMIT users, then says how many more."""
        self.chat = ChatServer(announce_limit=1)
        for _ in range(WHO_LIMIT + 2):
            self.chat.connect(FakeClient())
        client = FakeClient()
        user = self.chat.connect(client)
        client.take()
        self.type(user, "/who")
        (line,) = client.take()
        self.assertTrue(line.endswith(" and 3 more"), line[-40:])
        self.assertEqual(line.count(", "), WHO_LIMIT - 1)
