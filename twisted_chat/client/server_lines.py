"""
The server's lines that the client reads back to follow its rooms, as pure
parsers.

A user may be in several rooms at once; one of them is the I{current} room,
where plain lines go.  A line from any other room comes with the room's name
in front::

    [#dev] <bob> hi
    [#dev] *** carol has joined #dev

A line of a room's history has its own time (L{history_time}), after the
room's name if any::

    [history 2026-12-01 14:05:03Z] <bob> hi
    [#dev] [history 2026-12-01 14:05:03Z] <bob> hi

and the notices that move the user between rooms are::

    *** N has joined #R                joined R, which is now current
    *** N has left #R [(reason)]       left R (with /part)
    *** OP kicked N from #R (reason)   removed from R by an operator
    *** Now talking in #R.             R, already joined, is now current
    *** You are already in #R.         R was already current
    *** You are in no room now; /join one to talk.

The notices that name the user (L{parse_self_nick}, L{parse_nick_change},
L{parse_joined}) are read with the server's own parsers in
L{twisted_chat.shared.lines}; the rest are read here, on the client's side.
"""

from __future__ import annotations

import re

from twisted_chat.shared.lines import parse_history

_NAME = r"[A-Za-z][A-Za-z0-9_-]*"
_ROOM_PREFIX = re.compile(rf"\[#({_NAME})\] ")
_LEFT = re.compile(rf"\*\*\* ({_NAME}) has left #({_NAME})(?:\Z| \(.*\)\Z)")
_KICKED = re.compile(rf"\*\*\* ({_NAME}) kicked ({_NAME}) from #({_NAME}) \(")
_NOW_TALKING = re.compile(rf"\*\*\* Now talking in #({_NAME})\.\Z")
_ALREADY_IN = re.compile(rf"\*\*\* You are already in #({_NAME})\.\Z")
NO_ROOM = "*** You are in no room now; /join one to talk."


def split_room(line: str) -> tuple[str | None, str]:
    """
    The room named in front of a line from a room other than the current
    one, and the line without it; L{None} and the whole line for any other
    line.
    """
    match = _ROOM_PREFIX.match(line)
    if match is None:
        return None, line
    return match.group(1), line[match.end() :]


def history_time(line: str) -> float | None:
    """
    When a line of a room's history was said (UTC seconds since the epoch),
    or L{None} for a line that is news.
    """
    _, rest = split_room(line)
    parsed = parse_history(rest)
    return parsed[0] if parsed is not None else None


def parse_left(line: str) -> tuple[str, str] | None:
    """The nickname and room of a C{*** N has left #R [(reason)]} line."""
    match = _LEFT.match(line)
    return (match.group(1), match.group(2)) if match else None


def parse_kicked(line: str) -> tuple[str, str, str] | None:
    """The operator, the nickname kicked and the room of a kick notice."""
    match = _KICKED.match(line)
    if match is None or not line.endswith(")"):
        return None
    return match.group(1), match.group(2), match.group(3)


def parse_now_talking(line: str) -> str | None:
    """
    The room that is now current, from C{*** Now talking in #R.} or
    C{*** You are already in #R.}
    """
    match = _NOW_TALKING.match(line) or _ALREADY_IN.match(line)
    return match.group(1) if match else None


def is_no_room(line: str) -> bool:
    """Whether C{line} says the user is in no room at all."""
    return line == NO_ROOM
