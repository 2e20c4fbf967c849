"""
The commands the full-screen client handles itself, before anything goes to
the server: C{/switch ROOM} (or C{/switch N}, as Alt+N does), C{/clear}, and
a word about the keys after the server's C{/help}.

Pure: L{interpret} turns an entered line into what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from twisted_chat.shared.rules import normalize_room

SWITCH_USAGE = (
    "--- /switch ROOM or /switch N: talk in a room you are in "
    "(N as numbered in the status line; Alt+N does the same)."
)
KEYS_HELP = (
    "--- Keys: Enter sends; Up/Down recall lines; Left/Right, Home/End, "
    "Ctrl-A/E/U/K/W edit; PgUp/PgDn scroll; Alt+1..9 or /switch ROOM "
    "change the current room; /clear empties the screen; Ctrl-C, Ctrl-D or "
    "/quit leave."
)


@frozen
class Send:
    """Send C{line} to the server."""

    line: str


@frozen
class Show:
    """Show C{text} on the screen; nothing is sent."""

    text: str


@frozen
class Clear:
    """Empty the scrollback."""


Action = Send | Show | Clear


def switch_to(number: int, rooms: Sequence[str]) -> Action:
    """Alt+N and C{/switch N}: make the Nth room of the status line current."""
    if 1 <= number <= len(rooms):
        return Send(f"/join {rooms[number - 1]}")
    return Show(f"--- There is no room {number} (you are in {len(rooms)}).")


def interpret(line: str, rooms: Sequence[str]) -> list[Action]:
    """
    What to do with a line entered on the input line: C{/switch} and
    C{/clear} are done here, C{/help} also shows the keys, anything else is
    sent as typed.
    """
    if not line.startswith("/") or line.startswith("//"):
        return [Send(line)]
    name, _, rest = line[1:].partition(" ")
    name, argument = name.lower(), rest.strip()
    if name == "switch":
        if not argument or " " in argument:
            return [Show(SWITCH_USAGE)]
        if argument.isdigit():
            return [switch_to(int(argument), rooms)]
        return [Send(f"/join {normalize_room(argument)}")]
    if name == "clear" and not argument:
        return [Clear()]
    if name == "help":
        return [Send(line), Show(KEYS_HELP)]
    return [Send(line)]
