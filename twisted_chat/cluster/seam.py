"""
L{ClusterDirectory}: the core's L{IDirectory} on one L{ClusterNode}.

The core speaks its own values (L{events.Whois} for what is known of a
user, L{events.Member}, L{events.RoomInfo}); this adapter turns them into
the L{Directory}'s, and tells the core (its observer) what happens
elsewhere: the node degraded and back, a nickname lost, members of a dead
node reaped, a room event delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.cluster.directory import DirectoryObserver, Reaped, UserInfo
from twisted_chat.cluster.link import LinkDown, LinkLost
from twisted_chat.cluster.node import ClusterNode
from twisted_chat.core import events
from twisted_chat.core.interfaces import IChatClient, IDirectory
from twisted_chat.shared.rules import name_key


def _quiet(d: Deferred[Any]) -> None:
    """
    Handle the failure of a directory call nobody waits for.  A lost or
    down link is not logged again: the link logged it once, and the core
    heard of it as degraded.
    """

    def failed(failure: Failure) -> None:
        if not failure.check(LinkLost, LinkDown):
            ClusterDirectory.log.info("directory: {why}", why=failure.getErrorMessage())

    d.addErrback(failed)


@implementer(IDirectory)
@define(eq=False)
class ClusterDirectory(DirectoryObserver):
    """The directory of a cluster, as a core sees it."""

    node: ClusterNode
    clock: IReactorTime
    _observer: Any = field(default=None, init=False)
    _degraded: bool = field(default=False, init=False)

    log = Logger()

    @property
    def connected(self) -> bool:
        return self.node.health.connected

    @property
    def why(self) -> str:
        return self.node.health.why or "Redis is unreachable"

    def watch(self, observer: Any) -> None:
        self._observer = observer
        self.node.directory.observer = self
        self.node.health.observe(self)
        fanout = self.node.fanout
        fanout.local_user = self._local_user
        fanout.on_event = observer.room_event

    def _local_user(self, nick: str) -> IChatClient | None:
        users = getattr(self._observer, "users", {})
        user = users.get(name_key(nick))
        return user.client if user is not None else None

    # HealthObserver

    def cluster_connected(self) -> None:
        if self._degraded:
            self._degraded = False
            self._observer.cluster_recovered()

    def cluster_degraded(self, why: str) -> None:
        if not self._degraded:
            self._degraded = True
            self._observer.cluster_degraded(why)

    # DirectoryObserver

    def nick_lost(self, nick: str, holder: str) -> None:
        self._observer.nick_lost(nick)

    def reaped(self, members: list[Reaped]) -> None:
        self._observer.reaped([(reaped.room, reaped.member) for reaped in members])

    # IDirectory

    def _user_info(self, info: events.Whois) -> UserInfo:
        return UserInfo(
            info.nick,
            info.user,
            info.host,
            info.realname,
            info.signon,
            info.away,
            info.rooms,
            info.operator_in,
            self.clock.seconds(),
        )

    def claim(self, nick: str, info: events.Whois) -> Deferred[bool]:
        return self.node.directory.claim(nick, self._user_info(info))

    def guest(self, info: Callable[[str], events.Whois]) -> Deferred[str]:
        return self.node.directory.guest(lambda nick: self._user_info(info(nick)))

    def rename(self, old: str, new: str, info: events.Whois) -> Deferred[bool]:
        return self.node.directory.rename(old, new, self._user_info(info))

    def release(self, nick: str) -> None:
        if self.connected:
            _quiet(self.node.directory.release(nick))
        else:
            # Not refreshed any more: it expires by itself.
            self.node.directory.nicks.pop(name_key(nick), None)

    def update(self, info: events.Whois) -> None:
        if self.connected:
            _quiet(self.node.directory.update(self._user_info(info)))
        elif name_key(info.nick) in self.node.directory.nicks:
            self.node.directory.nicks[name_key(info.nick)] = self._user_info(info)

    def join(self, room: str, member: events.Member) -> Deferred[bool]:
        return self.node.directory.join(room, member)

    def part(self, room: str, nick: str) -> None:
        d = self.node.directory.part(room, nick)
        if self.connected:
            _quiet(d)
        else:
            d.addErrback(lambda _: None)

    def update_member(self, room: str, member: events.Member) -> None:
        _quiet(self.node.directory.update_member(room, member))

    def names(
        self, room: str, limit: int
    ) -> Deferred[tuple[tuple[events.Member, ...], int]]:
        return self.node.directory.names(room, limit)

    def rooms(self) -> Deferred[list[events.RoomInfo]]:
        return self.node.directory.rooms()

    def whois(self, nick: str) -> Deferred[events.Whois | None]:
        def found(located: Any) -> events.Whois | None:
            if located is None:
                return None
            info: UserInfo = located.info
            return events.Whois(
                info.nick,
                info.user or info.nick,
                info.host,
                info.rooms,
                info.away,
                max(0.0, self.clock.seconds() - info.active),
                info.signon,
                info.realname or info.nick,
                info.operator_in,
            )

        return self.node.directory.locate(nick).addCallback(found)

    def topic(self, room: str) -> Deferred[events.Topic]:
        return self.node.directory.topic(room)

    def set_topic(self, room: str, topic: str, by: str, at: float) -> None:
        _quiet(self.node.directory.set_topic(room, topic, by, at))

    def send_to(
        self, nick: str, event: object, sender_nick: str, bounce: object
    ) -> Deferred[bool]:
        return self.node.fanout.send_to(
            nick, event, sender_nick=sender_nick, bounce=bounce
        )

    def recent(self, room: str, count: int) -> Deferred[list[object]]:
        if count <= 0:
            return succeed([])
        return self.node.streams.recent(room, count)
