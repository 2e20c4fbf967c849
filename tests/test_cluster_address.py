"""
Tests for L{twisted_chat.cluster.address}: the C{--redis} URL.
"""

from __future__ import annotations

from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from twisted_chat.cluster.address import BadRedisAddress, RedisAddress, parse_redis_url


class ParseTests(SynchronousTestCase):
    """Every accepted form, and one clear error for the rest."""

    def test_forms(self) -> None:
        """Each form gives the address it names."""
        cases = {
            "redis://localhost": RedisAddress("tcp", host="localhost"),
            "redis://127.0.0.1:7000/3": RedisAddress(
                "tcp", host="127.0.0.1", port=7000, db=3
            ),
            "redis://:s%40cret@h:1/": RedisAddress(
                "tcp", host="h", port=1, password="s@cret"
            ),
            "redis://bob:pw@h": RedisAddress(
                "tcp", host="h", username="bob", password="pw"
            ),
            "redis://[::1]:6380": RedisAddress("tcp", host="::1", port=6380),
            "rediss://redis.example.org/1": RedisAddress(
                "tls", host="redis.example.org", db=1
            ),
            "rediss://h?ca=/etc/ca.pem": RedisAddress(
                "tls", host="h", ca="/etc/ca.pem"
            ),
            "/run/redis.sock": RedisAddress("unix", path="/run/redis.sock"),
            "unix:///run/redis.sock?db=2&password=pw": RedisAddress(
                "unix", path="/run/redis.sock", db=2, password="pw"
            ),
        }
        for url, expected in cases.items():
            self.assertEqual(parse_redis_url(url), expected, url)

    def test_bad(self) -> None:
        """Each bad URL is a BadRedisAddress that says why and shows the forms."""
        cases = {
            "http://h": "unknown scheme 'http'",
            "localhost:6379": "unknown scheme 'localhost'",
            "redis://": "no host",
            "redis://h:notaport": "bad port",
            "redis://h:70000": "bad port",
            "redis://h:0": "port 0",
            "redis://h/x": "the database 'x' is not a number",
            "redis://h/1/2": "is not a database number",
            "redis://h?db=1": "unknown option 'db'",
            "redis://h#frag": "fragment",
            "redis://[::zz]/": "",
            "unix://relative.sock": "absolute path",
            "unix:///s?foo=1": "unknown option 'foo'",
            "unix:///s?db=-1": "is not a number",
            "unix:///s?db=1&db=2": "given twice",
            "": "unknown scheme ''",
        }
        for url, why in cases.items():
            e = self.assertRaises(BadRedisAddress, parse_redis_url, url)
            self.assertIn(why, str(e), url)
            self.assertIn("expected redis://", str(e))

    def test_password_hidden(self) -> None:
        """Neither errors nor the address's text show the password."""
        e = self.assertRaises(BadRedisAddress, parse_redis_url, "redis://u:hunter2@h/x")
        self.assertNotIn("hunter2", str(e))
        self.assertIn("u:***@h", str(e))
        e = self.assertRaises(
            BadRedisAddress, parse_redis_url, "unix:///s?password=hunter2&db=x"
        )
        self.assertNotIn("hunter2", str(e))
        address = parse_redis_url("redis://:hunter2@h:5/2")
        self.assertEqual(str(address), "redis://h:5/2")
        self.assertNotIn("hunter2", repr(address))
        self.assertEqual(str(parse_redis_url("/s")), "unix:/s db 0")
        self.assertEqual(
            str(parse_redis_url("rediss://[::1]")), "rediss://[::1]:6379/0"
        )


class EndpointTests(SynchronousTestCase):
    """Each kind of address connects with the right endpoint."""

    def test_tcp(self) -> None:
        """redis:// is a HostnameEndpoint (IPv4 and IPv6 alike)."""
        endpoint = parse_redis_url("redis://h:7").endpoint(MemoryReactor())
        self.assertIsInstance(endpoint, HostnameEndpoint)

    def test_unix(self) -> None:
        """A path is a UNIXClientEndpoint."""
        endpoint = parse_redis_url("/tmp/r.sock").endpoint(MemoryReactor())
        self.assertIsInstance(endpoint, UNIXClientEndpoint)

    def test_tls(self) -> None:
        """rediss:// wraps the TCP endpoint in TLS for the host's name."""
        endpoint = parse_redis_url("rediss://redis.example.org").endpoint(
            MemoryReactor()
        )
        self.assertIsInstance(endpoint._wrappedEndpoint, HostnameEndpoint)  # type: ignore[attr-defined]
