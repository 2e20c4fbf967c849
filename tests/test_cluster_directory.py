"""
Tests for L{twisted_chat.cluster.directory} against a real redis-server, with
two nodes (two links, two directories): unique nicknames, guests, rooms and
members across nodes, the heartbeat, dead nodes, and claims after a
reconnection.
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.redis_helpers import RedisServer, global_reactor, poll, start_redis
from tests.test_cluster_link import fake_link, reconnected, unhandled
from tests.test_cluster_rooms import command_link
from twisted_chat.cluster.directory import (
    Directory,
    DirectoryObserver,
    Reaped,
    UserInfo,
)
from twisted_chat.cluster.keys import Keys
from twisted_chat.cluster.link import LinkLost
from twisted_chat.core import events


class Recorder(DirectoryObserver):
    """Records what a directory tells its node."""

    def __init__(self) -> None:
        self.lost: list[tuple[str, str]] = []
        self.reaped_members: list[Reaped] = []

    def nick_lost(self, nick: str, holder: str) -> None:
        self.lost.append((nick, holder))

    def reaped(self, members: list[Reaped]) -> None:
        self.reaped_members += members


async def node(
    test: TestCase, redis: RedisServer, name: str, ttl: int = 20, interval: float = 5.0
) -> tuple[Directory, Recorder]:
    """A node's directory, started on its own link."""
    # A PING waits behind the replies before it: with thousands of commands
    # in flight on a busy machine, the fast tests' 0.3 s is too short.
    link = command_link(test, redis, name, ping_timeout=5.0)
    recorder = Recorder()
    directory = Directory(
        link,
        Keys(),
        global_reactor(),
        node=name,
        ttl=ttl,
        heartbeat_interval=interval,
        observer=recorder,
    )
    await link.when_up()
    directory.start()
    test.addCleanup(directory.link_down, link, "test over")
    return directory, recorder


def member(nick: str, operator: bool = False) -> events.Member:
    return events.Member(nick, operator, nick.lower(), "h")


class NickTests(TestCase):
    """Nicknames are unique across nodes."""

    async def test_unique(self) -> None:
        """A name (in any case) is one node's until it releases it."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        self.assertTrue(await a.claim("Alice"))
        self.assertFalse(await b.claim("alice"))
        # Another user of the same node cannot take it either.
        self.assertFalse(await a.claim("alice"))
        self.assertTrue(await a.claim("alice", again=True))
        located = await b.locate("ALICE")
        assert located is not None
        self.assertEqual(located.node, "a")
        await a.release("alice")
        self.assertIsNone(await b.locate("alice"))
        self.assertTrue(await b.claim("alice"))

    async def test_release_only_ours(self) -> None:
        """A node that lost a name cannot free it from its new holder."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        await a.claim("alice")
        await a.link.command("DEL", "chat:nick:alice")  # as if it expired
        await b.claim("alice")
        await a.release("alice")
        located = await a.locate("alice")
        assert located is not None
        self.assertEqual(located.node, "b")

    async def test_details(self) -> None:
        """What WHOIS shows is the holder's, and follows its updates."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        info = UserInfo(
            "Alice", "al", "host", "Alice A", 10.0, None, ("dev",), (), 12.0
        )
        await a.claim("Alice", info)
        located = await b.locate("alice")
        assert located is not None
        self.assertEqual(located.info, info)
        away = UserInfo(
            "Alice", "al", "host", "Alice A", 10.0, "lunch", ("dev",), (), 13.0
        )
        self.assertTrue(await a.update(away))
        self.assertFalse(await b.update(away))
        located = await b.locate("alice")
        assert located is not None
        self.assertEqual(located.info.away, "lunch")

    async def test_rename(self) -> None:
        """A rename takes the new name first and then frees the old one."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        await a.claim("alice")
        await b.claim("bob")
        self.assertFalse(await a.rename("alice", "Bob"))
        self.assertIsNotNone(await b.locate("alice"))
        self.assertTrue(await a.rename("alice", "ALICE"))
        self.assertTrue(await a.rename("ALICE", "carol"))
        self.assertIsNone(await b.locate("alice"))
        self.assertEqual(set(a.nicks), {"carol"})

    async def test_guests(self) -> None:
        """Guest names never collide across nodes, nor with a chosen name."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        await b.claim("guest3")
        names = await gatherResults([d.guest() for d in (a, b) for _ in range(20)])
        self.assertEqual(len(set(names)), 40)
        self.assertNotIn("guest3", names)
        self.assertEqual(set(a.nicks) | set(b.nicks), {*names, "guest3"})


class RoomTests(TestCase):
    """Rooms and their members, seen from every node."""

    async def test_members_and_rooms(self) -> None:
        """NAMES and LIST see the members of every node, in joining order."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        self.assertTrue(await a.join("Dev", member("alice", operator=True)))
        self.assertFalse(await b.join("dev", member("bob")))
        await b.join("lobby", member("bob"))
        for d in (a, b):
            self.assertEqual(
                await d.names("DEV", 50), ((member("alice", True), member("bob")), 2)
            )
        self.assertEqual(await b.names("dev", 1), ((member("alice", True),), 2))
        self.assertEqual(
            await b.rooms(),
            [events.RoomInfo("Dev", 2, ""), events.RoomInfo("lobby", 1, "")],
        )
        await a.set_topic("dev", "plans", "alice", 5.0)
        self.assertEqual(
            await b.topic("dev"), events.Topic("dev", "plans", "alice", 5.0)
        )
        self.assertEqual((await b.rooms())[0], events.RoomInfo("Dev", 2, "plans"))
        await a.part("dev", "alice")
        self.assertEqual(await b.names("dev", 50), ((member("bob"),), 1))
        await b.part("dev", "bob")
        self.assertEqual(await a.rooms(), [events.RoomInfo("lobby", 1, "")])
        # Empty, the room starts again: a new operator, no old topic.
        self.assertTrue(await b.join("dev", member("bob")))
        self.assertEqual((await a.topic("dev")).topic, "")

    async def test_part_only_ours(self) -> None:
        """A node parting a name it lost does not remove the new holder."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        await a.join("dev", member("alice"))
        await b.join("dev", member("alice"))
        await a.part("dev", "alice")
        self.assertEqual(await a.names("dev", 5), ((member("alice"),), 1))

    async def test_stop(self) -> None:
        """A node that stops frees its names and leaves its rooms."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        await a.claim("alice")
        await a.join("dev", member("alice"))
        await b.join("dev", member("bob"))
        await a.stop()
        self.assertIsNone(await b.locate("alice"))
        self.assertEqual(await b.names("dev", 5), ((member("bob"),), 1))


class HeartbeatTests(TestCase):
    """The heartbeat, dead nodes, and reconnections."""

    async def test_refresh(self) -> None:
        """A heartbeat sets every nick key's time to live back to the full TTL."""
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a")
        for n in range(1, 1500):
            a.nicks[f"n{n}"] = UserInfo(f"n{n}")
        await gatherResults(
            [a.claim(info.nick, info) for info in list(a.nicks.values())]
        )
        await a.link.command("EXPIRE", "chat:nick:n7", 3)
        await a.heartbeat()
        self.assertEqual(await a.link.command("TTL", "chat:nick:n7"), 20)
        self.assertEqual(await a.link.command("TTL", "chat:nick:n1499"), 20)

    async def test_dead_node(self) -> None:
        """
        A node that dies without a word: its names are free within its TTL,
        and another node's heartbeat takes its members out of their rooms
        within TTL + heartbeat interval, and says so.
        """
        redis = await start_redis(self)
        a, _ = await node(self, redis, "a", ttl=1, interval=0.1)
        b, recorder = await node(self, redis, "b", ttl=1, interval=0.1)
        await a.claim("alice")
        await a.join("dev", member("alice"))
        await b.join("dev", member("bob"))
        clock = global_reactor()
        died = clock.seconds()
        # Killed: no more heartbeats, nothing released.
        a.link_down(a.link, "killed")
        await a.link.stop()
        await poll(lambda: bool(recorder.reaped_members), "reaped", seconds=5)
        elapsed = clock.seconds() - died
        self.assertLess(elapsed, 1 + 0.1 + 1.0)
        self.assertEqual(recorder.reaped_members, [Reaped("a", "dev", member("alice"))])
        self.assertIsNone(await b.locate("alice"))
        self.assertEqual(await b.names("dev", 5), ((member("bob"),), 1))
        self.assertEqual(await b.link.command("ZRANGE", "chat:nodes", 0, -1), [b"b"])

    async def test_reassert(self) -> None:
        """
        After its names expired (a long disconnection), a node claims them
        again; one that another node took meanwhile is lost, and its holder's
        membership is left alone.
        """
        redis = await start_redis(self)
        a, recorder = await node(self, redis, "a")
        b, _ = await node(self, redis, "b")
        await a.claim("alice")
        await a.claim("bob")
        await a.join("dev", member("alice"))
        await a.join("dev", member("bob"))
        await a.link.command("DEL", "chat:nick:alice", "chat:nick:bob")
        await a.link.command("ZREM", "chat:nodes", "a")
        await b.claim("alice")
        await b.join("dev", events.Member("alice", False, "other", "h2"))
        await a.heartbeat()
        self.assertEqual(recorder.lost, [("alice", "b")])
        self.assertEqual(set(a.nicks), {"bob"})
        located = await b.locate("bob")
        assert located is not None
        self.assertEqual(located.node, "a")
        members, total = await b.names("dev", 5)
        self.assertEqual(total, 2)
        self.assertIn(events.Member("alice", False, "other", "h2"), members)

    async def test_redis_lost_everything(self) -> None:
        """Redis restarted without its data: the node claims its names and
        memberships again once it is back."""
        redis = await start_redis(self, persistence=False)
        a, _ = await node(self, redis, "a")
        await a.claim("alice")
        await a.join("dev", member("alice"))
        first = a.link.run_id
        await redis.restart()
        await reconnected(a.link, first)
        await poll(lambda: a._beat is not None, "heartbeat after reconnecting")
        located = await a.locate("alice")
        assert located is not None
        self.assertEqual(located.node, "a")
        self.assertEqual(await a.names("dev", 5), ((member("alice"),), 1))


class LostTests(SynchronousTestCase):
    """Queries in flight when the connection drops."""

    def test_names(self) -> None:
        """NAMES fails with LinkLost, and leaves no unhandled error."""
        link, protocol, transport, clock = fake_link()
        names = Directory(link, Keys(), clock, node="a").names("dev", 5)
        self.assertIn(b"ZRANGE", transport.value())
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(names, LinkLost)
        self.assertEqual(unhandled(self), [])

    def test_rooms(self) -> None:
        """LIST fails with LinkLost, and leaves no unhandled error."""
        link, protocol, transport, clock = fake_link()
        rooms = Directory(link, Keys(), clock, node="a").rooms()
        # HGETALL's reply came: LIST asks for each room's name and topic.
        protocol.dataReceived(b"*4\r\n$3\r\ndev\r\n$1\r\n1\r\n$2\r\nqa\r\n$1\r\n2\r\n")
        clock.advance(0)
        self.assertIn(b"HMGET", transport.value())
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(rooms, LinkLost)
        self.assertEqual(unhandled(self), [])
