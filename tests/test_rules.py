"""
Tests for L{twisted_chat.shared.rules}: what names and text may contain.
"""

from __future__ import annotations

import re
import string

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FORBIDDEN, names, nicks, property_settings, rooms
from twisted_chat.shared.rules import (
    NICK_MAX,
    ROOM_MAX,
    has_forbidden_characters,
    name_key,
    nick_error,
    normalize_room,
    replace_forbidden_characters,
    room_error,
)

NAME_CHARS = string.ascii_letters + string.digits + "_-"
SPEC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

NICK_CHARSET_ERROR = (
    "A nickname must start with a letter and contain only letters, "
    "digits, '_' and '-' (ASCII)."
)
ROOM_CHARSET_ERROR = (
    "A room name must start with a letter and contain only letters, "
    "digits, '_' and '-' (ASCII), optionally after a '#'."
)

# Printable text: anything str.isprintable() accepts (no controls, no format
# characters, no separators other than the space), plus the tab.
printable_text = st.text(
    st.one_of(st.characters(codec="utf-8").filter(str.isprintable), st.just("\t"))
)


class NickTests(SynchronousTestCase):
    """
    Nicknames: an ASCII letter, then letters, digits, C{_} and C{-}, at most
    L{NICK_MAX} characters.
    """

    def test_valid(self) -> None:
        """Typical nicknames, one character and exactly NICK_MAX are valid."""
        for nick in ["alice", "Bob", "x", "r2-d2", "snake_case", "a" * NICK_MAX]:
            self.assertIsNone(nick_error(nick), nick)

    def test_empty(self) -> None:
        """An empty nickname is refused with its own message."""
        self.assertEqual(nick_error(""), "A nickname cannot be empty.")

    def test_too_long(self) -> None:
        """One character more than NICK_MAX is refused, saying the limit."""
        self.assertEqual(
            nick_error("a" * (NICK_MAX + 1)),
            f"A nickname can have at most {NICK_MAX} characters.",
        )

    def test_bad_characters(self) -> None:
        """A bad first character or any character outside the set is refused."""
        for nick in [
            "1alice",
            "_alice",
            "-alice",
            "#alice",
            "al ice",
            "al.ice",
            "alice!",
            "alïce",
            "ålice",
            "\u212aelvin",  # KELVIN SIGN, which lower() turns into "k"
            "alice\n",
            "alice\t",
            "<alice>",
            "*alice*",
        ]:
            self.assertEqual(nick_error(nick), NICK_CHARSET_ERROR, repr(nick))

    @given(nicks)
    @property_settings
    def test_generated_valid(self, nick: str) -> None:
        """Every name of the specified shape and length is a valid nickname."""
        self.assertIsNone(nick_error(nick))

    @given(st.one_of(nicks, st.text(max_size=NICK_MAX + 5), names(NICK_MAX + 3)))
    @property_settings
    def test_only_specified_names(self, text: str) -> None:
        """A nickname is accepted exactly when it has the specified shape."""
        expected = bool(SPEC_NAME.fullmatch(text)) and len(text) <= NICK_MAX
        self.assertEqual(nick_error(text) is None, expected)


class RoomTests(SynchronousTestCase):
    """
    Room names: the nickname character set, at most L{ROOM_MAX} characters,
    with an optional leading C{#} as typed.
    """

    def test_valid(self) -> None:
        """Typical room names and exactly ROOM_MAX characters are valid."""
        for room in ["lobby", "Games", "team-7", "a_b", "r" * ROOM_MAX]:
            self.assertIsNone(room_error(room), room)

    def test_empty(self) -> None:
        """An empty room name is refused."""
        self.assertEqual(room_error(""), "A room name cannot be empty.")

    def test_too_long(self) -> None:
        """One character more than ROOM_MAX is refused, saying the limit."""
        self.assertEqual(
            room_error("r" * (ROOM_MAX + 1)),
            f"A room name can have at most {ROOM_MAX} characters.",
        )

    def test_bad_characters(self) -> None:
        """Characters outside the set are refused; the message mentions '#'."""
        for room in ["9lives", "my room", "café", "#games", "games\n", "a/b"]:
            self.assertEqual(room_error(room), ROOM_CHARSET_ERROR, repr(room))

    def test_normalize_strips_one_hash(self) -> None:
        """The '#' is optional: exactly one leading '#' is removed."""
        self.assertEqual(normalize_room("#games"), "games")
        self.assertEqual(normalize_room("games"), "games")
        self.assertEqual(normalize_room("##games"), "#games")
        self.assertEqual(normalize_room("#"), "")
        self.assertEqual(normalize_room("ga#mes"), "ga#mes")

    def test_hash_is_optional(self) -> None:
        """A room typed with or without its '#' names the same, valid room."""
        self.assertIsNone(room_error(normalize_room("#games")))
        self.assertEqual(
            name_key(normalize_room("#Games")), name_key(normalize_room("games"))
        )

    def test_only_one_hash(self) -> None:
        """'##games' and a lone '#' are not valid rooms once normalized."""
        self.assertEqual(room_error(normalize_room("##games")), ROOM_CHARSET_ERROR)
        self.assertEqual(
            room_error(normalize_room("#")), "A room name cannot be empty."
        )

    @given(rooms)
    @property_settings
    def test_generated_valid(self, room: str) -> None:
        """Every name of the specified shape, with or without '#', is valid."""
        self.assertIsNone(room_error(room))
        self.assertIsNone(room_error(normalize_room("#" + room)))

    @given(st.one_of(rooms, st.text(max_size=ROOM_MAX + 5), names(ROOM_MAX + 3)))
    @property_settings
    def test_only_specified_names(self, text: str) -> None:
        """A room name is accepted exactly when it has the specified shape."""
        expected = bool(SPEC_NAME.fullmatch(text)) and len(text) <= ROOM_MAX
        self.assertEqual(room_error(text) is None, expected)


class NameKeyTests(SynchronousTestCase):
    """Names that differ only in case are the same name."""

    def test_case_insensitive(self) -> None:
        """Case variants share one key; different names do not."""
        self.assertEqual(name_key("Alice"), name_key("alice"))
        self.assertEqual(name_key("ALICE"), name_key("aLiCe"))
        self.assertNotEqual(name_key("alice"), name_key("alice_"))

    @given(nicks)
    @property_settings
    def test_key_of_case_variants(self, nick: str) -> None:
        """Upper- and lower-casing a valid name never changes its key."""
        self.assertEqual(name_key(nick.upper()), name_key(nick))
        self.assertEqual(name_key(nick.lower()), name_key(nick))
        self.assertEqual(name_key(nick.swapcase()), name_key(nick))


class ForbiddenCharacterTests(SynchronousTestCase):
    """
    Text may hold any Unicode except characters that act on a terminal.
    """

    def test_each_forbidden_character(self) -> None:
        """Every forbidden character is refused, alone or inside text."""
        for char in FORBIDDEN:
            self.assertTrue(has_forbidden_characters(char), repr(char))
            self.assertTrue(has_forbidden_characters(f"a{char}b"), repr(char))

    def test_escape_sequences(self) -> None:
        """ANSI escape sequences (7-bit and the 8-bit CSI) are refused."""
        for text in [
            "\x1b[31mred\x1b[0m",
            "\x1b]0;title\x07",
            "\x1b[2J",
            "\x9b31mred",
        ]:
            self.assertTrue(has_forbidden_characters(text), repr(text))

    def test_line_breaks(self) -> None:
        """Every kind of line break is refused."""
        for text in ["a\nb", "a\rb", "a\x0bb", "a\x0cb", "a\x85b", "a\u2028b"]:
            self.assertTrue(has_forbidden_characters(text), repr(text))

    def test_allowed(self) -> None:
        """Tabs, accents, CJK, RTL letters, emoji and ZWJ sequences are text."""
        for text in [
            "",
            "hello\tworld",
            "café naïve",
            "日本語のテキスト",
            "שלום עולם",
            "👩\u200d💻 pair programming",
            "e\u0301",  # combining accent
            "~!@#$%^&*()<>",
            "*** looks like a notice but is text",
        ]:
            self.assertFalse(has_forbidden_characters(text), repr(text))

    @given(
        st.text(),
        st.sampled_from(FORBIDDEN),
        st.text(),
    )
    @property_settings
    def test_any_text_with_forbidden_refused(
        self, before: str, char: str, after: str
    ) -> None:
        """Any text containing a forbidden character anywhere is refused."""
        self.assertTrue(has_forbidden_characters(before + char + after))

    @given(printable_text)
    @property_settings
    def test_printable_allowed(self, text: str) -> None:
        """Any text made of printable characters and tabs is allowed."""
        self.assertFalse(has_forbidden_characters(text))

    @given(st.text(st.one_of(st.characters(), st.sampled_from(FORBIDDEN))))
    @property_settings
    def test_replaced(self, text: str) -> None:
        """
        Replacing leaves no forbidden character and changes exactly the
        forbidden ones, one for one.
        """
        replaced = replace_forbidden_characters(text, "?")
        expected = "".join("?" if char in FORBIDDEN else char for char in text)
        self.assertEqual(replaced, expected)
        self.assertFalse(has_forbidden_characters(replaced))

    @given(st.text(st.one_of(st.characters(), st.sampled_from(FORBIDDEN))))
    @property_settings
    def test_exactly_the_forbidden_set(self, text: str) -> None:
        """Text is refused exactly when it holds a listed forbidden character."""
        expected = any(char in FORBIDDEN for char in text)
        self.assertEqual(has_forbidden_characters(text), expected)
