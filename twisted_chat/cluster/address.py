"""
Where Redis is: the C{--redis} URL, parsed and checked once.

Accepted forms::

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ca=/path/ca.pem]
    unix:///path/redis.sock[?db=N][&password=P][&user=U]
    /path/redis.sock

C{rediss} is TLS, checking the server's certificate against C{host} with the
system's CAs, or the CA file given as C{ca}.  The port defaults to 6379 and
the database to 0.  A password may be percent-encoded.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, unquote, urlsplit

from attrs import field, frozen
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IReactorCore, IStreamClientEndpoint

FORMS = (
    "redis://[:password@]host[:port][/db], rediss://... for TLS, "
    "or a UNIX socket path (/path/redis.sock or unix:///path/redis.sock?db=N)"
)

DEFAULT_PORT = 6379


class BadRedisAddress(ValueError):
    """A C{--redis} value that does not say where Redis is."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"bad Redis URL {_redact(url)!r}: {why}; expected {FORMS}")
        self.url = url
        self.why = why


def _redact(url: str) -> str:
    """C{url} without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user = credentials.partition(":")[0]
        netloc = f"{user}:***@{host}"
    url = f"{scheme}://{netloc}{slash}{path}"
    if "password=" in url:
        base, _, query = url.partition("?")
        parts = [
            "password=***" if part.startswith("password=") else part
            for part in query.split("&")
        ]
        url = f"{base}?{'&'.join(parts)}"
    return url


@frozen
class RedisAddress:
    """
    One Redis server, and how to talk to it.

    @ivar kind: C{"tcp"}, C{"tls"} or C{"unix"}.
    """

    kind: str
    host: str = ""
    port: int = DEFAULT_PORT
    path: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: str | None = None

    def __str__(self) -> str:
        """A description for logs, without the password."""
        if self.kind == "unix":
            return f"unix:{self.path} db {self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.kind == 'tls' else 'redis'}://{host}:{self.port}/{self.db}"

    def endpoint(self, reactor: IReactorCore) -> IStreamClientEndpoint:
        """A client endpoint that connects to this server."""
        if self.kind == "unix":
            return UNIXClientEndpoint(reactor, self.path, timeout=10)
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, self.host, self.port, timeout=10
        )
        if self.kind == "tls":
            from twisted.internet.ssl import (
                Certificate,
                optionsForClientTLS,
                platformTrust,
            )

            trust = platformTrust()
            if self.ca is not None:
                with open(self.ca, "rb") as f:
                    trust = Certificate.loadPEM(f.read())
            endpoint = wrapClientTLS(
                optionsForClientTLS(self.host, trustRoot=trust), endpoint
            )
        return endpoint


def _db(url: str, text: str) -> int:
    if not text.isdigit() or len(text) > 5:
        raise BadRedisAddress(url, f"the database {text!r} is not a number")
    return int(text)


def parse_redis_url(url: str) -> RedisAddress:
    """
    The L{RedisAddress} that C{url} names.

    @raise BadRedisAddress: if it names none, saying why.
    """
    if url.startswith("/"):
        return RedisAddress("unix", path=url)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise BadRedisAddress(url, str(e)) from None
    if parts.fragment:
        raise BadRedisAddress(url, "a URL fragment (#...) means nothing here")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError as e:
        raise BadRedisAddress(url, str(e)) from None
    for name, values in query.items():
        if len(values) > 1:
            raise BadRedisAddress(url, f"{name} is given twice")
    options = {name: values[0] for name, values in query.items()}
    if parts.scheme == "unix":
        allowed = {"db", "password", "user"}
        unknown = set(options) - allowed
        if unknown:
            raise BadRedisAddress(url, f"unknown option {sorted(unknown)[0]!r}")
        if parts.netloc or not parts.path.startswith("/"):
            raise BadRedisAddress(url, "a UNIX socket needs an absolute path")
        return RedisAddress(
            "unix",
            path=unquote(parts.path),
            db=_db(url, options.get("db", "0")),
            username=options.get("user"),
            password=options.get("password"),
        )
    if parts.scheme not in ("redis", "rediss"):
        raise BadRedisAddress(url, f"unknown scheme {parts.scheme!r}")
    tls = parts.scheme == "rediss"
    unknown = set(options) - ({"ca"} if tls else set())
    if unknown:
        raise BadRedisAddress(url, f"unknown option {sorted(unknown)[0]!r}")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as e:
        raise BadRedisAddress(url, f"bad port: {e}") from None
    if not host:
        raise BadRedisAddress(url, "no host")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadRedisAddress(url, f"bad IPv6 address {host!r}") from None
    if port == 0:
        raise BadRedisAddress(url, "port 0")
    path = parts.path
    if path in ("", "/"):
        db = 0
    elif path.count("/") == 1:
        db = _db(url, path[1:])
    else:
        raise BadRedisAddress(url, f"the path {path!r} is not a database number")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return RedisAddress(
        "tls" if tls else "tcp",
        host=host,
        port=port or DEFAULT_PORT,
        db=db,
        username=username,
        password=password,
        ca=options.get("ca"),
    )
