"""
The commands a user can type, and the pure parser that turns one decoded line
into one of them.

Anything that does not start with C{/} is a message to the current room;
C{//text} sends the literal message C{/text}.
"""

from __future__ import annotations

from attrs import frozen

from twisted_chat.shared.rules import has_forbidden_characters


@frozen
class Say:
    """A message to a room: C{room}, or the current one when L{None}."""

    text: str
    room: str | None = None


@frozen
class Me:
    """An action in a room (C{/me waves}): C{room}, or the current one."""

    text: str
    room: str | None = None


@frozen
class Notice:
    """A notice to a room or a user (IRC's NOTICE): C{target} is C{#room}
    or a nickname."""

    target: str
    text: str


@frozen
class Nick:
    """Change nickname."""

    name: str


@frozen
class Join:
    """Join a room, creating it if needed, and make it the current room."""

    room: str


@frozen
class Part:
    """Leave a room: C{room}, or the current one when L{None}."""

    room: str | None
    reason: str | None = None


@frozen
class PartAll:
    """Leave every room (IRC's C{JOIN 0})."""

    reason: str | None = None


@frozen
class Topic:
    """Show C{room}'s topic (C{text} L{None}), or set it (C{""} clears it)."""

    room: str | None
    text: str | None


@frozen
class Kick:
    """Make C{nick} leave C{room}, or the current room (operators only)."""

    room: str | None
    nick: str
    reason: str | None = None


@frozen
class Away:
    """Mark yourself away with a message, or back (L{None})."""

    message: str | None


@frozen
class Whois:
    """Show what is public about one user."""

    nick: str


@frozen
class Rooms:
    """List the rooms."""


@frozen
class Who:
    """List the users of a room (the current one when L{room} is L{None})."""

    room: str | None


@frozen
class Msg:
    """A private message to one user: a C{"message"}, or an C{"action"}."""

    nick: str
    text: str
    kind: str = "message"


@frozen
class Help:
    """Show the list of commands."""


@frozen
class HistoryRef:
    """
    A point in a room's stored lines: a line's sequence number (IRC's
    C{msgid=}), or a time in UTC seconds since the epoch (C{timestamp=}).
    """

    seq: int | None = None
    time: float | None = None


# How a History command selects lines (IRC CHATHISTORY's subcommands).
LATEST, BEFORE, AFTER, AROUND, BETWEEN = (
    "latest",
    "before",
    "after",
    "around",
    "between",
)
SELECTORS = (LATEST, BEFORE, AFTER, AROUND, BETWEEN)


@frozen
class History:
    """
    Show stored lines of a room (the current one when C{room} is L{None}):
    C{count} of them (the server's default when L{None}), selected as IRC's
    C{CHATHISTORY} does.  C{/history [N]} is the newest lines: L{LATEST}
    without a C{start}.

      - L{LATEST}: the newest lines (after C{start}, if given);
      - L{BEFORE} / L{AFTER}: the lines just before / after C{start};
      - L{AROUND}: lines on both sides of C{start};
      - L{BETWEEN}: lines between C{start} and C{end}, counted from
        C{start}.

    References are exclusive, but for L{AROUND}, which may return the line
    itself.
    """

    room: str | None = None
    count: int | None = None
    selector: str = LATEST
    start: HistoryRef | None = None
    end: HistoryRef | None = None


@frozen
class Quit:
    """Leave the chat."""

    reason: str | None


@frozen
class Invalid:
    """A line that is not a valid command; L{message} says why."""

    message: str


Command = (
    Say
    | Me
    | Notice
    | Nick
    | Join
    | Part
    | PartAll
    | Topic
    | Kick
    | Away
    | Whois
    | Rooms
    | Who
    | Msg
    | Help
    | History
    | Quit
    | Invalid
)

USAGE = {
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
}


def _usage(name: str) -> Invalid:
    return Invalid(f"Usage: {USAGE[name]}")


def _history(args: list[str]) -> Command:
    """C{/history [#ROOM] [N]}: N is a whole number of lines, at least 1."""
    room = args.pop(0) if args and args[0].startswith("#") else None
    if len(args) > 1 or (args and not (args[0].isdigit() and args[0].isascii())):
        return _usage("history")
    count = int(args[0]) if args else None
    if count == 0:
        return _usage("history")
    return History(room, count)


def parse_line(line: str) -> Command | None:
    """
    Parse one decoded line (without its line ending).

    @return: the command, or L{None} for a blank line, which is ignored.
    """
    if has_forbidden_characters(line):
        return Invalid(
            "Your line contains control characters (such as terminal escape "
            "sequences) and was not sent."
        )
    if not line.strip():
        return None
    if not line.startswith("/"):
        return Say(line)
    if line.startswith("//"):
        return Say(line[1:])

    # The command name ends at the first space or tab.
    parts = line[1:].split(maxsplit=1) if not line[1:2].isspace() else []
    name = parts[0].lower() if parts else ""
    rest = parts[1].strip() if len(parts) > 1 else ""
    args = rest.split()

    if name == "me":
        return Me(rest) if rest else _usage(name)
    if name == "nick":
        return Nick(args[0]) if len(args) == 1 else _usage(name)
    if name == "join":
        return Join(args[0]) if len(args) == 1 else _usage(name)
    if name == "part":
        target = rest.split(maxsplit=1)
        if target and target[0].startswith("#"):
            return Part(target[0], target[1].strip() if len(target) > 1 else None)
        return Part(None, rest or None)
    if name == "topic":
        return Topic(None, rest or None)
    if name == "kick":
        target = rest.split(maxsplit=1)
        if not target:
            return _usage(name)
        return Kick(None, target[0], target[1].strip() if len(target) > 1 else None)
    if name == "away":
        return Away(rest or None)
    if name == "whois":
        return Whois(args[0]) if len(args) == 1 else _usage(name)
    if name == "rooms":
        return Rooms() if not args else _usage(name)
    if name == "who":
        if len(args) > 1:
            return _usage(name)
        return Who(args[0] if args else None)
    if name == "msg":
        target = rest.split(maxsplit=1)
        nick = target[0] if target else ""
        text = target[1].strip() if len(target) > 1 else ""
        return Msg(nick, text) if nick and text else _usage(name)
    if name == "help":
        return Help()
    if name == "history":
        return _history(args)
    if name == "quit":
        return Quit(rest or None)
    return Invalid(
        f"Unknown command /{name}. Type /help for the list of commands, "
        "or start a message with // to send a line beginning with /."
    )
