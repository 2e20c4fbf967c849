"""
The lines the server sends, as pure functions from values to text.

Every line starts with a prefix that only the server writes, followed by
names from the safe character set of L{twisted_chat.shared.rules}; user text only
ever comes after that prefix and can hold no line break or control
character.  So no user can make a line that passes for a server notice or
for another user's line::

    *** notice            server information (joins, quits, lists, help)
    !!! error             something you did was refused
    <nick> text           a message to your room
    * nick action         /me in your room
    *nick* text           a private message to you
    -> *nick* text        your private message to nick, as delivered
    [history T] line      a line of the room's history, said at T (UTC)

A line of history is the line as it was shown when it was said, after a
mark that only the server writes: C{[history 2026-12-01 14:05:03Z] <bob> hi}.
The time is UTC, to the second, written as RFC 3339 allows for readability
(a space between date and time, C{Z} for UTC); a line from a room other than
the reader's current one has the room first, as every such line does:
C{[#dev] [history 2026-12-01 14:05:03Z] <bob> hi}.

The client reads a few notices back (L{parse_self_nick}, L{parse_nick_change},
L{parse_joined}) to know its own nickname and room, so the functions that
write and read them live side by side here.
"""

from __future__ import annotations

import calendar
import re
import time

from twisted_chat.shared.commands import USAGE

NOTICE = "*** "
ERROR = "!!! "
SERVER_NAME = "twisted-chat"


def encode(*lines: str) -> bytes:
    """
    The wire form of one or more lines: UTF-8, each ended by C{\\n}.
    """
    if len(lines) == 1:  # the usual case, once per message
        return (lines[0] + "\n").encode("utf-8")
    return "".join(line + "\n" for line in lines).encode("utf-8")


def room_label(room: str) -> str:
    """How a room name is shown."""
    return "#" + room


def message(nick: str, text: str) -> str:
    return f"<{nick}> {text}"


def encoded_message(nick: str, text: str) -> bytes:
    """L{encode}C{(L{message}(nick, text))}, in one step: the most common line."""
    return f"<{nick}> {text}\n".encode()


def action(nick: str, text: str) -> str:
    return f"* {nick} {text}"


def private_in(sender: str, text: str) -> str:
    return f"*{sender}* {text}"


def private_out(recipient: str, text: str) -> str:
    return f"-> *{recipient}* {text}"


def notice(text: str) -> str:
    return NOTICE + text


def error(text: str) -> str:
    return ERROR + text


def welcome() -> str:
    return notice(f"Welcome to {SERVER_NAME}! Type /help for the commands.")


def self_nick(nick: str) -> str:
    return notice(f"You are {nick}. Change your name with /nick NAME.")


def joined(nick: str, room: str) -> str:
    return notice(f"{nick} has joined {room_label(room)}")


def left(nick: str, room: str) -> str:
    return notice(f"{nick} has left {room_label(room)}")


def quit_(nick: str, reason: str) -> str:
    return notice(f"{nick} has quit ({reason})")


def nick_change(old: str, new: str) -> str:
    return notice(f"{old} is now known as {new}")


def who(room: str, nicks: list[str], total: int | None = None) -> str:
    """
    The users of a room.  With C{total} larger than C{len(nicks)}, the list
    is the first of C{total} and says how many more there are.
    """
    count = len(nicks) if total is None else total
    listed = ", ".join(nicks)
    if count > len(nicks):
        listed += f" and {count - len(nicks)} more"
    return notice(f"Users in {room_label(room)} ({count}): {listed}")


def rooms(counts: list[tuple[str, int]]) -> str:
    listed = ", ".join(f"{room_label(room)} ({n})" for room, n in counts)
    return notice(f"Rooms ({len(counts)}): {listed}")


def left_with_reason(nick: str, room: str, reason: str) -> str:
    """A L{left} notice, with the reason the user gave, if any."""
    if not reason:
        return left(nick, room)
    return notice(f"{nick} has left {room_label(room)} ({reason})")


def kicked(operator: str, nick: str, room: str, reason: str) -> str:
    return notice(f"{operator} kicked {nick} from {room_label(room)} ({reason})")


def topic_changed(nick: str, room: str, topic: str) -> str:
    if not topic:
        return notice(f"{nick} cleared the topic of {room_label(room)}")
    return notice(f"{nick} set the topic of {room_label(room)}: {topic}")


def topic_is(room: str, topic: str, set_by: str) -> str:
    if not topic:
        return notice(f"{room_label(room)} has no topic.")
    return notice(f"Topic of {room_label(room)}: {topic} (set by {set_by})")


def room_notice(nick: str, text: str) -> str:
    """A notice a user sent to a room (IRC's NOTICE)."""
    return f"-{nick}- {text}"


def private_action_in(sender: str, text: str) -> str:
    return f"*{sender}* * {sender} {text}"


def private_action_out(recipient: str, sender: str, text: str) -> str:
    return f"-> *{recipient}* * {sender} {text}"


def from_room(room: str, line: str) -> str:
    """
    A line from a room other than the reader's current one: the room's name
    in front says where it comes from.
    """
    return f"[{room_label(room)}] {line}"


def history_time(when: float) -> str:
    """
    A time as a line of history shows it: UTC, to the second (truncated),
    C{2026-12-01 14:05:03Z}.
    """
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(int(when)))


def history(when: float, line: str) -> str:
    """
    C{line}, said at C{when}, as a line of history: after a mark no user can
    write (a user's own text never starts a line).
    """
    return f"[history {history_time(when)}] {line}"


def history_header(room: str, count: int) -> str:
    """The notice before the lines C{/history} sends."""
    if not count:
        return notice(f"No history in {room_label(room)}.")
    return notice(
        f"History of {room_label(room)}: {count} line{'s' if count != 1 else ''}"
    )


def now_talking_in(room: str | None) -> str:
    if room is None:
        return notice("You are in no room now; /join one to talk.")
    return notice(f"Now talking in {room_label(room)}.")


def whois(
    nick: str,
    user: str,
    host: str,
    rooms: list[str],
    away: str | None,
    idle: float,
) -> str:
    where = ", ".join(room_label(room) for room in rooms) or "no room"
    text = f"{nick} ({user}@{host}) is in {where}; idle {idle:.0f} s"
    if away is not None:
        text += f"; away: {away}"
    return notice(text)


def goodbye(reason: str) -> str:
    return notice(f"Goodbye ({reason})")


def shutting_down(reason: str) -> str:
    return notice(f"Server shutting down: {reason}")


HELP_TEXT = (
    "Commands:",
    f"  {USAGE['nick']:<22} change your nickname",
    f"  {USAGE['join']:<22} join a room (created if needed) and talk there",
    f"  {USAGE['part']:<22} leave a room (the current one by default)",
    f"  {USAGE['rooms']:<22} list the rooms",
    f"  {USAGE['who']:<22} list the users of a room",
    f"  {USAGE['topic']:<22} show or set the current room's topic",
    f"  {USAGE['kick']:<22} make a user leave the current room (operators)",
    f"  {USAGE['msg']:<22} send a private message",
    f"  {USAGE['me']:<22} describe an action",
    f"  {USAGE['away']:<22} mark yourself away, or back",
    f"  {USAGE['whois']:<22} show what is public about a user",
    f"  {USAGE['history']:<22} show the last N lines of a room (oldest first)",
    f"  {USAGE['help']:<22} show this help",
    f"  {USAGE['quit']:<22} leave the chat",
    "Any other line is sent to your current room; start it with // to send "
    "a line beginning with /. Lines from your other rooms start with [#room].",
)


def help_lines() -> list[str]:
    return [notice(text) for text in HELP_TEXT]


_NAME = r"[A-Za-z][A-Za-z0-9_-]*"
_SELF_NICK = re.compile(rf"\*\*\* You are ({_NAME})\. ")
_NICK_CHANGE = re.compile(rf"\*\*\* ({_NAME}) is now known as ({_NAME})\Z")
_JOINED = re.compile(rf"\*\*\* ({_NAME}) has joined #({_NAME})\Z")


_HISTORY = re.compile(r"\[history (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)Z\] ")


def parse_history(line: str) -> tuple[float, str] | None:
    """
    The time (UTC seconds since the epoch) and the line of a L{history}
    line, if C{line} is one; L{None} otherwise.  A room's name in front is
    not part of it: see L{from_room}.
    """
    match = _HISTORY.match(line)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        when = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        # timegm takes 2026-13-45 for a date in 2027: only a time that
        # writes back the same is one.
        if history_time(when) != line[9 : match.end() - 2]:
            return None
    except (ValueError, OverflowError):
        return None
    return float(when), line[match.end() :]


def parse_self_nick(line: str) -> str | None:
    """The nickname announced by L{self_nick}, if C{line} is one."""
    match = _SELF_NICK.match(line)
    return match.group(1) if match else None


def parse_nick_change(line: str) -> tuple[str, str] | None:
    """The old and new nicknames of a L{nick_change} line."""
    match = _NICK_CHANGE.match(line)
    return (match.group(1), match.group(2)) if match else None


def parse_joined(line: str) -> tuple[str, str] | None:
    """The nickname and room of a L{joined} line."""
    match = _JOINED.match(line)
    return (match.group(1), match.group(2)) if match else None
