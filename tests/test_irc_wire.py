"""
Tests for L{twisted_chat.server.irc_wire}: parsing a client's IRC line and
formatting the server's, in bytes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.server.irc_wire import (
    MALFORMED,
    MAX_CLIENT_LINE_BYTES,
    MAX_LINE_BYTES,
    NOT_UTF8,
    TOO_LONG,
    BadLine,
    IRCMessage,
    ctcp,
    escape_tag_value,
    format_message,
    parse_ctcp,
    parse_message,
    parse_tags,
    server_time,
    split_utf8,
    strip_formatting,
    unescape_tag_value,
)

# No example database (nothing written to the tree), no deadline (the machine
# is shared, and timing is not what these test).
property_settings = settings(database=None, deadline=None, max_examples=200)

# Text with every character that could break a line or a parameter.
awkward_text = st.text(
    st.one_of(
        st.sampled_from(["\r", "\n", "\x00", " ", ":", "\x01", "@", ";", "é", "😀"]),
        st.characters(codec="utf-8"),
    ),
    max_size=700,
)


class ParseTests(SynchronousTestCase):
    """L{parse_message} over L{twisted.words.protocols.irc.parsemsg}."""

    def test_command_and_params(self) -> None:
        """The trailing parameter is the last parameter; the command is
        upper-cased."""
        self.assertEqual(
            parse_message(b"privmsg #dev :hello there"),
            IRCMessage("PRIVMSG", ("#dev", "hello there")),
        )

    def test_source(self) -> None:
        """A source the client sent is kept apart (servers ignore it)."""
        self.assertEqual(
            parse_message(b":alice!a@h NICK bob"),
            IRCMessage("NICK", ("bob",), source="alice!a@h"),
        )

    def test_empty_trailing(self) -> None:
        """An empty trailing parameter is a parameter."""
        self.assertEqual(
            parse_message(b"TOPIC #dev :"), IRCMessage("TOPIC", ("#dev", ""))
        )

    def test_tags(self) -> None:
        """Tags are parsed and unescaped; the message follows them."""
        self.assertEqual(
            parse_message(b"@+draft/reply=x\\sy;label=1 PRIVMSG #a :hi"),
            IRCMessage(
                "PRIVMSG", ("#a", "hi"), tags={"+draft/reply": "x y", "label": "1"}
            ),
        )

    def test_empty_line(self) -> None:
        """An empty or blank line is ignored."""
        self.assertIsNone(parse_message(b""))
        self.assertIsNone(parse_message(b"   "))

    def test_malformed(self) -> None:
        """A source without a command, or tags without a message, is
        malformed."""
        self.assertEqual(parse_message(b":alice"), BadLine(MALFORMED))
        self.assertEqual(parse_message(b"@a=b"), BadLine(MALFORMED))

    def test_not_utf8(self) -> None:
        """A line that is not UTF-8 is refused."""
        self.assertEqual(parse_message(b"PRIVMSG #a :\xff"), BadLine(NOT_UTF8))

    def test_longest_message(self) -> None:
        """510 bytes of message (512 with CR LF) are accepted."""
        line = b"PRIVMSG #a :" + b"x" * (510 - 12)
        self.assertEqual(len(line), 510)
        self.assertIsInstance(parse_message(line), IRCMessage)

    def test_message_too_long(self) -> None:
        """511 bytes of message are too long."""
        self.assertEqual(
            parse_message(b"PRIVMSG #a :" + b"x" * (511 - 12)), BadLine(TOO_LONG)
        )

    def test_tags_counted_apart(self) -> None:
        """4094 bytes of tag data come on top of the 510 of the message."""
        tags = b"@a=" + b"x" * 4092
        line = tags + b" PRIVMSG #a :" + b"x" * (510 - 12)
        self.assertEqual(len(line), MAX_CLIENT_LINE_BYTES - 2)
        self.assertIsInstance(parse_message(line), IRCMessage)
        self.assertEqual(parse_message(tags + b"x PING a"), BadLine(TOO_LONG))

    def test_tab_does_not_separate(self) -> None:
        """Only SPACE separates parameters: a tab is part of one (parsemsg
        alone would split there)."""
        self.assertEqual(
            parse_message(b"PRIVMSG #a hello\tworld"),
            IRCMessage("PRIVMSG", ("#a", "hello\tworld")),
        )
        self.assertEqual(
            parse_message(b":s PRIVMSG a\xc2\xa0b :c d"),
            IRCMessage("PRIVMSG", ("a\xa0b", "c d"), source="s"),
        )


class TagTests(SynchronousTestCase):
    """IRCv3 tag values and keys."""

    def test_unescape(self) -> None:
        """Every escape of the specification, an unknown one and a lone final
        backslash."""
        self.assertEqual(
            unescape_tag_value(r"a\:b\sc\\d\re\nf\xg\\"), "a;b c\\d\re\nfxg\\"
        )
        self.assertEqual(unescape_tag_value("test\\"), "test")

    def test_bad_keys_skipped(self) -> None:
        """A key that is not well formed is skipped; the last repeat wins."""
        self.assertEqual(parse_tags("a=1;b c=2;=3;a=4;d"), {"a": "4", "d": ""})

    @property_settings
    @given(st.text())
    def test_round_trip(self, value: str) -> None:
        """Escaping then unescaping gives the value back."""
        escaped = escape_tag_value(value)
        self.assertFalse(set(escaped) & set("; \r\n"))
        self.assertEqual(unescape_tag_value(escaped), value)


class FormatTests(SynchronousTestCase):
    """L{format_message}: one line, whatever the parameters."""

    def test_message(self) -> None:
        """Source, command, middle parameters, trailing, CR LF."""
        self.assertEqual(
            format_message("KICK", "#a", "bob", trailing="bye", source="al!u@h"),
            b":al!u@h KICK #a bob :bye\r\n",
        )

    def test_tags(self) -> None:
        """Tags come first, escaped."""
        self.assertEqual(
            format_message("PING", trailing="x", tags={"time": "a b", "flag": ""}),
            b"@time=a\\sb;flag PING :x\r\n",
        )

    def test_bad_middle(self) -> None:
        """A middle parameter with a space, a leading colon, a line break or
        nothing at all is refused."""
        for bad in ["a b", ":a", "a\r\nQUIT", "", "a\x00"]:
            self.assertRaises(ValueError, format_message, "NICK", bad)
        self.assertRaises(ValueError, format_message, "NICK", "x", source="a b")
        self.assertRaises(ValueError, format_message, "NI CK")

    def test_line_breaks_replaced(self) -> None:
        """CR, LF and NUL in the trailing parameter become U+FFFD."""
        self.assertEqual(
            format_message("PRIVMSG", "#a", trailing="x\r\nQUIT :y\x00"),
            "PRIVMSG #a :x\ufffd\ufffdQUIT :y\ufffd\r\n".encode(),
        )

    def test_truncated(self) -> None:
        """A trailing parameter too long for 512 bytes is cut, at a character
        boundary."""
        line = format_message("TOPIC", "#a", trailing="é" * 300)
        self.assertEqual(len(line), 512)
        self.assertEqual(line, b"TOPIC #a :" + "é".encode() * 250 + b"\r\n")

    def test_too_long_without_trailing(self) -> None:
        """Middle parameters alone cannot be cut."""
        self.assertRaises(ValueError, format_message, "X", "y" * 600)

    @property_settings
    @given(awkward_text, st.booleans())
    def test_one_line(self, text: str, tagged: bool) -> None:
        """Whatever the text, the result is one line of at most 512 bytes
        (plus tags), with no CR or LF inside."""
        tags = {"time": "2024-01-01T00:00:00.000Z"} if tagged else None
        line = format_message(
            "PRIVMSG", "#room", trailing=text, source="a!b@c", tags=tags
        )
        self.assertTrue(line.endswith(b"\r\n"))
        body = line[:-2]
        self.assertNotIn(b"\r", body)
        self.assertNotIn(b"\n", body)
        self.assertNotIn(b"\x00", body)
        if tagged:
            body = body.split(b" ", 1)[1]
        self.assertLessEqual(len(body) + 2, MAX_LINE_BYTES)
        body.decode("utf-8")


class SplitTests(SynchronousTestCase):
    """L{split_utf8}."""

    def test_at_spaces(self) -> None:
        """Pieces end after a space when there is one."""
        self.assertEqual(split_utf8("aaa bbb ccc", 8), ["aaa bbb ", "ccc"])

    def test_no_space(self) -> None:
        """Without a space, pieces are cut at a character boundary."""
        self.assertEqual(split_utf8("éééé", 5), ["éé", "éé"])

    def test_empty(self) -> None:
        """An empty text is one empty piece."""
        self.assertEqual(split_utf8("", 10), [""])

    @property_settings
    @given(st.text(max_size=3000), st.integers(min_value=4, max_value=600))
    def test_pieces(self, text: str, limit: int) -> None:
        """The pieces give the text back, and each fits."""
        pieces = split_utf8(text, limit)
        self.assertEqual("".join(pieces), text)
        for piece in pieces:
            self.assertLessEqual(len(piece.encode("utf-8")), limit)
        self.assertTrue(all(pieces[:-1]))


class TextTests(SynchronousTestCase):
    """Formatting codes, CTCP and the time tag."""

    def test_strip_formatting(self) -> None:
        """Every formatting code goes, text and digits that are not part of a
        code stay."""
        self.assertEqual(
            strip_formatting(
                "\x02b\x02 \x1di\x1d \x1fu\x1e\x11\x16\x0f "
                "\x0304red\x03 \x034,12bg\x03 \x03,5 \x03123 \x04FF0000hex\x04"
            ),
            "b i u red bg ,5 3 hex",
        )

    def test_parse_ctcp(self) -> None:
        """The CTCP command and argument; the final delimiter is optional and
        no quoting is undone."""
        self.assertEqual(parse_ctcp("\x01ACTION C:\\temp\x01"), ("ACTION", "C:\\temp"))
        self.assertEqual(parse_ctcp("\x01version"), ("VERSION", ""))
        self.assertIsNone(parse_ctcp("hello"))

    def test_ctcp(self) -> None:
        """A CTCP message, unquoted."""
        self.assertEqual(ctcp("ACTION", "a\\b"), "\x01ACTION a\\b\x01")
        self.assertEqual(ctcp("VERSION"), "\x01VERSION\x01")

    def test_server_time(self) -> None:
        """UTC, milliseconds, Z."""
        self.assertEqual(server_time(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(server_time(1700000000.123), "2023-11-14T22:13:20.123Z")
        self.assertEqual(server_time(1.9999), "1970-01-01T00:00:02.000Z")
