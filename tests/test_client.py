"""
Tests for the command-line client (L{twisted_chat.client}): its options and
endpoints (L{twisted_chat.client.options}), the session that tracks
nickname, rooms and queued lines, the plain terminal and server protocols,
and the whole client driven through fake connections and a L{Clock}.  The
full-screen interface has its own tests, in L{tests.test_tui}.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.exceptions import DNSMismatch
from service_identity.hazmat import DNS_ID
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from twisted_chat.client.app import (
    LOST,
    RECONNECTED,
    ChatClient,
    describe_failure,
    full_screen_wanted,
    main,
    run,
)
from twisted_chat.client.options import Options, client_endpoint, host_label
from twisted_chat.client.protocols import (
    ServerFactory,
    ServerProtocol,
    TerminalProtocol,
    terminal_safe,
)
from twisted_chat.client.session import ClientSession
from twisted_chat.client.ui import Connection, Status
from twisted_chat.shared import lines

DEFAULTS: dict[str, Any] = {
    "nick": None,
    "room": None,
    "host": "localhost",
    "port": 10001,
    "connect": None,
    "tls": False,
    "ca": None,
    "plain": False,
}


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def a_certificate() -> FilePath[str]:
    """A PEM file holding a certificate (Twisted's own test certificate)."""
    import twisted.test

    path: FilePath[str] = FilePath(twisted.test.__file__).sibling("server.pem")
    return path


class OptionsTests(SynchronousTestCase):
    """
    C{--nick}, C{--room}, C{--host}, C{--port}, C{--connect}, C{--tls},
    C{--ca}, C{--plain}.
    """

    def test_defaults(self) -> None:
        """With no options: localhost:10001, no TLS, the server's names."""
        self.assertEqual(dict(parse()), DEFAULTS)

    def test_everything(self) -> None:
        """Every option is stored; a room's C{#} is dropped, the port is an int."""
        options = parse(
            "--nick=alice",
            "--room=#dev",
            "--host=::1",
            "--port=10555",
            "--tls",
            "--ca=ca.pem",
            "--plain",
        )
        self.assertEqual(
            dict(options),
            {
                "nick": "alice",
                "room": "dev",
                "host": "::1",
                "port": 10555,
                "connect": None,
                "tls": True,
                "ca": "ca.pem",
                "plain": True,
            },
        )

    def test_connect(self) -> None:
        """C{--connect} replaces C{--host} and C{--port}, which stay unset."""
        self.assertEqual(
            dict(parse("--connect", "unix:/run/chat.sock")),
            {**DEFAULTS, "host": None, "port": None, "connect": "unix:/run/chat.sock"},
        )

    def test_connect_tls_host(self) -> None:
        """With C{--connect} and C{--tls}, C{--host} names the server to verify."""
        options = parse("--connect=tcp:10.0.0.1:10001", "--tls", "--host=chat.example")
        self.assertEqual(
            dict(options),
            {
                **DEFAULTS,
                "host": "chat.example",
                "port": None,
                "connect": "tcp:10.0.0.1:10001",
                "tls": True,
            },
        )

    def assert_refused(self, argv: list[str], message: str) -> None:
        error = self.assertRaises(UsageError, Options().parseOptions, argv)
        self.assertEqual(str(error), message)

    def test_connect_with_port(self) -> None:
        """C{--port} makes no sense with C{--connect}."""
        self.assert_refused(
            ["--connect=unix:/x", "--port=1"], "--port cannot be used with --connect."
        )

    def test_connect_with_host(self) -> None:
        """Without C{--tls}, C{--host} makes no sense with C{--connect}."""
        self.assert_refused(
            ["--connect=unix:/x", "--host=a"],
            "--host cannot be used with --connect, except with --tls to name "
            "the server.",
        )

    def test_connect_tls_without_host(self) -> None:
        """C{--tls} with C{--connect} needs the name to verify."""
        self.assert_refused(
            ["--connect=unix:/x", "--tls"],
            "--tls with --connect needs --host: the name the server certificate "
            "must match.",
        )

    def test_ca_without_tls(self) -> None:
        """C{--ca} alone is a mistake, not silently ignored."""
        self.assert_refused(["--ca=ca.pem"], "--ca can only be used with --tls.")

    def test_bad_nick(self) -> None:
        """A nickname the server would refuse is refused at once."""
        self.assert_refused(
            ["--nick=9lives"],
            "--nick 9lives: A nickname must start with a letter and contain only "
            "letters, digits, '_' and '-' (ASCII).",
        )

    def test_bad_room(self) -> None:
        """A room name the server would refuse is refused at once, as typed."""
        self.assert_refused(
            ["--room=#a b"],
            "--room #a b: A room name must start with a letter and contain only "
            "letters, digits, '_' and '-' (ASCII), optionally after a '#'.",
        )

    def test_bad_ports(self) -> None:
        """A port is a number from 1 to 65535."""
        for port in ["0", "65536", "http", "-1", ""]:
            self.assert_refused(
                [f"--port={port}"], f"--port {port}: not a port number (1-65535)."
            )

    def test_no_arguments(self) -> None:
        """Positional arguments are refused."""
        self.assertRaises(UsageError, Options().parseOptions, ["localhost"])


class EndpointTests(SynchronousTestCase):
    """L{client_endpoint} builds what the options describe."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def temp_dir(self) -> str:
        """
        A new directory outside the working directory (pytest runs in the
        source tree, where C{mktemp} would leave directories).
        """
        path = tempfile.mkdtemp(prefix="chat-client-")
        self.addCleanup(shutil.rmtree, path, ignore_errors=True)
        return path

    def test_host_port(self) -> None:
        """C{--host}/C{--port} connect by name with L{HostnameEndpoint}."""
        endpoint, label = client_endpoint(self.reactor, parse("--port=10555"))
        self.assertIsInstance(endpoint, HostnameEndpoint)
        self.assertEqual(label, "localhost:10555")
        endpoint.connect(ServerFactory(_NoEvents()))
        self.reactor.advance(0)
        self.assertEqual(
            [(host, port) for host, port, *_ in self.reactor.tcpClients],
            [("127.0.0.1", 10555)],
        )

    def test_labels(self) -> None:
        """An IPv6 address is shown in brackets."""
        self.assertEqual(host_label("::1", 10001), "[::1]:10001")
        self.assertEqual(host_label("chat.example", 7), "chat.example:7")

    def test_connect_unix(self) -> None:
        """C{--connect} takes any client endpoint description."""
        endpoint, label = client_endpoint(
            self.reactor, parse("--connect=unix:/run/chat.sock")
        )
        self.assertEqual(label, "unix:/run/chat.sock")
        endpoint.connect(ServerFactory(_NoEvents()))
        self.assertEqual(
            [path for path, *_ in self.reactor.unixClients], ["/run/chat.sock"]
        )

    def test_bad_description(self) -> None:
        """A description that does not parse is a usage error, not a traceback."""
        error = self.assertRaises(
            UsageError, client_endpoint, self.reactor, parse("--connect=tcp:localhost")
        )
        self.assertIn(
            "--connect tcp:localhost: not a client endpoint description", str(error)
        )

    def test_tls(self) -> None:
        """C{--tls} wraps the connection in TLS."""
        endpoint, label = client_endpoint(
            self.reactor, parse("--tls", f"--ca={a_certificate().path}")
        )
        self.assertEqual(label, "localhost:10001")
        endpoint.connect(ServerFactory(_NoEvents()))
        self.reactor.advance(0)
        [(host, port, factory, *_)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 10001))
        # HostnameEndpoint wraps the factory once more, for its own bookkeeping.
        inner = getattr(factory, "_wrappedFactory", factory)
        self.assertIsInstance(inner, TLSMemoryBIOFactory)

    def test_ca_missing(self) -> None:
        """A C{--ca} file that cannot be read is a one-line error."""
        missing = os.path.join(self.temp_dir(), "missing.pem")
        error = self.assertRaises(
            UsageError, client_endpoint, self.reactor, parse("--tls", f"--ca={missing}")
        )
        self.assertEqual(str(error), f"--ca {missing}: No such file or directory")

    def test_ca_not_pem(self) -> None:
        """A C{--ca} file that holds no certificate is a one-line error."""
        path = FilePath(os.path.join(self.temp_dir(), "ca.pem"))
        path.setContent(b"not a certificate\n")
        error = self.assertRaises(
            UsageError,
            client_endpoint,
            self.reactor,
            parse("--tls", f"--ca={path.path}"),
        )
        self.assertEqual(str(error), f"--ca {path.path}: not a PEM certificate")


class DescribeFailureTests(SynchronousTestCase):
    """L{describe_failure} gives the short reason a connection failed."""

    def test_refused(self) -> None:
        """The system's own words for a refused connection."""
        self.assertEqual(
            describe_failure(
                Failure(ConnectionRefusedError(111, "Connection refused"))
            ),
            "Connection refused",
        )

    def test_dns(self) -> None:
        """A name that does not resolve."""
        error = DNSLookupError("no results for hostname lookup: nowhere.invalid")
        self.assertEqual(
            describe_failure(Failure(error)),
            "no results for hostname lookup: nowhere.invalid",
        )

    def test_closed(self) -> None:
        """A server that closed before greeting."""
        self.assertEqual(
            describe_failure(Failure(ConnectionDone())),
            "the server closed the connection",
        )

    def test_tls(self) -> None:
        """OpenSSL's last reason, not its list of tuples."""
        error = SSL.Error([("SSL routines", "", "certificate verify failed")])
        self.assertEqual(
            describe_failure(Failure(error)), "TLS error: certificate verify failed"
        )

    def test_name_mismatch(self) -> None:
        """service_identity's VerificationError: the certificate names another host."""
        error = VerificationError(errors=[DNSMismatch(DNS_ID("chat.example"))])
        self.assertEqual(
            describe_failure(Failure(error)),
            "TLS error: the server certificate does not match the host name",
        )

    def test_name_mismatch_by_class(self) -> None:
        """An error is recognised by its class, not by a class name."""

        class VerificationError(Exception):
            pass

        self.assertEqual(
            describe_failure(Failure(VerificationError("something else"))),
            "something else",
        )

    def test_other(self) -> None:
        """Anything else: the error message."""
        self.assertEqual(
            describe_failure(Failure(ConnectionLost("gone"))),
            "Connection to the other side was lost in a non-clean fashion: gone.",
        )


class TerminalSafeTests(SynchronousTestCase):
    """Nothing printed can act on a terminal."""

    def test_controls_replaced(self) -> None:
        """C0 controls, DEL and C1 controls become U+FFFD."""
        self.assertEqual(
            terminal_safe("a\x1b[31mb\x07c\rd\x00e\x7ff\x9b2Jg\x85h"),
            "a\ufffd[31mb\ufffdc\ufffdd\ufffde\ufffdf\ufffd2Jg\ufffdh",
        )

    def test_bidi_and_separators(self) -> None:
        """Bidirectional overrides and line separators are replaced too."""
        self.assertEqual(
            terminal_safe("a\u202eb\u2066c\u2028d"), "a\ufffdb\ufffdc\ufffdd"
        )

    def test_kept(self) -> None:
        """Tabs and printable Unicode are left alone."""
        text = "<bob>\tcafé ☕ 日本 \u00a0end"
        self.assertEqual(terminal_safe(text), text)


class _NoEvents:
    """An events sink for protocols in tests that only look at wiring."""

    def server_connected(self, server: ServerProtocol) -> None:
        pass

    def server_line(self, server: ServerProtocol, line: str) -> None:
        pass

    def server_lost(self, server: ServerProtocol, reason: Failure) -> None:
        pass


class RecordingEvents:
    """Records what the protocols tell the client."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def server_connected(self, server: ServerProtocol) -> None:
        self.events.append(("connected", None))

    def server_line(self, server: ServerProtocol, line: str) -> None:
        self.events.append(("line", line))

    def server_lost(self, server: ServerProtocol, reason: Failure) -> None:
        self.events.append(("lost", reason.type))

    def typed(self, line: str) -> None:
        self.events.append(("typed", line))

    def input_ended(self) -> None:
        self.events.append(("ended", None))


class ServerProtocolTests(SynchronousTestCase):
    """L{ServerProtocol} frames and decodes lines, both ways."""

    def setUp(self) -> None:
        self.events = RecordingEvents()
        self.protocol = ServerProtocol(self.events)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def test_lines(self) -> None:
        """Lines split across chunks, CRLF or LF, bad UTF-8 replaced."""
        self.protocol.dataReceived(b"*** one\r\n<bo")
        self.protocol.dataReceived(b"b> caf\xc3\xa9 \xff\n")
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            self.events.events,
            [
                ("connected", None),
                ("line", "*** one"),
                ("line", "<bob> café \ufffd"),
                ("lost", ConnectionDone),
            ],
        )

    def test_send(self) -> None:
        """L{ServerProtocol.send_line} writes UTF-8 and a newline."""
        self.protocol.send_line("héllo")
        self.assertEqual(self.transport.value(), "héllo\n".encode())


class TerminalProtocolTests(SynchronousTestCase):
    """L{TerminalProtocol}: standard input in, standard output out."""

    def setUp(self) -> None:
        self.events = RecordingEvents()
        self.protocol = TerminalProtocol(self.events)
        self.transport = StringTransportWithDisconnection()
        self.transport.protocol = self.protocol
        self.protocol.makeConnection(self.transport)

    def test_half_closeable(self) -> None:
        """It is half-closeable, so end of input leaves output open."""
        self.assertTrue(verifyObject(IHalfCloseableProtocol, self.protocol))

    def test_typed_lines(self) -> None:
        """Lines split across reads; CRLF or LF; a last line without newline."""
        self.protocol.dataReceived(b"hel")
        self.protocol.dataReceived(b"lo\r\nsecond\nthi")
        self.protocol.dataReceived(b"rd")
        self.protocol.readConnectionLost()
        self.assertEqual(
            self.events.events,
            [
                ("typed", "hello"),
                ("typed", "second"),
                ("typed", "third"),
                ("ended", None),
            ],
        )

    def test_show(self) -> None:
        """L{TerminalProtocol.show} writes a safe line, even after input ended."""
        self.protocol.readConnectionLost()
        self.protocol.show("<eve> \x1b]0;pwned\x07hi")
        self.assertEqual(
            self.transport.value().decode("utf-8"), "<eve> \ufffd]0;pwned\ufffdhi\n"
        )

    def test_close(self) -> None:
        """L{TerminalProtocol.close} fires once output is closed."""
        closed = self.protocol.close()
        self.successResultOf(closed)
        self.assertFalse(self.transport.connected)
        self.assertEqual(self.events.events, [])

    def test_output_gone(self) -> None:
        """If standard output goes away, the input counts as ended too."""
        self.protocol.writeConnectionLost()
        self.protocol.show("lost")
        self.successResultOf(self.protocol.close())
        self.assertEqual(self.events.events, [("ended", None)])
        self.assertEqual(self.transport.value(), b"")


def greeting(nick: str = "guest1", room: str = "lobby") -> list[str]:
    """What the server says to a new connection."""
    return [
        lines.welcome(),
        lines.self_nick(nick),
        lines.joined(nick, room),
        lines.who(room, [nick]),
    ]


class SessionTests(SynchronousTestCase):
    """L{ClientSession} learns nickname and room and restores them."""

    def greet(
        self, session: ClientSession, nick: str = "guest1", room: str = "lobby"
    ) -> list[str]:
        answers: list[str] = []
        for line in greeting(nick, room):
            answers += session.server_line(line)
        return answers

    def test_greeting_nothing_wanted(self) -> None:
        """Without wishes, the greeting only makes the session ready."""
        session = ClientSession()
        self.assertFalse(session.ready)
        self.assertEqual(self.greet(session), [])
        self.assertEqual(
            (session.nick, session.room, session.ready), ("guest1", "lobby", True)
        )

    def test_greeting_restores(self) -> None:
        """The wanted nickname and room are asked for after the greeting."""
        session = ClientSession(wanted_nick="alice", wanted_room="dev")
        self.assertEqual(self.greet(session), ["/nick alice", "/join dev"])

    def test_already_there(self) -> None:
        """Nothing is asked for what the server already gave (rooms ignore case)."""
        session = ClientSession(wanted_nick="alice", wanted_room="Lobby")
        self.assertEqual(self.greet(session, "alice", "lobby"), [])

    def test_queued_lines_flushed(self) -> None:
        """Lines typed before the greeting follow the restore, in order."""
        session = ClientSession(wanted_nick="bot")
        self.assertEqual(session.typed("hello"), [])
        self.assertEqual(session.typed("/quit"), [])
        self.assertEqual(self.greet(session), ["/nick bot", "hello", "/quit"])
        self.assertEqual(session.pending, [])
        self.assertEqual(session.typed("now"), ["now"])

    def test_tracks_own_changes(self) -> None:
        """Our nick changes and joins become what is wanted next time."""
        session = ClientSession()
        self.greet(session)
        session.server_line(lines.nick_change("guest1", "carol"))
        session.server_line(lines.joined("carol", "ops"))
        self.assertEqual(
            (session.nick, session.room, session.wanted_nick, session.wanted_room),
            ("carol", "ops", "carol", "ops"),
        )

    def test_ignores_others(self) -> None:
        """Other users' nick changes and joins change nothing of ours."""
        session = ClientSession(wanted_nick="alice")
        self.greet(session)
        for line in [
            lines.nick_change("guest2", "bob"),
            lines.joined("bob", "lobby"),
            lines.message("bob", "*** guest1 is now known as mallory"),
            lines.message("bob", "*** guest1 has joined #trap"),
        ]:
            session.server_line(line)
        self.assertEqual(
            (session.nick, session.room, session.wanted_nick, session.wanted_room),
            ("guest1", "lobby", "alice", None),
        )

    def test_restore_after_reconnect(self) -> None:
        """After a lost connection the next greeting restores nick and room."""
        session = ClientSession()
        self.greet(session)
        session.server_line(lines.nick_change("guest1", "alice"))
        session.server_line(lines.joined("alice", "dev"))
        session.connection_lost()
        self.assertEqual(
            (session.nick, session.room, session.ready), (None, None, False)
        )
        self.assertEqual(session.typed("missed you"), [])
        self.assertEqual(
            self.greet(session, "guest7"),
            ["/nick alice", "/join dev", "missed you"],
        )

    def test_failed_restore_kept(self) -> None:
        """A nickname that was taken stays wanted for the next connection."""
        session = ClientSession(wanted_nick="alice")
        self.greet(session)
        session.server_line(lines.error("The nickname alice is taken; choose another."))
        self.assertEqual((session.nick, session.wanted_nick), ("guest1", "alice"))


class SeveralRoomsSessionTests(SynchronousTestCase):
    """
    L{ClientSession} follows a server where a user is in several rooms at
    once, one of them current, and restores them all.
    """

    def greet(self, session: ClientSession, nick: str = "guest1") -> list[str]:
        answers: list[str] = []
        for line in greeting(nick):
            answers += session.server_line(line)
        return answers

    def hear(self, session: ClientSession, *texts: str) -> list[str]:
        answers: list[str] = []
        for text in texts:
            answers += session.server_line(text)
        return answers

    def rooms(self, session: ClientSession) -> tuple[str | None, list[str]]:
        return session.room, session.rooms

    def in_three_rooms(self) -> ClientSession:
        """guest1 in #lobby, #dev and #ops, #ops current."""
        session = ClientSession()
        self.greet(session)
        self.hear(
            session,
            lines.joined("guest1", "dev"),
            lines.who("dev", ["guest1"]),
            lines.joined("guest1", "ops"),
            lines.who("ops", ["guest1"]),
        )
        return session

    def test_join_keeps_rooms(self) -> None:
        """A join adds a room and makes it current; the others stay."""
        session = self.in_three_rooms()
        self.assertEqual(self.rooms(session), ("ops", ["lobby", "dev", "ops"]))
        self.assertEqual(
            (session.wanted_room, session.wanted_rooms),
            ("ops", ["lobby", "dev", "ops"]),
        )

    def test_now_talking(self) -> None:
        """C{Now talking in} and C{already in} say which room is current."""
        session = self.in_three_rooms()
        self.hear(session, "*** Now talking in #dev.")
        self.assertEqual(self.rooms(session), ("dev", ["lobby", "dev", "ops"]))
        self.hear(session, "*** You are already in #dev.")
        self.assertEqual((session.room, session.wanted_room), ("dev", "dev"))

    def test_part_current(self) -> None:
        """Leaving the current room: the server names the next current one."""
        session = self.in_three_rooms()
        self.hear(session, "*** Now talking in #dev.")
        self.hear(session, "*** guest1 has left #dev (bye)", "*** Now talking in #ops.")
        self.assertEqual(self.rooms(session), ("ops", ["lobby", "ops"]))
        self.assertEqual(session.wanted_rooms, ["lobby", "ops"])

    def test_part_other_room(self) -> None:
        """Leaving a room that is not current: its line is marked, the rest stays."""
        session = self.in_three_rooms()
        self.hear(session, "[#lobby] " + lines.left("guest1", "lobby"))
        self.assertEqual(self.rooms(session), ("ops", ["dev", "ops"]))

    def test_no_room(self) -> None:
        """After the last room, no room at all."""
        session = ClientSession()
        self.greet(session)
        self.hear(
            session,
            lines.left("guest1", "lobby"),
            "*** You are in no room now; /join one to talk.",
        )
        self.assertEqual(self.rooms(session), (None, []))
        self.assertEqual((session.wanted_room, session.wanted_rooms), (None, []))

    def test_kicked(self) -> None:
        """Kicked from a room: it is left, and not rejoined later."""
        session = self.in_three_rooms()
        self.hear(session, "[#dev] *** op kicked guest1 from #dev (spam)")
        self.assertEqual(self.rooms(session), ("ops", ["lobby", "ops"]))
        self.hear(session, "*** op kicked guest1 from #ops (more spam)")
        # The most recently joined room left is current until the server
        # says otherwise.
        self.assertEqual(self.rooms(session), ("lobby", ["lobby"]))
        self.assertEqual(session.wanted_rooms, ["lobby"])

    def test_others_change_nothing(self) -> None:
        """Other users' joins, parts and kicks, marked or not, change nothing."""
        session = self.in_three_rooms()
        self.hear(
            session,
            "[#dev] *** carol has joined #dev",
            "[#dev] *** carol has left #dev",
            "*** op kicked carol from #ops (bye)",
            "[#dev] <bob> *** guest1 has left #dev",
            "<mallory> *** Now talking in #trap.",
            "[#dev] *** Now talking in #trap.",
            lines.quit_("bob", "quit"),
        )
        self.assertEqual(self.rooms(session), ("ops", ["lobby", "dev", "ops"]))

    def test_restore_every_room(self) -> None:
        """
        After a reconnection every room is joined again in the same order
        (so they keep their numbers), then the current one made current.
        """
        session = self.in_three_rooms()
        self.hear(session, "*** Now talking in #dev.")
        session.connection_lost()
        self.assertEqual(self.rooms(session), (None, []))
        self.assertEqual(
            self.greet(session, "guest4"), ["/join dev", "/join ops", "/join dev"]
        )
        self.hear(
            session,
            lines.joined("guest4", "dev"),
            lines.joined("guest4", "ops"),
            "*** Now talking in #dev.",
        )
        self.assertEqual(self.rooms(session), ("dev", ["lobby", "dev", "ops"]))

    def test_restore_current_already_joined(self) -> None:
        """The server's default room as the current one is made current again."""
        session = self.in_three_rooms()
        self.hear(session, "*** Now talking in #lobby.")
        session.connection_lost()
        self.assertEqual(self.greet(session), ["/join dev", "/join ops", "/join lobby"])

    def test_restore_parts_default_room(self) -> None:
        """A default room that was left is left again after the restore."""
        session = self.in_three_rooms()
        self.hear(session, "[#lobby] " + lines.left("guest1", "lobby"))
        session.connection_lost()
        self.assertEqual(self.greet(session), ["/join dev", "/join ops", "/part lobby"])

    def test_restore_no_room(self) -> None:
        """In no room before, in no room after."""
        session = ClientSession()
        self.greet(session)
        self.hear(session, "*** You are in no room now; /join one to talk.")
        session.connection_lost()
        self.assertEqual(self.greet(session), ["/part lobby"])

    def test_one_room_server(self) -> None:
        """
        With a server where /join leaves the old room (silently for the
        joiner), the current room is right, and so is the restore.
        """
        session = ClientSession(wanted_room="dev")
        self.assertEqual(self.greet(session), ["/join dev"])
        self.hear(session, lines.joined("guest1", "dev"))
        self.assertEqual(session.room, "dev")
        self.hear(session, lines.joined("guest1", "ops"))
        self.hear(session, lines.joined("guest1", "dev"))
        self.assertEqual(session.room, "dev")
        session.connection_lost()
        # Each /join moves on such a server; the last one is the room.
        self.assertEqual(self.greet(session), ["/join ops", "/join dev"])
        self.hear(session, lines.joined("guest1", "ops"), lines.joined("guest1", "dev"))
        self.assertEqual(session.room, "dev")


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """An endpoint whose connection attempts the test completes or fails."""

    def __init__(self) -> None:
        self.attempts: list[tuple[IProtocolFactory, Deferred[IProtocol]]] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = Deferred()
        self.attempts.append((factory, d))
        return d


class ClientTestCase(SynchronousTestCase):
    """A L{ChatClient} on a fake endpoint, a fake terminal and a L{Clock}."""

    label = "localhost:10001"

    def setUp(self) -> None:
        self.clock = Clock()
        self.endpoint = FakeEndpoint()
        self.err = io.StringIO()
        self.session = ClientSession()
        self.terminal_transport = StringTransportWithDisconnection()

    def start(self, nick: str | None = None, room: str | None = None) -> None:
        self.session.wanted_nick = nick
        self.session.wanted_room = room
        self.client = ChatClient(
            self.clock,
            self.endpoint,
            self.label,
            self.session,
            self.err,
            retry_policy=lambda attempt: 1.0,
            greeting_timeout=10.0,
            quit_grace=5.0,
        )
        self.terminal = TerminalProtocol(self.client)
        self.terminal_transport.protocol = self.terminal
        self.terminal.makeConnection(self.terminal_transport)
        self.done = self.client.start(self.terminal)

    def accept(self) -> StringTransportWithDisconnection:
        """Complete the latest connection attempt; return its transport."""
        factory, d = self.endpoint.attempts[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 10001))
        assert protocol is not None
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        d.callback(protocol)
        self.server_transport = transport
        return transport

    def server_says(self, *texts: str) -> None:
        protocol = self.server_transport.protocol
        protocol.dataReceived(lines.encode(*texts))

    def type(self, data: bytes) -> None:
        self.terminal.dataReceived(data)

    def sent(self) -> list[str]:
        """The lines the client sent to the server since the last call."""
        data: str = self.server_transport.value().decode("utf-8")
        self.server_transport.clear()
        return data.splitlines()

    def shown(self) -> list[str]:
        """The lines printed since the last call."""
        data: str = self.terminal_transport.value().decode("utf-8")
        self.terminal_transport.clear()
        return data.splitlines()


class PipedUseTests(ClientTestCase):
    """C{printf 'hello\\n' | client --nick bot}: sent, answered, exit 0."""

    def test_piped(self) -> None:
        """Input that ends before the connection is queued, then /quit follows."""
        self.start(nick="bot")
        self.type(b"hello\n")
        self.terminal.readConnectionLost()
        self.assertEqual(len(self.endpoint.attempts), 1)
        transport = self.accept()
        self.assertEqual(self.sent(), [])
        self.server_says(*greeting())
        self.assertEqual(self.sent(), ["/nick bot", "hello", "/quit"])
        self.server_says(
            lines.nick_change("guest1", "bot"),
            lines.message("bot", "hello"),
            lines.goodbye("quit"),
        )
        self.assertNoResult(self.done)
        transport.loseConnection()
        self.assertEqual(self.successResultOf(self.done), 0)
        self.assertEqual(
            self.shown(),
            [
                *greeting(),
                lines.nick_change("guest1", "bot"),
                lines.message("bot", "hello"),
                lines.goodbye("quit"),
            ],
        )
        self.assertFalse(self.terminal_transport.connected)
        self.assertEqual(self.err.getvalue(), "")
        # No reconnection once done.
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_eof_when_connected(self) -> None:
        """End of input once connected sends /quit and exits 0 on close."""
        self.start()
        transport = self.accept()
        self.server_says(*greeting())
        self.terminal.readConnectionLost()
        self.assertEqual(self.sent(), ["/quit"])
        transport.loseConnection()
        self.assertEqual(self.successResultOf(self.done), 0)

    def test_quit_typed(self) -> None:
        """C{/quit REASON} is sent as typed; later input is ignored; exit 0."""
        self.start()
        transport = self.accept()
        self.server_says(*greeting())
        self.type(b"/QUIT see you\nignored\n")
        self.assertEqual(self.sent(), ["/QUIT see you"])
        transport.loseConnection()
        self.assertEqual(self.successResultOf(self.done), 0)

    def test_quit_unanswered(self) -> None:
        """A server that does not close after /quit is closed after a grace."""
        self.start()
        transport = self.accept()
        self.server_says(*greeting())
        self.type(b"/quit\n")
        self.clock.advance(4.9)
        self.assertNoResult(self.done)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.successResultOf(self.done), 0)

    def test_quit_grace_restarts(self) -> None:
        """While the server still sends lines after /quit, the client waits."""
        self.start()
        transport = self.accept()
        self.server_says(*greeting())
        self.type(b"one\ntwo\n/quit\n")
        self.clock.advance(4.0)
        self.server_says(lines.message("guest1", "one"))
        self.clock.advance(4.0)
        self.server_says(lines.message("guest1", "two"))
        self.clock.advance(4.0)
        self.assertTrue(transport.connected)
        self.assertNoResult(self.done)
        self.clock.advance(1.0)
        self.assertTrue(transport.disconnected)
        self.assertEqual(self.successResultOf(self.done), 0)

    def test_output_closed(self) -> None:
        """If standard output goes away, the client quits."""
        self.start()
        transport = self.accept()
        self.server_says(*greeting())
        self.terminal.writeConnectionLost()
        self.assertEqual(self.sent(), ["/quit"])
        transport.loseConnection()
        self.assertEqual(self.successResultOf(self.done), 0)

    def test_hostile_output(self) -> None:
        """Control characters from the server never reach the terminal."""
        self.start()
        self.accept()
        self.server_says(*greeting(), "<mallory> \x1b[2J\x9b31mboo\x07")
        self.assertEqual(self.shown()[-1], "<mallory> \ufffd[2J\ufffd31mboo\ufffd")


class StartFailureTests(ClientTestCase):
    """A server that cannot be reached at start: one line, status 1, no retry."""

    def assert_failed(self, message: str) -> None:
        self.assertEqual(self.successResultOf(self.done), 1)
        self.assertEqual(
            self.err.getvalue(),
            f"twisted-chat: cannot connect to {self.label}: {message}\n",
        )
        self.clock.advance(0)
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_refused(self) -> None:
        """A refused connection at start ends the client with one line."""
        self.start()
        self.type(b"queued\n")
        self.endpoint.attempts[0][1].errback(
            ConnectionRefusedError(111, "Connection refused")
        )
        self.assert_failed("Connection refused")
        self.assertEqual(self.shown(), [])

    def test_closed_before_greeting(self) -> None:
        """A connection closed before the greeting is a failure to connect."""
        self.start()
        transport = self.accept()
        transport.loseConnection()
        self.assert_failed("the server closed the connection")

    def test_no_greeting(self) -> None:
        """A server that never greets (TLS without --tls) gives up in time."""
        self.start()
        transport = self.accept()
        self.clock.advance(9.9)
        self.assertNoResult(self.done)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.assert_failed(
            "no greeting from the server within 10 seconds (is it a "
            "twisted-chat server? does it need --tls?)"
        )


class ReconnectTests(ClientTestCase):
    """A connection that was up and dropped is retried and restored."""

    def connect_as_alice_in_dev(self) -> StringTransportWithDisconnection:
        self.start(nick="alice", room="dev")
        transport = self.accept()
        self.server_says(*greeting())
        self.assertEqual(self.sent(), ["/nick alice", "/join dev"])
        self.server_says(
            lines.nick_change("guest1", "alice"), lines.joined("alice", "dev")
        )
        self.shown()
        return transport

    def drop(self, transport: StringTransportWithDisconnection) -> None:
        transport.connected = False
        transport.protocol.connectionLost(Failure(ConnectionLost()))

    def test_reconnect_restores(self) -> None:
        """After a drop: a notice, queued input, then nick and room restored."""
        transport = self.connect_as_alice_in_dev()
        self.type(b"/nick alice2\n")
        self.server_says(lines.nick_change("alice", "alice2"))
        self.drop(transport)
        self.assertEqual(self.shown(), [lines.nick_change("alice", "alice2"), LOST])
        self.type(b"while away\n")
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.clock.advance(1.0)
        self.assertEqual(len(self.endpoint.attempts), 2)
        self.accept()
        self.server_says(*greeting("guest5"))
        self.assertEqual(self.sent(), ["/nick alice2", "/join dev", "while away"])
        shown = self.shown()
        self.assertEqual(
            shown[: len(greeting())], [*greeting("guest5")[:3], RECONNECTED]
        )
        self.assertNoResult(self.done)
        self.assertEqual(self.err.getvalue(), "")

    def test_retries_quietly(self) -> None:
        """Failed attempts while reconnecting are retried, not reported."""
        transport = self.connect_as_alice_in_dev()
        self.drop(transport)
        self.shown()
        for attempt in range(2, 5):
            self.clock.advance(1.0)
            self.assertEqual(len(self.endpoint.attempts), attempt)
            self.endpoint.attempts[-1][1].errback(
                ConnectionRefusedError(111, "Connection refused")
            )
        self.assertEqual(self.shown(), [])
        self.assertEqual(self.err.getvalue(), "")
        self.assertNoResult(self.done)

    def test_quit_while_reconnecting(self) -> None:
        """C{/quit} while reconnecting exits at once, saying what was dropped."""
        transport = self.connect_as_alice_in_dev()
        self.drop(transport)
        self.shown()
        self.type(b"one\ntwo\n/quit\n")
        self.assertEqual(self.successResultOf(self.done), 0)
        self.assertEqual(self.shown(), ["--- not connected: 2 unsent lines dropped"])
        self.clock.advance(100)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_eof_while_reconnecting(self) -> None:
        """End of input while reconnecting exits at once with status 0."""
        transport = self.connect_as_alice_in_dev()
        self.drop(transport)
        self.terminal.readConnectionLost()
        self.assertEqual(self.successResultOf(self.done), 0)


class RecordingInterface:
    """A user interface that records what the client tells it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.statuses: list[Status] = []
        self.closed = False

    def show(self, text: str, at: float | None = None) -> None:
        self.lines.append(text)

    def status(self, status: Status) -> None:
        self.statuses.append(status)

    def close(self) -> Deferred[None]:
        self.closed = True
        return Deferred.fromCoroutine(_nothing())


async def _nothing() -> None:
    return None


class StatusTests(ClientTestCase):
    """The client tells its user interface how the connection stands."""

    def start_with(self, ui: RecordingInterface) -> None:
        self.client = ChatClient(
            self.clock,
            self.endpoint,
            self.label,
            self.session,
            self.err,
            retry_policy=lambda attempt: 1.0,
        )
        self.done = self.client.start(ui)

    def test_life(self) -> None:
        """Connecting, connected (nick and rooms), reconnecting, quitting."""
        ui = RecordingInterface()
        self.start_with(ui)
        self.assertEqual(ui.statuses, [Status(self.label, Connection.CONNECTING)])
        transport = self.accept()
        self.server_says(*greeting(), lines.joined("guest1", "dev"))
        connected = Status(
            self.label, Connection.CONNECTED, "guest1", "dev", ("lobby", "dev")
        )
        self.assertEqual(
            ui.statuses[1:],
            [
                Status(self.label, Connection.CONNECTING, "guest1"),
                Status(self.label, Connection.CONNECTED, "guest1", "lobby", ("lobby",)),
                connected,
            ],
        )
        transport.connected = False
        transport.protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(ui.statuses[-1], Status(self.label, Connection.RECONNECTING))
        self.assertEqual(ui.lines[-1], LOST)
        self.clock.advance(1.0)
        self.accept()
        self.server_says(*greeting())
        self.assertEqual(self.sent(), ["/join dev"])
        self.server_says(lines.joined("guest1", "dev"))
        self.assertEqual(ui.statuses[-1], connected)
        self.client.typed("/quit")
        self.assertEqual(ui.statuses[-1].connection, Connection.QUITTING)

    def test_unchanged_not_repeated(self) -> None:
        """A line that changes nothing of ours sends no status."""
        ui = RecordingInterface()
        self.start_with(ui)
        self.accept()
        self.server_says(*greeting())
        count = len(ui.statuses)
        self.server_says(lines.message("bob", "hi"), lines.joined("bob", "lobby"))
        self.client.typed("hello")
        self.assertEqual(len(ui.statuses), count)

    def test_interrupted(self) -> None:
        """Ctrl-C sends /quit; a second one leaves without waiting."""
        ui = RecordingInterface()
        self.start_with(ui)
        transport = self.accept()
        self.server_says(*greeting())
        self.client.interrupted()
        self.assertEqual(self.sent(), ["/quit"])
        self.assertNoResult(self.done)
        self.client.interrupted()
        self.assertEqual(self.successResultOf(self.done), 0)
        self.assertTrue(ui.closed)
        self.clock.advance(0)
        self.assertFalse(transport.connected)


class FullScreenWantedTests(SynchronousTestCase):
    """The full-screen interface is for terminals only, unless --plain."""

    def pty(self) -> int:
        """A new pseudo-terminal; its slave end."""
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        return slave

    def test_terminal(self) -> None:
        """Standard input and output on a terminal: full-screen."""
        tty = self.pty()
        self.assertTrue(full_screen_wanted(parse(), tty, tty, term="xterm"))

    def test_plain(self) -> None:
        """C{--plain} keeps the plain filter on a terminal."""
        tty = self.pty()
        self.assertFalse(full_screen_wanted(parse("--plain"), tty, tty, term="xterm"))

    def test_dumb(self) -> None:
        """A terminal that cannot move its cursor gets plain lines."""
        tty = self.pty()
        for term in ["dumb", ""]:
            self.assertFalse(full_screen_wanted(parse(), tty, tty, term=term))

    def test_pipes(self) -> None:
        """Either side a pipe (a script, a filter): plain, exactly as before."""
        tty = self.pty()
        read, write = os.pipe()
        self.addCleanup(os.close, read)
        self.addCleanup(os.close, write)
        self.assertFalse(full_screen_wanted(parse(), read, tty, term="xterm"))
        self.assertFalse(full_screen_wanted(parse(), tty, write, term="xterm"))


class MainTests(SynchronousTestCase):
    """The program: option errors are one line and status 2."""

    def test_bad_option(self) -> None:
        """A bad option is reported on stderr before anything starts."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        error = self.assertRaises(SystemExit, main, ["--nick=1"])
        self.assertEqual(error.code, 2)
        self.assertEqual(err.getvalue().splitlines()[1], "Try --help for the options.")
        self.assertTrue(err.getvalue().startswith("twisted-chat: --nick 1: "))

    def test_bad_endpoint(self) -> None:
        """A description that does not parse: one line and status 2."""
        err = io.StringIO()
        reactor = MemoryReactorClock()
        status = run(reactor, parse("--connect=bogus:x"), err=err)
        self.assertEqual(self.successResultOf(status), 2)
        self.assertEqual(
            err.getvalue(),
            "twisted-chat: --connect bogus:x: not a client endpoint description "
            "(Unknown endpoint type: 'bogus')\n",
        )
        self.assertEqual(reactor.tcpClients, [])
