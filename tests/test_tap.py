"""
Tests for L{twisted_chat.server.tap}: the options of C{twistd chat} and the service
they make, listening on a L{MemoryReactorClock}; and for the
L{twisted_chat.server.service.ChatService} in it, which stops the chat.
"""

from __future__ import annotations

import gc
import os
import resource
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.test_history_tap import HISTORY_DEFAULTS
from twisted_chat.core.chat import DEFAULT_ANNOUNCE_LIMIT, ChatServer
from twisted_chat.server import limits
from twisted_chat.server.irc_protocol import (
    DEFAULT_PING_INTERVAL,
    IRCFactory,
    IRCProtocol,
)
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory, ChatProtocol
from twisted_chat.server.listen import (
    ListenFailed,
    ListenService,
    V6OnlyTCP6ServerEndpoint,
)
from twisted_chat.server.service import SHUTDOWN_GRACE, ChatService
from twisted_chat.server.tap import Options, endpoint_description, makeService

# The cluster's options (--redis): off by default.
CLUSTER_DEFAULTS: dict[str, Any] = {
    "redis": None,
    "redis-prefix": "chat:",
    "redis-history-lines": 1000,
    "redis-history-days": 30.0,
    "redis-nick-ttl": 20,
}

DEFAULTS: dict[str, Any] = {
    "port": ["tcp:10001"],
    "irc-port": [],
    "backlog": 1024,
    "max-line-length": limits.DEFAULT_MAX_LINE_LENGTH,
    "flood-burst": limits.DEFAULT_FLOOD_BURST,
    "flood-rate": limits.DEFAULT_FLOOD_RATE,
    "flood-kick": limits.DEFAULT_FLOOD_KICK,
    "max-send-queue": limits.DEFAULT_MAX_SEND_QUEUE,
    "max-clients": limits.DEFAULT_MAX_CLIENTS,
    "max-per-ip": limits.DEFAULT_MAX_PER_IP,
    "idle-timeout": limits.DEFAULT_IDLE_TIMEOUT,
    "socket-send-buffer": limits.DEFAULT_SOCKET_SEND_BUFFER,
    "announce-limit": DEFAULT_ANNOUNCE_LIMIT,
    "ping-interval": DEFAULT_PING_INTERVAL,
    **HISTORY_DEFAULTS,
    **CLUSTER_DEFAULTS,
}


# Every option that sets a limit, each to a value other than its default.
EVERY_LIMIT = (
    "--max-line-length=100",
    "--flood-burst=3",
    "--flood-rate=0.5",
    "--flood-kick=9",
    "--max-send-queue=1000",
    "--max-clients=10",
    "--max-per-ip=2",
    "--idle-timeout=60",
    "--announce-limit=40",
    "--socket-send-buffer=8192",
)


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    """C{twistd chat} command-line options."""

    def test_defaults(self) -> None:
        """With no arguments, the server listens on tcp:10001 with default limits."""
        self.assertEqual(dict(parse()), DEFAULTS)

    def test_every_option(self) -> None:
        """Every option is parsed into its key, as a number where it is one."""
        options = parse(
            "--port=tcp:2000",
            "--irc-port=6667",
            "--backlog=7",
            "--ping-interval=30",
            *EVERY_LIMIT,
        )
        self.assertEqual(
            dict(options),
            {
                "port": ["tcp:2000"],
                "irc-port": ["6667"],
                "ping-interval": 30.0,
                **HISTORY_DEFAULTS,
                **CLUSTER_DEFAULTS,
                "backlog": 7,
                "max-line-length": 100,
                "flood-burst": 3,
                "flood-rate": 0.5,
                "flood-kick": 9,
                "max-send-queue": 1000,
                "max-clients": 10,
                "max-per-ip": 2,
                "idle-timeout": 60.0,
                "announce-limit": 40,
                "socket-send-buffer": 8192,
            },
        )

    def test_port_repeated(self) -> None:
        """
        C{--port} (or C{-p}) may be repeated; the values are kept as typed,
        in order, and replace the default.
        """
        options = parse(
            "--port",
            "10001",
            "-p",
            "unix:/run/chat.sock",
            "--port=tcp6:10001:interface=\\:\\:",
        )
        self.assertEqual(
            dict(options),
            {
                **DEFAULTS,
                "port": ["10001", "unix:/run/chat.sock", "tcp6:10001:interface=\\:\\:"],
            },
        )

    def test_zero_turns_off(self) -> None:
        """
        0 is accepted where it means "no limit" or "off": client counts,
        flood rate and idle timeout.
        """
        options = parse(
            "--max-clients=0",
            "--max-per-ip=0",
            "--flood-rate=0",
            "--idle-timeout=0",
            "--announce-limit=0",
            "--socket-send-buffer=0",
            "--ping-interval=0",
        )
        self.assertEqual(
            dict(options),
            {
                **DEFAULTS,
                "max-clients": 0,
                "max-per-ip": 0,
                "flood-rate": 0.0,
                "idle-timeout": 0.0,
                "announce-limit": 0,
                "socket-send-buffer": 0,
                "ping-interval": 0.0,
            },
        )

    def test_bad_numbers(self) -> None:
        """Values that are not numbers, or are out of range, are usage errors."""
        positive = ["0", "-1", "x", "1.5", ""]
        at_least_zero = ["-1", "x", "1.5", ""]
        seconds = ["-1", "-0.5", "x", ""]
        bad = {
            "backlog": positive,
            "max-line-length": positive,
            "flood-burst": positive,
            "flood-kick": positive,
            "max-send-queue": positive,
            "max-clients": at_least_zero,
            "max-per-ip": at_least_zero,
            "announce-limit": at_least_zero,
            "socket-send-buffer": at_least_zero,
            "flood-rate": seconds,
            "idle-timeout": seconds,
            "ping-interval": seconds,
            "redis-history-lines": positive,
            "redis-history-days": ["0", "-1", "x"],
            "redis-nick-ttl": ["1", "0", "x"],
        }
        self.assertEqual(
            sorted(bad),
            sorted(
                set(DEFAULTS)
                - {"port", "irc-port", "redis", "redis-prefix", *HISTORY_DEFAULTS}
            ),
        )
        for name, values in bad.items():
            for value in values:
                with self.assertRaises(UsageError, msg=f"--{name}={value}"):
                    parse(f"--{name}={value}")

    def test_extra_arguments(self) -> None:
        """Positional arguments are refused."""
        self.assertRaises(UsageError, parse, "10001")

    def test_limits(self) -> None:
        """L{Options.limits} carries every limit option into a L{Limits}."""
        options = parse(*EVERY_LIMIT)
        self.assertEqual(
            options.limits(),
            Limits(
                max_line_length=100,
                flood_burst=3,
                flood_rate=0.5,
                flood_kick=9,
                max_send_queue=1000,
                max_clients=10,
                max_per_ip=2,
                idle_timeout=60.0,
                socket_send_buffer=8192,
            ),
        )
        self.assertEqual(parse().limits(), Limits())


class EndpointDescriptionTests(SynchronousTestCase):
    """L{endpoint_description} turns a C{--port} value into a description."""

    def test_bare_digits(self) -> None:
        """Bare digits mean TCP on that port, with the backlog added."""
        self.assertEqual(endpoint_description("10001", 50), "tcp:10001:backlog=50")

    def test_backlog_added(self) -> None:
        """Stream endpoints without a backlog get the one given."""
        cases = {
            "tcp:10001": "tcp:10001:backlog=9",
            "tcp:10001:interface=127.0.0.1": "tcp:10001:interface=127.0.0.1:backlog=9",
            "TCP:10001": "TCP:10001:backlog=9",
            "tcp6:10001:interface=\\:\\:": "tcp6:10001:interface=\\:\\::backlog=9",
            "unix:/run/chat.sock": "unix:/run/chat.sock:backlog=9",
            "ssl:6697:privateKey=key.pem": "ssl:6697:privateKey=key.pem:backlog=9",
        }
        self.assertEqual({port: endpoint_description(port, 9) for port in cases}, cases)

    def test_backlog_kept(self) -> None:
        """A description that sets its own backlog is left as it is."""
        ports = [
            "tcp:10001:backlog=5",
            "tcp:backlog=5:port=10001",
            "tcp6:10001:backlog=5:interface=\\:\\:1",
            "unix:/run/chat.sock:backlog=5",
            "ssl:6697:backlog=5:privateKey=key.pem",
        ]
        self.assertEqual([endpoint_description(port, 9) for port in ports], ports)

    def test_other_endpoints_untouched(self) -> None:
        """Endpoint types that take no backlog are passed through unchanged."""
        ports = ["systemd:domain=INET:index=0", "onion:443"]
        self.assertEqual([endpoint_description(port, 9) for port in ports], ports)


class BadPortTests(SynchronousTestCase):
    """A mistake in --port is a usage error naming it, not a traceback."""

    def assert_refused(self, port: str, *words: str) -> None:
        with self.assertRaises(UsageError) as caught:
            Options().parseOptions(["--port", port])
        message = str(caught.exception)
        self.assertTrue(message.startswith(f"--port {port}: "), message)
        for word in words:
            self.assertIn(word, message)

    def test_port_out_of_range(self) -> None:
        """Port numbers past 65535 are refused, bare or in a description."""
        self.assert_refused("99999", "99999 is not a port number")
        self.assert_refused("tcp:70000", "70000 is not a port number")

    def test_unknown_endpoint_type(self) -> None:
        """An unknown endpoint type is named."""
        self.assert_refused("bogus:1", "bogus")

    def test_not_a_number(self) -> None:
        """A port that is not a number is refused."""
        self.assert_refused("tcp:abc", "abc")

    def test_unescaped_ipv6_colons(self) -> None:
        """The usual IPv6 mistake gets a hint about escaping colons."""
        self.assert_refused("tcp6:1:interface=::", "\\:")

    def test_unknown_parameter(self) -> None:
        """An unknown parameter is named."""
        self.assert_refused("tcp:1:foo=2", "foo")

    def test_unknown_ssl_method(self) -> None:
        """An C{sslmethod} OpenSSL does not have is named."""
        self.assert_refused("ssl:6697:sslmethod=BOGUS", "BOGUS")

    def test_machine_errors_left_to_start_up(self) -> None:
        """
        What depends on the machine, not on the text (the files an C{ssl}
        port names, the sockets systemd passed), is not a usage error: the
        port is kept as typed, and making the service stops with one line.
        """
        missing = "ssl:6697:privateKey=missing.pem:certKey=missing.pem"
        systemd = "systemd:domain=INET:index=99"
        for port, why in [
            (missing, os.path.abspath("missing.pem") + ": No such file or directory"),
            (systemd, "systemd passed no socket with that index (see LISTEN_FDS)"),
        ]:
            options = parse("--no-history", "--port", port)
            self.assertEqual(options["port"], [port])
            with self.assertRaises(ListenFailed) as caught:
                makeService(options, MemoryReactorClock())
            self.assertEqual(
                caught.exception.code, f"twistd chat: cannot listen on {port}: {why}"
            )

    def test_good_descriptions_pass(self) -> None:
        """Valid descriptions of every kind are accepted as typed."""
        ports = ["10001", "tcp:0", "tcp6:0:interface=\\:\\:1", "unix:/tmp/x.sock"]
        options = Options()
        options.parseOptions([arg for port in ports for arg in ("--port", port)])
        self.assertEqual(options["port"], ports)


class IRCPortTests(SynchronousTestCase):
    """C{--irc-port}: where IRC clients connect, given as C{--port} is."""

    def test_repeated(self) -> None:
        """It may be repeated; the values are kept as typed, in order, and
        the line protocol keeps its default port."""
        options = parse("--irc-port", "6667", "--irc-port=ssl:6697:privateKey=k")
        self.assertEqual(
            dict(options), {**DEFAULTS, "irc-port": ["6667", "ssl:6697:privateKey=k"]}
        )

    def test_checked_like_port(self) -> None:
        """A mistake in it is a usage error naming C{--irc-port}."""
        for typed, words in [
            ("99999", "99999 is not a port number"),
            ("bogus:1", "bogus"),
            ("tcp6:1:interface=::", "\\:"),
        ]:
            with self.assertRaises(UsageError) as caught:
                parse("--irc-port", typed)
            message = str(caught.exception)
            self.assertTrue(message.startswith(f"--irc-port {typed}: "), message)
            self.assertIn(words, message)


class MakeServiceTests(SynchronousTestCase):
    """L{makeService} builds the chat and its listeners."""

    def setUp(self) -> None:
        # makeService raises this process's open-file limit; put it back.
        self.addCleanup(
            resource.setrlimit,
            resource.RLIMIT_NOFILE,
            resource.getrlimit(resource.RLIMIT_NOFILE),
        )
        self.reactor = MemoryReactorClock()

    def build(self, *args: str) -> MultiService:
        # History has tests of its own (test_history_tap), on a reactor
        # with threads.
        service = makeService(parse("--no-history", *args), self.reactor)
        assert isinstance(service, MultiService)
        return service

    def start(self, *args: str) -> MultiService:
        service = self.build(*args)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        return service

    def chat_factory(self, service: MultiService) -> ChatFactory:
        """The line protocol's factory, which every C{--port} listens with."""
        factory = next(c for c in service if isinstance(c, ListenService)).factory
        assert isinstance(factory, ChatFactory)
        return factory

    def test_default_port(self) -> None:
        """By default the server listens on TCP port 10001 on every interface."""
        service = self.start()
        factory = self.chat_factory(service)
        self.assertEqual(self.reactor.tcpServers, [(10001, factory, 1024, "")])
        self.assertEqual(self.reactor.unixServers, [])

    def test_ipv4_and_unix(self) -> None:
        """
        Each C{--port} becomes one listener, with the backlog asked for, all
        sharing one L{ChatFactory}.
        """
        service = self.start(
            "--port=10001",
            "--port=tcp:10002:interface=127.0.0.1",
            "--port=unix:/run/chat.sock",
            "--port=tcp:10003:backlog=5",
            "--backlog=7",
        )
        factory = self.chat_factory(service)
        self.assertIsInstance(factory, ChatFactory)
        self.assertEqual(
            self.reactor.tcpServers,
            [
                (10001, factory, 7, ""),
                (10002, factory, 7, "127.0.0.1"),
                (10003, factory, 5, ""),
            ],
        )
        # mode 0o666 and a lock file are the unix: endpoint's defaults.
        self.assertEqual(
            self.reactor.unixServers, [("/run/chat.sock", factory, 7, 0o666, True)]
        )

    def test_children(self) -> None:
        """
        The service holds the chat service first, then one listener per
        C{--port}, labelled as the user typed it.
        """
        service = self.start("-p", "10001", "-p", "tcp:10002")
        children = list(service)
        self.assertEqual(
            [type(child) for child in children],
            [ChatService, ListenService, ListenService],
        )
        listeners = [child for child in children if isinstance(child, ListenService)]
        self.assertEqual(
            [(listener.label, listener.description) for listener in listeners],
            [
                ("10001", "tcp:10001:backlog=1024"),
                ("tcp:10002", "tcp:10002:backlog=1024"),
            ],
        )
        for child in children:
            verifyObject(IService, child)
            self.assertTrue(child.running)

    def test_limits_and_clock(self) -> None:
        """
        The factory gets the limits from the options, and both it and the
        chat service use the given reactor for time.
        """
        service = self.start("--max-line-length=100", "--max-clients=3")
        [chat] = [child for child in service if isinstance(child, ChatService)]
        self.assertEqual(
            chat.delivery.limits, Limits(max_line_length=100, max_clients=3)
        )
        self.assertIs(chat.delivery.clock, self.reactor)
        self.assertIs(self.chat_factory(service).delivery, chat.delivery)
        self.assertIs(chat.clock, self.reactor)

    def test_announce_limit(self) -> None:
        """The chat core gets --announce-limit."""
        service = self.start("--announce-limit=7")
        [chat] = [child for child in service if isinstance(child, ChatService)]
        self.assertEqual(chat.delivery.chat.announce_limit, 7)

    def test_irc_ports(self) -> None:
        """
        Each C{--irc-port} listens with one L{IRCFactory}, which shares the
        line protocol's L{Delivery} (so one batch, one backpressure and one
        connection count for both) and gets C{--ping-interval}.
        """
        service = self.start(
            "--port=10001",
            "--irc-port=6667",
            "--irc-port=tcp:6668",
            "--ping-interval=9",
        )
        listeners = [child for child in service if isinstance(child, ListenService)]
        self.assertEqual(
            [(listener.label, type(listener.factory)) for listener in listeners],
            [("10001", ChatFactory), ("6667", IRCFactory), ("tcp:6668", IRCFactory)],
        )
        line, irc, irc2 = (listener.factory for listener in listeners)
        assert isinstance(line, ChatFactory) and isinstance(irc, IRCFactory)
        self.assertIs(irc, irc2)
        self.assertIs(irc.delivery, line.delivery)
        self.assertEqual(irc.ping_interval, 9.0)
        self.assertEqual(
            self.reactor.tcpServers,
            [(10001, line, 1024, ""), (6667, irc, 1024, ""), (6668, irc, 1024, "")],
        )
        [chat] = [child for child in service if isinstance(child, ChatService)]
        self.assertEqual(chat.listening, ["10001", "6667 (IRC)", "tcp:6668 (IRC)"])

    def test_irc_history(self) -> None:
        """
        IRC clients are offered CHATHISTORY, up to --history-limit lines,
        when the server keeps history, and not with --no-history.
        """

        class Reactor(MemoryReactorClock):
            def callFromThread(self, f: Any, *args: Any, **kwargs: Any) -> None:
                f(*args, **kwargs)

        def irc_factory(*args: str) -> IRCFactory:
            service = makeService(parse("--irc-port=6667", *args), Reactor())
            assert isinstance(service, MultiService)
            [irc] = [c.factory for c in service if isinstance(c, ListenService)][1:]
            assert isinstance(irc, IRCFactory)
            return irc

        kept = irc_factory("--database=:memory:", "--history-limit=42")
        self.assertEqual(kept.renderer.info.history_limit, 42)
        self.assertEqual(irc_factory("--no-history").renderer.info.history_limit, 0)

    def test_tcp6_is_ipv6_only(self) -> None:
        """A C{tcp6} port is served by the IPv6-only endpoint."""
        service = self.build("--port=tcp6:10001:interface=\\:\\:1", "--port=tcp:10001")
        listeners = [child for child in service if isinstance(child, ListenService)]
        self.assertEqual(
            [type(listener.endpoint) for listener in listeners],
            [V6OnlyTCP6ServerEndpoint, TCP4ServerEndpoint],
        )

    def test_stop(self) -> None:
        """Stopping the service stops listening and fires at once when idle."""
        service = self.start("--port=tcp:10001:interface=127.0.0.1")
        d = service.stopService()
        self.successResultOf(d)
        self.assertFalse(service.running)


SHUTDOWN = b"*** Server shutting down: the server is stopping\n"


class ChatServiceTests(SynchronousTestCase):
    """L{ChatService} tells every user and closes every connection on stop."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = ChatFactory(ChatServer(), Limits(), self.clock)
        self.service = ChatService(self.factory.delivery, self.clock)
        self.service.startService()

    def connect(self) -> tuple[ChatProtocol, StringTransport]:
        """A connected user, with the greeting already read."""
        peer = IPv4Address("TCP", "127.0.0.1", 40000 + len(self.factory.connections))
        protocol = self.factory.buildProtocol(peer)
        assert isinstance(protocol, ChatProtocol)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        self.assertIn(b"*** Welcome", transport.value())
        transport.clear()
        return protocol, transport

    def test_grace(self) -> None:
        """The grace period defaults to five seconds."""
        self.assertEqual((SHUTDOWN_GRACE, self.service.grace), (5.0, 5.0))

    def test_no_connections(self) -> None:
        """With nobody connected, stopping is immediate."""
        self.assertIsNone(self.successResultOf(self.service.stopService()))
        self.assertFalse(self.service.running)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tells_and_closes(self) -> None:
        """
        Every user, in any room, gets the shutdown line and is disconnected;
        the stop waits until every connection is closed.
        """
        (a, a_transport), (b, b_transport) = self.connect(), self.connect()
        b.dataReceived(b"/join elsewhere\n")
        a_transport.clear()
        b_transport.clear()

        d = self.service.stopService()
        self.assertEqual(
            [(t.value(), t.disconnecting) for t in (a_transport, b_transport)],
            [(SHUTDOWN, True), (SHUTDOWN, True)],
        )
        self.assertNoResult(d)
        a.connectionLost()
        self.assertNoResult(d)
        b.connectionLost()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.factory.connections, set())

    def irc(self) -> tuple[IRCProtocol, StringTransport]:
        """An IRC connection on the same delivery, not registered yet."""
        factory = IRCFactory(self.factory.delivery)
        peer = IPv4Address("TCP", "127.0.0.1", 40000 + len(self.factory.connections))
        protocol = factory.buildProtocol(peer)
        assert isinstance(protocol, IRCProtocol)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_every_front_end(self) -> None:
        """
        IRC users are told in IRC, and a connection still registering is
        closed too.
        """
        (_, line_transport), (irc, irc_transport) = self.connect(), self.irc()
        irc.dataReceived(b"NICK al\r\nUSER al 0 * :Al\r\n")
        _, waiting = self.irc()
        irc_transport.clear()
        d = self.service.stopService()
        self.assertEqual(line_transport.value(), SHUTDOWN)
        error = b"ERROR :Server shutting down: the server is stopping\r\n"
        self.assertEqual(irc_transport.value(), error)
        self.assertEqual(waiting.value(), error)
        self.assertTrue(
            all(t.disconnecting for t in (line_transport, irc_transport, waiting))
        )
        for connection in list(self.factory.connections):
            connection.connectionLost()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_gives_up_after_grace(self) -> None:
        """
        Connections that never close hold up the stop for the grace period
        only; closing them later is harmless.
        """
        (a, a_transport), (b, b_transport) = self.connect(), self.connect()
        a_transport.clear()
        d = self.service.stopService()
        self.assertEqual((a_transport.value(), b_transport.value()), (SHUTDOWN,) * 2)
        self.clock.advance(SHUTDOWN_GRACE - 0.01)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        self.assertIsNone(self.successResultOf(d))
        a.connectionLost()
        b.connectionLost()
        del a, b, d
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])


class RedisOptionTests(SynchronousTestCase):
    """--redis and its companions."""

    def test_redis(self) -> None:
        """--redis and the cluster's options are parsed into the options."""
        options = parse(
            "--redis=redis://:pw@127.0.0.1:6380/2",
            "--redis-prefix=c2:",
            "--redis-history-lines=50",
            "--redis-history-days=2",
            "--redis-nick-ttl=4",
        )
        self.assertEqual(
            {key: options[key] for key in CLUSTER_DEFAULTS},
            {
                "redis": "redis://:pw@127.0.0.1:6380/2",
                "redis-prefix": "c2:",
                "redis-history-lines": 50,
                "redis-history-days": 2.0,
                "redis-nick-ttl": 4,
            },
        )

    def test_bad_url(self) -> None:
        """A --redis URL that names no Redis is one usage error that says why."""
        with self.assertRaises(UsageError) as raised:
            parse("--redis=http://example.com/")
        self.assertIn("--redis http://example.com/", str(raised.exception))

    def test_cluster_service(self) -> None:
        """With --redis, the chat has the cluster's directory and fan-out."""
        from twisted_chat.cluster.fanout import RedisFanout
        from twisted_chat.cluster.seam import ClusterDirectory
        from twisted_chat.server.tap import ClusterService

        reactor = MemoryReactorClock()
        top = makeService(parse("--redis=redis://127.0.0.1:6390/0"), reactor)
        services = list(top)  # type: ignore[call-overload]
        self.assertIsInstance(services[0], ClusterService)
        chat = services[1].delivery.chat
        self.assertIsInstance(chat.directory, ClusterDirectory)
        self.assertIsInstance(chat.fanout, RedisFanout)
        self.assertIsNone(chat.history)
