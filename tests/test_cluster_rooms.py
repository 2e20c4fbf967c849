"""
Tests for L{twisted_chat.cluster.rooms} and the publish script, against a
real redis-server: numbering, concurrent publishers, restarts with and
without data, and a node that resumes a room after Redis restarts.
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults
from twisted.trial.unittest import TestCase

from tests.redis_helpers import RedisServer, global_reactor, poll, start_redis
from tests.test_cluster_link import FAST, make_link, reconnected
from twisted_chat.cluster import scripts
from twisted_chat.cluster.address import parse_redis_url
from twisted_chat.cluster.keys import Keys
from twisted_chat.cluster.link import Health, Link, Subscriber
from twisted_chat.cluster.ordering import RoomOrder
from twisted_chat.cluster.rooms import RoomStreams, position_in
from twisted_chat.cluster.wire import Position, parse_frame
from twisted_chat.core import events

ALICE = events.Source("alice", "alice", "host")


def said(text: str, room: str = "dev") -> events.Message:
    """A message, numbered 0 as the core would not be asked to number it."""
    return events.Message(room, 0, 1.5, ALICE, text)


def command_link(
    test: TestCase, redis: RedisServer, name: str = "cmd", **kw: object
) -> Link:
    """A command link with the scripts preloaded."""
    return make_link(test, redis.url, name, preload=scripts.sources(), **kw)


class PublishTests(TestCase):
    """The ordered publish."""

    async def test_numbers(self) -> None:
        """Each event of a room gets the next number, is stored and comes back
        from the stream with it."""
        redis = await start_redis(self)
        link = command_link(self, redis)
        await link.when_up()
        rooms = RoomStreams(link, Keys())
        first = await rooms.publish(said("one"))
        second = await rooms.publish(said("two"))
        self.assertEqual([p.seq for p in first.positions], [1])
        self.assertEqual([p.seq for p in second.positions], [2])
        self.assertEqual(first.positions[0].epoch, second.positions[0].epoch)
        self.assertEqual(
            await rooms.recent("dev", 10),
            [
                events.Message("dev", 1, 1.5, ALICE, "one"),
                events.Message("dev", 2, 1.5, ALICE, "two"),
            ],
        )
        self.assertEqual(await rooms.recent("other", 10), [])
        ids = await link.command("XRANGE", "chat:r:dev:s", "-", "+")
        assert isinstance(ids, list)
        self.assertEqual([entry[0] for entry in ids], [b"1-0", b"2-0"])  # type: ignore[index]

    async def test_user_event(self) -> None:
        """A quit is numbered in each of its rooms, and stored in each."""
        redis = await start_redis(self)
        link = command_link(self, redis)
        await link.when_up()
        rooms = RoomStreams(link, Keys())
        await rooms.publish(said("hi", "Lobby"))
        quit = events.Quit(2.0, ALICE, "bye", (("Dev", 0), ("Lobby", 0)))
        frame = await rooms.publish(quit)
        self.assertEqual([p.seq for p in frame.positions], [1, 2])
        expected = events.Quit(2.0, ALICE, "bye", (("Dev", 1), ("Lobby", 2)))
        self.assertEqual(frame.event(), expected)
        self.assertEqual((await rooms.recent("dev", 5))[-1], expected)
        self.assertEqual((await rooms.recent("lobby", 5))[-1], expected)

    async def test_channel(self) -> None:
        """The frame is published on the room's channel, database included."""
        redis = await start_redis(self)
        link = make_link(self, redis.url + "/2", preload=scripts.sources())
        received: list[tuple[bytes, bytes]] = []
        from tests.test_cluster_link import make_subscriber

        subscriber = make_subscriber(self, redis.url, received)
        await subscriber.subscribe(b"chat:2:r:dev")
        await link.when_up()
        frame = await RoomStreams(link, Keys(db=2)).publish(said("x"))
        await poll(lambda: len(received) == 1, "the message")
        channel, data = received[0]
        self.assertEqual(channel, b"chat:2:r:dev")
        self.assertEqual(parse_frame(data), frame)

    async def test_concurrent_publishers(self) -> None:
        """
        Two nodes publishing at once to one room: every event gets its own
        number, each node's events keep the order it sent them in, and the
        stream holds them in number order.
        """
        redis = await start_redis(self)
        a, b = command_link(self, redis, "a"), command_link(self, redis, "b")
        await a.when_up()
        await b.when_up()
        ra, rb = RoomStreams(a, Keys()), RoomStreams(b, Keys())
        sent = []
        for n in range(100):
            sent.append(ra.publish(said(f"a{n}")))
            sent.append(rb.publish(said(f"b{n}")))
        frames = await gatherResults(sent)
        numbers = [frame.positions[0].seq for frame in frames]
        self.assertEqual(sorted(numbers), list(range(1, 201)))
        self.assertEqual(numbers[0::2], sorted(numbers[0::2]))
        self.assertEqual(numbers[1::2], sorted(numbers[1::2]))
        stored = await ra.read("dev", 0, 500)
        self.assertEqual([p.seq for p, _ in stored], list(range(1, 201)))
        by_number = {frame.positions[0].seq: frame.event() for frame in frames}
        self.assertEqual(
            [event for _, event in stored], [by_number[n] for n in range(1, 201)]
        )

    async def test_restart_with_data(self) -> None:
        """
        After Redis restarts with its data, numbers go on from where they
        were, in a new epoch whose base is the last number before.
        """
        redis = await start_redis(self)
        link = command_link(self, redis)
        await link.when_up()
        rooms = RoomStreams(link, Keys())
        for n in range(3):
            before = await rooms.publish(said(f"{n}"))
        first = link.run_id
        await redis.restart()
        await reconnected(link, first)
        after = await rooms.publish(said("after"))
        old, new = before.positions[0], after.positions[0]
        self.assertNotEqual(new.epoch, old.epoch)
        self.assertEqual((new.base, new.seq), (3, 4))
        meta = await rooms.meta("dev")
        assert meta is not None
        self.assertEqual(meta.chain, ((old.epoch, 0), (new.epoch, 3)))
        self.assertEqual([e.seq for e in await rooms.recent("dev", 10)], [1, 2, 3, 4])  # type: ignore[attr-defined]

    async def test_restart_without_data(self) -> None:
        """A Redis that lost everything starts the room again at 1, in a new
        epoch, with none of the old history left."""
        redis = await start_redis(self, persistence=False)
        link = command_link(self, redis)
        await link.when_up()
        rooms = RoomStreams(link, Keys())
        before = await rooms.publish(said("lost"))
        first = link.run_id
        await redis.restart()
        await reconnected(link, first)
        after = await rooms.publish(said("new"))
        self.assertNotEqual(after.positions[0].epoch, before.positions[0].epoch)
        self.assertEqual((after.positions[0].base, after.positions[0].seq), (0, 1))
        self.assertEqual(
            await rooms.recent("dev", 10),
            [events.Message("dev", 1, 1.5, ALICE, "new")],
        )

    async def test_script_flushed(self) -> None:
        """If Redis forgot the script, the publish falls back to EVAL."""
        redis = await start_redis(self)
        link = command_link(self, redis)
        await link.when_up()
        await link.command("SCRIPT", "FLUSH")
        frame = await RoomStreams(link, Keys()).publish(said("still"))
        self.assertEqual(frame.positions[0].seq, 1)
        self.assertEqual(
            await link.command("SCRIPT", "EXISTS", scripts.PUBLISH.sha), [1]
        )

    async def test_history_limits(self) -> None:
        """The stream is trimmed to about MAXLEN and expires after the TTL."""
        redis = await start_redis(self)
        link = command_link(self, redis)
        await link.when_up()
        rooms = RoomStreams(link, Keys(), maxlen=10, ttl=60)
        await gatherResults([rooms.publish(said(f"{n}")) for n in range(300)])
        length = await link.command("XLEN", "chat:r:dev:s")
        assert isinstance(length, int)
        self.assertLess(length, 300)
        self.assertGreaterEqual(length, 10)
        ttl = await link.command("TTL", "chat:r:dev:m")
        assert isinstance(ttl, int)
        self.assertTrue(0 < ttl <= 60)
        self.assertEqual([e.seq for e in await rooms.recent("dev", 3)], [298, 299, 300])  # type: ignore[attr-defined]


class FollowTests(TestCase):
    """A node following a room through its channel, stream and order."""

    async def follow(
        self, redis: RedisServer, room: str = "dev"
    ) -> tuple[RoomOrder[object], list[int], Health]:
        """
        A node that follows C{room} and records the numbers it delivers: as
        L{twisted_chat.cluster.fanout.RedisFanout} does, it catches up each
        time both its links are up again (catching up reads the stream on
        the command link, which may come back after the subscriber).
        """
        reactor = global_reactor()
        link = command_link(self, redis, "follower")
        orders: dict[bytes, RoomOrder[object]] = {}

        def message(channel: bytes, data: bytes) -> None:
            position, event = position_in(parse_frame(data), room)
            orders[channel].offer(position, event)

        subscriber = Subscriber(
            parse_redis_url(redis.url),
            reactor,
            reactor,
            "sub",
            handler=message,
            **FAST,  # type: ignore[arg-type]
        )
        subscriber.start()
        self.addCleanup(subscriber.stop)
        await link.when_up()
        streams = RoomStreams(link, Keys())
        delivered: list[int] = []

        def deliver(position: Position, event: object) -> bool:
            delivered.append(position.seq)
            return True

        order: RoomOrder[object] = RoomOrder(room, streams, deliver)
        channel = Keys().room_channel(room)
        orders[channel] = order
        order.begin(await streams.meta(room))
        await subscriber.subscribe(channel)
        await order.catch_up()
        health = Health([link, subscriber])
        health.observe(_CatchUpOnConnected(order))
        return order, delivered, health

    async def test_follow(self) -> None:
        """Events published by another node are delivered in order, once."""
        redis = await start_redis(self)
        publisher = command_link(self, redis, "publisher")
        await publisher.when_up()
        streams = RoomStreams(publisher, Keys())
        await streams.publish(said("before"))
        _, delivered, _ = await self.follow(redis)
        await gatherResults([streams.publish(said(f"{n}")) for n in range(20)])
        await poll(lambda: len(delivered) == 20, "twenty")
        self.assertEqual(delivered, list(range(2, 22)))

    async def test_redis_restart(self) -> None:
        """
        Redis restarts mid-conversation: what was published while the node
        was reconnecting is delivered once it is back, in order, and nothing
        twice.
        """
        redis = await start_redis(self)
        publisher = command_link(self, redis, "publisher")
        await publisher.when_up()
        streams = RoomStreams(publisher, Keys())
        _, delivered, health = await self.follow(redis)
        await gatherResults([streams.publish(said(f"{n}")) for n in range(5)])
        await poll(lambda: len(delivered) == 5, "five")
        first = publisher.run_id
        await redis.stop()
        await poll(lambda: not health.connected, "follower degraded")
        await redis.start()
        await reconnected(publisher, first)
        # Published before the follower is back (it may be, or not).
        await gatherResults([streams.publish(said(f"{n}")) for n in range(5, 10)])
        await poll(lambda: health.connected, "follower back")
        await gatherResults([streams.publish(said(f"{n}")) for n in range(10, 15)])
        await poll(lambda: len(delivered) >= 15, "fifteen")
        self.assertEqual(delivered, list(range(1, 16)))


class _CatchUpOnConnected:
    """Catches a room's order up each time the node is connected again."""

    def __init__(self, order: RoomOrder[object]) -> None:
        self.order = order

    def cluster_connected(self) -> None:
        self.order.catch_up()

    def cluster_degraded(self, why: str) -> None:
        pass
