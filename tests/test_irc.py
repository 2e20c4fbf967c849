"""
Tests for L{twisted_chat.server.irc}: the IRC rendering of the core's events
and replies, and the translation of a client's IRC messages, registration
included.  Exact bytes everywhere.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from twisted_chat.core import events as ev
from twisted_chat.core.interfaces import IRenderer
from twisted_chat.server.irc import (
    REGISTER,
    SUPPORTED_CAPABILITIES,
    Close,
    Context,
    Execute,
    IRCRenderer,
    IRCServerInfo,
    IRCSession,
    Output,
    Register,
    Send,
    username,
)
from twisted_chat.server.irc_wire import MAX_LINE_BYTES
from twisted_chat.shared import commands as cmd

property_settings = settings(database=None, deadline=None, max_examples=200)

INFO = IRCServerInfo(
    server_name="irc.test",
    network="TestNet",
    version="tc-1",
    created="today",
    motd=("Be nice.",),
)
R = IRCRenderer(INFO)
BOB = ev.Source("bob", "~b", "b.host")
T = 1700000000.5
TIME = b"@time=2023-11-14T22:13:20.500Z "


def data(outputs: list[Output]) -> bytes:
    """Everything the outputs send, in order; fails on any other output."""
    sent = b""
    for output in outputs:
        assert isinstance(output, Send), output
        sent += output.data
    return sent


class RenderEventTests(SynchronousTestCase):
    """L{IRCRenderer.render}: room and user events, in both variants."""

    def test_interface(self) -> None:
        """IRCRenderer provides IRenderer."""
        self.assertTrue(verifyObject(IRenderer, R))

    def test_message(self) -> None:
        """A message is a PRIVMSG to the channel from nick!user@host."""
        event = ev.Message("dev", 1, T, BOB, "hello there")
        self.assertEqual(
            R.render(event, False), b":bob!~b@b.host PRIVMSG #dev :hello there\r\n"
        )

    def test_server_time(self) -> None:
        """With server-time, the time tag comes first."""
        event = ev.Message("dev", 1, T, BOB, "hi")
        self.assertEqual(
            R.render(event, True), TIME + b":bob!~b@b.host PRIVMSG #dev :hi\r\n"
        )

    def test_action(self) -> None:
        """An action is CTCP ACTION, unquoted."""
        event = ev.Action("dev", 1, T, BOB, "waves at C:\\temp")
        self.assertEqual(
            R.render(event, False),
            b":bob!~b@b.host PRIVMSG #dev :\x01ACTION waves at C:\\temp\x01\r\n",
        )

    def test_room_notice(self) -> None:
        """A room notice is a NOTICE to the channel."""
        event = ev.RoomNotice("dev", 1, T, BOB, "deploy at 5")
        self.assertEqual(
            R.render(event, False), b":bob!~b@b.host NOTICE #dev :deploy at 5\r\n"
        )

    def test_joined(self) -> None:
        """JOIN with the channel as a middle parameter."""
        self.assertEqual(
            R.render(ev.Joined("dev", 1, T, BOB), False),
            b":bob!~b@b.host JOIN #dev\r\n",
        )

    def test_parted(self) -> None:
        """PART with its reason, or without one."""
        self.assertEqual(
            R.render(ev.Parted("dev", 1, T, BOB, "lunch"), False),
            b":bob!~b@b.host PART #dev :lunch\r\n",
        )
        self.assertEqual(
            R.render(ev.Parted("dev", 1, T, BOB, ""), False),
            b":bob!~b@b.host PART #dev\r\n",
        )

    def test_kicked(self) -> None:
        """KICK channel target :reason; the kicker's nick when no reason."""
        self.assertEqual(
            R.render(ev.Kicked("dev", 1, T, BOB, "eve", "spam"), False),
            b":bob!~b@b.host KICK #dev eve :spam\r\n",
        )
        self.assertEqual(
            R.render(ev.Kicked("dev", 1, T, BOB, "eve", ""), False),
            b":bob!~b@b.host KICK #dev eve :bob\r\n",
        )

    def test_topic_changed(self) -> None:
        """TOPIC with the new topic; an empty one clears it."""
        self.assertEqual(
            R.render(ev.TopicChanged("dev", 1, T, BOB, "release day"), False),
            b":bob!~b@b.host TOPIC #dev :release day\r\n",
        )
        self.assertEqual(
            R.render(ev.TopicChanged("dev", 1, T, BOB, ""), True),
            TIME + b":bob!~b@b.host TOPIC #dev :\r\n",
        )

    def test_quit(self) -> None:
        """QUIT :Quit: reason, as the Modern IRC document asks for a user's
        own QUIT."""
        self.assertEqual(
            R.render(ev.Quit(T, BOB, "bye", (("dev", 3),), requested=True), False),
            b":bob!~b@b.host QUIT :Quit: bye\r\n",
        )
        self.assertEqual(
            R.render(ev.Quit(T, BOB, "excess flood", (("dev", 3),)), False),
            b":bob!~b@b.host QUIT :excess flood\r\n",
        )

    def test_nick_changed(self) -> None:
        """NICK from the old source, the new nick as a middle parameter."""
        self.assertEqual(
            R.render(ev.NickChanged(T, BOB, "robert", ()), True),
            TIME + b":bob!~b@b.host NICK robert\r\n",
        )

    def test_not_an_event(self) -> None:
        """A reply is not rendered as a shared event."""
        self.assertRaises(TypeError, R.render, ev.Welcome("bob"), False)

    def test_long_message_split(self) -> None:
        """A message too long for one IRC line is split at spaces into
        several PRIVMSGs, each within 512 bytes, losing nothing."""
        text = " ".join(["word"] * 800)
        lines = R.render(ev.Message("dev", 1, T, BOB, text), False).split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        lines = lines[:-1]
        self.assertGreater(len(lines), 1)
        head = b":bob!~b@b.host PRIVMSG #dev :"
        pieces = []
        for line in lines:
            self.assertLessEqual(len(line) + 2, MAX_LINE_BYTES)
            self.assertTrue(line.startswith(head))
            pieces.append(line[len(head) :].decode())
        self.assertEqual("".join(pieces), text)

    def test_long_action_split(self) -> None:
        """Each piece of a long action is a whole CTCP ACTION."""
        text = "é" * 2000
        lines = R.render(ev.Action("dev", 1, T, BOB, text), False).split(b"\r\n")[:-1]
        head = b":bob!~b@b.host PRIVMSG #dev :\x01ACTION "
        pieces = []
        for line in lines:
            self.assertLessEqual(len(line) + 2, MAX_LINE_BYTES)
            self.assertTrue(line.startswith(head))
            self.assertTrue(line.endswith(b"\x01"))
            pieces.append(line[len(head) : -1].decode())
        self.assertEqual("".join(pieces), text)

    @property_settings
    @given(st.text(max_size=4096), st.booleans())
    def test_always_lines(self, text: str, variant: bool) -> None:
        """Whatever the text (up to the line protocol's 4096), every line
        rendered is within 512 bytes plus tags and holds no CR or LF."""
        for event in [
            ev.Message("dev", 1, T, BOB, text),
            ev.Action("dev", 1, T, BOB, text),
            ev.Parted("dev", 1, T, BOB, text),
            ev.Quit(T, BOB, text, ()),
        ]:
            rendered = R.render(event, variant)
            self.assertTrue(rendered.endswith(b"\r\n"))
            for line in rendered[:-2].split(b"\r\n"):
                self.assertNotIn(b"\r", line)
                self.assertNotIn(b"\n", line)
                if variant:
                    self.assertTrue(line.startswith(TIME))
                    line = line[len(TIME) :]
                self.assertLessEqual(len(line) + 2, MAX_LINE_BYTES)


class RenderReplyTests(SynchronousTestCase):
    """L{IRCRenderer.render_reply}: numerics and their parameters."""

    def reply(self, reply: ev.Reply, verb: str = "", target: str = "") -> bytes:
        context = Context(verb, target) if verb else None
        return R.render_reply(reply, "al", False, context)

    def test_welcome(self) -> None:
        """001 to 005, then the message of the day."""
        self.assertEqual(
            self.reply(ev.Welcome("al")),
            b":irc.test 001 al :Welcome to the TestNet Network, al\r\n"
            b":irc.test 002 al :Your host is irc.test, running version tc-1\r\n"
            b":irc.test 003 al :This server was created today\r\n"
            b":irc.test 004 al irc.test tc-1 i ot o\r\n"
            b":irc.test 005 al CASEMAPPING=ascii CHANMODES=,,,t CHANNELLEN=33 "
            b"CHANTYPES=# NETWORK=TestNet NICKLEN=20 PREFIX=(o)@ "
            b"TARGMAX=JOIN:,KICK:4,LIST:,NAMES:,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1 "
            b"TOPICLEN=300 :are supported by this server\r\n"
            b":irc.test 375 al :- irc.test Message of the day - \r\n"
            b":irc.test 372 al :- Be nice.\r\n"
            b":irc.test 376 al :End of /MOTD command.\r\n",
        )

    def test_no_motd(self) -> None:
        """Without a message of the day: 422; a network name with a space is
        escaped in 005."""
        renderer = IRCRenderer(IRCServerInfo(network="Test Net"))
        welcome = renderer.render_reply(ev.Welcome("al"), "al", False)
        self.assertIn(b" NETWORK=Test\\x20Net ", welcome)
        self.assertTrue(
            welcome.endswith(b":twisted-chat 422 al :MOTD File is missing\r\n")
        )

    def test_names(self) -> None:
        """353 with = and @ for operators, then 366."""
        names = ev.Names("dev", (ev.Member("bob", True), ev.Member("al")), 2)
        self.assertEqual(
            self.reply(names),
            b":irc.test 353 al = #dev :@bob al\r\n"
            b":irc.test 366 al #dev :End of /NAMES list\r\n",
        )

    def test_names_split(self) -> None:
        """A long member list takes several 353 lines, each within 512
        bytes, and no name is lost or cut."""
        members = tuple(ev.Member(f"user{i:04d}xxxxxxxxxxx") for i in range(300))
        lines = self.reply(ev.Names("dev", members, 300)).split(b"\r\n")[:-1]
        self.assertEqual(lines[-1], b":irc.test 366 al #dev :End of /NAMES list")
        seen = []
        for line in lines[:-1]:
            self.assertLessEqual(len(line) + 2, MAX_LINE_BYTES)
            head, _, names = line.partition(b" :")
            self.assertEqual(head, b":irc.test 353 al = #dev")
            seen += names.decode().split(" ")
        self.assertEqual(seen, [m.nick for m in members])
        self.assertGreater(len(lines), 10)

    def test_list(self) -> None:
        """321, one 322 per room (topic trailing, even empty), 323."""
        rooms = ev.RoomList(
            (ev.RoomInfo("dev", 3, "code"), ev.RoomInfo("lobby", 9, ""))
        )
        self.assertEqual(
            self.reply(rooms, "LIST"),
            b":irc.test 321 al Channel :Users  Name\r\n"
            b":irc.test 322 al #dev 3 :code\r\n"
            b":irc.test 322 al #lobby 9 :\r\n"
            b":irc.test 323 al :End of /LIST\r\n",
        )

    def test_list_filtered(self) -> None:
        """LIST #a,#b lists only those channels, ignoring case."""
        rooms = ev.RoomList(
            (ev.RoomInfo("dev", 3, "code"), ev.RoomInfo("lobby", 9, ""))
        )
        self.assertEqual(
            self.reply(rooms, "LIST", "#DEV,#other"),
            b":irc.test 321 al Channel :Users  Name\r\n"
            b":irc.test 322 al #dev 3 :code\r\n"
            b":irc.test 323 al :End of /LIST\r\n",
        )

    def test_list_conditions_ignored(self) -> None:
        """LIST >3 (an ELIST condition, not advertised) lists every room."""
        rooms = ev.RoomList((ev.RoomInfo("dev", 3, "code"),))
        self.assertIn(b" 322 al #dev 3 :code\r\n", self.reply(rooms, "LIST", ">3"))

    def test_topic(self) -> None:
        """332 and 333 (setter, time as an integer)."""
        self.assertEqual(
            self.reply(ev.Topic("dev", "code", "bob", T), "TOPIC"),
            b":irc.test 332 al #dev :code\r\n:irc.test 333 al #dev bob 1700000000\r\n",
        )

    def test_no_topic(self) -> None:
        """331 when asked; nothing on joining."""
        self.assertEqual(
            self.reply(ev.Topic("dev", "", "", 0.0), "TOPIC"),
            b":irc.test 331 al #dev :No topic is set\r\n",
        )
        self.assertEqual(self.reply(ev.Topic("dev", "", "", 0.0)), b"")

    def test_whois(self) -> None:
        """311, 319, 312, 301 when away, 317, and 318 with the mask as
        sent; a host starting with a colon gets a 0."""
        whois = ev.Whois("bob", "~b", "::1", ("dev", "lobby"), "lunch", 65.7, 1000.0)
        self.assertEqual(
            self.reply(whois, "WHOIS", "Bob"),
            b":irc.test 311 al bob ~b 0::1 * :bob\r\n"
            b":irc.test 319 al bob :#dev #lobby\r\n"
            b":irc.test 312 al bob irc.test :TestNet\r\n"
            b":irc.test 301 al bob :lunch\r\n"
            b":irc.test 317 al bob 65 1000 :seconds idle, signon time\r\n"
            b":irc.test 318 al Bob :End of /WHOIS list\r\n",
        )

    def test_whois_here_no_rooms(self) -> None:
        """No 301 when not away, no 319 when in no room."""
        whois = ev.Whois("bob", "~b", "h", (), None, 0, 5)
        self.assertEqual(
            self.reply(whois, "WHOIS", "bob"),
            b":irc.test 311 al bob ~b h * :bob\r\n"
            b":irc.test 312 al bob irc.test :TestNet\r\n"
            b":irc.test 317 al bob 0 5 :seconds idle, signon time\r\n"
            b":irc.test 318 al bob :End of /WHOIS list\r\n",
        )

    def test_whois_realname_and_operator(self) -> None:
        """311 ends with the real name; 319 marks the rooms where the user
        is an operator with @."""
        whois = ev.Whois(
            "bob", "~b", "h", ("dev", "lobby"), None, 0, 5, "Bob B", ("Dev",)
        )
        reply = self.reply(whois, "WHOIS", "bob")
        self.assertIn(b":irc.test 311 al bob ~b h * :Bob B\r\n", reply)
        self.assertIn(b":irc.test 319 al bob :@#dev #lobby\r\n", reply)

    def test_who_channel(self) -> None:
        """WHO #room: one 352 per member (user, host, H or G for away, @ for
        operators), then 315 with the mask."""
        names = ev.Names(
            "dev",
            (
                ev.Member("bob", True, "~b", "b.host"),
                ev.Member("eve", False, "~e", "::1", away=True),
                ev.Member("old"),
            ),
            3,
        )
        self.assertEqual(
            self.reply(names, "WHO", "#dev"),
            b":irc.test 352 al #dev ~b b.host irc.test bob H@ :0 bob\r\n"
            b":irc.test 352 al #dev ~e 0::1 irc.test eve G :0 eve\r\n"
            b":irc.test 352 al #dev * * irc.test old H :0 old\r\n"
            b":irc.test 315 al #dev :End of WHO list\r\n",
        )

    def test_who_nick(self) -> None:
        """WHO nick: one 352 (G when away), then 315."""
        whois = ev.Whois("bob", "~b", "h", ("dev",), "out", 0, 5)
        self.assertEqual(
            self.reply(whois, "WHO", "bob"),
            b":irc.test 352 al #dev ~b h irc.test bob G :0 bob\r\n"
            b":irc.test 315 al bob :End of WHO list\r\n",
        )

    def test_channel_mode(self) -> None:
        """MODE #room: 324 with +t."""
        self.assertEqual(
            self.reply(ev.Names("dev", (), 0), "MODE", "#dev"),
            b":irc.test 324 al #dev +t\r\n",
        )

    def test_other_user_mode(self) -> None:
        """MODE othernick: 502."""
        whois = ev.Whois("bob", "~b", "h", (), None, 0, 5)
        self.assertEqual(
            self.reply(whois, "MODE", "bob"),
            b":irc.test 502 al :Can't view modes for other users\r\n",
        )

    def test_private_message(self) -> None:
        """PRIVMSG, CTCP ACTION or NOTICE to the recipient; tagged with
        server-time."""
        self.assertEqual(
            self.reply(ev.PrivateMessage(T, BOB, "al", "hi")),
            b":bob!~b@b.host PRIVMSG al :hi\r\n",
        )
        self.assertEqual(
            self.reply(ev.PrivateMessage(T, BOB, "al", "waves", "action")),
            b":bob!~b@b.host PRIVMSG al :\x01ACTION waves\x01\r\n",
        )
        self.assertEqual(
            R.render_reply(
                ev.PrivateMessage(T, BOB, "al", "psst", "notice"), "al", True
            ),
            TIME + b":bob!~b@b.host NOTICE al :psst\r\n",
        )

    def test_notices(self) -> None:
        """AWAY is 301, UNAWAY 305, NOW_AWAY 306, others server NOTICEs."""
        N = ev.NoticeCode
        self.assertEqual(
            self.reply(ev.Notice(N.AWAY, "bob is away: lunch", ("bob", "lunch"))),
            b":irc.test 301 al bob :lunch\r\n",
        )
        self.assertEqual(
            self.reply(ev.Notice(N.UNAWAY, "back")),
            b":irc.test 305 al :You are no longer marked as being away\r\n",
        )
        self.assertEqual(
            self.reply(ev.Notice(N.NOW_AWAY, "away")),
            b":irc.test 306 al :You have been marked as being away\r\n",
        )
        self.assertEqual(
            self.reply(ev.Notice(N.FLOOD_DELAY, "slow down", ("5",))),
            b":irc.test NOTICE al :slow down\r\n",
        )
        self.assertEqual(self.reply(ev.Notice(N.ALREADY_IN_ROOM, "x", ("dev",))), b"")
        self.assertEqual(self.reply(ev.Notice(N.ALREADY_NICK, "x", ("al",))), b"")

    def test_goodbye(self) -> None:
        """The goodbye and the shutdown notices are ERROR messages."""
        N = ev.NoticeCode
        self.assertEqual(
            self.reply(ev.Notice(N.GOODBYE, "Goodbye (bye)", ("bye",))),
            b"ERROR :Closing link: bye\r\n",
        )
        self.assertEqual(
            self.reply(ev.Notice(N.SHUTDOWN, "stopping", ("the server is stopping",))),
            b"ERROR :Server shutting down: the server is stopping\r\n",
        )

    def test_errors(self) -> None:
        """Each error code's numeric and parameters."""
        E = ev.ErrorCode
        cases = [
            (E.NO_SUCH_NICK, ("bob",), b"401 al bob :No such nick/channel"),
            (E.NO_SUCH_ROOM, ("dev",), b"403 al #dev :No such channel"),
            (E.CANNOT_SEND, ("dev",), b"404 al #dev :Cannot send to channel"),
            (E.UNKNOWN_COMMAND, ("FOO",), b"421 al FOO :Unknown command"),
            (E.ERRONEOUS_NICK, ("a.b",), b"432 al a.b :Erroneous nickname"),
            (E.NICK_IN_USE, ("bob",), b"433 al bob :Nickname is already in use"),
            (
                E.USER_NOT_IN_ROOM,
                ("bob", "dev"),
                b"441 al bob #dev :They aren't on that channel",
            ),
            (E.NOT_IN_ROOM, ("dev",), b"442 al #dev :You're not on that channel"),
            (E.NOT_OPERATOR, ("dev",), b"482 al #dev :You're not channel operator"),
            (E.BAD_ROOM_NAME, ("a.b",), b"479 al #a.b :Illegal channel name"),
            (E.USAGE, ("msg",), b"461 al MSG :Not enough parameters"),
            (E.LINE_TOO_LONG, ("4096",), b"417 al :Input line was too long"),
            (E.BAD_TEXT, (), b"NOTICE al :refused"),
            (E.NOT_UTF8, (), b"NOTICE al :refused"),
            (E.UNAVAILABLE, (), b"263 al * :refused"),
        ]
        for code, args, expected in cases:
            self.assertEqual(
                self.reply(ev.Error(code, "refused", args)),
                b":irc.test " + expected + b"\r\n",
                code,
            )

    def test_disconnecting_errors(self) -> None:
        """Flood, send queue and idle disconnections are ERROR messages."""
        for code in (ev.ErrorCode.FLOOD, ev.ErrorCode.SEND_QUEUE, ev.ErrorCode.IDLE):
            self.assertEqual(
                self.reply(ev.Error(code, "Excess flood")),
                b"ERROR :Closing link: Excess flood\r\n",
            )

    def test_disconnecting_errors_name_the_reason(self) -> None:
        """A disconnection that names its reason closes the link with it."""
        error = ev.Error(ev.ErrorCode.IDLE, "Disconnected: ...", ("Ping timeout: 4 s",))
        self.assertEqual(
            self.reply(error), b"ERROR :Closing link: Ping timeout: 4 s\r\n"
        )

    def test_errors_in_context(self) -> None:
        """The request changes the form: WHOIS ends with 318, NAMES of no
        room is 366 alone, WHO of nobody is 315 alone, USAGE names the IRC
        command, and nothing ever answers a NOTICE."""
        E = ev.ErrorCode
        self.assertEqual(
            self.reply(ev.Error(E.NO_SUCH_NICK, "no", ("bob",)), "WHOIS", "Bob"),
            b":irc.test 401 al bob :No such nick/channel\r\n"
            b":irc.test 318 al Bob :End of /WHOIS list\r\n",
        )
        self.assertEqual(
            self.reply(ev.Error(E.NO_SUCH_ROOM, "no", ("dev",)), "NAMES", "#Dev"),
            b":irc.test 366 al #Dev :End of /NAMES list\r\n",
        )
        self.assertEqual(
            self.reply(ev.Error(E.NO_SUCH_NICK, "no", ("bob",)), "WHO", "bob"),
            b":irc.test 315 al bob :End of WHO list\r\n",
        )
        self.assertEqual(
            self.reply(ev.Error(E.USAGE, "no", ("msg",)), "KICK", "#dev"),
            b":irc.test 461 al KICK :Not enough parameters\r\n",
        )
        self.assertEqual(
            self.reply(ev.Error(E.CANNOT_SEND, "no", ("dev",)), "NOTICE", "#dev"), b""
        )

    def test_history(self) -> None:
        """
        Stored lines replayed on joining: as said, with their own time in the
        tag under server-time; otherwise as the server's NOTICE with the
        history mark (see irc_history).
        """
        history = ev.History(
            "dev",
            (
                ev.Message("dev", 4, T, BOB, "earlier"),
                ev.Action("dev", 6, T, BOB, "waves"),
            ),
        )
        self.assertEqual(
            R.render_reply(history, "al", True),
            TIME
            + b":bob!~b@b.host PRIVMSG #dev :earlier\r\n"
            + TIME
            + b":bob!~b@b.host PRIVMSG #dev :\x01ACTION waves\x01\r\n",
        )
        self.assertEqual(
            self.reply(history),
            b":irc.test NOTICE #dev :[history 2023-11-14 22:13:20Z] <bob> earlier\r\n"
            b":irc.test NOTICE #dev :[history 2023-11-14 22:13:20Z] * bob waves\r\n",
        )

    def test_current_room(self) -> None:
        """IRC has no current room: nothing."""
        self.assertEqual(self.reply(ev.CurrentRoom("dev")), b"")

    def test_help(self) -> None:
        """704, 705..., 706 with the subject; 524 for an unknown one."""
        help_ = self.reply(ev.Help(), "HELP", "join")
        self.assertEqual(
            help_,
            b":irc.test 704 al join :JOIN <#channel>[,...]\r\n"
            b":irc.test 705 al join :Join channels; JOIN 0 leaves them all.\r\n"
            b":irc.test 706 al join :End of /HELP\r\n",
        )
        index = self.reply(ev.Help())
        self.assertTrue(index.startswith(b":irc.test 704 al * :twisted-chat: rooms"))
        self.assertTrue(index.endswith(b":irc.test 706 al * :End of /HELP\r\n"))
        self.assertEqual(
            R.help("al", "frob"),
            b":irc.test 524 al frob :No help available on this topic\r\n",
        )


def registered(caps: str = "") -> IRCSession:
    """A session registered as C{al}, with C{caps} requested."""
    session = IRCSession(R)
    if caps:
        session.line_received(b"CAP REQ :" + caps.encode())
        session.line_received(b"CAP END")
    session.line_received(b"NICK al")
    session.line_received(b"USER al 0 * :Al")
    session.reply_received(ev.Welcome("al"), REGISTER)
    return session


class RegistrationTests(SynchronousTestCase):
    """The registration state machine of L{IRCSession}."""

    def test_nick_then_user(self) -> None:
        """NICK and USER register, with a sanitised user name."""
        session = IRCSession(R)
        self.assertEqual(session.line_received(b"NICK al"), [])
        self.assertEqual(
            session.line_received(b"USER a.l!@x 0 * :Al Lee"),
            [Register("al", "~a.lx", "Al Lee")],
        )
        self.assertEqual(session.nick, "*")
        welcome = data(session.reply_received(ev.Welcome("al"), REGISTER))
        self.assertTrue(welcome.startswith(b":irc.test 001 al :Welcome"))
        self.assertEqual(session.nick, "al")
        self.assertTrue(session.registered)

    def test_user_then_nick(self) -> None:
        """The order of NICK and USER does not matter."""
        session = IRCSession(R)
        self.assertEqual(session.line_received(b"USER al 0 * :Al"), [])
        self.assertEqual(
            session.line_received(b"NICK al"), [Register("al", "~al", "Al")]
        )

    def test_cap_holds_registration(self) -> None:
        """After CAP LS, registration waits for CAP END."""
        session = IRCSession(R)
        self.assertEqual(
            data(session.line_received(b"CAP LS 302")),
            b":irc.test CAP * LS :cap-notify echo-message multi-prefix server-time\r\n",
        )
        session.line_received(b"NICK al")
        self.assertEqual(session.line_received(b"USER al 0 * :Al"), [])
        self.assertEqual(
            session.line_received(b"CAP END"), [Register("al", "~al", "Al")]
        )

    def test_cap_req_holds_registration(self) -> None:
        """CAP REQ without LS holds registration too."""
        session = IRCSession(R)
        session.line_received(b"CAP REQ :server-time")
        session.line_received(b"NICK al")
        self.assertEqual(session.line_received(b"USER al 0 * :Al"), [])
        self.assertEqual(
            session.line_received(b"CAP END"), [Register("al", "~al", "Al")]
        )
        self.assertTrue(session.server_time)

    def test_nick_in_use(self) -> None:
        """A refused nickname is 433 to *, and a new NICK registers again."""
        session = IRCSession(R)
        session.line_received(b"NICK al")
        session.line_received(b"USER al 0 * :Al")
        refusal = ev.Error(ev.ErrorCode.NICK_IN_USE, "taken", ("al",))
        self.assertEqual(
            data(session.reply_received(refusal, REGISTER)),
            b":irc.test 433 * al :Nickname is already in use\r\n",
        )
        self.assertEqual(
            session.line_received(b"NICK al2"), [Register("al2", "~al", "Al")]
        )

    def test_bad_nick(self) -> None:
        """A nickname the core does not allow is 432; none at all 431."""
        session = IRCSession(R)
        self.assertEqual(
            data(session.line_received(b"NICK a[b]")),
            b":irc.test 432 * a[b] :Erroneous nickname\r\n",
        )
        self.assertEqual(
            data(session.line_received(b"NICK")),
            b":irc.test 431 * :No nickname given\r\n",
        )
        self.assertEqual(session.line_received(b"USER al 0 * :Al"), [])

    def test_user_needs_four(self) -> None:
        """USER with fewer than four parameters, or an empty one, is 461."""
        session = IRCSession(R)
        for line in (b"USER al 0 *", b"USER al 0 * :"):
            self.assertEqual(
                data(session.line_received(line)),
                b":irc.test 461 * USER :Not enough parameters\r\n",
            )

    def test_not_registered(self) -> None:
        """Other commands before registration are 451."""
        session = IRCSession(R)
        self.assertEqual(
            data(session.line_received(b"JOIN #dev")),
            b":irc.test 451 * :You have not registered\r\n",
        )

    def test_pass_ignored(self) -> None:
        """PASS is accepted and ignored before registration, 462 after."""
        session = IRCSession(R)
        self.assertEqual(session.line_received(b"PASS secret"), [])
        self.assertEqual(
            data(registered().line_received(b"PASS secret")),
            b":irc.test 462 al :You may not reregister\r\n",
        )

    def test_quit_before_registration(self) -> None:
        """QUIT before registration: ERROR, then close; nothing more is read."""
        session = IRCSession(R)
        self.assertEqual(
            session.line_received(b"QUIT"),
            [Send(b"ERROR :Closing link: (Quit)\r\n"), Close("quit")],
        )
        self.assertEqual(session.line_received(b"NICK al"), [])
        self.assertEqual(session.line_received(b"USER al 0 * :Al"), [])

    def test_quit(self) -> None:
        """QUIT after registration goes to the core; then nothing is read."""
        session = registered()
        self.assertEqual(
            session.line_received(b"QUIT :\x02gone\x02 home"),
            [Execute(cmd.Quit("gone home"), Context("QUIT"))],
        )
        self.assertEqual(session.line_received(b"PRIVMSG #dev :hi"), [])

    def test_ping(self) -> None:
        """PING is answered with PONG, before and after registration."""
        self.assertEqual(
            data(IRCSession(R).line_received(b"PING :tok en")),
            b":irc.test PONG irc.test :tok en\r\n",
        )
        self.assertEqual(
            data(registered().line_received(b"PING")),
            b":irc.test 461 al PING :Not enough parameters\r\n",
        )

    def test_user_after_registration(self) -> None:
        """USER after registration is 462."""
        self.assertEqual(
            data(registered().line_received(b"USER x 0 * :x")),
            b":irc.test 462 al :You may not reregister\r\n",
        )

    def test_username(self) -> None:
        """User names: ~, safe characters, at most 16."""
        self.assertEqual(username("a" * 40), "~" + "a" * 15)
        self.assertEqual(username("!!!"), "~user")

    def test_bad_lines(self) -> None:
        """Too long: 417; not UTF-8: a NOTICE; empty: nothing."""
        session = registered()
        self.assertEqual(
            data(session.line_received(b"PRIVMSG #a :" + b"x" * 600)),
            b":irc.test 417 al :Input line was too long\r\n",
        )
        self.assertEqual(
            data(session.line_received(b"PRIVMSG #a :\xff")),
            b":irc.test NOTICE al :Your line is not valid UTF-8 and was not sent.\r\n",
        )
        self.assertEqual(session.line_received(b""), [])


class CapTests(SynchronousTestCase):
    """CAP negotiation."""

    def test_ls_301(self) -> None:
        """CAP LS without 302: no cap-notify enabled, one line, no values."""
        session = IRCSession(R)
        session.line_received(b"CAP LS")
        self.assertEqual(session.capabilities, frozenset())

    def test_ls_302_enables_cap_notify(self) -> None:
        """CAP LS 302 enables cap-notify, which cannot be disabled then."""
        session = IRCSession(R)
        session.line_received(b"CAP LS 302")
        self.assertEqual(
            data(session.line_received(b"CAP LIST")),
            b":irc.test CAP * LIST :cap-notify\r\n",
        )
        self.assertEqual(
            data(session.line_received(b"CAP REQ -cap-notify")),
            b":irc.test CAP * NAK :-cap-notify\r\n",
        )

    def test_empty_list(self) -> None:
        """CAP LIST with nothing enabled: an empty trailing parameter."""
        self.assertEqual(
            data(IRCSession(R).line_received(b"CAP LIST")),
            b":irc.test CAP * LIST :\r\n",
        )

    def test_req_atomic(self) -> None:
        """A REQ with one unknown capability is NAKed whole, and changes
        nothing."""
        session = IRCSession(R)
        self.assertEqual(
            data(session.line_received(b"CAP REQ :server-time sasl")),
            b":irc.test CAP * NAK :server-time sasl\r\n",
        )
        self.assertFalse(session.server_time)

    def test_req_and_remove(self) -> None:
        """REQ enables, -name disables, and the ACK repeats the request."""
        session = IRCSession(R)
        self.assertEqual(
            data(session.line_received(b"CAP REQ :server-time echo-message")),
            b":irc.test CAP * ACK :server-time echo-message\r\n",
        )
        self.assertTrue(session.server_time and session.echo_message)
        session.line_received(b"CAP REQ :-echo-message")
        self.assertEqual(session.capabilities, {"server-time"})

    def test_after_registration(self) -> None:
        """CAP works after registration, with the nick; END is ignored."""
        session = registered()
        self.assertEqual(
            data(session.line_received(b"CAP REQ multi-prefix")),
            b":irc.test CAP al ACK :multi-prefix\r\n",
        )
        self.assertEqual(session.line_received(b"CAP END"), [])

    def test_invalid(self) -> None:
        """An unknown subcommand is 410; none at all 461."""
        self.assertEqual(
            data(IRCSession(R).line_received(b"CAP FOO")),
            b":irc.test 410 * FOO :Invalid CAP command\r\n",
        )
        self.assertEqual(
            data(IRCSession(R).line_received(b"CAP")),
            b":irc.test 461 * CAP :Not enough parameters\r\n",
        )

    def test_advertised(self) -> None:
        """What is advertised is what the session was given."""
        session = IRCSession(R, frozenset({"server-time"}))
        self.assertEqual(
            data(session.line_received(b"CAP LS 302")),
            b":irc.test CAP * LS :server-time\r\n",
        )
        self.assertIn("server-time", SUPPORTED_CAPABILITIES)
        self.assertNotIn("message-tags", SUPPORTED_CAPABILITIES)


class TranslateTests(SynchronousTestCase):
    """A registered client's messages, as core commands or local replies."""

    def setUp(self) -> None:
        self.session = registered()

    def lines(self, line: bytes) -> list[Output]:
        return self.session.line_received(line)

    def test_privmsg_channel(self) -> None:
        """PRIVMSG #room is Say to that room, formatting codes stripped."""
        self.assertEqual(
            self.lines(b"PRIVMSG #dev :\x02bold\x02 and \x0304red"),
            [Execute(cmd.Say("bold and red", "dev"), Context("PRIVMSG", "#dev"))],
        )

    def test_privmsg_nick(self) -> None:
        """PRIVMSG nick is Msg."""
        self.assertEqual(
            self.lines(b"PRIVMSG bob :hi"),
            [Execute(cmd.Msg("bob", "hi"), Context("PRIVMSG", "bob"))],
        )

    def test_action(self) -> None:
        """CTCP ACTION is Me in a room, an action Msg to a nick."""
        self.assertEqual(
            self.lines(b"PRIVMSG #dev :\x01ACTION waves\x01"),
            [Execute(cmd.Me("waves", "dev"), Context("PRIVMSG", "#dev"))],
        )
        self.assertEqual(
            self.lines(b"PRIVMSG bob :\x01ACTION waves"),
            [Execute(cmd.Msg("bob", "waves", "action"), Context("PRIVMSG", "bob"))],
        )

    def test_other_ctcp(self) -> None:
        """Other CTCP requests are not relayed, with a notice; CTCP in a
        NOTICE is dropped silently."""
        self.assertEqual(
            data(self.lines(b"PRIVMSG bob :\x01VERSION\x01")),
            b":irc.test NOTICE al :CTCP VERSION is not relayed on this server; "
            b"only ACTION (/me) is.\r\n",
        )
        self.assertEqual(self.lines(b"NOTICE bob :\x01VERSION x\x01"), [])

    def test_notice(self) -> None:
        """NOTICE is the core's Notice, to a channel or a nick."""
        self.assertEqual(
            self.lines(b"NOTICE #dev,bob :psst"),
            [
                Execute(cmd.Notice("#dev", "psst"), Context("NOTICE", "#dev")),
                Execute(cmd.Notice("bob", "psst"), Context("NOTICE", "bob")),
            ],
        )

    def test_several_targets(self) -> None:
        """Up to four targets each get the message; more is 407."""
        self.assertEqual(len(self.lines(b"PRIVMSG a,b,c,#d :hi")), 4)
        self.assertEqual(
            data(self.lines(b"PRIVMSG a,b,c,d,e :hi")),
            b":irc.test 407 al a,b,c,d,e :Too many targets (at most 4)\r\n",
        )

    def test_privmsg_errors(self) -> None:
        """411 without a target, 412 without text (or only formatting),
        403 and 401 for names that cannot exist."""
        self.assertEqual(
            data(self.lines(b"PRIVMSG")),
            b":irc.test 411 al :No recipient given (PRIVMSG)\r\n",
        )
        self.assertEqual(
            data(self.lines(b"PRIVMSG #dev")), b":irc.test 412 al :No text to send\r\n"
        )
        self.assertEqual(
            data(self.lines(b"PRIVMSG #dev :\x02\x02")),
            b":irc.test 412 al :No text to send\r\n",
        )
        self.assertEqual(
            data(self.lines(b"PRIVMSG #a.b :hi")),
            b":irc.test 403 al #a.b :No such channel\r\n",
        )
        self.assertEqual(
            data(self.lines(b"PRIVMSG a[b] :hi")),
            b":irc.test 401 al a[b] :No such nick/channel\r\n",
        )

    def test_control_characters(self) -> None:
        """Text with control characters other than formatting is refused:
        404 for a channel, a NOTICE for a nick, silence for NOTICE."""
        self.assertEqual(
            data(self.lines(b"PRIVMSG #dev :\x1b[31mred")),
            b":irc.test 404 al #dev :Your message contains control characters "
            b"and was not sent\r\n",
        )
        self.assertEqual(
            data(self.lines(b"PRIVMSG bob :a\x07b")),
            b":irc.test NOTICE al :Your message contains control characters "
            b"and was not sent to bob.\r\n",
        )
        self.assertEqual(self.lines(b"NOTICE bob :a\x07b"), [])

    def test_notice_never_answered(self) -> None:
        """NOTICE gets no error at all."""
        for line in [
            b"NOTICE",
            b"NOTICE #dev",
            b"NOTICE #a.b :x",
            b"NOTICE a,b,c,d,e :x",
        ]:
            self.assertEqual(self.lines(line), [], line)

    def test_join(self) -> None:
        """JOIN with a list (keys ignored): Join each; 403 without #, 479 for
        a name the core does not allow."""
        self.assertEqual(
            self.lines(b"JOIN #dev,#a.b,dev,#Ops key1,key2"),
            [
                Execute(cmd.Join("dev"), Context("JOIN", "#dev")),
                Send(b":irc.test 479 al #a.b :Illegal channel name\r\n"),
                Send(b":irc.test 403 al dev :No such channel\r\n"),
                Execute(cmd.Join("Ops"), Context("JOIN", "#Ops")),
            ],
        )
        self.assertEqual(
            data(self.lines(b"JOIN #" + b"x" * 33)),
            b":irc.test 479 al #" + b"x" * 33 + b" :Illegal channel name\r\n",
        )

    def test_join_zero(self) -> None:
        """JOIN 0 leaves every room, in one core command."""
        self.assertEqual(
            self.lines(b"JOIN 0"), [Execute(cmd.PartAll(None), Context("JOIN", "0"))]
        )

    def test_part(self) -> None:
        """PART with a list and a reason; a reason's control characters
        become U+FFFD rather than stopping the part."""
        self.assertEqual(
            self.lines(b"PART #dev,#ops :off \x1b now"),
            [
                Execute(cmd.Part("dev", "off \ufffd now"), Context("PART", "#dev")),
                Execute(cmd.Part("ops", "off \ufffd now"), Context("PART", "#ops")),
            ],
        )
        self.assertEqual(
            data(self.lines(b"PART")),
            b":irc.test 461 al PART :Not enough parameters\r\n",
        )

    def test_nick(self) -> None:
        """NICK goes to the core once checked; the core's answer renames."""
        self.assertEqual(
            self.lines(b"NICK alan"),
            [Execute(cmd.Nick("alan"), Context("NICK", "alan"))],
        )
        self.assertEqual(
            data(self.lines(b"NICK 9lives")),
            b":irc.test 432 al 9lives :Erroneous nickname\r\n",
        )
        self.session.nick_changed("alan")
        self.assertEqual(self.session.nick, "alan")

    def test_topic(self) -> None:
        """TOPIC #room queries, TOPIC #room :text sets, an empty text
        clears."""
        self.assertEqual(
            self.lines(b"TOPIC #dev"),
            [Execute(cmd.Topic("dev", None), Context("TOPIC", "#dev"))],
        )
        self.assertEqual(
            self.lines(b"TOPIC #dev :\x02new\x02"),
            [Execute(cmd.Topic("dev", "new"), Context("TOPIC", "#dev"))],
        )
        self.assertEqual(
            self.lines(b"TOPIC #dev :"),
            [Execute(cmd.Topic("dev", ""), Context("TOPIC", "#dev"))],
        )

    def test_kick(self) -> None:
        """KICK #room nick[,nick] :reason."""
        self.assertEqual(
            self.lines(b"KICK #dev eve,mal :spam"),
            [
                Execute(cmd.Kick("dev", "eve", "spam"), Context("KICK", "#dev")),
                Execute(cmd.Kick("dev", "mal", "spam"), Context("KICK", "#dev")),
            ],
        )
        self.assertEqual(
            data(self.lines(b"KICK #dev")),
            b":irc.test 461 al KICK :Not enough parameters\r\n",
        )

    def test_away(self) -> None:
        """AWAY :message marks away, AWAY alone marks back."""
        self.assertEqual(
            self.lines(b"AWAY :lunch"), [Execute(cmd.Away("lunch"), Context("AWAY"))]
        )
        self.assertEqual(
            self.lines(b"AWAY"), [Execute(cmd.Away(None), Context("AWAY"))]
        )

    def test_names(self) -> None:
        """NAMES of each channel; a name that cannot exist is 366 alone."""
        self.assertEqual(
            self.lines(b"NAMES #dev,#a.b"),
            [
                Execute(cmd.Who("dev"), Context("NAMES", "#dev")),
                Send(b":irc.test 366 al #a.b :End of /NAMES list\r\n"),
            ],
        )

    def test_list(self) -> None:
        """LIST is Rooms, filtered by the channels given."""
        self.assertEqual(self.lines(b"LIST"), [Execute(cmd.Rooms(), Context("LIST"))])
        self.assertEqual(
            self.lines(b"LIST #dev"), [Execute(cmd.Rooms(), Context("LIST", "#dev"))]
        )

    def test_who(self) -> None:
        """WHO #room, WHO nick; a mask is an empty list."""
        self.assertEqual(
            self.lines(b"WHO #dev"), [Execute(cmd.Who("dev"), Context("WHO", "#dev"))]
        )
        self.assertEqual(
            self.lines(b"WHO bob"), [Execute(cmd.Whois("bob"), Context("WHO", "bob"))]
        )
        self.assertEqual(
            data(self.lines(b"WHO b*")), b":irc.test 315 al b* :End of WHO list\r\n"
        )

    def test_whois(self) -> None:
        """WHOIS [server] nick; 401 and 318 for a name that cannot exist."""
        self.assertEqual(
            self.lines(b"WHOIS irc.test Bob"),
            [Execute(cmd.Whois("Bob"), Context("WHOIS", "Bob"))],
        )
        self.assertEqual(
            data(self.lines(b"WHOIS a|b")),
            b":irc.test 401 al a|b :No such nick/channel\r\n"
            b":irc.test 318 al a|b :End of /WHOIS list\r\n",
        )

    def test_mode_queries(self) -> None:
        """MODE #room asks the core; MODE self is 221; MODE other asks the
        core; the ban list is empty."""
        self.assertEqual(
            self.lines(b"MODE #dev"), [Execute(cmd.Who("dev"), Context("MODE", "#dev"))]
        )
        self.assertEqual(data(self.lines(b"MODE al")), b":irc.test 221 al +i\r\n")
        self.assertEqual(
            self.lines(b"MODE bob"), [Execute(cmd.Whois("bob"), Context("MODE", "bob"))]
        )
        self.assertEqual(
            data(self.lines(b"MODE #dev +b")),
            b":irc.test 368 al #dev :End of channel ban list\r\n",
        )

    def test_mode_changes(self) -> None:
        """No mode can be changed: +i is already set, 501 for other user
        modes, 472 for unknown channel modes, +t is already set, other
        changes 482."""
        self.assertEqual(self.lines(b"MODE al +i"), [])
        for change in (b"-i", b"+w", b"+iw"):
            self.assertEqual(
                data(self.lines(b"MODE al " + change)),
                b":irc.test 501 al :Unknown MODE flag\r\n",
            )
        self.assertEqual(
            data(self.lines(b"MODE #dev +kt secret")),
            b":irc.test 472 al k :is unknown mode char to me\r\n",
        )
        self.assertEqual(self.lines(b"MODE #dev +t"), [])
        self.assertEqual(
            data(self.lines(b"MODE #dev -t")),
            b":irc.test 482 al #dev "
            b":Channel modes cannot be changed on this server\r\n",
        )

    def test_unknown(self) -> None:
        """An unknown command is 421."""
        self.assertEqual(
            data(self.lines(b"FROB x")), b":irc.test 421 al FROB :Unknown command\r\n"
        )

    def test_help(self) -> None:
        """HELP is answered locally."""
        self.assertTrue(data(self.lines(b"HELP")).startswith(b":irc.test 704 al * :"))


class ReplyTests(SynchronousTestCase):
    """L{IRCSession.reply_received}."""

    def test_own_private_message(self) -> None:
        """One's own private message comes back only with echo-message."""
        mine = ev.PrivateMessage(T, ev.Source("al", "~al", "h"), "bob", "hi")
        self.assertEqual(registered().reply_received(mine, None), [])
        self.assertEqual(
            data(registered("echo-message").reply_received(mine, None)),
            b":al!~al@h PRIVMSG bob :hi\r\n",
        )

    def test_server_time(self) -> None:
        """Private messages are tagged with server-time."""
        theirs = ev.PrivateMessage(T, BOB, "al", "hi")
        self.assertEqual(
            data(registered("server-time").reply_received(theirs, None)),
            TIME + b":bob!~b@b.host PRIVMSG al :hi\r\n",
        )

    def test_rendered_for_nick(self) -> None:
        """Replies are addressed to the current nick."""
        session = registered()
        session.nick_changed("alan")
        self.assertEqual(
            data(session.reply_received(ev.Notice(ev.NoticeCode.UNAWAY, "x"), None)),
            b":irc.test 305 alan :You are no longer marked as being away\r\n",
        )

    def test_event_for_one(self) -> None:
        """A room event given to this user alone is rendered in its variant."""
        joined = ev.Joined("big", 9, T, ev.Source("al", "~al", "h"))
        self.assertEqual(
            data(registered("server-time").reply_received(joined, None)),
            TIME + b":al!~al@h JOIN #big\r\n",
        )


HISTORY_INFO = IRCServerInfo(
    server_name="irc.test", network="TestNet", history_limit=50
)


class HistoryHookTests(SynchronousTestCase):
    """
    With history kept (a history limit), the session offers CHATHISTORY:
    its capabilities, its ISUPPORT tokens, the command, and its replies.
    """

    def test_not_offered_without_history(self) -> None:
        """No history: no capabilities, no tokens, CHATHISTORY unknown."""
        session = registered()
        self.assertEqual(
            data(session.line_received(b"CHATHISTORY LATEST #dev * 10")),
            b":irc.test 421 al CHATHISTORY :Unknown command\r\n",
        )
        self.assertNotIn(b"CHATHISTORY", R.render_reply(ev.Welcome("al"), "al", False))

    def test_offered(self) -> None:
        """CAP LS lists batch and draft/chathistory; 005 says the limit."""
        session = IRCSession(IRCRenderer(HISTORY_INFO))
        self.assertEqual(
            data(session.line_received(b"CAP LS 302")),
            b":irc.test CAP * LS :batch cap-notify draft/chathistory echo-message "
            b"multi-prefix server-time\r\n",
        )
        welcome = IRCRenderer(HISTORY_INFO).render_reply(ev.Welcome("al"), "al", False)
        self.assertIn(b" CHATHISTORY=50 ", welcome)
        self.assertIn(b" MSGREFTYPES=msgid,timestamp ", welcome)

    def test_command_and_replies(self) -> None:
        """
        CHATHISTORY becomes the core's History command; its answer is
        rendered with the connection's capabilities, in a batch; a refusal
        is a FAIL naming the subcommand and target.
        """
        session = IRCSession(IRCRenderer(HISTORY_INFO))
        session.line_received(b"CAP REQ :batch server-time draft/chathistory")
        session.line_received(b"NICK al")
        session.line_received(b"USER al 0 * :Al")
        session.line_received(b"CAP END")
        session.reply_received(ev.Welcome("al"), REGISTER)
        [execute] = session.line_received(b"CHATHISTORY LATEST #dev * 10")
        assert isinstance(execute, Execute)
        self.assertEqual(
            execute.command, cmd.History("#dev", 10, cmd.LATEST, None, None)
        )
        self.assertEqual(execute.context, Context("CHATHISTORY", "#dev", "LATEST"))
        answer = ev.History("dev", (ev.Message("dev", 4, T, BOB, "hi"),), True)
        self.assertEqual(
            data(session.reply_received(answer, execute.context)),
            b":irc.test BATCH +history1 chathistory #dev\r\n"
            b"@batch=history1;time=2023-11-14T22:13:20.500Z;msgid=dev.4 "
            b":bob!~b@b.host PRIVMSG #dev :hi\r\n"
            b":irc.test BATCH -history1\r\n",
        )
        refused = ev.Error(ev.ErrorCode.NOT_IN_ROOM, "no", ("dev",))
        self.assertEqual(
            data(session.reply_received(refused, execute.context)),
            b":irc.test FAIL CHATHISTORY INVALID_TARGET LATEST #dev "
            b":You are not in that channel\r\n",
        )
        self.assertEqual(
            data(session.line_received(b"CHATHISTORY LATEST bob * 10")),
            b":irc.test FAIL CHATHISTORY INVALID_TARGET LATEST bob "
            b":Only channels have history (private messages are never stored)\r\n",
        )
