"""
IRC on the wire: parsing a client's line and formatting the server's lines.
Pure functions, no I/O.

Parsing goes through L{twisted.words.protocols.irc.parsemsg}.  What this
module adds is only what Twisted does not do for a server:

  - IRCv3 message tags (C{@a=b;c ...}) in front of a message: Twisted's
    server side (L{twisted.words.protocols.irc.IRC}) can send tags but has no
    parser for them, and C{parsemsg} would take the tags for the command;
  - the length limits of a line, which are counted in bytes, before decoding;
  - the one place where C{parsemsg} differs from the grammar: it splits the
    middle parameters with C{str.split()}, on any Unicode whitespace (TAB,
    NO-BREAK SPACE, ...), where IRC separates parameters with SPACE only;
  - CTCP as it is used today (U{https://modern.ircdocs.horse/ctcp}): Twisted's
    C{ctcpExtract} and C{ctcpStringify} apply the old CTCP quoting
    (C{ctcpQuote}: a backslash becomes two), which no current client undoes,
    so C{/me C:\\temp} would arrive as C{C:\\\\temp};
  - stripping formatting codes: Twisted's C{stripFormatting} knows bold,
    colour, reverse, underline and reset, but not italic (C{\\x1d}),
    strikethrough (C{\\x1e}), monospace (C{\\x11}) or hex colour
    (C{\\x04}).

Length limits (U{https://ircv3.net/specs/extensions/message-tags}): the
message proper, from the source or command to the CR LF, is at most 512
bytes.  Tags are counted apart: a client may send up to 4094 bytes of tag
data (C{@}, the data and the space: 4096 bytes) on top of the 512, so the
longest line a client may send is 4608 bytes with its CR LF.  (The 8191 of
the specification is what a I{client} must accept: up to 4094 bytes of
client tags relayed plus 4094 of the server's own.)  The server never sends
more than 512 bytes of message proper, and adds at most the C{time} tag.

Formatting never lets a parameter start a new line or a new message: middle
parameters are checked (no space, no empty one, no leading colon, no CR, LF
or NUL) and a violation raises L{ValueError}, since names are validated
before they get here; the trailing parameter, which carries user text, has
any CR, LF or NUL replaced by U+FFFD, and is cut at a character boundary if
the line would exceed 512 bytes.
"""

from __future__ import annotations

import re
import time as _time
from collections.abc import Mapping, Sequence

from attrs import field, frozen
from twisted.words.protocols.irc import parsemsg

# The longest message proper (without tags), CR LF included.
MAX_LINE_BYTES = 512

# The longest tag data a client may send (between "@" and the space).
MAX_CLIENT_TAG_DATA = 4094

# The longest line a client may send, CR LF included: what the connection
# base should accept as its maximum line length for IRC.
MAX_CLIENT_LINE_BYTES = MAX_CLIENT_TAG_DATA + 2 + MAX_LINE_BYTES

CRLF = b"\r\n"

# Why a line could not be parsed (L{BadLine.reason}).
TOO_LONG = "too_long"
NOT_UTF8 = "not_utf8"
MALFORMED = "malformed"

# Whitespace other than SPACE, which separates nothing in IRC.
_OTHER_WHITESPACE = re.compile(r"[^\S ]")

# What may never appear in any part of a line.
_LINE_BREAKING = re.compile("[\r\n\x00]")

_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPE = re.compile(r"\\(.?)", re.DOTALL)
_TAG_KEY = re.compile(r"\+?([A-Za-z0-9.-]+/)?[A-Za-z0-9-]+\Z")


@frozen
class IRCMessage:
    """
    One message from a client.  C{command} is upper-cased; C{params}
    include the trailing parameter as the last one, as the Modern IRC
    document asks; C{source} is what the client put after C{:}, if anything
    (ignored by servers).
    """

    command: str
    params: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(factory=dict, hash=False)
    source: str | None = None


@frozen
class BadLine:
    """A line that is not a message: C{reason} is L{TOO_LONG}, L{NOT_UTF8}
    or L{MALFORMED}."""

    reason: str


def unescape_tag_value(value: str) -> str:
    """
    A tag value as sent, unescaped (C{\\:} is C{;}, C{\\s} a space, ...); a
    backslash before any other character is dropped, and a lone one at the
    end gives nothing, as the specification asks.
    """
    return _TAG_ESCAPE.sub(lambda m: _TAG_ESCAPES.get(m.group(1), m.group(1)), value)


def escape_tag_value(value: str) -> str:
    """A tag value escaped for the wire."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\:")
        .replace(" ", "\\s")
        .replace("\r", "\\r")
        .replace("\n", "\\n")
    )


def parse_tags(data: str) -> dict[str, str]:
    """
    The tags of C{data} (what comes between C{@} and the first space), with
    their unescaped values (C{""} for a tag without one).  A key that is not
    well formed is skipped, and the last of repeated keys wins.
    """
    tags: dict[str, str] = {}
    for item in data.split(";"):
        key, _, value = item.partition("=")
        if _TAG_KEY.match(key):
            tags[key] = unescape_tag_value(value)
    return tags


def parse_message(line: bytes) -> IRCMessage | BadLine | None:
    """
    Parse one line from a client, without its line ending.

    @return: the message; a L{BadLine} for a line that is too long (see the
        module docstring), not UTF-8, or has no command; or L{None} for an
        empty line, which servers silently ignore.
    """
    tag_data = b""
    rest = line
    if line.startswith(b"@"):
        tag_data, _, rest = line[1:].partition(b" ")
        rest = rest.lstrip(b" ")
    if len(tag_data) > MAX_CLIENT_TAG_DATA or len(rest) + 2 > MAX_LINE_BYTES:
        return BadLine(TOO_LONG)
    try:
        text = rest.decode("utf-8")
        tags_text = tag_data.decode("utf-8")
    except UnicodeDecodeError:
        return BadLine(NOT_UTF8)
    text = text.lstrip(" ")
    if not text:
        return None if not line.startswith(b"@") else BadLine(MALFORMED)
    try:
        source, command, params = parsemsg(text)
    except (ValueError, IndexError):
        # ":source" alone (ValueError) or only whitespace (IndexError).
        return BadLine(MALFORMED)
    params = _fix_separators(text, command, params)
    return IRCMessage(
        command=command.upper(),
        params=tuple(params),
        tags=parse_tags(tags_text) if tags_text else {},
        source=source or None,
    )


def _fix_separators(text: str, command: str, params: list[str]) -> list[str]:
    """
    C{params} as IRC separates them: C{parsemsg} splits with C{str.split()}
    on every kind of whitespace, IRC on SPACE only.  Only lines whose
    command or middle parameters hold other whitespace (rare: a tab in a
    one-word message sent without a colon) are split again here.
    """
    if text.startswith(":"):
        text = text.partition(" ")[2]
    head, colon, trailing = text.partition(" :")
    if not _OTHER_WHITESPACE.search(head):
        return params
    words = [word for word in head.split(" ") if word]
    # The command itself held such whitespace: it is not a command we know,
    # and it stays one word so that the reply names it whole.
    fixed = words[1:]
    if colon:
        fixed.append(trailing)
    return fixed


def _check_middle(param: str) -> str:
    if (
        not param
        or param.startswith(":")
        or " " in param
        or _LINE_BREAKING.search(param)
    ):
        raise ValueError(f"not a valid middle parameter: {param!r}")
    return param


def _clean_trailing(text: str) -> str:
    return _LINE_BREAKING.sub("\ufffd", text)


def _cut_utf8(text: str, limit: int) -> str:
    """The longest start of C{text} that is at most C{limit} bytes in UTF-8."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: max(limit, 0)].decode("utf-8", "ignore")


def format_tags(tags: Mapping[str, str]) -> str:
    """The tag section of a line (without the C{@} and the space)."""
    parts = []
    for key, value in tags.items():
        if not _TAG_KEY.match(key):
            raise ValueError(f"not a valid tag key: {key!r}")
        parts.append(f"{key}={escape_tag_value(value)}" if value else key)
    return ";".join(parts)


def message_head(command: str, params: Sequence[str], source: str | None) -> str:
    """
    The start of a line, up to and excluding the trailing parameter:
    C{:source COMMAND middle...}.  Every part is checked (see the module
    docstring).
    """
    if not command.isalnum() or not command.isascii():
        raise ValueError(f"not a valid command: {command!r}")
    parts = [command, *(_check_middle(p) for p in params)]
    if source is not None:
        parts.insert(0, ":" + _check_middle(source))
    return " ".join(parts)


def format_message(
    command: str,
    *params: str,
    trailing: str | None = None,
    source: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> bytes:
    """
    One line, encoded, ending with CR LF.

    @param params: the middle parameters, checked (see the module docstring).
    @param trailing: the last parameter, always written after C{" :"}, which
        may hold spaces and any text: CR, LF and NUL become U+FFFD, and it is
        cut at a character boundary so that the message proper stays within
        L{MAX_LINE_BYTES}.
    @param tags: the server's tags, written before the message.
    """
    line = message_head(command, params, source)
    if trailing is not None:
        room = MAX_LINE_BYTES - len(CRLF) - len(line.encode("utf-8")) - 2
        line += " :" + _cut_utf8(_clean_trailing(trailing), room)
    elif len(line.encode("utf-8")) + len(CRLF) > MAX_LINE_BYTES:
        raise ValueError(f"line too long: {line!r}")
    if tags:
        line = f"@{format_tags(tags)} {line}"
    return line.encode("utf-8") + CRLF


def split_utf8(text: str, limit: int) -> list[str]:
    """
    C{text} in pieces of at most C{limit} bytes of UTF-8 each, never cutting
    a character, and cutting after the last space of a piece when it has
    one (the space stays at the end of the piece, so that joining the pieces
    gives C{text} back).  An empty text is one empty piece.
    """
    if limit < 4:
        raise ValueError(f"limit too small to hold any character: {limit}")
    pieces: list[str] = []
    while len(text.encode("utf-8")) > limit:
        head = _cut_utf8(text, limit)
        space = head.rfind(" ")
        if space > 0:
            head = head[: space + 1]
        pieces.append(head)
        text = text[len(head) :]
    pieces.append(text)
    return pieces


def server_time(when: float) -> str:
    """
    The value of the IRCv3 C{time} tag for a UTC time in seconds since the
    epoch: C{YYYY-MM-DDThh:mm:ss.sssZ}, milliseconds truncated.
    """
    millis = round(when * 1000)
    seconds, millis = divmod(millis, 1000)
    stamp = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(seconds))
    return f"{stamp}.{millis:03d}Z"


# Formatting codes (https://modern.ircdocs.horse/formatting): bold, italic,
# underline, strikethrough, monospace, reverse, reset; colour as \x03 with up
# to two digits and an optional comma and up to two more (the comma belongs
# to the code only when a background follows a foreground); hex colour as
# \x04 with six hex digits and an optional comma and six more.
_FORMATTING = re.compile(
    "[\x02\x1d\x1f\x1e\x11\x16\x0f]"
    "|\x03(?:[0-9]{1,2}(?:,[0-9]{1,2})?)?"
    "|\x04(?:[0-9A-Fa-f]{6}(?:,[0-9A-Fa-f]{6})?)?"
)


def strip_formatting(text: str) -> str:
    """C{text} without IRC formatting codes (see L{_FORMATTING})."""
    return _FORMATTING.sub("", text)


CTCP_DELIMITER = "\x01"


def parse_ctcp(text: str) -> tuple[str, str] | None:
    """
    The CTCP command (upper-cased) and its argument if C{text} is a CTCP
    message, else L{None}.  Following the Modern CTCP document, a CTCP
    message starts with C{\\x01}; the final C{\\x01} may be missing, and no
    quoting is undone.
    """
    if not text.startswith(CTCP_DELIMITER):
        return None
    body = text[1:]
    if body.endswith(CTCP_DELIMITER):
        body = body[:-1]
    command, _, argument = body.partition(" ")
    return command.upper(), argument


def ctcp(command: str, argument: str = "") -> str:
    """A CTCP message as sent today: C{\\x01COMMAND argument\\x01}."""
    body = f"{command} {argument}" if argument else command
    return CTCP_DELIMITER + body + CTCP_DELIMITER
