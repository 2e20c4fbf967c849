"""
Wiring for C{twistd chat}: command-line options and the service they make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.application.service import IService, MultiService, Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.python import usage

from twisted_chat.core.chat import DEFAULT_ANNOUNCE_LIMIT, ChatServer
from twisted_chat.server import limits as defaults
from twisted_chat.server.delivery import Delivery
from twisted_chat.server.history_service import (
    HISTORY_FLAGS,
    HISTORY_PARAMETERS,
    history_from_options,
)
from twisted_chat.server.irc_protocol import DEFAULT_PING_INTERVAL, IRCFactory
from twisted_chat.server.limits import Limits
from twisted_chat.server.line import ChatFactory
from twisted_chat.server.listen import ListenService, twisted_description
from twisted_chat.server.service import ChatService

DEFAULT_PORT = "tcp:10001"
DEFAULT_BACKLOG = 1024
_BACKLOG_TYPES = ("tcp", "tcp6", "unix", "ssl", "reuseport")


def endpoint_description(port: str, backlog: int) -> str:
    """
    The server endpoint description for a C{--port} value: bare digits mean
    C{tcp:N}, and the listen backlog is added to stream endpoints that do not
    set one, so a burst of connections is queued rather than refused.
    """
    description = f"tcp:{port}" if port.isdigit() else port
    kind = description.split(":", 1)[0].lower()
    if kind in _BACKLOG_TYPES and ":backlog=" not in description:
        description += f":backlog={backlog}"
    return description


def check_description(description: str, typed: str, option: str = "--port") -> None:
    """
    Parse an endpoint description without listening, so that a mistake in
    the text of C{--port} or C{--irc-port} (the C{option} named in the
    message) is a usage error rather than a traceback: an unknown type or
    parameter, a port that is not a number from 0 to 65535.

    What depends on the machine rather than on the text is left to
    start-up, which reports it in one line with exit status 1 (see
    L{ListenService}): a file an C{ssl} port names that is missing,
    unreadable or not a certificate and its key, or a socket that systemd
    did not pass.
    """
    try:
        endpoint = endpoints.serverFromString(None, twisted_description(description))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        hint = ""
        if "interface=" in description and "\\:" not in description:
            hint = " (write the colons of an IPv6 address as \\:)"
        raise usage.UsageError(f"{option} {typed}: {e}{hint}") from None
    except Exception:
        return
    # The parsed port is private (and getattr keeps this safe if it goes);
    # Twisted only finds an out-of-range port when it listens, with an
    # OverflowError deep in a traceback.
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not 0 <= port <= 65535:
        raise usage.UsageError(f"{option} {typed}: {port} is not a port number")


def _number(kind: Callable[[str], Any], minimum: float) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        number = kind(value)
        if number < minimum:
            raise ValueError(f"{value} is less than {minimum}")
        return number

    return convert


_count = _number(int, 0)
_positive = _number(int, 1)
_seconds = _number(float, 0)


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a twisted-chat server. --port takes a port number or a Twisted "
        "endpoint description (tcp:10001, tcp6:10001:interface=\\:\\:, "
        "unix:/run/chat.sock, ssl:6697:privateKey=key.pem:certKey=cert.pem, "
        "reuseport:10001 for several --redis nodes on one port) "
        "and may be given more than once; the default is " + DEFAULT_PORT + ". "
        "--irc-port takes the same and listens for IRC clients (none by "
        "default; ssl:6697:... for IRC over TLS); IRC and line-protocol users "
        "share the rooms and the limits. A limit of 0 means no limit. "
        "--redis redis://[:password@]host:port/db (or rediss://..., or a UNIX "
        "socket path) makes this process one node of a cluster: every node on "
        "the same Redis serves one chat, and the history is each room's Redis "
        "stream (--database is then ignored)."
    )

    optParameters = [
        ["backlog", None, DEFAULT_BACKLOG,
         "Listen backlog for endpoints that do not set one.", _positive],
        ["max-line-length", None, defaults.DEFAULT_MAX_LINE_LENGTH,
         "Longest line a user may send, in bytes.", _positive],
        ["flood-burst", None, defaults.DEFAULT_FLOOD_BURST,
         "Lines a user may send at once before flood control.", _positive],
        ["flood-rate", None, defaults.DEFAULT_FLOOD_RATE,
         "Lines per second a user may send after the burst (0: flood control "
         "off).", _seconds],
        ["flood-kick", None, defaults.DEFAULT_FLOOD_KICK,
         "Lines that may be delayed in a row before a flooding user is "
         "disconnected.", _positive],
        ["max-send-queue", None, defaults.DEFAULT_MAX_SEND_QUEUE,
         "Bytes that may wait for a client that does not read before it is "
         "disconnected.", _positive],
        ["max-clients", None, defaults.DEFAULT_MAX_CLIENTS,
         "Connections at once (0: no limit).", _count],
        ["max-per-ip", None, defaults.DEFAULT_MAX_PER_IP,
         "Connections at once from one IP address (0: no limit).", _count],
        ["idle-timeout", None, defaults.DEFAULT_IDLE_TIMEOUT,
         "Disconnect users who send nothing for this many seconds (0: off).",
         _seconds],
        ["socket-send-buffer", None, defaults.DEFAULT_SOCKET_SEND_BUFFER,
         "Kernel send buffer of each TCP connection, in bytes (0: the "
         "kernel's own sizing).", _count],
        ["ping-interval", None, DEFAULT_PING_INTERVAL,
         "IRC keepalive: PING a client silent for this many seconds, and "
         "drop it (Ping timeout) if it then sends nothing for as long again "
         "(0: off).", _seconds],
        ["announce-limit", None, DEFAULT_ANNOUNCE_LIMIT,
         "Rooms with more users than this do not announce joins, leaves and "
         "quits (0: always announce).", _count],
    ]  # fmt: skip
    optParameters += HISTORY_PARAMETERS
    optParameters += [
        ["redis", None, None,
         "Run as one node of a cluster on this Redis: "
         "redis://[:password@]host[:port][/db], rediss://... (TLS), or a UNIX "
         "socket path. History then lives in Redis and --database is ignored."],
        ["redis-prefix", None, "chat:",
         "Prefix of every Redis key of the cluster (clusters sharing a Redis "
         "use different ones)."],
        ["redis-history-lines", None, 1000,
         "Cluster: events kept in each room's Redis stream (its history).",
         _positive],
        ["redis-history-days", None, 30.0,
         "Cluster: days a room's stream is kept after its last event.",
         _number(float, 0.001)],
        ["redis-nick-ttl", None, 20,
         "Cluster: seconds a dead node's nicknames stay taken (its members "
         "leave their rooms within this and a quarter more; refreshed every "
         "quarter of it).", _number(int, 2)],
    ]  # fmt: skip
    optFlags = HISTORY_FLAGS

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []
        self["irc-port"] = []

    def opt_port(self, description: str) -> None:
        """Where to listen (repeatable): a port number or endpoint description."""
        self["port"].append(description)

    opt_p = opt_port

    def opt_irc_port(self, description: str) -> None:
        """Where to listen for IRC clients (repeatable), as for --port."""
        self["irc-port"].append(description)

    def postOptions(self) -> None:
        if not self["port"]:
            self["port"] = [DEFAULT_PORT]
        for port in self["port"]:
            check_description(endpoint_description(port, self["backlog"]), port)
        for port in self["irc-port"]:
            description = endpoint_description(port, self["backlog"])
            check_description(description, port, "--irc-port")
        if self["redis"] is not None:
            from twisted_chat.cluster.address import BadRedisAddress, parse_redis_url

            try:
                parse_redis_url(self["redis"])
            except BadRedisAddress as e:
                raise usage.UsageError(f"--redis {self['redis']}: {e}") from None

    def limits(self) -> Limits:
        """The L{Limits} these options ask for."""
        return Limits(
            max_line_length=self["max-line-length"],
            flood_burst=self["flood-burst"],
            flood_rate=self["flood-rate"],
            flood_kick=self["flood-kick"],
            max_send_queue=self["max-send-queue"],
            max_clients=self["max-clients"],
            max_per_ip=self["max-per-ip"],
            idle_timeout=self["idle-timeout"],
            socket_send_buffer=self["socket-send-buffer"],
        )


def makeService(options: Options, reactor: IReactorCore | None = None) -> IService:
    """
    The chat service, one listening service per C{--port} and one per
    C{--irc-port}, all sharing one chat and one L{Delivery}.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = cast(IReactorCore, default_reactor)
    limits = options.limits()
    top = MultiService()
    if options["redis"] is not None:
        chat = _cluster_chat(options, reactor, top)
    else:
        history = history_from_options(options, reactor)
        chat = ChatServer(
            fanout=history.fanout,
            history=history.history,
            announce_limit=options["announce-limit"],
        )
        if history.service is not None:
            # First: the store is open before anything else starts.
            history.service.setServiceParent(top)
    delivery = Delivery(chat, limits, cast(IReactorTime, reactor))
    factory = ChatFactory(chat, delivery=delivery)
    irc = IRCFactory(
        delivery,
        ping_interval=options["ping-interval"],
        history_limit=options["history-limit"] if chat.history is not None else 0,
    )
    listening = [*options["port"], *(f"{port} (IRC)" for port in options["irc-port"])]
    ChatService(
        delivery, cast(IReactorTime, reactor), listening=listening
    ).setServiceParent(top)
    for port in options["port"]:
        description = endpoint_description(port, options["backlog"])
        ListenService(reactor, description, factory, label=port).setServiceParent(top)
    for port in options["irc-port"]:
        description = endpoint_description(port, options["backlog"])
        ListenService(reactor, description, irc, label=port).setServiceParent(top)
    return top


class ClusterService(Service):
    """Connects a cluster node when the server starts; on stop, releases its
    names and memberships and disconnects (after the users were told)."""

    def __init__(self, node: Any) -> None:
        self.node = node

    def startService(self) -> None:
        super().startService()
        self.node.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        d: Deferred[None] = self.node.stop()
        return d


def _cluster_chat(
    options: Options, reactor: IReactorCore, top: MultiService
) -> ChatServer:
    """The chat of one node of the cluster on C{--redis}."""
    # Imported here, not at the top: txredisapi imports the global reactor,
    # which must be the one twistd installs.
    from twisted_chat.cluster.node import ClusterNode
    from twisted_chat.cluster.seam import ClusterDirectory

    ttl = options["redis-nick-ttl"]
    clock = cast(IReactorTime, reactor)
    node = ClusterNode.from_url(
        options["redis"],
        reactor,
        clock,
        prefix=options["redis-prefix"],
        maxlen=options["redis-history-lines"],
        ttl=max(1, int(options["redis-history-days"] * 86_400)),
        directory_options={"ttl": ttl, "heartbeat_interval": ttl / 4},
    )
    chat = ChatServer(
        fanout=node.fanout,
        directory=ClusterDirectory(node, clock),
        announce_limit=options["announce-limit"],
    )
    # First: stopped last, after every user was told.
    ClusterService(node).setServiceParent(top)
    return chat
