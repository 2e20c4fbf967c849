"""
Room history for IRC clients, pure: no reactor, no sockets.

  - L{parse_chathistory} turns the IRCv3 C{CHATHISTORY} command
    (U{https://ircv3.net/specs/extensions/chathistory}, negotiated as
    C{draft/chathistory}) into the core's L{cmd.History}, or a C{FAIL};
  - L{IRCHistory} renders the core's L{ev.History} (a replay on joining, or
    an answer) for one connection, as its capabilities allow, and the core's
    errors about history as C{FAIL CHATHISTORY}.

B{The forms of a stored line.}  With C{server-time}, a line is sent as it
was said (PRIVMSG, NOTICE, CTCP ACTION, TOPIC from the user who said it),
tagged with the time it was said (C{time}), and, for clients that
negotiated C{draft/chathistory}, its C{msgid}.  Without C{server-time} a
client would take an old line for a new one, so the server sends it as a
NOTICE of its own to the channel, in the form the line protocol uses::

    :server.twisted-chat NOTICE #dev :[history 2026-12-01 14:05:03Z] <bob> hi

No user can send a NOTICE from the server, so nobody can forge a line of
history (a user can type C{[2026-...]} at the start of a message, but it
comes from them).  With C{batch}, the lines are wrapped in a C{chathistory}
batch (C{BATCH +id chathistory #dev} ... C{BATCH -id}); an answer to
CHATHISTORY with nothing to show is an empty batch.

B{References.}  C{msgid=} names one stored line: the room's key and the
line's sequence number (C{dev.42}), which never repeat in a room, across
restarts too.  C{timestamp=} is a UTC time, C{YYYY-MM-DDThh:mm:ss.sssZ}.
Only channels have history: a nickname as the target is C{INVALID_TARGET}
(private messages are never stored).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Sequence

from attrs import define, frozen

from twisted_chat.core import events as ev
from twisted_chat.core.events import ErrorCode, StoredEvent
from twisted_chat.server.irc_wire import (
    CRLF,
    MAX_LINE_BYTES,
    ctcp,
    format_message,
    message_head,
    server_time,
    split_utf8,
)
from twisted_chat.server.line_render import room_text
from twisted_chat.shared import commands as cmd
from twisted_chat.shared import lines
from twisted_chat.shared.rules import name_key, room_error

# The capabilities history adds to those the front end advertises.
CAPABILITIES = frozenset({"batch", "draft/chathistory"})

SUBCOMMANDS = {
    "LATEST": cmd.LATEST,
    "BEFORE": cmd.BEFORE,
    "AFTER": cmd.AFTER,
    "AROUND": cmd.AROUND,
    "BETWEEN": cmd.BETWEEN,
}

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z\Z"
)
_MSGID = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)\.(\d{1,18})\Z")


def isupport_tokens(limit: int) -> list[str]:
    """The RPL_ISUPPORT tokens that say CHATHISTORY is there, and its limit."""
    return [f"CHATHISTORY={limit}", "MSGREFTYPES=msgid,timestamp"]


def msgid(event: StoredEvent) -> str:
    """The C{msgid} of a stored line: its room's key and sequence number."""
    return f"{name_key(event.room)}.{event.seq}"


def parse_timestamp(value: str) -> float | None:
    """A C{timestamp=} value as UTC seconds since the epoch, or L{None}."""
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    fields = tuple(int(group) for group in match.groups()[:6])
    try:
        whole = calendar.timegm((*fields, 0, 0, 0))
        # timegm takes the 31st of June for the 1st of July: only a time that
        # writes back the same is one.
        if tuple(time.gmtime(whole)[:6]) != fields:
            return None
    except (ValueError, OverflowError):
        return None
    # Divided once, so that the value is the float nearest the text.
    digits = match.group(7) or ""
    scale = int("1" + "0" * len(digits))
    return (whole * scale + int(digits or "0")) / scale


def parse_reference(value: str, room: str) -> cmd.HistoryRef | None:
    """
    C{msgid=ROOM.SEQ} (of the room whose key is C{room}) or
    C{timestamp=...}, as a L{cmd.HistoryRef}; L{None} if it is neither.
    """
    kind, equals, rest = value.partition("=")
    if not equals:
        return None
    if kind == "timestamp":
        when = parse_timestamp(rest)
        return None if when is None else cmd.HistoryRef(time=when)
    if kind == "msgid":
        match = _MSGID.match(rest)
        if match is None or name_key(match.group(1)) != room:
            return None
        return cmd.HistoryRef(seq=int(match.group(2)))
    return None


@frozen
class Fail:
    """
    A standard reply refusing a CHATHISTORY command: C{code} (C{INVALID_PARAMS},
    C{INVALID_TARGET}, C{NEED_MORE_PARAMS}, C{MESSAGE_ERROR}), the context
    parameters (subcommand, target) and a description.
    """

    code: str
    context: tuple[str, ...]
    description: str

    def render(self, server: str) -> bytes:
        return format_message(
            "FAIL",
            "CHATHISTORY",
            self.code,
            *self.context,
            trailing=self.description,
            source=server,
        )


@frozen
class Request:
    """A CHATHISTORY command the core can answer: C{command}, for the IRC
    C{subcommand} and C{target} as the client wrote them."""

    command: cmd.History
    subcommand: str
    target: str


def parse_chathistory(params: Sequence[str], limit: int) -> Request | Fail:
    """
    C{CHATHISTORY} with its parameters (the subcommand first), as the core's
    L{cmd.History} asking for at most C{limit} lines, or why not.

      - C{LATEST <target> <* | msgid=... | timestamp=...> <limit>}
      - C{BEFORE|AFTER|AROUND <target> <msgid=... | timestamp=...> <limit>}
      - C{BETWEEN <target> <reference> <reference> <limit>}
    """
    if not params:
        return Fail("NEED_MORE_PARAMS", (), "Missing parameters")
    typed = params[0].upper()
    selector = SUBCOMMANDS.get(typed)
    if selector is None:
        return Fail("INVALID_PARAMS", (params[0],), "Unknown subcommand")
    wanted = 5 if selector == cmd.BETWEEN else 4
    if len(params) < wanted:
        return Fail("NEED_MORE_PARAMS", (typed,), "Missing parameters")
    target = params[1]
    if not target.startswith("#") or room_error(target[1:]) is not None:
        return Fail(
            "INVALID_TARGET",
            (typed, target),
            "Only channels have history (private messages are never stored)",
        )
    room = name_key(target[1:])
    count = params[wanted - 1]
    if not (count.isdigit() and count.isascii()) or int(count) < 1:
        return Fail("INVALID_PARAMS", (typed,), "The limit must be a whole number")
    refs: list[cmd.HistoryRef | None] = []
    for value in params[2 : wanted - 1]:
        if value == "*" and selector == cmd.LATEST:
            refs.append(None)
            continue
        ref = parse_reference(value, room)
        if ref is None:
            return Fail(
                "INVALID_PARAMS",
                (typed, value),
                "Give msgid=ID or timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
            )
        refs.append(ref)
    start = refs[0]
    end = refs[1] if len(refs) > 1 else None
    history = cmd.History(target, min(int(count), limit), selector, start, end)
    return Request(history, typed, target)


def _text_lines(
    command: str,
    target: str,
    text: str,
    source: str,
    tags: dict[str, str] | None,
    action: bool = False,
) -> bytes:
    """C{text} in as many lines as it takes to keep each within 512 bytes."""
    head = message_head(command, [target], source)
    room = MAX_LINE_BYTES - len(CRLF) - len(head.encode("utf-8")) - 2
    if action:
        room -= len(ctcp("ACTION", "x")) - 1
    return b"".join(
        format_message(
            command,
            target,
            trailing=ctcp("ACTION", piece) if action else piece,
            source=source,
            tags=tags,
        )
        for piece in split_utf8(text, room)
    )


def _source(event: StoredEvent) -> str:
    src = event.source
    prefix = src.nick
    if src.user:
        prefix += "!" + src.user
    if src.host:
        prefix += "@" + src.host
    return prefix


@define
class IRCHistory:
    """
    Room history for one IRC connection: renders replays and answers with
    the connection's capabilities, and numbers its batches.

    @param server: the server's name (the source of its own messages).
    @param limit: the most lines one CHATHISTORY returns (C{--history-limit}).
    """

    server: str
    limit: int
    _batches: int = 0

    def command(self, params: Sequence[str]) -> Request | bytes:
        """A CHATHISTORY command: what to ask the core, or the C{FAIL} line."""
        parsed = parse_chathistory(params, self.limit)
        if isinstance(parsed, Fail):
            return parsed.render(self.server)
        return parsed

    def render(self, reply: ev.History, capabilities: frozenset[str]) -> bytes:
        """
        Stored lines for a client with C{capabilities}: see the module
        docstring.  An empty replay is nothing; an empty answer is an empty
        batch (or nothing, without C{batch}).
        """
        if not reply.events and not reply.request:
            return b""
        batch = "batch" in capabilities
        tagged = "server-time" in capabilities
        ids = "draft/chathistory" in capabilities
        channel = "#" + reply.room
        label = ""
        data = b""
        if batch:
            self._batches += 1
            label = f"history{self._batches}"
            data += format_message(
                "BATCH", f"+{label}", "chathistory", channel, source=self.server
            )
        for event in reply.events:
            tags: dict[str, str] = {}
            if batch:
                tags["batch"] = label
            if tagged:
                tags["time"] = server_time(event.time)
                if ids:
                    tags["msgid"] = msgid(event)
                data += self._as_said(event, channel, tags or None)
            else:
                data += self._as_notice(event, channel, tags or None)
        if batch:
            data += format_message("BATCH", f"-{label}", source=self.server)
        return data

    def _as_said(
        self, event: StoredEvent, channel: str, tags: dict[str, str] | None
    ) -> bytes:
        source = _source(event)
        match event:
            case ev.Message(text=text):
                return _text_lines("PRIVMSG", channel, text, source, tags)
            case ev.Action(text=text):
                return _text_lines("PRIVMSG", channel, text, source, tags, True)
            case ev.RoomNotice(text=text):
                return _text_lines("NOTICE", channel, text, source, tags)
            case ev.TopicChanged(topic=topic):
                return format_message(
                    "TOPIC", channel, trailing=topic, source=source, tags=tags
                )
        raise TypeError(f"not a stored event: {event!r}")

    def _as_notice(
        self, event: StoredEvent, channel: str, tags: dict[str, str] | None
    ) -> bytes:
        """The documented form for a client without server-time."""
        mark = lines.history(event.time, "")
        head = message_head("NOTICE", [channel], self.server)
        room = MAX_LINE_BYTES - len(CRLF) - len(head.encode("utf-8")) - 2
        room -= len(mark.encode("utf-8"))
        return b"".join(
            format_message(
                "NOTICE", channel, trailing=mark + piece, source=self.server, tags=tags
            )
            for piece in split_utf8(room_text(event), room)
        )

    def error(self, reply: ev.Error, subcommand: str, target: str) -> bytes | None:
        """
        The C{FAIL} for the core's refusal of a CHATHISTORY (C{subcommand}
        and C{target} as the client wrote them; C{*} when unknown, for an
        answer that came later), or L{None} if C{reply} is not about history.
        """
        context = (subcommand or "*", target)
        if reply.code in (ErrorCode.NOT_IN_ROOM, ErrorCode.NO_SUCH_ROOM):
            fail = Fail("INVALID_TARGET", context, "You are not in that channel")
        elif reply.code in (ErrorCode.HISTORY_UNAVAILABLE, ErrorCode.NO_HISTORY):
            fail = Fail("MESSAGE_ERROR", context, reply.text)
        else:
            return None
        return fail.render(self.server)

    def late_error(self, reply: ev.Error) -> bytes | None:
        """
        The C{FAIL} for an error about history that comes without the
        request it answers (the store could not read), or L{None}.
        """
        if reply.code != ErrorCode.HISTORY_UNAVAILABLE or not reply.args:
            return None
        return self.error(reply, "*", "#" + reply.args[0])
