"""
The IRC front end, without the connection: rendering the core's events and
replies as IRC messages, and turning a client's IRC messages into the core's
commands.  Pure: no reactor, no sockets.

  - L{IRCRenderer} renders room and user events once per variant (whether
    the recipient negotiated C{server-time}) for every member
    (L{IRenderer}), and replies for one connection (L{IRCRenderer.render_reply}).
  - L{IRCSession} is one connection's IRC state: registration (an explicit
    state machine), capabilities, the current nickname.  It is fed lines
    (L{IRCSession.line_received}) and the core's replies
    (L{IRCSession.reply_received}) and answers with L{Output} values for the
    protocol class to carry out: L{Send} bytes, L{Execute} a core command,
    L{Register} the user, L{Close} the connection.

Names across protocols: the core allows nicknames and room names matching
C{[A-Za-z][A-Za-z0-9_-]*} (20 and 32 characters); IRC allows more
(C{[]\\`^{}|}).  A nickname the core does not allow gets 432
ERR_ERRONEUSNICKNAME.  A channel that does not start with C{#} (the only
channel type, C{CHANTYPES=#}) does not exist: 403 ERR_NOSUCHCHANNEL (to JOIN,
PART, TOPIC, KICK and a PRIVMSG target alike).  A C{#} name the core does not
allow (C{#a.b}, C{#été}, too long) gets 479 ERR_BADCHANNAME on JOIN, the
de facto numeric (Hybrid, Ergo), which says "this name can never exist";
elsewhere, such a channel cannot exist either, so it is 403.

Text across protocols: the core refuses text with control characters, and
line protocol users must never receive IRC formatting codes.  So text from an
IRC client has its formatting codes (bold, colour, italic, ...) stripped
first; then a message (PRIVMSG, NOTICE, TOPIC, AWAY) that still holds a
control character is refused (404 for a channel, a server NOTICE otherwise;
never a reply to a NOTICE), while a reason for leaving (QUIT, PART, KICK)
never stops the leaving: its forbidden characters become U+FFFD.

Length: the core lets line protocol users send up to 4096 bytes, an IRC line
holds 512 (see L{twisted_chat.server.irc_wire}).  Messages, actions and
notices too long for one IRC line are B{split} into several, at a space when
there is one, so that nothing said is lost; a single text parameter of a reply
or event (topic, away message, reasons) is B{truncated} to fit its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from attrs import define, field, frozen
from automat import TypeMachine, TypeMachineBuilder
from twisted.words.protocols import irc as twirc
from zope.interface import implementer

from twisted_chat.core import events as ev
from twisted_chat.core.interfaces import IRenderer
from twisted_chat.server.irc_history import CAPABILITIES as HISTORY_CAPABILITIES
from twisted_chat.server.irc_history import IRCHistory, Request
from twisted_chat.server.irc_history import isupport_tokens as history_isupport
from twisted_chat.server.irc_wire import (
    CRLF,
    MAX_LINE_BYTES,
    NOT_UTF8,
    TOO_LONG,
    BadLine,
    IRCMessage,
    ctcp,
    format_message,
    message_head,
    parse_ctcp,
    parse_message,
    server_time,
    split_utf8,
    strip_formatting,
)
from twisted_chat.shared import commands as cmd
from twisted_chat.shared.rules import (
    NICK_MAX,
    ROOM_MAX,
    TOPIC_MAX,
    has_forbidden_characters,
    name_key,
    nick_error,
    replace_forbidden_characters,
    room_error,
)

# Numerics Twisted does not name (Modern IRC and IRCv3).
RPL_TOPICWHOTIME = "333"
RPL_CREATIONTIME = "329"
ERR_INVALIDCAPCMD = "410"
ERR_INPUTTOOLONG = "417"
ERR_BADCHANNAME = "479"
ERR_HELPNOTFOUND = "524"
RPL_HELPSTART = "704"
RPL_HELPTXT = "705"
RPL_ENDOFHELP = "706"

# The capabilities this front end implements, and so may advertise:
#   - cap-notify: implied by CAP LS 302; we never add or remove a capability,
#     so there is never a NEW or DEL to send, and a REQ for it is ACKed;
#   - echo-message: the sender receives its own PRIVMSG and NOTICE back (the
#     core delivers room traffic to every member, sender included); without
#     it the sender's own copy must not be delivered (see the notes);
#   - multi-prefix: the only membership prefix is @, so every reply already
#     shows all of a member's prefixes;
#   - server-time: the time tag on every message that has a time.
# Not message-tags: it would oblige us to relay client-only tags and TAGMSG,
# which the core cannot carry.
SUPPORTED_CAPABILITIES = frozenset(
    {"cap-notify", "echo-message", "multi-prefix", "server-time"}
)

# The user modes, always set: "i" (invisible), since nobody can list the
# users of a channel they share without being in it, nor all users.
USER_MODES = "+i"

# The most targets of one PRIVMSG or NOTICE, and of one KICK.
MAX_TARGETS = 4

# A username shown in nick!user@host: the ones USER gives are not verified
# (no ident lookup), hence the "~".
USERLEN = 16
_USERNAME_JUNK = re.compile(r"[^A-Za-z0-9_.-]")

# Commands a client may send before registration is complete.
_BEFORE_REGISTRATION = {"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT"}


# What the session asks the protocol class to do.


@frozen
class Send:
    """Write C{data} (complete lines) to this connection."""

    data: bytes


@frozen
class Context:
    """
    The IRC request a core command answers: its C{verb} (C{"WHOIS"},
    C{"NAMES"}, ...) and C{target}, the parameter as the client wrote it,
    which some replies must repeat exactly (318, 366, 315).  The same core
    reply renders differently for different requests: L{ev.Names} is 353 and
    366 for NAMES, 352 and 315 for WHO, 324 for MODE.
    """

    verb: str
    target: str = ""
    # More of the request, where a reply needs it (CHATHISTORY's subcommand).
    detail: str = ""


@frozen
class Execute:
    """Run C{command} in the core for this user; hand its replies back to
    L{IRCSession.reply_received} with C{context}."""

    command: cmd.Command
    context: Context


@frozen
class Register:
    """
    Registration is complete on the IRC side: ask the core to make this
    connection the user C{nick}.  The core answers L{ev.Welcome}, or an
    L{ev.Error} (C{NICK_IN_USE}, C{ERRONEOUS_NICK}), to be handed to
    L{IRCSession.reply_received} with L{REGISTER}.
    """

    nick: str
    user: str
    realname: str


@frozen
class Close:
    """Close the connection once what was sent is written."""

    reason: str


Output = Send | Execute | Register | Close

REGISTER = Context("REGISTER")


@frozen
class IRCServerInfo:
    """What the server says about itself to IRC clients."""

    server_name: str = "twisted-chat"
    network: str = "twisted-chat"
    version: str = "twisted-chat"
    created: str = "at start-up"
    motd: tuple[str, ...] = ()
    # The core cuts topics to this length.
    topic_len: int = TOPIC_MAX
    # The most lines one CHATHISTORY returns; 0 when the server keeps no
    # history (then CHATHISTORY, its capabilities and tokens are not offered).
    history_limit: int = 0


def isupport_tokens(info: IRCServerInfo) -> list[str]:
    """
    The RPL_ISUPPORT tokens: only what is implemented.  C{CASEMAPPING=ascii}
    is exact because names are ASCII and compared with C{str.lower()}.
    """
    tokens = [
        "CASEMAPPING=ascii",
        "CHANMODES=,,,t",
        f"CHANNELLEN={ROOM_MAX + 1}",
        "CHANTYPES=#",
        f"NETWORK={_isupport_value(info.network)}",
        f"NICKLEN={NICK_MAX}",
        "PREFIX=(o)@",
        f"TARGMAX=JOIN:,KICK:{MAX_TARGETS},LIST:,NAMES:,NOTICE:{MAX_TARGETS},"
        f"PART:,PRIVMSG:{MAX_TARGETS},WHOIS:1",
        f"TOPICLEN={info.topic_len}",
    ]
    if info.history_limit > 0:
        tokens = sorted(tokens + history_isupport(info.history_limit))
    return tokens


def _isupport_value(value: str) -> str:
    return value.replace("\\", "\\x5C").replace(" ", "\\x20").replace("=", "\\x3D")


def channel(room: str) -> str:
    """The IRC channel name of a room (rooms are named without C{#})."""
    return room if room.startswith("#") else "#" + room


def source_prefix(source: ev.Source) -> str:
    """C{nick!user@host}, or as much of it as is known."""
    prefix = source.nick
    if source.user:
        prefix += "!" + source.user
    if source.host:
        prefix += "@" + source.host
    return prefix


def _host_param(host: str) -> str:
    # A host as a middle parameter cannot start with ":" (IPv6 "::1").
    return "0" + host if host.startswith(":") else host or "*"


def _pack(words: Iterable[str], room: int) -> list[str]:
    """Space-separated runs of C{words}, each at most C{room} bytes."""
    runs: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(candidate.encode("utf-8")) > room:
            runs.append(current)
            current = word
        else:
            current = candidate
    if current:
        runs.append(current)
    return runs


@implementer(IRenderer)
@frozen
class IRCRenderer:
    """
    Writes the core's events and replies as IRC messages.

    Room and user events (L{render}) depend only on the event and the
    variant, so the fan-out renders each once and shares the bytes; replies
    (L{render_reply}) name their recipient and are rendered per connection.
    """

    info: IRCServerInfo = IRCServerInfo()

    # Room and user events

    def render(self, event: object, variant: object) -> bytes:
        """
        The IRC form of a room or user event; C{variant} is whether the
        recipient negotiated C{server-time}.
        """
        if not isinstance(event, ev.RoomEvent | ev.UserEvent):
            raise TypeError(f"not a room or user event: {event!r}")
        tags = {"time": server_time(event.time)} if variant else None
        src = source_prefix(event.source)
        match event:
            case ev.Message(room=room, text=text):
                return self._text("PRIVMSG", channel(room), text, src, tags)
            case ev.Action(room=room, text=text):
                return self._text("PRIVMSG", channel(room), text, src, tags, "ACTION")
            case ev.RoomNotice(room=room, text=text):
                return self._text("NOTICE", channel(room), text, src, tags)
            case ev.Joined(room=room):
                return format_message("JOIN", channel(room), source=src, tags=tags)
            case ev.Parted(room=room, reason=reason):
                return format_message(
                    "PART",
                    channel(room),
                    trailing=reason or None,
                    source=src,
                    tags=tags,
                )
            case ev.Kicked(room=room, target=target, reason=reason):
                return format_message(
                    "KICK",
                    channel(room),
                    target,
                    trailing=reason or event.source.nick,
                    source=src,
                    tags=tags,
                )
            case ev.TopicChanged(room=room, topic=topic):
                return format_message(
                    "TOPIC", channel(room), trailing=topic, source=src, tags=tags
                )
            case ev.Quit():
                return format_message(
                    "QUIT", trailing=quit_reason(event), source=src, tags=tags
                )
            case ev.NickChanged(new=new):
                return format_message("NICK", new, source=src, tags=tags)
        raise AssertionError(event)  # pragma: no cover

    def _text(
        self,
        command: str,
        target: str,
        text: str,
        source: str,
        tags: dict[str, str] | None,
        ctcp_command: str | None = None,
    ) -> bytes:
        """
        PRIVMSG or NOTICE lines carrying C{text}, split into as many lines as
        it takes to keep each within 512 bytes.
        """
        head = message_head(command, [target], source)
        room = MAX_LINE_BYTES - len(CRLF) - len(head.encode("utf-8")) - 2
        if ctcp_command is not None:
            room -= len(ctcp(ctcp_command, "x")) - 1
        return b"".join(
            format_message(
                command,
                target,
                trailing=piece if ctcp_command is None else ctcp(ctcp_command, piece),
                source=source,
                tags=tags,
            )
            for piece in split_utf8(text, room)
        )

    # Replies

    def numeric(
        self, code: str, nick: str, *params: str, trailing: str | None = None
    ) -> bytes:
        """One numeric reply from this server to C{nick} (C{*} before
        registration)."""
        return format_message(
            code, nick, *params, trailing=trailing, source=self.info.server_name
        )

    def server_notice(self, nick: str, text: str) -> bytes:
        """A NOTICE from this server to C{nick}."""
        return format_message(
            "NOTICE", nick, trailing=text, source=self.info.server_name
        )

    def fatal(self, text: str) -> bytes:
        """The ERROR message that comes before the server closes a connection."""
        return format_message("ERROR", trailing=text)

    def render_reply(
        self,
        reply: ev.Reply,
        nick: str,
        server_time: bool,
        context: Context | None = None,
    ) -> bytes:
        """
        The IRC form of a reply for the user C{nick}.

        @param server_time: whether the recipient negotiated C{server-time};
            only replies that carry a time (private messages) are tagged.
        @param context: the request the reply answers, when it changes the
            form (see L{Context}); L{None} for what the core sends unasked
            (the topic and names on joining, a private message).
        """
        verb = context.verb if context else ""
        if verb == "NOTICE" and isinstance(reply, ev.Error | ev.Notice):
            # No automatic reply to a NOTICE, not even an error.
            return b""
        match reply:
            case ev.PrivateMessage():
                return self._private(reply, server_time)
            case ev.Notice():
                return self._notice(reply, nick)
            case ev.Error():
                return self._error(reply, nick, context)
            case ev.Names() if verb == "WHO":
                return self._who_names(reply, nick, context)
            case ev.Names() if verb == "MODE":
                return self.numeric("324", nick, channel(reply.room), "+t")
            case ev.Names():
                return self._names(reply, nick)
            case ev.RoomList():
                return self._list(reply, nick, context)
            case ev.Topic():
                return self._topic(reply, nick, verb == "TOPIC")
            case ev.Whois() if verb == "WHO":
                return self._who_user(reply, nick, context)
            case ev.Whois() if verb == "MODE":
                return self._user_mode(reply, nick)
            case ev.Whois():
                return self._whois(reply, nick, context)
            case ev.Welcome():
                return self.welcome(reply.nick)
            case ev.CurrentRoom():
                # IRC has no current room: every message names its target.
                return b""
            case ev.Help():
                return self.help(nick, context.target if context else "")
            case ev.History():
                # For one connection, IRCSession renders with its own
                # capabilities and batches; this is the plain form.
                plain = IRCHistory(self.info.server_name, self.info.history_limit)
                capabilities = {"server-time"} if server_time else set()
                return plain.render(reply, frozenset(capabilities))
        raise TypeError(f"not a reply: {reply!r}")  # pragma: no cover

    def _private(self, reply: ev.PrivateMessage, tagged: bool) -> bytes:
        tags = {"time": server_time(reply.time)} if tagged else None
        src = source_prefix(reply.source)
        if reply.kind == "action":
            return self._text("PRIVMSG", reply.target, reply.text, src, tags, "ACTION")
        command = "NOTICE" if reply.kind == "notice" else "PRIVMSG"
        return self._text(command, reply.target, reply.text, src, tags)

    def _notice(self, reply: ev.Notice, nick: str) -> bytes:
        code, args = reply.code, reply.args
        if code == ev.NoticeCode.AWAY and len(args) == 2:
            return self.numeric(twirc.RPL_AWAY, nick, args[0], trailing=args[1])
        if code == ev.NoticeCode.UNAWAY:
            return self.numeric(
                twirc.RPL_UNAWAY,
                nick,
                trailing="You are no longer marked as being away",
            )
        if code == ev.NoticeCode.NOW_AWAY:
            return self.numeric(
                twirc.RPL_NOWAWAY, nick, trailing="You have been marked as being away"
            )
        if code in (ev.NoticeCode.ALREADY_IN_ROOM, ev.NoticeCode.ALREADY_NICK):
            # IRC servers ignore a JOIN of a channel one is on, and a NICK
            # to one's own nickname.
            return b""
        if code == ev.NoticeCode.GOODBYE:
            # The reason of the QUIT; "(Quit)" for a QUIT without one.
            reason = args[0] if args else reply.text
            return self.fatal(f"Closing link: {reason or '(Quit)'}")
        if code == ev.NoticeCode.SHUTDOWN:
            return self.fatal(
                f"Server shutting down: {args[0] if args else reply.text}"
            )
        return self.server_notice(nick, reply.text)

    def _error(self, reply: ev.Error, nick: str, context: Context | None) -> bytes:
        code, args, text = reply.code, reply.args, reply.text
        verb = context.verb if context else ""
        target = context.target if context else ""
        E = ev.ErrorCode
        if code == E.NO_SUCH_NICK and args:
            if verb == "WHO":
                return self.numeric(twirc.RPL_ENDOFWHO, nick, target, trailing=END_WHO)
            data = self.numeric(
                twirc.ERR_NOSUCHNICK, nick, args[0], trailing="No such nick/channel"
            )
            if verb == "WHOIS":
                data += self.numeric(
                    twirc.RPL_ENDOFWHOIS, nick, target or args[0], trailing=END_WHOIS
                )
            return data
        if code == E.NO_SUCH_ROOM and args:
            if verb == "NAMES":
                return self.numeric(
                    twirc.RPL_ENDOFNAMES,
                    nick,
                    target or channel(args[0]),
                    trailing=END_NAMES,
                )
            if verb == "WHO":
                return self.numeric(twirc.RPL_ENDOFWHO, nick, target, trailing=END_WHO)
            return self.numeric(
                twirc.ERR_NOSUCHCHANNEL,
                nick,
                channel(args[0]),
                trailing="No such channel",
            )
        simple = {
            E.CANNOT_SEND: (twirc.ERR_CANNOTSENDTOCHAN, "Cannot send to channel", True),
            E.NOT_IN_ROOM: (twirc.ERR_NOTONCHANNEL, "You're not on that channel", True),
            E.NOT_OPERATOR: (
                twirc.ERR_CHANOPRIVSNEEDED,
                "You're not channel operator",
                True,
            ),
            E.BAD_ROOM_NAME: (ERR_BADCHANNAME, "Illegal channel name", True),
            E.ERRONEOUS_NICK: (twirc.ERR_ERRONEUSNICKNAME, "Erroneous nickname", False),
            E.NICK_IN_USE: (
                twirc.ERR_NICKNAMEINUSE,
                "Nickname is already in use",
                False,
            ),
            E.UNKNOWN_COMMAND: (twirc.ERR_UNKNOWNCOMMAND, "Unknown command", False),
        }
        if code in simple and args:
            numeric, sentence, is_room = simple[code]
            first = channel(args[0]) if is_room else args[0]
            return self.numeric(numeric, nick, first, trailing=sentence)
        if code == E.USER_NOT_IN_ROOM and len(args) == 2:
            return self.numeric(
                twirc.ERR_USERNOTINCHANNEL,
                nick,
                args[0],
                channel(args[1]),
                trailing="They aren't on that channel",
            )
        if code == E.USAGE:
            command = verb or (args[0].upper() if args else "*")
            return self.numeric(
                twirc.ERR_NEEDMOREPARAMS,
                nick,
                command,
                trailing="Not enough parameters",
            )
        if code == E.LINE_TOO_LONG:
            return self.numeric(
                ERR_INPUTTOOLONG, nick, trailing="Input line was too long"
            )
        if code == E.UNAVAILABLE:
            return self.numeric(twirc.RPL_TRYAGAIN, nick, verb or "*", trailing=text)
        if code in (E.FLOOD, E.SEND_QUEUE, E.IDLE):
            # Sent just before the core closes the connection: the reason
            # (args) as the other users see it in the QUIT, else the text.
            return self.fatal(f"Closing link: {args[0] if args else text}")
        # BAD_TEXT, NOT_UTF8, NO_ROOM, and codes this front end does not know.
        return self.server_notice(nick, text)

    def _names(self, reply: ev.Names, nick: str) -> bytes:
        chan = channel(reply.room)
        head = message_head(
            twirc.RPL_NAMREPLY, [nick, "=", chan], self.info.server_name
        )
        room = MAX_LINE_BYTES - len(CRLF) - len(head.encode("utf-8")) - 2 - 1
        names = (("@" if m.operator else "") + m.nick for m in reply.members)
        data = b"".join(
            self.numeric(twirc.RPL_NAMREPLY, nick, "=", chan, trailing=run)
            for run in _pack(names, room)
        )
        return data + self.numeric(twirc.RPL_ENDOFNAMES, nick, chan, trailing=END_NAMES)

    def _who_names(self, reply: ev.Names, nick: str, context: Context | None) -> bytes:
        chan = channel(reply.room)
        data = b"".join(
            self.numeric(
                twirc.RPL_WHOREPLY,
                nick,
                chan,
                member.user or "*",
                _host_param(member.host),
                self.info.server_name,
                member.nick,
                ("G" if member.away else "H") + ("@" if member.operator else ""),
                trailing=f"0 {member.nick}",
            )
            for member in reply.members
        )
        target = context.target if context and context.target else chan
        return data + self.numeric(twirc.RPL_ENDOFWHO, nick, target, trailing=END_WHO)

    def _who_user(self, reply: ev.Whois, nick: str, context: Context | None) -> bytes:
        target = context.target if context and context.target else reply.nick
        return self.numeric(
            twirc.RPL_WHOREPLY,
            nick,
            channel(reply.rooms[0]) if reply.rooms else "*",
            reply.user or "*",
            _host_param(reply.host),
            self.info.server_name,
            reply.nick,
            "G" if reply.away is not None else "H",
            trailing=f"0 {reply.nick}",
        ) + self.numeric(twirc.RPL_ENDOFWHO, nick, target, trailing=END_WHO)

    def _user_mode(self, reply: ev.Whois, nick: str) -> bytes:
        if name_key(reply.nick) == name_key(nick):
            return self.numeric(twirc.RPL_UMODEIS, nick, USER_MODES)
        return self.numeric(
            twirc.ERR_USERSDONTMATCH, nick, trailing="Can't view modes for other users"
        )

    def _list(self, reply: ev.RoomList, nick: str, context: Context | None) -> bytes:
        # Only channel names filter: ELIST conditions (">3") are not
        # advertised, and are ignored.
        names = context.target.split(",") if context else []
        wanted = {name_key(c) for c in names if c.startswith("#")} or None
        data = self.numeric(
            twirc.RPL_LISTSTART, nick, "Channel", trailing="Users  Name"
        )
        for room in reply.rooms:
            chan = channel(room.name)
            if wanted is None or name_key(chan) in wanted:
                data += self.numeric(
                    twirc.RPL_LIST, nick, chan, str(room.users), trailing=room.topic
                )
        return data + self.numeric(twirc.RPL_LISTEND, nick, trailing="End of /LIST")

    def _topic(self, reply: ev.Topic, nick: str, asked: bool) -> bytes:
        chan = channel(reply.room)
        if not reply.topic:
            # On joining, no topic means no message at all.
            if not asked:
                return b""
            return self.numeric(
                twirc.RPL_NOTOPIC, nick, chan, trailing="No topic is set"
            )
        data = self.numeric(twirc.RPL_TOPIC, nick, chan, trailing=reply.topic)
        if reply.set_by:
            data += self.numeric(
                RPL_TOPICWHOTIME, nick, chan, reply.set_by, str(int(reply.set_at))
            )
        return data

    def _whois(self, reply: ev.Whois, nick: str, context: Context | None) -> bytes:
        target = context.target if context and context.target else reply.nick
        data = self.numeric(
            twirc.RPL_WHOISUSER,
            nick,
            reply.nick,
            reply.user or "*",
            _host_param(reply.host),
            "*",
            # Without a real name, the nickname stands in, as the Modern IRC
            # document suggests for clients without one.
            trailing=reply.realname or reply.nick,
        )
        if reply.rooms:
            operator_in = {name_key(room) for room in reply.operator_in}
            head = message_head(
                twirc.RPL_WHOISCHANNELS, [nick, reply.nick], self.info.server_name
            )
            room = MAX_LINE_BYTES - len(CRLF) - len(head.encode("utf-8")) - 2
            listed = (
                ("@" if name_key(r) in operator_in else "") + channel(r)
                for r in reply.rooms
            )
            for run in _pack(listed, room):
                data += self.numeric(
                    twirc.RPL_WHOISCHANNELS, nick, reply.nick, trailing=run
                )
        data += self.numeric(
            twirc.RPL_WHOISSERVER,
            nick,
            reply.nick,
            self.info.server_name,
            trailing=self.info.network,
        )
        if reply.away is not None:
            data += self.numeric(twirc.RPL_AWAY, nick, reply.nick, trailing=reply.away)
        data += self.numeric(
            twirc.RPL_WHOISIDLE,
            nick,
            reply.nick,
            str(int(reply.idle)),
            str(int(reply.signon)),
            trailing="seconds idle, signon time",
        )
        return data + self.numeric(
            twirc.RPL_ENDOFWHOIS, nick, target, trailing=END_WHOIS
        )

    def welcome(self, nick: str) -> bytes:
        """001 to 005 and the message of the day (or 422), on registration."""
        info = self.info
        data = self.numeric(
            twirc.RPL_WELCOME,
            nick,
            trailing=f"Welcome to the {info.network} Network, {nick}",
        )
        data += self.numeric(
            twirc.RPL_YOURHOST,
            nick,
            trailing=f"Your host is {info.server_name}, running version {info.version}",
        )
        data += self.numeric(
            twirc.RPL_CREATED, nick, trailing=f"This server was created {info.created}"
        )
        # 004 lists the user modes, channel modes and channel modes with a
        # parameter.  The one user mode is "i", always set (see USER_MODES).
        data += self.numeric(
            twirc.RPL_MYINFO, nick, info.server_name, info.version, "i", "ot", "o"
        )
        tokens = isupport_tokens(info)
        for start in range(0, len(tokens), 13):
            data += self.numeric(
                twirc.RPL_ISUPPORT,
                nick,
                *tokens[start : start + 13],
                trailing="are supported by this server",
            )
        return data + self.motd(nick)

    def motd(self, nick: str) -> bytes:
        """375, 372... and 376; or 422 when there is no message of the day."""
        if not self.info.motd:
            return self.numeric(twirc.ERR_NOMOTD, nick, trailing="MOTD File is missing")
        data = self.numeric(
            twirc.RPL_MOTDSTART,
            nick,
            trailing=f"- {self.info.server_name} Message of the day - ",
        )
        for line in self.info.motd:
            data += self.numeric(twirc.RPL_MOTD, nick, trailing=f"- {line}")
        return data + self.numeric(
            twirc.RPL_ENDOFMOTD, nick, trailing="End of /MOTD command."
        )

    def help(self, nick: str, subject: str) -> bytes:
        """
        The answer to HELP (704, 705..., 706), or 524 for a subject that has
        no help.
        """
        key = subject.upper()
        if key and key not in HELP_TOPICS:
            return self.numeric(
                ERR_HELPNOTFOUND,
                nick,
                subject,
                trailing="No help available on this topic",
            )
        shown = subject or "*"
        lines = HELP_TOPICS[key] if key else HELP_INDEX
        data = self.numeric(RPL_HELPSTART, nick, shown, trailing=lines[0])
        for line in lines[1:]:
            data += self.numeric(RPL_HELPTXT, nick, shown, trailing=line)
        return data + self.numeric(RPL_ENDOFHELP, nick, shown, trailing="End of /HELP")


END_NAMES = "End of /NAMES list"
END_WHO = "End of WHO list"
END_WHOIS = "End of /WHOIS list"

HELP_TOPICS: dict[str, tuple[str, ...]] = {
    "PRIVMSG": ("PRIVMSG <#channel|nick>[,...] :<text>", "Say something."),
    "NOTICE": ("NOTICE <#channel|nick>[,...] :<text>", "A notice: never answered."),
    "JOIN": ("JOIN <#channel>[,...]", "Join channels; JOIN 0 leaves them all."),
    "PART": ("PART <#channel>[,...] [:<reason>]", "Leave channels."),
    "NICK": ("NICK <nickname>", "Change your nickname."),
    "TOPIC": ("TOPIC <#channel> [:<topic>]", "Show or set a channel's topic."),
    "KICK": ("KICK <#channel> <nick>[,...] [:<reason>]", "Channel operators only."),
    "AWAY": ("AWAY [:<message>]", "Mark yourself away, or back."),
    "NAMES": ("NAMES <#channel>[,...]", "List a channel's members."),
    "LIST": ("LIST [<#channel>[,...]]", "List the channels."),
    "WHO": ("WHO <#channel|nick>", "List a channel's members, or one user."),
    "WHOIS": ("WHOIS <nick>", "Show what is public about a user."),
    "QUIT": ("QUIT [:<reason>]", "Leave."),
}

HELP_INDEX: tuple[str, ...] = (
    "twisted-chat: rooms shared with users of the line protocol (nc).",
    "Commands: " + " ".join(sorted(HELP_TOPICS)) + " MODE PING CAP HELP",
    "HELP <command> shows how to use one.",
    "Formatting codes are removed from what you send; other control "
    "characters are refused.",
)


def quit_reason(event: ev.Quit) -> str:
    """
    The reason of a QUIT as other clients see it.  The Modern IRC document
    asks for C{"Quit: "} before the reason of a user who sent QUIT
    themself (even an empty one), and the bare reason otherwise (a
    connection lost, excess flood).
    """
    return f"Quit: {event.reason}" if event.requested else event.reason


# Translating a client's text for the core.


def message_text(text: str) -> str | None:
    """
    C{text} from an IRC client as the core may take it as a message: without
    formatting codes; or L{None} if control characters remain.
    """
    plain = strip_formatting(text)
    return None if has_forbidden_characters(plain) else plain


def reason_text(text: str) -> str:
    """A reason for leaving: formatting codes stripped, forbidden characters
    replaced by U+FFFD (leaving is never refused)."""
    return replace_forbidden_characters(strip_formatting(text))


def username(raw: str) -> str:
    """
    The user name shown in C{nick!user@host} for what USER gave: C{~}
    (not verified by ident) and the characters that are safe in a source, at
    most L{USERLEN} in all.
    """
    cleaned = _USERNAME_JUNK.sub("", raw)[: USERLEN - 1]
    return "~" + (cleaned or "user")


def room_name(target: str) -> str | None:
    """The core's room name for an IRC channel name, or L{None} if the core
    does not allow it."""
    if not target.startswith("#"):
        return None
    name = target[1:]
    return None if room_error(name) else name


# The registration state machine.


class _Registration(Protocol):
    """The inputs of a connection's life, as far as IRC is concerned."""

    def message(self, message: IRCMessage) -> list[Output]:
        """A message from the client: handled as the state allows."""

    def negotiation_started(self) -> None:
        """CAP LS or CAP REQ: registration waits for CAP END."""

    def negotiation_ended(self) -> None:
        """CAP END."""

    def identified(self) -> list[Output]:
        """Both NICK and USER have been given."""

    def welcomed(self) -> None:
        """The core accepted the registration."""

    def nick_refused(self) -> None:
        """The core refused the nickname: registration waits for a NICK."""

    def closing(self) -> None:
        """QUIT: nothing more is read."""


@define
class _Connection:
    """What the state machine works on: one connection's IRC state."""

    renderer: IRCRenderer
    capabilities: frozenset[str]
    # Renders stored lines; answers CHATHISTORY when offers_history.
    history: IRCHistory
    offers_history: bool = False
    nick: str = "*"
    pending_nick: str | None = None
    user: str | None = None
    realname: str = ""
    cap_version: int = 0
    enabled: set[str] = field(factory=set)

    def send(self, data: bytes) -> list[Output]:
        return [Send(data)] if data else []

    def numeric(
        self, code: str, *params: str, trailing: str | None = None
    ) -> list[Output]:
        return [
            Send(self.renderer.numeric(code, self.nick, *params, trailing=trailing))
        ]

    def notice(self, text: str) -> list[Output]:
        return [Send(self.renderer.server_notice(self.nick, text))]

    def need_more(self, command: str) -> list[Output]:
        return self.numeric(
            twirc.ERR_NEEDMOREPARAMS, command, trailing="Not enough parameters"
        )

    # Before registration

    def unregistered(self, message: IRCMessage) -> list[Output]:
        command, params = message.command, message.params
        if command not in _BEFORE_REGISTRATION:
            return self.numeric(
                twirc.ERR_NOTREGISTERED, trailing="You have not registered"
            )
        if command == "NICK":
            return self.set_pending_nick(params)
        if command == "USER":
            if len(params) < 4 or not all(params[:4]):
                return self.need_more("USER")
            self.user = username(params[0])
            self.realname = reason_text(params[3])
            return []
        if command == "QUIT":
            return [Send(self.renderer.fatal("Closing link: (Quit)")), Close("quit")]
        return self.common(message)

    def set_pending_nick(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.numeric(twirc.ERR_NONICKNAMEGIVEN, trailing="No nickname given")
        if nick_error(params[0]):
            return self.numeric(
                twirc.ERR_ERRONEUSNICKNAME, params[0], trailing="Erroneous nickname"
            )
        self.pending_nick = params[0]
        return []

    def register(self) -> list[Output]:
        assert self.pending_nick is not None and self.user is not None
        return [
            Register(self.pending_nick, self.user, self.realname or self.pending_nick)
        ]

    # In every state

    def common(self, message: IRCMessage) -> list[Output]:
        """CAP, PASS, PING and PONG: the same before and after registration."""
        command, params = message.command, message.params
        if command == "CAP":
            return self.cap(params)
        if command == "PING":
            if not params or not params[0]:
                return self.need_more("PING")
            return self.send(
                format_message(
                    "PONG",
                    self.renderer.info.server_name,
                    trailing=params[0],
                    source=self.renderer.info.server_name,
                )
            )
        if command == "PASS":
            # No server password: PASS is accepted and ignored before
            # registration (clients such as bouncers always send one).
            return self.need_more("PASS") if not params else []
        return []  # PONG

    def cap(self, params: Sequence[str]) -> list[Output]:
        if not params:
            return self.need_more("CAP")
        sub = params[0].upper()
        who = self.nick
        server = self.renderer.info.server_name
        if sub == "LS":
            if len(params) > 1 and params[1].isdigit():
                self.cap_version = max(self.cap_version, int(params[1]))
            if self.cap_version >= 302:
                self.enabled.add("cap-notify")
            listed = " ".join(sorted(self.capabilities))
            return self.send(
                format_message("CAP", who, "LS", trailing=listed, source=server)
            )
        if sub == "LIST":
            listed = " ".join(sorted(self.enabled))
            return self.send(
                format_message("CAP", who, "LIST", trailing=listed, source=server)
            )
        if sub == "REQ":
            requested = params[1] if len(params) > 1 else ""
            return self.send(self.request(requested))
        if sub == "END":
            return []
        return self.numeric(
            ERR_INVALIDCAPCMD, params[0], trailing="Invalid CAP command"
        )

    def request(self, requested: str) -> bytes:
        """ACK the whole of a CAP REQ and apply it, or NAK it whole."""
        changes = requested.split()
        server = self.renderer.info.server_name
        acceptable = all(
            name.removeprefix("-") in self.capabilities
            and not (name == "-cap-notify" and self.cap_version >= 302)
            for name in changes
        )
        if not acceptable:
            return format_message(
                "CAP", self.nick, "NAK", trailing=requested, source=server
            )
        for name in changes:
            if name.startswith("-"):
                self.enabled.discard(name[1:])
            else:
                self.enabled.add(name)
        return format_message(
            "CAP", self.nick, "ACK", trailing=requested, source=server
        )

    # After registration

    def registered(self, message: IRCMessage) -> list[Output]:
        handler = _HANDLERS.get(message.command)
        if handler is None:
            return self.numeric(
                twirc.ERR_UNKNOWNCOMMAND, message.command, trailing="Unknown command"
            )
        return handler(self, message.params)

    def execute(
        self, command: cmd.Command, verb: str, target: str = ""
    ) -> list[Output]:
        return [Execute(command, Context(verb, target))]

    def on_privmsg(self, params: Sequence[str]) -> list[Output]:
        return self.on_message("PRIVMSG", params)

    def on_notice(self, params: Sequence[str]) -> list[Output]:
        return self.on_message("NOTICE", params)

    def on_message(self, verb: str, params: Sequence[str]) -> list[Output]:
        quiet = verb == "NOTICE"
        if not params or not params[0]:
            return (
                []
                if quiet
                else self.numeric(
                    twirc.ERR_NORECIPIENT, trailing=f"No recipient given ({verb})"
                )
            )
        if len(params) < 2 or not params[1]:
            return (
                []
                if quiet
                else self.numeric(twirc.ERR_NOTEXTTOSEND, trailing="No text to send")
            )
        targets = [t for t in params[0].split(",") if t]
        if len(targets) > MAX_TARGETS:
            return (
                []
                if quiet
                else self.numeric(
                    twirc.ERR_TOOMANYTARGETS,
                    params[0],
                    trailing=f"Too many targets (at most {MAX_TARGETS})",
                )
            )
        out: list[Output] = []
        for target in targets:
            out += self.message_to(verb, target, params[1])
        return out

    def message_to(self, verb: str, target: str, raw: str) -> list[Output]:
        quiet = verb == "NOTICE"
        is_room = target.startswith("#")
        name = room_name(target) if is_room else target
        if name is None:
            return (
                []
                if quiet
                else self.numeric(
                    twirc.ERR_NOSUCHCHANNEL, target, trailing="No such channel"
                )
            )
        if not is_room and nick_error(name):
            return (
                []
                if quiet
                else self.numeric(
                    twirc.ERR_NOSUCHNICK, target, trailing="No such nick/channel"
                )
            )
        action = False
        request = parse_ctcp(raw)
        if request is not None:
            ctcp_command, raw = request
            if ctcp_command != "ACTION" or verb == "NOTICE":
                # CTCP requests (VERSION, PING, DCC, ...) cannot reach line
                # protocol users, and are not relayed; CTCP replies (in
                # NOTICE) are dropped.
                return (
                    []
                    if quiet
                    else self.notice(
                        f"CTCP {ctcp_command} is not relayed on this server; "
                        "only ACTION (/me) is."
                    )
                )
            action = True
        text = message_text(raw)
        if text is None:
            if quiet:
                return []
            why = "Your message contains control characters and was not sent"
            if is_room:
                return self.numeric(twirc.ERR_CANNOTSENDTOCHAN, target, trailing=why)
            return self.notice(f"{why} to {target}.")
        if not text.strip():
            return (
                []
                if quiet
                else self.numeric(twirc.ERR_NOTEXTTOSEND, trailing="No text to send")
            )
        command: cmd.Command
        if verb == "NOTICE":
            command = cmd.Notice(target, text)
        elif is_room:
            command = cmd.Me(text, name) if action else cmd.Say(text, name)
        else:
            command = cmd.Msg(name, text, "action" if action else "message")
        return self.execute(command, verb, target)

    def on_join(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.need_more("JOIN")
        if params[0] == "0":
            return self.execute(cmd.PartAll(None), "JOIN", "0")
        out: list[Output] = []
        for target in params[0].split(","):
            if not target.startswith("#"):
                out += self.numeric(
                    twirc.ERR_NOSUCHCHANNEL, target, trailing="No such channel"
                )
            elif (name := room_name(target)) is None:
                out += self.numeric(
                    ERR_BADCHANNAME, target, trailing="Illegal channel name"
                )
            else:
                out += self.execute(cmd.Join(name), "JOIN", target)
        return out

    def on_part(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.need_more("PART")
        reason = reason_text(params[1]) if len(params) > 1 and params[1] else None
        out: list[Output] = []
        for target in params[0].split(","):
            name = room_name(target)
            if name is None:
                out += self.numeric(
                    twirc.ERR_NOSUCHCHANNEL, target, trailing="No such channel"
                )
            else:
                out += self.execute(cmd.Part(name, reason), "PART", target)
        return out

    def on_quit(self, params: Sequence[str]) -> list[Output]:
        reason = reason_text(params[0]) if params and params[0] else None
        return self.execute(cmd.Quit(reason), "QUIT")

    def on_nick(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.numeric(twirc.ERR_NONICKNAMEGIVEN, trailing="No nickname given")
        if nick_error(params[0]):
            return self.numeric(
                twirc.ERR_ERRONEUSNICKNAME, params[0], trailing="Erroneous nickname"
            )
        return self.execute(cmd.Nick(params[0]), "NICK", params[0])

    def on_user(self, params: Sequence[str]) -> list[Output]:
        return self.numeric(
            twirc.ERR_ALREADYREGISTRED, trailing="You may not reregister"
        )

    on_pass = on_user

    def on_topic(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.need_more("TOPIC")
        target = params[0]
        name = room_name(target)
        if name is None:
            return self.numeric(
                twirc.ERR_NOSUCHCHANNEL, target, trailing="No such channel"
            )
        if len(params) < 2:
            return self.execute(cmd.Topic(name, None), "TOPIC", target)
        text = message_text(params[1])
        if text is None:
            return self.notice(
                "Your topic contains control characters and was not set."
            )
        return self.execute(cmd.Topic(name, text), "TOPIC", target)

    def on_kick(self, params: Sequence[str]) -> list[Output]:
        if len(params) < 2 or not params[0] or not params[1]:
            return self.need_more("KICK")
        target = params[0]
        name = room_name(target)
        if name is None:
            return self.numeric(
                twirc.ERR_NOSUCHCHANNEL, target, trailing="No such channel"
            )
        reason = reason_text(params[2]) if len(params) > 2 and params[2] else None
        out: list[Output] = []
        # More than MAX_TARGETS nicknames: the rest are dropped, as TARGMAX
        # allows.
        for victim in [n for n in params[1].split(",") if n][:MAX_TARGETS]:
            out += self.execute(cmd.Kick(name, victim, reason), "KICK", target)
        return out

    def on_away(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.execute(cmd.Away(None), "AWAY")
        text = message_text(params[0])
        if text is None:
            return self.notice(
                "Your away message contains control characters and was not set."
            )
        return self.execute(cmd.Away(text), "AWAY")

    def on_names(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.numeric(twirc.RPL_ENDOFNAMES, "*", trailing=END_NAMES)
        out: list[Output] = []
        for target in params[0].split(","):
            name = room_name(target)
            if name is None:
                out += self.numeric(twirc.RPL_ENDOFNAMES, target, trailing=END_NAMES)
            else:
                out += self.execute(cmd.Who(name), "NAMES", target)
        return out

    def on_list(self, params: Sequence[str]) -> list[Output]:
        return self.execute(cmd.Rooms(), "LIST", params[0] if params else "")

    def on_who(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.need_more("WHO")
        mask = params[0]
        if mask.startswith("#"):
            name = room_name(mask)
            if name is not None:
                return self.execute(cmd.Who(name), "WHO", mask)
        elif not nick_error(mask):
            return self.execute(cmd.Whois(mask), "WHO", mask)
        # A mask pattern or a name that cannot exist: an empty list.
        return self.numeric(twirc.RPL_ENDOFWHO, mask, trailing=END_WHO)

    def on_whois(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[-1]:
            return self.numeric(twirc.ERR_NONICKNAMEGIVEN, trailing="No nickname given")
        mask = params[-1]
        first = mask.split(",")[0]
        if nick_error(first):
            return self.numeric(
                twirc.ERR_NOSUCHNICK, first, trailing="No such nick/channel"
            ) + self.numeric(twirc.RPL_ENDOFWHOIS, mask, trailing=END_WHOIS)
        return self.execute(cmd.Whois(first), "WHOIS", mask)

    def on_mode(self, params: Sequence[str]) -> list[Output]:
        if not params or not params[0]:
            return self.need_more("MODE")
        target = params[0]
        if target.startswith("#"):
            return self.channel_mode(target, params[1:])
        if nick_error(target):
            return self.numeric(
                twirc.ERR_NOSUCHNICK, target, trailing="No such nick/channel"
            )
        if name_key(target) != name_key(self.nick):
            return self.execute(cmd.Whois(target), "MODE", target)
        if len(params) < 2:
            return self.numeric(twirc.RPL_UMODEIS, USER_MODES)
        if set(params[1]) <= {"+", "i"} and params[1].startswith("+"):
            # +i is always set (clients ask for it on connecting): nothing
            # changes, and nothing is said.
            return []
        # No other user mode exists, and +i cannot be removed.
        return self.numeric(twirc.ERR_UMODEUNKNOWNFLAG, trailing="Unknown MODE flag")

    def channel_mode(self, target: str, changes: Sequence[str]) -> list[Output]:
        name = room_name(target)
        if name is None:
            return self.numeric(
                twirc.ERR_NOSUCHCHANNEL, target, trailing="No such channel"
            )
        if not changes:
            return self.execute(cmd.Who(name), "MODE", target)
        modes = changes[0]
        if modes.lstrip("+") == "b" and len(changes) == 1:
            # Clients ask for the ban list on joining: there are no bans.
            return self.numeric(
                twirc.RPL_ENDOFBANLIST, target, trailing="End of channel ban list"
            )
        out: list[Output] = []
        for letter in dict.fromkeys(modes.replace("+", "").replace("-", "")):
            if letter not in "to":
                out += self.numeric(
                    twirc.ERR_UNKNOWNMODE, letter, trailing="is unknown mode char to me"
                )
        if modes.startswith("+") and set(modes[1:]) == {"t"}:
            return out  # +t is always set: nothing changes.
        if not out:
            out += self.numeric(
                twirc.ERR_CHANOPRIVSNEEDED,
                target,
                trailing="Channel modes cannot be changed on this server",
            )
        return out

    def on_chathistory(self, params: Sequence[str]) -> list[Output]:
        if not self.offers_history:
            return self.numeric(
                twirc.ERR_UNKNOWNCOMMAND, "CHATHISTORY", trailing="Unknown command"
            )
        asked = self.history.command(params)
        if not isinstance(asked, Request):
            return self.send(asked)
        context = Context("CHATHISTORY", asked.target, asked.subcommand)
        return [Execute(asked.command, context)]

    def on_help(self, params: Sequence[str]) -> list[Output]:
        return self.send(self.renderer.help(self.nick, params[0] if params else ""))

    def on_cap(self, params: Sequence[str]) -> list[Output]:
        return self.common(IRCMessage("CAP", tuple(params)))

    def on_ping(self, params: Sequence[str]) -> list[Output]:
        return self.common(IRCMessage("PING", tuple(params)))

    def on_pong(self, params: Sequence[str]) -> list[Output]:
        return []


_HANDLERS: dict[str, Callable[[_Connection, Sequence[str]], list[Output]]] = {
    "PRIVMSG": _Connection.on_privmsg,
    "NOTICE": _Connection.on_notice,
    "JOIN": _Connection.on_join,
    "PART": _Connection.on_part,
    "QUIT": _Connection.on_quit,
    "NICK": _Connection.on_nick,
    "USER": _Connection.on_user,
    "PASS": _Connection.on_pass,
    "TOPIC": _Connection.on_topic,
    "KICK": _Connection.on_kick,
    "AWAY": _Connection.on_away,
    "NAMES": _Connection.on_names,
    "LIST": _Connection.on_list,
    "WHO": _Connection.on_who,
    "WHOIS": _Connection.on_whois,
    "MODE": _Connection.on_mode,
    "HELP": _Connection.on_help,
    "CHATHISTORY": _Connection.on_chathistory,
    "CAP": _Connection.on_cap,
    "PING": _Connection.on_ping,
    "PONG": _Connection.on_pong,
}


def _build_registration() -> TypeMachine[_Registration, _Connection]:
    builder = TypeMachineBuilder(_Registration, _Connection)
    unregistered = builder.state("unregistered")
    negotiating = builder.state("negotiating")
    registering = builder.state("registering")
    registered = builder.state("registered")
    closing = builder.state("closing")
    everywhere = (unregistered, negotiating, registering, registered, closing)

    @unregistered.upon(_Registration.message).loop()
    @negotiating.upon(_Registration.message).loop()
    @registering.upon(_Registration.message).loop()
    def before(r: _Registration, c: _Connection, message: IRCMessage) -> list[Output]:
        return c.unregistered(message)

    @registered.upon(_Registration.message).loop()
    def after(r: _Registration, c: _Connection, message: IRCMessage) -> list[Output]:
        return c.registered(message)

    closing.upon(_Registration.message).loop().returns([])

    unregistered.upon(_Registration.negotiation_started).to(negotiating).returns(None)
    for state in (negotiating, registering, registered, closing):
        state.upon(_Registration.negotiation_started).loop().returns(None)

    negotiating.upon(_Registration.negotiation_ended).to(unregistered).returns(None)
    for state in (unregistered, registering, registered, closing):
        state.upon(_Registration.negotiation_ended).loop().returns(None)

    @unregistered.upon(_Registration.identified).to(registering)
    def identified(r: _Registration, c: _Connection) -> list[Output]:
        return c.register()

    for state in (negotiating, registering, registered, closing):
        state.upon(_Registration.identified).loop().returns([])

    registering.upon(_Registration.welcomed).to(registered).returns(None)
    for state in (unregistered, negotiating, registered, closing):
        state.upon(_Registration.welcomed).loop().returns(None)

    registering.upon(_Registration.nick_refused).to(unregistered).returns(None)
    for state in (unregistered, negotiating, registered, closing):
        state.upon(_Registration.nick_refused).loop().returns(None)

    for state in everywhere:
        state.upon(_Registration.closing).to(closing).returns(None)

    return builder.build()


_RegistrationMachine = _build_registration()


class IRCSession:
    """
    One IRC connection's state, without the connection.

    The protocol class feeds it every line (L{line_received}) and every reply
    the core gives this user (L{reply_received}), and carries out the
    L{Output}s it returns, in order.  Room and user events do not pass here:
    they come rendered by L{IRCRenderer}, in the variant L{server_time}.
    """

    def __init__(
        self,
        renderer: IRCRenderer | None = None,
        capabilities: frozenset[str] = SUPPORTED_CAPABILITIES,
    ) -> None:
        renderer = renderer or IRCRenderer()
        info = renderer.info
        offers_history = info.history_limit > 0
        if offers_history:
            capabilities = capabilities | HISTORY_CAPABILITIES
        history = IRCHistory(info.server_name, info.history_limit)
        self._connection = _Connection(renderer, capabilities, history, offers_history)
        self._machine = _RegistrationMachine(self._connection)
        self.registered = False
        # The command of the last message received (C{""} for none), so the
        # connection can tell keepalive (PING, PONG) from the rest.
        self.last_command = ""

    @property
    def nick(self) -> str:
        """The nickname replies are addressed to: C{*} until registered."""
        return self._connection.nick

    @property
    def server_time(self) -> bool:
        """The variant of room and user events this connection receives."""
        return "server-time" in self._connection.enabled

    @property
    def echo_message(self) -> bool:
        """Whether this user's own messages are delivered back to them."""
        return "echo-message" in self._connection.enabled

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities enabled on this connection."""
        return frozenset(self._connection.enabled)

    def nick_changed(self, new: str) -> None:
        """The core renamed this user (a NICK it accepted)."""
        self._connection.nick = new

    def line_received(self, line: bytes) -> list[Output]:
        """One line from the client, without its line ending."""
        c = self._connection
        parsed = parse_message(line)
        if parsed is None:
            self.last_command = ""
            return []
        if isinstance(parsed, BadLine):
            self.last_command = ""
            return self._bad_line(parsed)
        self.last_command = parsed.command
        sub = parsed.params[0].upper() if parsed.params else ""
        if parsed.command == "CAP" and sub in ("LS", "REQ"):
            self._machine.negotiation_started()
        out = self._machine.message(parsed)
        if parsed.command == "CAP" and sub == "END":
            self._machine.negotiation_ended()
        if parsed.command == "QUIT":
            self._machine.closing()
        if c.pending_nick is not None and c.user is not None:
            out += self._machine.identified()
        return out

    def line_too_long(self) -> list[Output]:
        """
        The connection discarded a line longer than any client may send
        (L{twisted_chat.server.irc_wire.MAX_CLIENT_LINE_BYTES}).
        """
        return self._bad_line(BadLine(TOO_LONG))

    def _bad_line(self, bad: BadLine) -> list[Output]:
        c = self._connection
        if bad.reason == TOO_LONG:
            return c.numeric(ERR_INPUTTOOLONG, trailing="Input line was too long")
        if bad.reason == NOT_UTF8:
            return c.notice("Your line is not valid UTF-8 and was not sent.")
        return []

    def reply_received(
        self, reply: ev.Reply | ev.RoomEvent | ev.UserEvent, context: Context | None
    ) -> list[Output]:
        """
        What the core gives this user alone (L{IChatClient.reply}): a reply
        to a command of L{Execute} or L{Register} (with its context), or
        unasked (C{None}); or a room or user event that only this user is
        told of (joining a room too large to announce joins).
        """
        c = self._connection
        if isinstance(reply, ev.RoomEvent | ev.UserEvent):
            return c.send(c.renderer.render(reply, self.server_time))
        if isinstance(reply, ev.History):
            # A replay on joining, or an answer to CHATHISTORY.
            return c.send(c.history.render(reply, self.capabilities))
        if isinstance(reply, ev.Error):
            if context is not None and context.verb == "CHATHISTORY":
                fail = c.history.error(reply, context.detail, context.target)
            else:
                fail = c.history.late_error(reply)
            if fail is not None:
                return c.send(fail)
        if context == REGISTER:
            if isinstance(reply, ev.Welcome):
                c.nick = reply.nick
                c.pending_nick = None
                self._machine.welcomed()
                self.registered = True
            elif isinstance(reply, ev.Error) and reply.code in (
                ev.ErrorCode.NICK_IN_USE,
                ev.ErrorCode.ERRONEOUS_NICK,
            ):
                c.pending_nick = None
                self._machine.nick_refused()
        if (
            isinstance(reply, ev.PrivateMessage)
            and not self.echo_message
            and name_key(reply.source.nick) == name_key(c.nick)
            and name_key(reply.target) != name_key(c.nick)
        ):
            # The sender's own copy: only with echo-message.
            return []
        return c.send(c.renderer.render_reply(reply, c.nick, self.server_time, context))
