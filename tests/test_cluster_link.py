"""
Tests for L{twisted_chat.cluster.link} against a real redis-server: commands,
reconnection with backoff, the PING bound, pub/sub that survives a restart,
and the node's connected/degraded health.
"""

from __future__ import annotations

import gc

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.helpers import observe_logs
from tests.redis_helpers import RedisServer, global_reactor, poll, start_redis
from twisted_chat.cluster._txredis import CommandProtocol
from twisted_chat.cluster.address import parse_redis_url
from twisted_chat.cluster.link import (
    Health,
    Link,
    LinkDown,
    LinkLost,
    RedisReplyError,
    Subscriber,
    retry_policy,
)

# Fast timers, so the tests take fractions of a second.  The PING timeout is
# not short: a test process or a Redis that a loaded machine does not run for
# a moment must not be declared dead where that is not what is tested.
FAST = {"ping_interval": 0.05, "ping_timeout": 5.0, "retry": retry_policy(0.02, 0.2)}
# What the tests of the PING watchdog itself use.
WATCHDOG_INTERVAL, WATCHDOG_TIMEOUT = 0.05, 0.3
WATCHDOG: dict[str, object] = {
    "ping_interval": WATCHDOG_INTERVAL,
    "ping_timeout": WATCHDOG_TIMEOUT,
}


class Recorder:
    """Records what a link or the health says."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def link_up(self, link: Link) -> None:
        self.said.append(f"up {link.name}")

    def link_down(self, link: Link, why: str) -> None:
        self.said.append(f"down {link.name}")

    def cluster_connected(self) -> None:
        self.said.append("connected")

    def cluster_degraded(self, why: str) -> None:
        self.said.append(f"degraded: {why}")


def make_link(test: TestCase, url: str, name: str = "test", **kw: object) -> Link:
    """A started link to C{url}, stopped when the test ends."""
    reactor = global_reactor()
    options = {**FAST, **kw}
    link = Link(parse_redis_url(url), reactor, reactor, name, **options)  # type: ignore[arg-type]
    link.start()
    test.addCleanup(link.stop)
    return link


async def reconnected(link: Link, before: str) -> None:
    """
    Wait until C{link} is up on a Redis other than the one whose C{run_id}
    was C{before}: after a restart, not still on the old connection.
    """
    await poll(lambda: link.is_up and link.run_id != before, f"{link.name} back")


def make_subscriber(
    test: TestCase, url: str, received: list[tuple[bytes, bytes]], **kw: object
) -> Subscriber:
    """A started subscriber recording its messages."""
    reactor = global_reactor()
    options = {**FAST, **kw}
    subscriber = Subscriber(
        parse_redis_url(url),
        reactor,
        reactor,
        "sub",
        handler=lambda channel, data: received.append((channel, data)),
        **options,  # type: ignore[arg-type]
    )
    subscriber.start()
    test.addCleanup(subscriber.stop)
    return subscriber


class LinkTests(TestCase):
    """A command link."""

    async def test_commands(self) -> None:
        """Once up, commands run and their replies come back normalised."""
        redis = await start_redis(self)
        link = make_link(self, redis.url)
        await link.when_up()
        self.assertEqual(link.state, "up")
        self.assertEqual(len(link.run_id), 40)
        self.assertEqual(await link.command("SET", "k", "v"), b"OK")
        self.assertEqual(await link.command("GET", "k"), b"v")
        self.assertEqual(await link.command("GET", "nothing"), None)
        self.assertEqual(await link.command("INCR", "n"), 1)
        self.assertEqual(await link.command("SET", "num", "12"), b"OK")
        # A number stays bytes: what was stored, not a guess at its type.
        self.assertEqual(await link.command("GET", "num"), b"12")
        replies = await link.pipeline(
            [("RPUSH", "l", "a", "b"), ("LRANGE", "l", 0, -1)]
        )
        self.assertEqual(replies, [2, [b"a", b"b"]])
        e = await self.assertFailure(link.command("NOSUCHCOMMAND"), RedisReplyError)
        self.assertIn("unknown command", str(e))

    async def test_not_up(self) -> None:
        """A command while the link is not up fails at once with LinkDown."""
        reactor = global_reactor()
        link = Link(parse_redis_url("redis://127.0.0.1:1"), reactor, reactor)
        await self.assertFailure(link.command("PING"), LinkDown)

    async def test_database(self) -> None:
        """The URL's database is selected on every connection."""
        redis = await start_redis(self)
        three = make_link(self, redis.url + "/3")
        zero = make_link(self, redis.url)
        await three.when_up()
        await zero.when_up()
        await three.command("SET", "where", "3")
        self.assertEqual(await zero.command("GET", "where"), None)
        first = three.run_id
        await redis.restart()
        await reconnected(three, first)
        self.assertEqual(await three.command("GET", "where"), b"3")

    async def test_password(self) -> None:
        """With the right password the link is up; with a wrong one it is
        not, and the log says why."""
        redis = await start_redis(self, password="s3cret")
        good = make_link(self, f"redis://:s3cret@127.0.0.1:{redis.port}")
        await good.when_up()
        self.assertEqual(await good.command("PING"), b"PONG")
        logs = observe_logs(self)
        bad = make_link(self, f"redis://:wrong@127.0.0.1:{redis.port}", name="bad")
        await poll(
            lambda: any("did not accept us" in str(e.get("log_format")) for e in logs),
            "the refusal logged",
        )
        self.assertFalse(bad.is_up)
        self.assertNotIn("wrong", " ".join(str(e.get("address")) for e in logs))

    async def test_unix_socket(self) -> None:
        """A UNIX socket path works as the URL."""
        redis = await start_redis(self)
        link = make_link(self, redis.unix_path)
        await link.when_up()
        self.assertEqual(await link.command("PING"), b"PONG")

    async def test_restart(self) -> None:
        """
        When Redis restarts the link goes down (commands then fail with
        LinkDown), reconnects by itself, and learns the new run_id.
        """
        redis = await start_redis(self)
        link = make_link(self, redis.url)
        recorder = Recorder()
        link.observe(recorder)
        await link.when_up()
        first = link.run_id
        await link.command("SET", "kept", "yes")
        await redis.stop()
        await poll(lambda: link.state == "down", "down")
        await self.assertFailure(link.command("PING"), LinkDown)
        await redis.start()
        await link.when_up()
        self.assertNotEqual(link.run_id, first)
        self.assertEqual(await link.command("GET", "kept"), b"yes")
        self.assertEqual(recorder.said, ["up test", "down test", "up test"])

    async def test_ping_bound(self) -> None:
        """
        A Redis that stops answering (SIGSTOP) is declared dead within
        ping_interval + ping_timeout; the command waiting for it fails with
        LinkLost; the link comes back when Redis does.
        """
        redis = await start_redis(self)
        link = make_link(self, redis.url, "test", **WATCHDOG)
        await link.when_up()
        clock = global_reactor()
        redis.pause()
        started = clock.seconds()
        waiting = link.command("GET", "x")
        await self.assertFailure(waiting, LinkLost)
        self.assertEqual(link.state, "down")
        # The bound, with slack for a busy machine.
        bound = WATCHDOG_INTERVAL + WATCHDOG_TIMEOUT
        self.assertLess(clock.seconds() - started, bound + 1.0)
        redis.resume()
        await link.when_up()
        self.assertEqual(await link.command("PING"), b"PONG")

    async def test_stop(self) -> None:
        """A stopped link is down for good and tells its observers once."""
        redis = await start_redis(self)
        link = make_link(self, redis.url)
        recorder = Recorder()
        link.observe(recorder)
        await link.when_up()
        await link.stop()
        self.assertEqual(link.state, "stopped")
        self.assertEqual(recorder.said, ["up test", "down test"])
        await self.assertFailure(link.command("PING"), LinkDown)


class SubscriberTests(TestCase):
    """The pub/sub link."""

    async def test_messages(self) -> None:
        """Messages of subscribed channels arrive; unsubscribed ones stop."""
        redis = await start_redis(self)
        received: list[tuple[bytes, bytes]] = []
        subscriber = make_subscriber(self, redis.url, received)
        link = make_link(self, redis.url)
        await subscriber.when_up()
        await link.when_up()
        await subscriber.subscribe(b"a")
        await subscriber.subscribe(b"b")
        self.assertTrue(subscriber.is_subscribed(b"a"))
        self.assertEqual(await link.command("PUBLISH", "a", "1"), 1)
        self.assertEqual(await link.command("PUBLISH", "b", "2"), 1)
        self.assertEqual(await link.command("PUBLISH", "c", "3"), 0)
        await poll(lambda: len(received) == 2, "two messages")
        self.assertEqual(received, [(b"a", b"1"), (b"b", b"2")])
        subscriber.unsubscribe(b"a")
        while await link.command("PUBSUB", "NUMSUB", "a") != [b"a", 0]:
            pass
        await link.command("PUBLISH", "b", "4")
        await poll(lambda: len(received) == 3, "one more")
        self.assertEqual(received[-1], (b"b", b"4"))

    async def test_subscribe_before_up(self) -> None:
        """A channel asked for before the link is up is subscribed once it is."""
        redis = await start_redis(self)
        received: list[tuple[bytes, bytes]] = []
        subscriber = make_subscriber(self, redis.url, received)
        self.assertFalse(subscriber.is_up)
        await subscriber.subscribe(b"early")
        self.assertTrue(subscriber.is_subscribed(b"early"))
        link = make_link(self, redis.url)
        await link.when_up()
        self.assertEqual(await link.command("PUBLISH", "early", "x"), 1)

    async def test_resubscribe(self) -> None:
        """After Redis restarts every channel is subscribed again before the
        link says it is up."""
        redis = await start_redis(self)
        received: list[tuple[bytes, bytes]] = []
        subscriber = make_subscriber(self, redis.url, received)
        await subscriber.when_up()
        await subscriber.subscribe(b"a")
        await subscriber.subscribe(b"b")
        recorder = Recorder()
        subscriber.observe(recorder)
        await redis.restart()
        await poll(lambda: recorder.said == ["down sub", "up sub"], "down and up")
        self.assertTrue(subscriber.is_subscribed(b"a"))
        self.assertTrue(subscriber.is_subscribed(b"b"))
        link = make_link(self, redis.url)
        await link.when_up()
        self.assertEqual(await link.command("PUBLISH", "a", "after"), 1)
        self.assertEqual(await link.command("PUBLISH", "b", "after"), 1)
        await poll(lambda: len(received) == 2, "both")

    async def test_ping_while_subscribed(self) -> None:
        """The PING watchdog works on a connection in pub/sub mode."""
        redis = await start_redis(self)
        received: list[tuple[bytes, bytes]] = []
        subscriber = make_subscriber(self, redis.url, received, **WATCHDOG)
        await subscriber.when_up()
        await subscriber.subscribe(b"a")
        recorder = Recorder()
        subscriber.observe(recorder)
        redis.pause()
        await poll(lambda: subscriber.state == "down", "declared dead")
        redis.resume()
        await subscriber.when_up()
        self.assertTrue(subscriber.is_subscribed(b"a"))
        self.assertEqual(recorder.said, ["down sub", "up sub"])


class HealthTests(TestCase):
    """A node's health: connected while every link is up."""

    async def test_connected_and_degraded(self) -> None:
        """Degraded until both links are up, degraded when Redis goes away,
        connected again when it is back."""
        redis: RedisServer = await start_redis(self)
        received: list[tuple[bytes, bytes]] = []
        link = make_link(self, redis.url)
        subscriber = make_subscriber(self, redis.url, received)
        health = Health([link, subscriber])
        recorder = Recorder()
        health.observe(recorder)
        self.assertFalse(health.connected)
        await link.when_up()
        await subscriber.when_up()
        self.assertTrue(health.connected)
        await redis.stop()
        await poll(lambda: not health.connected, "degraded")
        self.assertIn("lost", health.why)
        await redis.start()
        await poll(lambda: health.connected, "connected again")
        self.assertEqual(
            [s.split(":")[0] for s in recorder.said],
            ["connected", "degraded", "connected"],
        )


def fake_link(
    subscriber: bool = False,
) -> tuple[Link, CommandProtocol, StringTransport, Clock]:
    """
    A link (or a L{Subscriber}) brought up by hand on a L{StringTransport},
    its watchdog on a L{Clock} (PING every second, dead after 3 s), so the
    test says exactly what Redis sends and when.
    """
    clock = Clock()
    kind = Subscriber if subscriber else Link
    link = kind(
        parse_redis_url("redis://127.0.0.1:1"),
        MemoryReactor(),
        clock,
        "fake",
        ping_interval=1.0,
        ping_timeout=3.0,
    )
    protocol = link._make_protocol()
    # txredisapi's pure-Python parser resumes after a bulk string later.
    protocol.callLater = clock.callLater
    transport = StringTransport()
    protocol.makeConnection(transport)
    link._say_hello(protocol)
    if subscriber:
        protocol.dataReceived(b"+OK\r\n")
    else:
        info = b"run_id:" + b"a" * 40 + b"\r\n"
        protocol.dataReceived(b"+OK\r\n$%d\r\n%s\r\n" % (len(info), info))
    clock.advance(0)
    assert link.is_up, "the fake Redis's hello was not accepted"
    transport.clear()
    return link, protocol, transport, clock


def unhandled(test: SynchronousTestCase) -> list[Failure]:
    """The failures of Deferreds that nobody handled, once collected."""
    gc.collect()
    errors: list[Failure] = test.flushLoggedErrors()
    return errors


class LivenessTests(SynchronousTestCase):
    """When a link declares Redis dead, and when it must not."""

    def test_pong_behind_replies(self) -> None:
        """A PONG queued behind a long trickle of replies is not a dead Redis."""
        link, protocol, transport, clock = fake_link()
        replies: list[object] = []
        for _ in range(50):
            link.command("INCR", "n").addCallback(replies.append)
        for _ in range(40):
            clock.advance(0.5)
            protocol.dataReceived(b":1\r\n")
        self.assertFalse(transport.disconnected)
        self.assertEqual(link.state, "up")
        self.assertEqual(len(replies), 40)
        # The rest, then the PING's answer: nothing was lost meanwhile.
        protocol.dataReceived(b":1\r\n" * 10 + b"+PONG\r\n")
        self.assertEqual(len(replies), 50)

    def test_busy_reactor(self) -> None:
        """A reactor busy for 10 s at a time does not blame Redis for it."""
        link, protocol, transport, clock = fake_link()
        replies: list[object] = []
        link.command("GET", "k").addCallback(replies.append)
        for _ in range(3):
            clock.advance(10)
        self.assertFalse(transport.disconnected)
        protocol.dataReceived(b"$1\r\nv\r\n")
        clock.advance(0)
        self.assertEqual(replies, [b"v"])
        self.assertEqual(link.state, "up")

    def test_silent(self) -> None:
        """With commands waiting and nothing received, dead within 1 + 3 s."""
        link, _protocol, transport, clock = fake_link()
        link.command("GET", "k").addErrback(lambda _: None)
        while not transport.disconnected and clock.seconds() < 60:
            clock.advance(0.25)
        self.assertTrue(transport.disconnected)
        self.assertGreaterEqual(clock.seconds(), 3.0)
        self.assertLessEqual(clock.seconds(), 4.0)

    def test_idle(self) -> None:
        """An idle link is PINGed every second and stays up while answered."""
        link, protocol, transport, clock = fake_link()
        pings = 0
        for _ in range(30):
            clock.advance(1.0)
            if b"PING" in transport.value():
                pings += 1
                transport.clear()
                protocol.dataReceived(b"+PONG\r\n")
        self.assertEqual(pings, 30)
        self.assertFalse(transport.disconnected)
        self.assertEqual(link.state, "up")


class LostTests(SynchronousTestCase):
    """What is in flight when the connection drops fails, and is handled."""

    def test_subscribe_in_flight(self) -> None:
        """A SUBSCRIBE lost with the connection waits for the next one, quietly."""
        link, protocol, transport, _clock = fake_link(subscriber=True)
        assert isinstance(link, Subscriber)
        subscribed = link.subscribe(b"room")
        self.assertIn(b"SUBSCRIBE", transport.value())
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(link.state, "down")
        self.assertNoResult(subscribed)
        self.assertEqual(unhandled(self), [])
