"""
Tests for L{twisted_chat.shared.commands.parse_line}: one decoded line in, one
frozen command value out.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FORBIDDEN, nicks, property_settings
from twisted_chat.shared.commands import (
    USAGE,
    Help,
    Invalid,
    Join,
    Me,
    Msg,
    Nick,
    Quit,
    Rooms,
    Say,
    Who,
    parse_line,
)

CONTROL_REFUSED = Invalid(
    "Your line contains control characters (such as terminal escape "
    "sequences) and was not sent."
)


def usage(name: str) -> Invalid:
    """The error for a command used with the wrong arguments."""
    return Invalid(f"Usage: {USAGE[name]}")


def unknown(name: str) -> Invalid:
    """The error for an unknown command."""
    return Invalid(
        f"Unknown command /{name}. Type /help for the list of commands, "
        "or start a message with // to send a line beginning with /."
    )


class UsageTableTests(SynchronousTestCase):
    """The usage strings are part of what the user reads."""

    def test_usage(self) -> None:
        """Each command's usage line is documented as typed by the user."""
        self.assertEqual(
            USAGE,
            {
                "nick": "/nick NAME",
                "join": "/join ROOM",
                "part": "/part [ROOM] [REASON]",
                "rooms": "/rooms",
                "who": "/who [ROOM]",
                "topic": "/topic [TEXT]",
                "kick": "/kick NICK [REASON]",
                "msg": "/msg NICK TEXT",
                "me": "/me ACTION",
                "away": "/away [MESSAGE]",
                "whois": "/whois NICK",
                "history": "/history [#ROOM] [N]",
                "help": "/help",
                "quit": "/quit [REASON]",
            },
        )


class MessageTests(SynchronousTestCase):
    """Lines that are not commands are messages to the room."""

    def test_say(self) -> None:
        """A plain line is a message, exactly as typed."""
        self.assertEqual(parse_line("hello there"), Say("hello there"))

    def test_say_keeps_whitespace(self) -> None:
        """Leading, trailing and inner whitespace and tabs are kept."""
        self.assertEqual(parse_line("  a\tb  c  "), Say("  a\tb  c  "))

    def test_slash_not_first(self) -> None:
        """A line with '/' only after some text or spaces is a message."""
        self.assertEqual(parse_line(" /nick bob"), Say(" /nick bob"))
        self.assertEqual(parse_line("and/or"), Say("and/or"))

    def test_double_slash(self) -> None:
        """'//text' sends the literal message '/text'."""
        self.assertEqual(parse_line("//nick bob"), Say("/nick bob"))
        self.assertEqual(parse_line("//"), Say("/"))
        self.assertEqual(parse_line("///x"), Say("//x"))

    def test_unicode(self) -> None:
        """Non-ASCII text is a message like any other."""
        self.assertEqual(parse_line("héllo 👋 世界"), Say("héllo 👋 世界"))

    def test_server_prefix_is_just_text(self) -> None:
        """A message that imitates a server notice is still a message."""
        self.assertEqual(parse_line("*** alice has quit"), Say("*** alice has quit"))


class BlankTests(SynchronousTestCase):
    """Blank lines are ignored."""

    def test_blank(self) -> None:
        """Empty and whitespace-only lines parse to None."""
        for line in ["", " ", "   ", "\t", " \t "]:
            self.assertIsNone(parse_line(line), repr(line))


class CommandTests(SynchronousTestCase):
    """Each command, with the arguments it takes."""

    def test_me(self) -> None:
        """/me takes the rest of the line as the action."""
        self.assertEqual(parse_line("/me waves at everyone"), Me("waves at everyone"))

    def test_me_strips_outer_spaces(self) -> None:
        """Spaces around the action are dropped; inner spaces are kept."""
        self.assertEqual(parse_line("/me   waves  back  "), Me("waves  back"))

    def test_nick(self) -> None:
        """/nick takes one name."""
        self.assertEqual(parse_line("/nick bob"), Nick("bob"))
        self.assertEqual(parse_line("/nick   bob  "), Nick("bob"))

    def test_nick_not_validated(self) -> None:
        """Parsing does not judge the name: the core does."""
        self.assertEqual(parse_line("/nick 9lives"), Nick("9lives"))

    def test_join(self) -> None:
        """/join takes one room, with or without its '#'."""
        self.assertEqual(parse_line("/join games"), Join("games"))
        self.assertEqual(parse_line("/join #games"), Join("#games"))

    def test_rooms(self) -> None:
        """/rooms takes no argument."""
        self.assertEqual(parse_line("/rooms"), Rooms())
        self.assertEqual(parse_line("/rooms  "), Rooms())

    def test_who(self) -> None:
        """/who takes an optional room."""
        self.assertEqual(parse_line("/who"), Who(None))
        self.assertEqual(parse_line("/who #games"), Who("#games"))
        self.assertEqual(parse_line("/who games "), Who("games"))

    def test_msg(self) -> None:
        """/msg takes a nick and the rest of the line as text."""
        self.assertEqual(parse_line("/msg bob hi there"), Msg("bob", "hi there"))

    def test_msg_spacing(self) -> None:
        """Extra spaces around the nick and text go; inner spaces stay."""
        self.assertEqual(
            parse_line("/msg   bob    hi   there  "), Msg("bob", "hi   there")
        )

    def test_msg_text_may_start_with_slash(self) -> None:
        """The text of a private message is not itself parsed."""
        self.assertEqual(parse_line("/msg bob /quit now"), Msg("bob", "/quit now"))

    def test_help(self) -> None:
        """/help shows the help."""
        self.assertEqual(parse_line("/help"), Help())

    def test_help_ignores_arguments(self) -> None:
        """'/help nick' still shows the help rather than an error."""
        self.assertEqual(parse_line("/help nick"), Help())

    def test_quit(self) -> None:
        """/quit takes an optional reason, the rest of the line."""
        self.assertEqual(parse_line("/quit"), Quit(None))
        self.assertEqual(parse_line("/quit   "), Quit(None))
        self.assertEqual(parse_line("/quit see you tomorrow"), Quit("see you tomorrow"))

    def test_case_insensitive_names(self) -> None:
        """Command names are case-insensitive; arguments keep their case."""
        self.assertEqual(parse_line("/NICK Bob"), Nick("Bob"))
        self.assertEqual(parse_line("/Join #Games"), Join("#Games"))
        self.assertEqual(parse_line("/ME Waves"), Me("Waves"))
        self.assertEqual(parse_line("/MsG Bob Hi"), Msg("Bob", "Hi"))
        self.assertEqual(parse_line("/ROOMS"), Rooms())
        self.assertEqual(parse_line("/WHO"), Who(None))
        self.assertEqual(parse_line("/HELP"), Help())
        self.assertEqual(parse_line("/QUIT Bye"), Quit("Bye"))


class UsageErrorTests(SynchronousTestCase):
    """Missing or extra arguments give the command's usage."""

    def test_missing(self) -> None:
        """Commands that need an argument say how to use them without one."""
        for line, name in [
            ("/me", "me"),
            ("/me   ", "me"),
            ("/nick", "nick"),
            ("/nick  ", "nick"),
            ("/join", "join"),
            ("/msg", "msg"),
            ("/msg bob", "msg"),
            ("/msg bob   ", "msg"),
        ]:
            self.assertEqual(parse_line(line), usage(name), line)

    def test_extra(self) -> None:
        """Commands given too many arguments say how to use them."""
        for line, name in [
            ("/nick bob smith", "nick"),
            ("/join games music", "join"),
            ("/rooms games", "rooms"),
            ("/who games music", "who"),
        ]:
            self.assertEqual(parse_line(line), usage(name), line)


class UnknownCommandTests(SynchronousTestCase):
    """Unknown commands are refused and point at /help."""

    def test_unknown(self) -> None:
        """An unknown command names itself and mentions /help and //."""
        self.assertEqual(parse_line("/frobnicate now"), unknown("frobnicate"))

    def test_unknown_lowercased(self) -> None:
        """The name in the error is the case-folded command name."""
        self.assertEqual(parse_line("/Dance"), unknown("dance"))

    def test_lone_slash(self) -> None:
        """A lone '/' is an unknown (empty) command, not a message."""
        self.assertEqual(parse_line("/"), unknown(""))

    def test_mentions_help(self) -> None:
        """The unknown-command message tells the user about /help."""
        result = parse_line("/x")
        assert isinstance(result, Invalid)
        self.assertIn("/help", result.message)


class ControlCharacterTests(SynchronousTestCase):
    """Lines with control characters are refused whatever they are."""

    def test_escape_in_message(self) -> None:
        """A message with an ANSI escape is refused, not altered."""
        self.assertEqual(parse_line("\x1b[31mred\x1b[0m"), CONTROL_REFUSED)

    def test_control_in_command(self) -> None:
        """Commands and their arguments are checked too."""
        self.assertEqual(parse_line("/nick bo\x07b"), CONTROL_REFUSED)
        self.assertEqual(parse_line("/msg bob \u202eevil"), CONTROL_REFUSED)
        self.assertEqual(parse_line("/quit \x1b[2J"), CONTROL_REFUSED)

    def test_control_only(self) -> None:
        """A line of control characters alone is refused, not ignored."""
        self.assertEqual(parse_line("\x00"), CONTROL_REFUSED)
        self.assertEqual(parse_line("\r"), CONTROL_REFUSED)

    @given(st.text(), st.sampled_from(FORBIDDEN), st.text())
    @property_settings
    def test_any_forbidden_refused(self, before: str, char: str, after: str) -> None:
        """Any line holding a forbidden character parses to the refusal."""
        self.assertEqual(parse_line(before + char + after), CONTROL_REFUSED)


class PropertyTests(SynchronousTestCase):
    """Properties of the parser over generated input."""

    @given(st.text())
    @property_settings
    def test_plain_text_is_said_verbatim(self, text: str) -> None:
        """Any acceptable line not starting with '/' is a message, verbatim."""
        result = parse_line(text)
        if result is None or isinstance(result, Invalid):
            return
        if not text.startswith("/"):
            self.assertEqual(result, Say(text))

    @given(st.text().filter(lambda text: text.strip() != ""))
    @property_settings
    def test_double_slash_escapes(self, text: str) -> None:
        """'//' followed by text sends '/' followed by that text."""
        result = parse_line("//" + text)
        if not isinstance(result, Invalid):
            self.assertEqual(result, Say("/" + text))

    @given(nicks, st.text(st.characters(codec="ascii", categories=["L", "N", "P"])))
    @property_settings
    def test_msg(self, nick: str, text: str) -> None:
        """'/msg NICK TEXT' parses to exactly that nick and text."""
        expected = Msg(nick, text) if text else usage("msg")
        self.assertEqual(parse_line(f"/msg {nick} {text}"), expected)
