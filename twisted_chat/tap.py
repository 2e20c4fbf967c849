"""
Wiring for C{twistd chat}: command-line options and the service they make.
"""

from __future__ import annotations

from typing import cast

from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.python import usage

from twisted_chat.core import ChatServer
from twisted_chat.listen import ListenService
from twisted_chat.protocol import DEFAULT_MAX_LINE_LENGTH, ChatFactory
from twisted_chat.service import ChatService

DEFAULT_PORT = "tcp:10001"
DEFAULT_BACKLOG = 1024
_BACKLOG_TYPES = ("tcp", "tcp6", "unix", "ssl")


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


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value} is not a positive number")
    return number


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a twisted-chat server. --port takes a port number or a Twisted "
        "endpoint description (tcp:10001, tcp6:10001:interface=\\:\\:, "
        "unix:/run/chat.sock, ssl:6697:privateKey=key.pem:certKey=cert.pem) "
        "and may be given more than once; the default is " + DEFAULT_PORT + "."
    )

    optParameters = [
        [
            "max-line-length",
            None,
            DEFAULT_MAX_LINE_LENGTH,
            "Longest line a user may send, in bytes.",
            _positive_int,
        ],
        [
            "backlog",
            None,
            DEFAULT_BACKLOG,
            "Listen backlog for endpoints that do not set one.",
            _positive_int,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["port"] = []

    def opt_port(self, description: str) -> None:
        """
        Where to listen: a port number or an endpoint description. Repeat to
        listen on several (default: tcp:10001).
        """
        self["port"].append(description)

    opt_p = opt_port

    def postOptions(self) -> None:
        if not self["port"]:
            self["port"] = [DEFAULT_PORT]


def makeService(options: Options, reactor: IReactorCore | None = None) -> IService:
    """
    The chat service and one listening service per C{--port}.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = cast(IReactorCore, default_reactor)
    top = MultiService()
    factory = ChatFactory(ChatServer(), max_line_length=options["max-line-length"])
    ChatService(factory, cast(IReactorTime, reactor)).setServiceParent(top)
    for port in options["port"]:
        description = endpoint_description(port, options["backlog"])
        ListenService(reactor, description, factory, label=port).setServiceParent(top)
    return top
