"""
Tests for L{twisted_chat.cluster.fanout.RedisFanout}: several nodes (each a
real L{ChatServer} core with its own RedisFanout and links) on one real
redis-server, with fake clients rendered by the line protocol.

The core is not cluster-aware yet (nicknames and member lists are still per
node); these tests are about delivery: one order per room across nodes,
user events once, replies in their place, refusals while degraded, and
nothing lost or doubled across a Redis restart.
"""

from __future__ import annotations

import gc

from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from tests.helpers import FakeClient
from tests.redis_helpers import RedisServer, global_reactor, poll, start_redis
from tests.test_cluster_link import FAST
from twisted_chat.cluster.node import ClusterNode
from twisted_chat.cluster.seam import ClusterDirectory
from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer, User
from twisted_chat.core.interfaces import IChatClient, IFanout
from twisted_chat.shared.rules import name_key


class Node:
    """One node: a core on a RedisFanout, and its users."""

    def __init__(
        self,
        test: TestCase,
        redis: RedisServer,
        name: str,
        seam: bool = False,
        announce_limit: int = 0,
    ) -> None:
        reactor = global_reactor()
        self.cluster = ClusterNode.from_url(
            redis.url,
            reactor,
            reactor,
            node=name,
            link_options={**FAST, "ping_timeout": 5.0},
        )
        if seam:
            # As twistd chat --redis builds it: the core asks the directory.
            self.chat = ChatServer(
                fanout=self.cluster.fanout,
                directory=ClusterDirectory(self.cluster, reactor),
                announce_limit=announce_limit,
            )
        else:
            self.chat = ChatServer(fanout=self.cluster.fanout)
            self.cluster.fanout.local_user = self._local_user
        self.cluster.start()
        test.addCleanup(self.cluster.stop)

    def _local_user(self, nick: str) -> IChatClient | None:
        user = self.chat.users.get(name_key(nick))
        return user.client if user is not None else None

    async def user(self, nick: str, *rooms: str) -> tuple[FakeClient, User]:
        """A user of this node, called C{nick}, in the lobby and C{rooms}."""
        client = FakeClient(nick)
        user = self.chat.connect(client)
        client.user = user
        self.chat.line_received(user, f"/nick {nick}")
        for room in rooms:
            self.chat.line_received(user, f"/join {room}")
        await poll(
            lambda: (
                any(line.endswith(f"is now known as {nick}") for line in client.lines)
                and all(
                    f"*** {nick} has joined #{room}" in client.lines for room in rooms
                )
            ),
            f"{nick} in every room",
        )
        return client, user


async def nodes(
    test: TestCase,
    count: int,
    seam: bool = False,
    announce_limit: int = 0,
    **redis_options: object,
) -> tuple[RedisServer, list[Node]]:
    redis = await start_redis(test, **redis_options)  # type: ignore[arg-type]
    made = [Node(test, redis, f"node{n}", seam, announce_limit) for n in range(count)]
    await gatherResults([node.cluster.when_connected() for node in made])
    return redis, made


def said(client: FakeClient) -> list[str]:
    """The room lines a client received (not notices)."""
    return [line for line in client.lines if line.startswith("<")]


class FanoutTests(TestCase):
    """Delivery across nodes."""

    async def test_interface(self) -> None:
        """RedisFanout provides IFanout."""
        _, (node,) = await nodes(self, 1)
        self.assertTrue(verifyObject(IFanout, node.cluster.fanout))

    async def test_cross_node(self) -> None:
        """A line said on one node reaches the room's members on the others,
        and its sender, once."""
        _, (a, b, c) = await nodes(self, 3)
        alice, alice_user = await a.user("alice")
        bob, _ = await b.user("bob")
        carol, _ = await c.user("carol", "dev")
        a.chat.line_received(alice_user, "hello")
        await poll(
            lambda: (
                "<alice> hello" in said(bob) and "[#lobby] <alice> hello" in carol.lines
            ),
            "delivered",
        )
        await poll(lambda: said(alice) == ["<alice> hello"], "echoed")
        self.assertEqual(said(bob), ["<alice> hello"])
        # Carol's current room is #dev: lines of the lobby are marked.
        self.assertIn("[#lobby] <alice> hello", carol.lines)
        # Renames on other nodes reach the room too.  (Each core still
        # numbers its own guests: the directory's guest() is for that.)
        self.assertIn("*** guest1 is now known as bob", alice.lines)

    async def test_one_order(self) -> None:
        """Concurrent senders on three nodes: everyone sees the same lines in
        the same order."""
        _, (a, b, c) = await nodes(self, 3)
        users = [await node.user(f"u{n}") for n, node in enumerate((a, b, c))]
        for i in range(30):
            for (_, user), node in zip(users, (a, b, c), strict=True):
                node.chat.line_received(user, f"line {i}")
        await poll(
            lambda: all(len(said(client)) == 90 for client, _ in users), "all lines"
        )
        first = said(users[0][0])
        self.assertEqual(len(set(first)), 90)
        for client, _ in users[1:]:
            self.assertEqual(said(client), first)
        for n in range(3):
            mine = [line for line in first if line.startswith(f"<u{n}>")]
            self.assertEqual(mine, [f"<u{n}> line {i}" for i in range(30)])

    async def test_joined_before_names(self) -> None:
        """A reply keeps its place after what the node published before it:
        the joining user sees their join, then the names."""
        _, (a,) = await nodes(self, 1)
        alice, alice_user = await a.user("alice")
        alice.take()
        a.chat.line_received(alice_user, "/join dev")
        await poll(
            lambda: any(line.startswith("*** Users in #dev") for line in alice.lines),
            "names",
        )
        self.assertEqual(alice.lines[0], "*** alice has joined #dev")

    async def test_burst_coalesced(self) -> None:
        """
        A burst from another node, received together, reaches each member in
        a few writes (not one per line), in order.
        """
        _, (a, b) = await nodes(self, 2)
        (_, alice), (bob, _) = await a.user("alice", "dev"), await b.user("bob", "dev")
        before = len(bob.sent)
        for i in range(200):
            a.chat.line_received(alice, f"line {i}")
        await poll(lambda: len(said(bob)) >= 200, "the burst")
        self.assertEqual(said(bob), [f"<alice> line {i}" for i in range(200)])
        writes = len(bob.sent) - before
        self.assertLessEqual(writes, 20, f"{writes} writes for 200 lines")

    async def test_announce_limit(self) -> None:
        """
        Joins past the announce limit are not announced (as in one process),
        so filling a big room is not quadratic.
        """
        _, (a,) = await nodes(self, 1, seam=True, announce_limit=2)
        (first, _), _ = await a.user("u0", "dev"), await a.user("u1", "dev")
        self.assertIn("*** u1 has joined #dev", first.lines)
        await a.user("u2")
        client, user = await a.user("u3")
        a.chat.line_received(user, "/join dev")
        await poll(
            lambda: (
                any(line.startswith("*** Users in #dev") for line in client.lines)
                or any("#dev" in line for line in client.lines)
            ),
            "u3 in #dev",
        )
        a.chat.line_received(user, "hello")
        await poll(lambda: "<u3> hello" in first.lines, "u3's line")
        self.assertNotIn("*** u3 has joined #dev", first.lines)

    async def test_user_event_once(self) -> None:
        """A quit that counts in two rooms a node's users share reaches each
        of them once, after what those rooms said before it."""
        _, (a, b) = await nodes(self, 2)
        _, alice_user = await a.user("alice", "dev")
        bob, _ = await b.user("bob", "dev")
        carol, _ = await b.user("carol")
        a.chat.line_received(alice_user, "in dev")
        a.chat.line_received(alice_user, "/quit bye")
        await poll(lambda: any("alice has quit" in line for line in bob.lines), "quit")
        await poll(
            lambda: any("alice has quit" in line for line in carol.lines), "quit"
        )
        self.assertEqual(
            [line for line in bob.lines if "has quit" in line],
            ["*** alice has quit (bye)"],
        )
        self.assertLess(
            bob.lines.index("<alice> in dev"),
            bob.lines.index("*** alice has quit (bye)"),
        )

    async def test_send_to(self) -> None:
        """An event for one user reaches them on another node; an unknown
        nickname reaches nobody."""
        _, (a, b) = await nodes(self, 2)
        await a.user("alice")
        bob, _ = await b.user("bob")
        await b.cluster.directory.claim("bob")
        message = events.PrivateMessage(
            1.0, events.Source("alice", "alice", ""), "bob", "psst"
        )
        self.assertTrue(await a.cluster.fanout.send_to("bob", message))
        await poll(lambda: "*alice* psst" in bob.lines, "private message")
        self.assertFalse(await a.cluster.fanout.send_to("nobody", message))


class FaultTests(TestCase):
    """Degraded mode and Redis restarts."""

    async def test_refused_while_degraded(self) -> None:
        """While Redis is away a line is refused with a clear error and
        reaches nobody; once it is back, lines flow again."""
        redis, (a, b) = await nodes(self, 2)
        alice, alice_user = await a.user("alice")
        bob, _ = await b.user("bob")
        await redis.stop()
        await poll(lambda: not a.cluster.fanout.connected, "degraded")
        a.chat.line_received(alice_user, "lost?")
        self.assertTrue(
            any(line.startswith("!!! The chat is degraded") for line in alice.lines),
            alice.lines,
        )
        await redis.start()
        await poll(
            lambda: a.cluster.fanout.connected and b.cluster.fanout.connected,
            "connected",
        )
        a.chat.line_received(alice_user, "back")
        await poll(lambda: "<alice> back" in said(bob), "after")
        self.assertEqual(said(bob), ["<alice> back"])

    async def test_restart_mid_conversation(self) -> None:
        """
        Redis restarts (with its data) in the middle of a conversation: every
        line the cluster accepted reaches every connected user once, in one
        order.
        """
        redis, (a, b, c) = await nodes(self, 3)
        users = [await node.user(f"u{n}") for n, node in enumerate((a, b, c))]
        accepted: list[str] = []

        def talk(start: int, end: int) -> None:
            for i in range(start, end):
                for n, ((_, user), node) in enumerate(
                    zip(users, (a, b, c), strict=True)
                ):
                    if node.cluster.fanout.connected:
                        node.chat.line_received(user, f"line {i}")
                        accepted.append(f"<u{n}> line {i}")

        talk(0, 10)
        await poll(
            lambda: all(len(said(client)) == len(accepted) for client, _ in users),
            "before",
        )
        await redis.stop()
        await poll(
            lambda: not any(node.cluster.fanout.connected for node in (a, b, c)),
            "all degraded",
        )
        await redis.start()
        # Whichever nodes are back first talk while the others reconnect.
        await poll(
            lambda: any(node.cluster.fanout.connected for node in (a, b, c)), "one back"
        )
        talk(10, 20)
        await poll(
            lambda: all(node.cluster.fanout.connected for node in (a, b, c)), "all back"
        )
        talk(20, 30)
        await poll(
            lambda: all(len(said(client)) >= len(accepted) for client, _ in users),
            "all lines",
        )
        first = said(users[0][0])
        self.assertEqual(sorted(first), sorted(accepted))
        for client, _ in users[1:]:
            self.assertEqual(said(client), first)

    async def test_killed_mid_commands(self) -> None:
        """
        Redis killed while every kind of command is on its way (lines,
        registrations, joins, NAMES, LIST, WHOIS, topics, private messages):
        once the nodes are back, no Deferred failed unhandled.
        """
        redis, (a, b) = await nodes(self, 2, seam=True)
        users = [await node.user(f"u{n}", "dev") for n, node in enumerate((a, b))]

        def storm(node: Node, n: int, i: int) -> None:
            _, user = users[n]
            for line in (
                f"line {i}",
                "/who",
                "/rooms",
                f"/whois u{1 - n}",
                f"/msg u{1 - n} hello {i}",
                f"/join room{i}",
                f"/topic topic {i}",
                f"/nick u{n}x{i}",
                f"/nick u{n}",
            ):
                node.chat.line_received(user, line)
            client = FakeClient(f"new{n}{i}")
            client.user = node.chat.connect(client)
            node.chat.line_received(client.user, f"/nick new{n}{i}")
            node.chat.line_received(client.user, "/join dev")

        for i in range(20):
            for n, node in enumerate((a, b)):
                storm(node, n, i)
        await redis.kill()
        await poll(
            lambda: not any(node.cluster.fanout.connected for node in (a, b)),
            "all degraded",
        )
        await redis.start()
        await poll(
            lambda: all(node.cluster.fanout.connected for node in (a, b)), "all back"
        )
        gc.collect()
        self.assertEqual([f.getErrorMessage() for f in self.flushLoggedErrors()], [])
