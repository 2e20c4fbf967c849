"""
One node of a cluster, put together: what C{twistd chat --redis URL} needs.

L{ClusterNode} builds, from the C{--redis} URL, the command link (with the
scripts preloaded), the pub/sub link, their L{Health}, the L{Directory},
the L{RoomStreams} and the L{RedisFanout} to give the core.
"""

from __future__ import annotations

from attrs import define, field
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorCore, IReactorTime

from twisted_chat.cluster import scripts
from twisted_chat.cluster.address import RedisAddress, parse_redis_url
from twisted_chat.cluster.directory import Directory, new_node_id
from twisted_chat.cluster.fanout import RedisFanout
from twisted_chat.cluster.keys import DEFAULT_PREFIX, Keys
from twisted_chat.cluster.link import Health, Link, Subscriber
from twisted_chat.cluster.rooms import MAXLEN, TTL, RoomStreams


@define(eq=False)
class ClusterNode:
    """Everything one node keeps of the cluster."""

    address: RedisAddress
    reactor: IReactorCore
    clock: IReactorTime
    node: str = field(factory=new_node_id)
    prefix: str = DEFAULT_PREFIX
    maxlen: int = MAXLEN
    ttl: int = TTL
    link_options: dict[str, object] = field(factory=dict)
    directory_options: dict[str, object] = field(factory=dict)
    link: Link = field(init=False)
    subscriber: Subscriber = field(init=False)
    health: Health = field(init=False)
    directory: Directory = field(init=False)
    streams: RoomStreams = field(init=False)
    fanout: RedisFanout = field(init=False)

    @classmethod
    def from_url(
        cls, url: str, reactor: IReactorCore, clock: IReactorTime, **kw: object
    ) -> ClusterNode:
        """A node of the cluster on the Redis at C{url} (see L{parse_redis_url})."""
        return cls(parse_redis_url(url), reactor, clock, **kw)  # type: ignore[arg-type]

    def __attrs_post_init__(self) -> None:
        keys = Keys(self.prefix, self.address.db)
        self.link = Link(
            self.address,
            self.reactor,
            self.clock,
            f"chat-{self.node}",
            preload=scripts.sources(),
            **self.link_options,  # type: ignore[arg-type]
        )
        self.subscriber = Subscriber(
            self.address,
            self.reactor,
            self.clock,
            f"chat-{self.node}-sub",
            **self.link_options,  # type: ignore[arg-type]
        )
        self.health = Health([self.link, self.subscriber])
        self.directory = Directory(
            self.link,
            keys,
            self.clock,
            node=self.node,
            **self.directory_options,  # type: ignore[arg-type]
        )
        self.streams = RoomStreams(self.link, keys, self.maxlen, self.ttl)
        self.fanout = RedisFanout(
            self.streams,
            self.subscriber,
            self.health,
            self.directory,
            clock=self.clock,
        )

    def start(self) -> None:
        """Connect, and keep connecting."""
        self.fanout.start()
        self.directory.start()
        self.link.start()
        self.subscriber.start()

    def when_connected(self) -> Deferred[None]:
        """Fires once both links are up."""
        return gatherResults(
            [self.link.when_up(), self.subscriber.when_up()]
        ).addCallback(lambda _: None)

    def stop(self) -> Deferred[None]:
        """Release this node's names and memberships, and disconnect."""
        d = self.directory.stop()

        def disconnect(_: object) -> Deferred[None]:
            return gatherResults(
                [self.link.stop(), self.subscriber.stop()]
            ).addCallback(lambda _: None)

        return d.addBoth(disconnect)
