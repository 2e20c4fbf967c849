"""
The line protocol's rendering of the core's events: the text of
L{twisted_chat.shared.lines}, encoded.

Room events have two variants: L{CURRENT}, for members whose current room it
is, shows the line as it always was; L{OTHER} puts the room's name in front
(C{[#dev] <bob> hi}), so a user in several rooms always knows where a line
comes from.  A user who stays in one room sees only the first.
"""

from __future__ import annotations

from zope.interface import implementer

from twisted_chat.core import events
from twisted_chat.core.interfaces import IRenderer
from twisted_chat.shared import lines

CURRENT = True
OTHER = False

# How many names the list sent on joining a room shows: a line must stay
# short enough for any client to take.  /who shows every name the core
# sends (up to its own limit).
JOIN_LIST_LIMIT = 50


def room_text(event: events.RoomEvent) -> str:
    """The line of a room event, as its room's current members see it."""
    match event:
        case events.Message(source=source, text=text):
            return lines.message(source.nick, text)
        case events.Action(source=source, text=text):
            return lines.action(source.nick, text)
        case events.RoomNotice(source=source, text=text):
            return lines.room_notice(source.nick, text)
        case events.Joined(room=room, source=source):
            return lines.joined(source.nick, room)
        case events.Parted(room=room, source=source, reason=reason):
            return lines.left_with_reason(source.nick, room, reason)
        case events.Kicked(room=room, source=source, target=target, reason=reason):
            return lines.kicked(source.nick, target, room, reason)
        case events.TopicChanged(room=room, source=source, topic=topic):
            return lines.topic_changed(source.nick, room, topic)
    raise TypeError(f"not a room event: {event!r}")


def user_text(event: events.UserEvent) -> str:
    """The line of a user event, the same for every room."""
    match event:
        case events.Quit(source=source, reason=reason):
            return lines.quit_(source.nick, reason or "quit")
        case events.NickChanged(source=source, new=new):
            return lines.nick_change(source.nick, new)
    raise TypeError(f"not a user event: {event!r}")


@implementer(IRenderer)
class LineRenderer:
    """Renders shared events for line-protocol connections."""

    def render(self, event: object, variant: object) -> bytes:
        if type(event) is events.Message:
            # Most of the traffic: straight to the line.
            if variant is CURRENT:
                return lines.encoded_message(event.source.nick, event.text)
            text = lines.message(event.source.nick, event.text)
        elif isinstance(event, events.Quit | events.NickChanged):
            return lines.encode(user_text(event))
        else:
            text = room_text(event)  # type: ignore[arg-type]
        if variant is OTHER:
            text = lines.from_room(event.room, text)  # type: ignore[attr-defined]
        return lines.encode(text)


RENDERER = LineRenderer()


def reply_lines(reply: events.Reply, viewer: str) -> list[str]:
    """
    The lines of a reply to the user C{viewer} (their current nickname).
    """
    match reply:
        case events.Notice(text=text):
            return [lines.notice(text)]
        case events.Error(text=text):
            return [lines.error(text)]
        case events.PrivateMessage(source=source, target=target, text=text, kind=kind):
            outgoing = source.nick == viewer and target != viewer
            if kind == "action":
                if outgoing:
                    return [lines.private_action_out(target, source.nick, text)]
                return [lines.private_action_in(source.nick, text)]
            if outgoing:
                return [lines.private_out(target, text)]
            return [lines.private_in(source.nick, text)]
        case events.Names(room=room, members=members, total=total, joined=joined):
            nicks = [member.nick for member in members]
            if joined:
                nicks = nicks[:JOIN_LIST_LIMIT]
            return [lines.who(room, nicks, total)]
        case events.RoomList(rooms=rooms):
            return [lines.rooms([(room.name, room.users) for room in rooms])]
        case events.Topic(room=room, topic=topic, set_by=set_by):
            return [lines.topic_is(room, topic, set_by)]
        case events.Whois(
            nick=nick, user=user, host=host, rooms=rooms, away=away, idle=idle
        ):
            return [lines.whois(nick, user, host, list(rooms), away, idle)]
        case events.Welcome(nick=nick):
            return [lines.welcome(), lines.self_nick(nick)]
        case events.CurrentRoom(room=room):
            return [lines.now_talking_in(room)]
        case events.Help():
            return lines.help_lines()
        case events.History():
            return history_lines(reply)
    raise TypeError(f"not a reply: {reply!r}")


def history_lines(reply: events.History) -> list[str]:
    """
    Stored lines, each as it was shown when said, after the mark of history
    and its time (see L{lines.history}); for a room other than the current
    one, the room's name first.  An answer to C{/history} starts with a
    notice saying how many lines follow.
    """
    shown = []
    if reply.request:
        shown.append(lines.history_header(reply.room, len(reply.events)))
    for event in reply.events:
        text = lines.history(event.time, room_text(event))
        if not reply.current:
            text = lines.from_room(reply.room, text)
        shown.append(text)
    return shown


def render_reply(reply: events.Reply, viewer: str) -> bytes:
    """The wire form of L{reply_lines}."""
    return lines.encode(*reply_lines(reply, viewer))
