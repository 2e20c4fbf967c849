"""
What names and text may contain.  Pure functions, no I/O.

Nicknames and room names use a small, safe character set so that they can
never look like a server notice, never hide in a terminal and always fit on a
line: an ASCII letter followed by letters, digits, C{_} and C{-}.

Text (messages, actions, quit reasons) may hold any Unicode except characters
that change what a terminal shows rather than what it prints: C0 controls
other than tab (and so every ANSI escape sequence, which starts with ESC),
DEL, C1 controls, the bidirectional overrides and isolates, and the line and
paragraph separators, and lone surrogates.  A line containing any of them is
refused, not silently altered, so that what is delivered is exactly what was
typed.
"""

from __future__ import annotations

import re

NICK_MAX = 20
ROOM_MAX = 32
TOPIC_MAX = 300

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")

# C0 controls except TAB, DEL, C1 controls, LRE/RLE/PDF/LRO/RLO,
# LRI/RLI/FSI/PDI, LINE SEPARATOR and PARAGRAPH SEPARATOR; and lone
# surrogates, which no UTF-8 decoder produces but another adapter might.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)


def name_key(name: str) -> str:
    """
    The key under which a nickname or room name is unique: names that differ
    only in case are the same name.
    """
    return name.lower()


def _name_error(kind: str, name: str, longest: int, suffix: str = "") -> str | None:
    """Why C{name} cannot be a C{kind} (nickname, room name), or L{None}."""
    if not name:
        return f"A {kind} cannot be empty."
    if len(name) > longest:
        return f"A {kind} can have at most {longest} characters."
    if not _NAME.match(name):
        return (
            f"A {kind} must start with a letter and contain only letters, "
            f"digits, '_' and '-' (ASCII){suffix}."
        )
    return None


def nick_error(nick: str) -> str | None:
    """
    Why C{nick} cannot be a nickname, or L{None} if it can.
    """
    return _name_error("nickname", nick, NICK_MAX)


def normalize_room(room: str) -> str:
    """
    Strip the optional leading C{#} from a room name as typed.
    """
    return room[1:] if room.startswith("#") else room


def room_error(room: str) -> str | None:
    """
    Why C{room} (without its C{#}) cannot be a room name, or L{None} if it
    can.
    """
    return _name_error("room name", room, ROOM_MAX, ", optionally after a '#'")


def replace_forbidden_characters(text: str, replacement: str = "\ufffd") -> str:
    """
    C{text} with every forbidden character (see the module docstring)
    replaced, for showing text from a source that may not follow the rules.
    """
    return _FORBIDDEN.sub(replacement, text)


def has_forbidden_characters(text: str) -> bool:
    """
    Whether C{text} contains a character that could act on a terminal instead
    of being shown (see the module docstring).
    """
    return _FORBIDDEN.search(text) is not None
