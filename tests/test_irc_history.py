"""
Tests for L{twisted_chat.server.irc_history}: CHATHISTORY parsed into the
core's command, and stored lines rendered for IRC clients with and without
server-time, batch and draft/chathistory.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import FakeClient, property_settings
from tests.test_history import FakeStore
from twisted_chat.core import events as ev
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.events import ErrorCode
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import DurableFanout
from twisted_chat.server.irc_history import (
    CAPABILITIES,
    Fail,
    IRCHistory,
    Request,
    isupport_tokens,
    msgid,
    parse_chathistory,
    parse_reference,
    parse_timestamp,
)
from twisted_chat.server.irc_wire import parse_message
from twisted_chat.shared import commands as cmd
from twisted_chat.shared.commands import HistoryRef

SERVER = "server.twisted-chat"
T = 1796133903.25  # 2026-12-01T14:05:03.250Z
BOB = ev.Source("bob", "~bob", "irc.twisted-chat")
ALL = frozenset({"server-time", "batch", "draft/chathistory"})


def request(*params: str, limit: int = 100) -> Request | Fail:
    return parse_chathistory(params, limit)


class ReferenceTests(SynchronousTestCase):
    """msgid= and timestamp= references."""

    def test_msgid(self) -> None:
        """A stored line's msgid names its room and sequence number."""
        line = ev.Message("Dev", 42, T, BOB, "hi")
        self.assertEqual(msgid(line), "dev.42")
        self.assertEqual(parse_reference("msgid=dev.42", "dev"), HistoryRef(seq=42))
        self.assertEqual(parse_reference("msgid=Dev.42", "dev"), HistoryRef(seq=42))

    def test_msgid_of_another_room(self) -> None:
        """A msgid of another room, or not ours, is not a reference."""
        for value in ("msgid=lobby.42", "msgid=dev", "msgid=dev.x", "msgid=42"):
            self.assertIsNone(parse_reference(value, "dev"), value)

    def test_timestamp(self) -> None:
        """UTC, with or without milliseconds; nothing else."""
        self.assertEqual(parse_timestamp("2026-12-01T14:05:03.250Z"), T)
        self.assertEqual(parse_timestamp("2026-12-01T14:05:03Z"), T - 0.25)
        for value in (
            "2026-12-01T14:05:03",
            "2026-12-01 14:05:03Z",
            "2026-06-31T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "yesterday",
        ):
            self.assertIsNone(parse_timestamp(value), value)
        self.assertEqual(
            parse_reference("timestamp=2026-12-01T14:05:03.250Z", "dev"),
            HistoryRef(time=T),
        )

    @given(st.integers(0, 4_000_000_000_000))
    @property_settings
    def test_server_time_round_trip(self, millis: int) -> None:
        """What the time tag says is read back to the millisecond."""
        from twisted_chat.server.irc_wire import server_time

        self.assertEqual(parse_timestamp(server_time(millis / 1000)), millis / 1000)


class ParseTests(SynchronousTestCase):
    """C{CHATHISTORY} as the core's L{cmd.History}."""

    def test_subcommands(self) -> None:
        """Each subcommand, its references and its limit."""
        ts = "timestamp=2026-12-01T14:05:03.250Z"
        self.assertEqual(
            [
                request("LATEST", "#dev", "*", "50"),
                request("latest", "#Dev", "msgid=dev.7", "5"),
                request("BEFORE", "#dev", "msgid=dev.7", "10"),
                request("AFTER", "#dev", ts, "10"),
                request("AROUND", "#dev", "msgid=dev.7", "10"),
                request("BETWEEN", "#dev", "msgid=dev.7", ts, "10"),
            ],
            [
                Request(cmd.History("#dev", 50, cmd.LATEST), "LATEST", "#dev"),
                Request(
                    cmd.History("#Dev", 5, cmd.LATEST, HistoryRef(seq=7)),
                    "LATEST",
                    "#Dev",
                ),
                Request(
                    cmd.History("#dev", 10, cmd.BEFORE, HistoryRef(seq=7)),
                    "BEFORE",
                    "#dev",
                ),
                Request(
                    cmd.History("#dev", 10, cmd.AFTER, HistoryRef(time=T)),
                    "AFTER",
                    "#dev",
                ),
                Request(
                    cmd.History("#dev", 10, cmd.AROUND, HistoryRef(seq=7)),
                    "AROUND",
                    "#dev",
                ),
                Request(
                    cmd.History(
                        "#dev", 10, cmd.BETWEEN, HistoryRef(seq=7), HistoryRef(time=T)
                    ),
                    "BETWEEN",
                    "#dev",
                ),
            ],
        )

    def test_limit(self) -> None:
        """A client may ask for more than the server gives: it gets the limit."""
        parsed = request("LATEST", "#dev", "*", "5000", limit=1000)
        assert isinstance(parsed, Request)
        self.assertEqual(parsed.command.count, 1000)

    def test_refused(self) -> None:
        """Every mistake is a FAIL with its code and context."""
        self.assertEqual(
            [
                request(),
                request("TARGETS", "x", "y", "1"),
                request("LATEST", "#dev", "*"),
                request("BETWEEN", "#dev", "msgid=dev.1", "10"),
                request("LATEST", "bob", "*", "10"),
                request("LATEST", "#bad.name", "*", "10"),
                request("BEFORE", "#dev", "*", "10"),
                request("AFTER", "#dev", "msgid=lobby.3", "10"),
                request("LATEST", "#dev", "*", "0"),
                request("LATEST", "#dev", "*", "-1"),
                request("LATEST", "#dev", "*", "ten"),
            ],
            [
                Fail("NEED_MORE_PARAMS", (), "Missing parameters"),
                Fail("INVALID_PARAMS", ("TARGETS",), "Unknown subcommand"),
                Fail("NEED_MORE_PARAMS", ("LATEST",), "Missing parameters"),
                Fail("NEED_MORE_PARAMS", ("BETWEEN",), "Missing parameters"),
                Fail(
                    "INVALID_TARGET",
                    ("LATEST", "bob"),
                    "Only channels have history (private messages are never stored)",
                ),
                Fail(
                    "INVALID_TARGET",
                    ("LATEST", "#bad.name"),
                    "Only channels have history (private messages are never stored)",
                ),
                Fail(
                    "INVALID_PARAMS",
                    ("BEFORE", "*"),
                    "Give msgid=ID or timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
                ),
                Fail(
                    "INVALID_PARAMS",
                    ("AFTER", "msgid=lobby.3"),
                    "Give msgid=ID or timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
                ),
                *[
                    Fail(
                        "INVALID_PARAMS",
                        ("LATEST",),
                        "The limit must be a whole number",
                    )
                ]
                * 3,
            ],
        )

    def test_fail_on_the_wire(self) -> None:
        """A FAIL is a standard reply from the server."""
        history = IRCHistory(SERVER, 100)
        self.assertEqual(
            history.command(["LATEST", "bob", "*", "10"]),
            b":server.twisted-chat FAIL CHATHISTORY INVALID_TARGET LATEST bob "
            b":Only channels have history (private messages are never stored)\r\n",
        )

    def test_tokens(self) -> None:
        """ISUPPORT says the limit and the kinds of reference."""
        self.assertEqual(
            isupport_tokens(1000), ["CHATHISTORY=1000", "MSGREFTYPES=msgid,timestamp"]
        )
        self.assertEqual(CAPABILITIES, {"batch", "draft/chathistory"})


class RenderTests(SynchronousTestCase):
    """Stored lines as an IRC client receives them."""

    def setUp(self) -> None:
        self.history = IRCHistory(SERVER, 100)
        self.lines: tuple[ev.StoredEvent, ...] = (
            ev.Message("dev", 4, T, BOB, "hi"),
            ev.Action("dev", 5, T + 1, BOB, "waves"),
            ev.RoomNotice("dev", 6, T + 2, BOB, "psst"),
            ev.TopicChanged("dev", 8, T + 3, BOB, "plans"),
        )

    def render(self, reply: ev.History, capabilities: frozenset[str]) -> list[str]:
        return self.history.render(reply, capabilities).decode().split("\r\n")[:-1]

    def test_everything_negotiated(self) -> None:
        """A batch, each line as said, with its time and msgid."""
        self.assertEqual(
            self.render(ev.History("dev", self.lines, True), ALL),
            [
                ":server.twisted-chat BATCH +history1 chathistory #dev",
                "@batch=history1;time=2026-12-01T14:05:03.250Z;msgid=dev.4 "
                ":bob!~bob@irc.twisted-chat PRIVMSG #dev :hi",
                "@batch=history1;time=2026-12-01T14:05:04.250Z;msgid=dev.5 "
                ":bob!~bob@irc.twisted-chat PRIVMSG #dev :\x01ACTION waves\x01",
                "@batch=history1;time=2026-12-01T14:05:05.250Z;msgid=dev.6 "
                ":bob!~bob@irc.twisted-chat NOTICE #dev :psst",
                "@batch=history1;time=2026-12-01T14:05:06.250Z;msgid=dev.8 "
                ":bob!~bob@irc.twisted-chat TOPIC #dev :plans",
                ":server.twisted-chat BATCH -history1",
            ],
        )

    def test_server_time_only(self) -> None:
        """Without batch or chathistory: the time tag alone."""
        self.assertEqual(
            self.render(ev.History("dev", self.lines[:1]), frozenset({"server-time"})),
            [
                "@time=2026-12-01T14:05:03.250Z "
                ":bob!~bob@irc.twisted-chat PRIVMSG #dev :hi"
            ],
        )

    def test_without_server_time(self) -> None:
        """The documented form: the server's NOTICE, the line protocol's text."""
        self.assertEqual(
            self.render(ev.History("dev", self.lines), frozenset()),
            [
                ":server.twisted-chat NOTICE #dev "
                ":[history 2026-12-01 14:05:03Z] <bob> hi",
                ":server.twisted-chat NOTICE #dev "
                ":[history 2026-12-01 14:05:04Z] * bob waves",
                ":server.twisted-chat NOTICE #dev "
                ":[history 2026-12-01 14:05:05Z] -bob- psst",
                ":server.twisted-chat NOTICE #dev "
                ":[history 2026-12-01 14:05:06Z] *** bob set the topic of #dev: plans",
            ],
        )

    def test_batch_without_server_time(self) -> None:
        """A batch of NOTICEs for a client with batch but not server-time."""
        self.assertEqual(
            self.render(ev.History("dev", self.lines[:1]), frozenset({"batch"})),
            [
                ":server.twisted-chat BATCH +history1 chathistory #dev",
                "@batch=history1 :server.twisted-chat NOTICE #dev "
                ":[history 2026-12-01 14:05:03Z] <bob> hi",
                ":server.twisted-chat BATCH -history1",
            ],
        )

    def test_empty(self) -> None:
        """An empty answer is an empty batch; an empty replay is nothing."""
        self.assertEqual(
            self.render(ev.History("dev", (), True), ALL),
            [
                ":server.twisted-chat BATCH +history1 chathistory #dev",
                ":server.twisted-chat BATCH -history1",
            ],
        )
        self.assertEqual(self.history.render(ev.History("dev", ()), ALL), b"")

    def test_batches_numbered(self) -> None:
        """Each batch of a connection has its own id."""
        for _ in range(2):
            self.history.render(ev.History("dev", self.lines[:1]), ALL)
        self.assertTrue(
            self.render(ev.History("dev", self.lines[:1]), ALL)[0].endswith(
                "+history3 chathistory #dev"
            )
        )

    @given(st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1))
    @property_settings
    def test_long_lines_split(self, word: str) -> None:
        """A line too long for IRC is split, every piece within 512 bytes."""
        text = (word + " ") * (3000 // len(word.encode()) + 1)
        reply = ev.History("dev", (ev.Action("dev", 1, T, BOB, text),), True)
        for capabilities in (ALL, frozenset()):
            data = self.history.render(reply, capabilities)
            pieces = []
            for line in data.split(b"\r\n")[:-1]:
                message = parse_message(line)
                assert message is not None and not hasattr(message, "reason")
                body = line.split(b" ", 1)[1] if line.startswith(b"@") else line
                self.assertLessEqual(len(body) + 2, 512)
                if message.command in ("PRIVMSG", "NOTICE"):
                    pieces.append(message.params[-1])
            self.assertGreater(len(pieces), 1)

    def test_errors(self) -> None:
        """The core's refusals of CHATHISTORY are FAILs; others are not."""
        not_in = ev.Error(ErrorCode.NOT_IN_ROOM, "You are not in #dev.", ("dev",))
        unreadable = ev.Error(
            ErrorCode.HISTORY_UNAVAILABLE,
            "Cannot be read.",
            ("dev",),
        )
        self.assertEqual(
            self.history.error(not_in, "LATEST", "#dev"),
            b":server.twisted-chat FAIL CHATHISTORY INVALID_TARGET LATEST #dev "
            b":You are not in that channel\r\n",
        )
        self.assertEqual(
            self.history.late_error(unreadable),
            b":server.twisted-chat FAIL CHATHISTORY MESSAGE_ERROR * #dev "
            b":Cannot be read.\r\n",
        )
        self.assertIsNone(
            self.history.error(ev.Error(ErrorCode.USAGE, "no"), "LATEST", "#dev")
        )
        self.assertIsNone(self.history.late_error(not_in))


class CoreTests(SynchronousTestCase):
    """CHATHISTORY through the core, as the IRC front end will run it."""

    def test_through_the_core(self) -> None:
        """The parsed command reaches the store; the answer renders as a batch."""
        clock = Clock()
        clock.advance(T)
        store = FakeStore(auto=True)
        fanout = DurableFanout(LocalFanout(), store, clock, replay=2)
        store.start(fanout.committed, fanout.failed)
        chat = ChatServer(fanout=fanout, history=fanout, clock=clock)
        client = FakeClient()
        user = chat.connect(client)
        client.user = user
        for n in range(5):
            chat.line_received(user, f"line {n}")
        history = IRCHistory(SERVER, 100)
        parsed = history.command(["BEFORE", "#lobby", "msgid=lobby.4", "2"])
        assert isinstance(parsed, Request)
        chat.execute(user, parsed.command)
        [(query, d)] = store.reads
        self.assertEqual(
            (query.room, query.selector, query.start, query.limit),
            ("lobby", cmd.BEFORE, HistoryRef(seq=4), 2),
        )
        d.callback(store.stored[1:3])
        [reply] = [r for r in client.replies if isinstance(r, ev.History) and r.request]
        self.assertEqual(history.render(reply, ALL).count(b"PRIVMSG #lobby :line"), 2)
        chat.execute(user, cmd.History("#elsewhere", 5))
        [error] = [r for r in client.replies if isinstance(r, ev.Error)]
        self.assertIsNotNone(history.error(error, parsed.subcommand, "#elsewhere"))
