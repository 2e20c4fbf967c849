"""
The client's command line: L{Options}, and the endpoint they describe.

Where to connect is C{--host} and C{--port} (by name, trying IPv6 and IPv4
with L{HostnameEndpoint}), or any Twisted client endpoint description with
C{--connect}; C{--tls} wraps either in TLS that verifies the server's
certificate against the host name, trusting C{--ca} or the system's CAs.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.endpoints import (
    HostnameEndpoint,
    clientFromString,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python import usage
from twisted.python.filepath import FilePath

from twisted_chat.shared.rules import nick_error, normalize_room, room_error

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 10001


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise usage.UsageError(f"--port {value}: not a port number (1-65535).")
    return int(value)


class Options(usage.Options):
    synopsis = "Usage: python -m twisted_chat.client [options]"
    longdesc = (
        "Chat on a twisted-chat server. On a terminal the client takes the "
        "whole screen: the conversation above, a status line, and an input "
        "line with history (Up, Down) that incoming lines never disturb. "
        "Otherwise (a pipe, a script, or --plain), lines read are sent and "
        "lines from the server are printed. /quit, Ctrl-C or Ctrl-D leaves. "
        "If the connection drops, the client reconnects and takes back its "
        "nickname and rooms."
    )

    optFlags = [
        [
            "plain",
            None,
            "Plain lines in and out even on a terminal, as when standard "
            "input or output is a pipe: no full-screen display.",
        ],
        [
            "tls",
            None,
            "Connect with TLS, verifying the server certificate against the "
            "host name (--host).",
        ],
    ]
    optParameters = [
        ["nick", None, None, "Nickname to take after connecting."],
        [
            "room",
            None,
            None,
            "Room to join after connecting (default: the server's lobby).",
        ],
        ["host", None, None, f"Server host name or address [default: {DEFAULT_HOST}]"],
        ["port", None, None, f"Server port [default: {DEFAULT_PORT}]"],
        [
            "connect",
            None,
            None,
            "Where to connect, as a Twisted client endpoint description, "
            "instead of --host and --port: unix:/run/chat.sock, "
            "tcp:host=\\:\\:1:port=10001 (colons in an address are escaped).",
        ],
        [
            "ca",
            None,
            None,
            "With --tls: trust the CA certificate in this PEM file instead of "
            "the system's trusted CAs.",
        ],
    ]

    def postOptions(self) -> None:
        self["tls"] = bool(self["tls"])
        self["plain"] = bool(self["plain"])
        if self["nick"] is not None:
            problem = nick_error(self["nick"])
            if problem is not None:
                raise usage.UsageError(f"--nick {self['nick']}: {problem}")
        if self["room"] is not None:
            typed, self["room"] = self["room"], normalize_room(self["room"])
            problem = room_error(self["room"])
            if problem is not None:
                raise usage.UsageError(f"--room {typed}: {problem}")
        if self["port"] is not None:
            self["port"] = _port(self["port"])
        if self["connect"] is not None:
            if self["port"] is not None:
                raise usage.UsageError("--port cannot be used with --connect.")
            if self["tls"] and self["host"] is None:
                raise usage.UsageError(
                    "--tls with --connect needs --host: the name the server "
                    "certificate must match."
                )
            if self["host"] is not None and not self["tls"]:
                raise usage.UsageError(
                    "--host cannot be used with --connect, except with --tls "
                    "to name the server."
                )
        else:
            if self["host"] is None:
                self["host"] = DEFAULT_HOST
            if self["port"] is None:
                self["port"] = DEFAULT_PORT
        if self["ca"] is not None and not self["tls"]:
            raise usage.UsageError("--ca can only be used with --tls.")


def host_label(host: str, port: int) -> str:
    """C{host:port}, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_endpoint(
    reactor: Any, options: Options
) -> tuple[IStreamClientEndpoint, str]:
    """
    The endpoint that C{options} say to connect to, and how to name it in
    messages.

    @raise usage.UsageError: for an endpoint description that does not parse
        or a C{--ca} file that cannot be read.
    """
    description = options["connect"]
    endpoint: IStreamClientEndpoint
    if description is not None:
        try:
            endpoint = clientFromString(reactor, description)
        except (ValueError, TypeError, KeyError) as e:
            raise usage.UsageError(
                f"--connect {description}: not a client endpoint description ({e})"
            ) from None
        label = description
    else:
        endpoint = HostnameEndpoint(reactor, options["host"], options["port"])
        label = host_label(options["host"], options["port"])
    if options["tls"]:
        trust = None
        if options["ca"] is not None:
            try:
                trust = Certificate.loadPEM(FilePath(options["ca"]).getContent())
            except OSError as e:
                raise usage.UsageError(
                    f"--ca {options['ca']}: {e.strerror or e}"
                ) from None
            except (crypto.Error, SSL.Error, ValueError):
                raise usage.UsageError(
                    f"--ca {options['ca']}: not a PEM certificate"
                ) from None
        try:
            creator = optionsForClientTLS(options["host"], trustRoot=trust)
        except ValueError as e:
            raise usage.UsageError(f"--host {options['host']}: {e}") from None
        endpoint = wrapClientTLS(creator, endpoint)
    return endpoint, label
