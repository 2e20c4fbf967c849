"""
The cluster's directory: who is called what, on which node, in which rooms.

Nicknames are unique across the cluster.  A nickname's key
(C{chat:nick:<key>}) holds the node that has it and what WHOIS shows; it is
claimed with C{SET ... NX EX} (L{NICK_TTL} seconds), refreshed by the
node's heartbeat every L{HEARTBEAT} seconds (one pipeline for all its
nicks), deleted on quit (only by the node that holds it), and claimed again
after a reconnection to Redis.  A nickname that another node took while
this one could not refresh it (its key expired) is lost: L{Directory}
tells its owner, which must give the user another name.

Each room has a hash of its members (nick key to node and details), a sorted
set of them by joining time (for NAMES in joining order), and a count in
the C{chat:rooms} hash (for LIST).  A node adds and removes its own members;
a node that dies cannot, so every heartbeat also I{reaps}: it takes out of
every room the members of the nodes whose heartbeat (by Redis's clock) is
older than L{NICK_TTL}.

Bounds, for a node killed at time 0 (its last heartbeat at most
L{HEARTBEAT} seconds before): its nicknames are free by L{NICK_TTL} (20 s),
and its members are out of every room by L{NICK_TTL} + L{HEARTBEAT} (25 s),
while any other node lives.  Both are within 30 s.  A node alive but cut off
from Redis for longer than L{NICK_TTL} loses its nicknames the same way, and
claims them again when it is back (keeping those nobody took meanwhile).

Guest names come from a counter (INCR), so two nodes never hand out the same
one, and are claimed like any other name.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable

from attrs import define, field, frozen
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_chat.cluster import scripts
from twisted_chat.cluster.keys import Keys
from twisted_chat.cluster.link import Link, Reply
from twisted_chat.core import events
from twisted_chat.shared.rules import name_key

NICK_TTL = 20
HEARTBEAT = 5.0

# How many nick keys one refresh script handles: Redis is busy for about a
# millisecond per thousand.
REFRESH_CHUNK = 1000

# How many guest numbers to try before giving up (each taken by a user who
# chose that name).
GUEST_TRIES = 50


def new_node_id() -> str:
    """A name for this process, unique in the cluster: host, pid, random."""
    host = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname()
    )
    return f"{host[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


@frozen
class UserInfo:
    """What the cluster knows of one user: for WHOIS, and for routing."""

    nick: str
    user: str = ""
    host: str = ""
    realname: str = ""
    signon: float = 0.0
    away: str | None = None
    rooms: tuple[str, ...] = ()
    operator_in: tuple[str, ...] = ()
    active: float = 0.0

    def encode(self, node: str) -> str:
        return f"{node} " + json.dumps(
            [
                self.nick,
                self.user,
                self.host,
                self.realname,
                self.signon,
                self.away,
                list(self.rooms),
                list(self.operator_in),
                self.active,
            ],
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, value: str) -> tuple[str, UserInfo]:
        node, _, rest = value.partition(" ")
        nick, user, host, realname, signon, away, rooms, ops, active = json.loads(rest)
        return node, cls(
            nick, user, host, realname, signon, away, tuple(rooms), tuple(ops), active
        )


@frozen
class Located:
    """A user somewhere in the cluster."""

    node: str
    info: UserInfo


def _member_value(node: str, member: events.Member) -> str:
    return f"{node} " + json.dumps(
        [member.nick, member.operator, member.user, member.host, member.away],
        separators=(",", ":"),
    )


def _member(value: bytes) -> tuple[str, events.Member]:
    node, _, rest = value.decode("utf-8").partition(" ")
    nick, operator, user, host, away = json.loads(rest)
    return node, events.Member(nick, operator, user, host, away)


@frozen
class Reaped:
    """A member of a dead node, taken out of a room by this node's heartbeat."""

    node: str
    room: str
    member: events.Member


class DirectoryObserver:
    """What the directory tells its node (the core's side of it)."""

    def nick_lost(self, nick: str, holder: str) -> None:
        """Another node took C{nick} while this node could not refresh it."""

    def reaped(self, members: list[Reaped]) -> None:
        """These members of dead nodes were taken out of their rooms."""


@define(eq=False)
class Directory:
    """The directory, as one node sees and keeps it."""

    link: Link
    keys: Keys
    clock: IReactorTime
    node: str = field(factory=new_node_id)
    ttl: int = NICK_TTL
    heartbeat_interval: float = HEARTBEAT
    observer: DirectoryObserver = field(factory=DirectoryObserver)
    # What this node holds, to refresh and to claim again.
    nicks: dict[str, UserInfo] = field(factory=dict, init=False)
    memberships: dict[str, dict[str, tuple[str, events.Member]]] = field(
        factory=dict, init=False
    )
    _beat: IDelayedCall | None = field(default=None, init=False)
    _beating: bool = field(default=False, init=False)

    log = Logger()

    # Life

    def start(self) -> None:
        """Beat whenever the link is up (and claim everything again when it
        comes back)."""
        self.link.observe(self)
        if self.link.is_up:
            self.link_up(self.link)

    def stop(self) -> Deferred[None]:
        """Release every nickname and membership of this node."""
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None
        if not self.link.is_up:
            return succeed(None)
        commands = [self._release(key) for key in list(self.nicks)] + [
            self._part(room, nick)
            for room, members in self.memberships.items()
            for nick in members
        ]
        commands.append(self.link.command("ZREM", self.keys.nodes(), self.node))
        commands.append(self.link.command("DEL", self.keys.node_rooms(self.node)))
        self.nicks.clear()
        self.memberships.clear()
        return gatherResults(commands, consumeErrors=True).addBoth(lambda _: None)

    def link_up(self, link: Link) -> None:
        self.heartbeat().addErrback(self._log_failure, "the first heartbeat")

    def link_down(self, link: Link, why: str) -> None:
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None

    # Nicknames

    def claim(
        self, nick: str, info: UserInfo | None = None, again: bool = False
    ) -> Deferred[bool]:
        """
        Take C{nick} for a user of this node.

        @param again: claiming a name this node had (after a reconnection):
            if it still holds it, it keeps it.
        @return: whether it is this node's user's now (L{False}: another
            user has it, on another node or this one).
        """
        info = info or UserInfo(nick)
        key = name_key(nick)
        d = scripts.CLAIM.run(
            self.link,
            [self.keys.nick(key)],
            [self.node, info.encode(self.node), self.ttl, "1" if again else "0"],
        )

        def claimed(reply: Reply) -> bool:
            if reply == 1:
                self.nicks[key] = info
                return True
            return False

        return d.addCallback(claimed)

    def rename(
        self, old: str, new: str, info: UserInfo | None = None
    ) -> Deferred[bool]:
        """Claim C{new}; once it is ours, release C{old}."""
        if name_key(old) == name_key(new):
            # Only the case changes: the same name, shown another way.
            return self.claim(new, info, again=True)

        def claimed(ok: bool) -> Deferred[bool]:
            if not ok:
                return succeed(False)
            return self.release(old).addCallback(lambda _: True)

        return self.claim(new, info).addCallback(claimed)

    def release(self, nick: str) -> Deferred[None]:
        """The user called C{nick} left: free the name (if still ours)."""
        key = name_key(nick)
        self.nicks.pop(key, None)
        return self._release(key).addCallback(lambda _: None)

    def _release(self, key: str) -> Deferred[Reply]:
        return scripts.RELEASE.run(self.link, [self.keys.nick(key)], [self.node])

    def update(self, info: UserInfo) -> Deferred[bool]:
        """New details of one of this node's users (away, rooms, ...)."""
        key = name_key(info.nick)
        if key not in self.nicks:
            return succeed(False)
        self.nicks[key] = info
        d = scripts.UPDATE.run(
            self.link, [self.keys.nick(key)], [self.node, info.encode(self.node)]
        )
        return d.addCallback(lambda reply: reply == 1)

    def guest(self, info: Callable[[str], UserInfo] = UserInfo) -> Deferred[str]:
        """A guest name no other user has anywhere, claimed for this node."""
        return Deferred.fromCoroutine(self._guest(info))

    async def _guest(self, info: Callable[[str], UserInfo]) -> str:
        for _ in range(GUEST_TRIES):
            number = await self.link.command("INCR", self.keys.guests())
            assert isinstance(number, int)
            nick = f"guest{number}"
            if await self.claim(nick, info(nick)):
                return nick
        raise RuntimeError(f"no free guest name in {GUEST_TRIES} tries")

    def locate(self, nick: str) -> Deferred[Located | None]:
        """Where the user called C{nick} is, and what WHOIS shows of them."""
        d = self.link.command("GET", self.keys.nick(name_key(nick)))

        def found(reply: Reply) -> Located | None:
            if not isinstance(reply, bytes):
                return None
            node, info = UserInfo.decode(reply.decode("utf-8"))
            return Located(node, info)

        return d.addCallback(found)

    # Rooms

    def join(self, room: str, member: events.Member) -> Deferred[bool]:
        """
        C{member}, a user of this node, joined C{room} (its display name).

        @return: whether the room was empty before (across the cluster).
        """
        key = name_key(room)
        self.memberships.setdefault(key, {})[name_key(member.nick)] = (room, member)
        return self._join(key, room, member).addCallback(lambda reply: reply == 1)

    def _join(self, key: str, room: str, member: events.Member) -> Deferred[Reply]:
        return scripts.JOIN.run(
            self.link,
            [
                self.keys.members(key),
                self.keys.member_order(key),
                self.keys.rooms(),
                self.keys.room_info(key),
                self.keys.node_rooms(self.node),
            ],
            [key, name_key(member.nick), _member_value(self.node, member), room],
        )

    def part(self, room: str, nick: str) -> Deferred[None]:
        """The user called C{nick} of this node left C{room}."""
        key, nick_key = name_key(room), name_key(nick)
        members = self.memberships.get(key, {})
        members.pop(nick_key, None)
        d = self._part(key, nick_key)
        if not members:
            self.memberships.pop(key, None)
            d.addCallback(
                lambda _: self.link.command(
                    "SREM", self.keys.node_rooms(self.node), key
                )
            )
        return d.addCallback(lambda _: None)

    def _part(self, key: str, nick_key: str) -> Deferred[Reply]:
        return scripts.PART.run(
            self.link,
            [
                self.keys.members(key),
                self.keys.member_order(key),
                self.keys.rooms(),
                self.keys.room_info(key),
            ],
            [key, nick_key, self.node],
        )

    def names(
        self, room: str, limit: int
    ) -> Deferred[tuple[tuple[events.Member, ...], int]]:
        """The first C{limit} members of C{room} in joining order, and how many
        there are."""
        return Deferred.fromCoroutine(self._names(name_key(room), limit))

    async def _names(
        self, key: str, limit: int
    ) -> tuple[tuple[events.Member, ...], int]:
        # A pipeline: every command's failure handled, the first one raised.
        order, total = await self.link.pipeline(
            [
                ("ZRANGE", self.keys.member_order(key), 0, limit - 1),
                ("HLEN", self.keys.members(key)),
            ]
        )
        if not isinstance(order, list) or not order:
            return (), total if isinstance(total, int) else 0
        values = await self.link.command("HMGET", self.keys.members(key), *order)  # type: ignore[arg-type]
        assert isinstance(values, list)
        members = tuple(_member(v)[1] for v in values if isinstance(v, bytes))
        return members, total if isinstance(total, int) else len(members)

    def rooms(self) -> Deferred[list[events.RoomInfo]]:
        """Every room with members anywhere, sorted by key."""
        return Deferred.fromCoroutine(self._rooms())

    async def _rooms(self) -> list[events.RoomInfo]:
        counts = await self.link.command("HGETALL", self.keys.rooms())
        assert isinstance(counts, list)
        pairs = sorted(
            (key.decode(), int(count))
            for key, count in zip(counts[::2], counts[1::2], strict=True)
            if isinstance(key, bytes) and isinstance(count, bytes)
        )
        infos = await self.link.pipeline(
            [("HMGET", self.keys.room_info(key), "name", "topic") for key, _ in pairs]
        )
        rooms = []
        for (key, count), info in zip(pairs, infos, strict=True):
            assert isinstance(info, list)
            name, topic = (
                v.decode("utf-8") if isinstance(v, bytes) else None for v in info
            )
            rooms.append(events.RoomInfo(name or key, count, topic or ""))
        return rooms

    def set_topic(self, room: str, topic: str, by: str, at: float) -> Deferred[None]:
        """C{room}'s topic, as LIST and a joining user see it."""
        d = self.link.command(
            "HSET",
            self.keys.room_info(name_key(room)),
            "topic",
            topic,
            "topic_by",
            by,
            "topic_at",
            at,
        )
        return d.addCallback(lambda _: None)

    def topic(self, room: str) -> Deferred[events.Topic]:
        """C{room}'s topic."""
        d = self.link.command(
            "HMGET",
            self.keys.room_info(name_key(room)),
            "topic",
            "topic_by",
            "topic_at",
        )

        def topic(reply: Reply) -> events.Topic:
            assert isinstance(reply, list)
            text, by, at = (
                v.decode("utf-8") if isinstance(v, bytes) else "" for v in reply
            )
            return events.Topic(room, text, by, float(at or 0.0))

        return d.addCallback(topic)

    def update_member(self, room: str, member: events.Member) -> Deferred[None]:
        """New details of a member of this node (operator, away)."""
        key = name_key(room)
        self.memberships.setdefault(key, {})[name_key(member.nick)] = (room, member)
        d = self.link.command(
            "HSET",
            self.keys.members(key),
            name_key(member.nick),
            _member_value(self.node, member),
        )
        return d.addCallback(lambda _: None)

    # The heartbeat

    def heartbeat(self) -> Deferred[None]:
        """
        Note this node alive, refresh its nicknames (one pipeline), reap the
        members of dead nodes, and claim again what this node lost; then
        schedule the next heartbeat.
        """
        if self._beating:
            return succeed(None)
        self._beating = True
        return Deferred.fromCoroutine(self._heartbeat()).addBoth(self._beaten)

    def _beaten(self, result: object) -> object:
        self._beating = False
        if self.link.is_up and (self._beat is None or not self._beat.active()):
            self._beat = self.clock.callLater(self.heartbeat_interval, self._scheduled)
        return result

    def _scheduled(self) -> None:
        self._beat = None
        self.heartbeat().addErrback(self._log_failure, "a heartbeat")

    async def _heartbeat(self) -> None:
        keys = list(self.nicks)
        commands: list[Deferred[Reply]] = [
            scripts.BEAT.run(
                self.link, [self.keys.nodes()], [self.keys.prefix, self.ttl, self.node]
            )
        ]
        for start in range(0, len(keys), REFRESH_CHUNK):
            chunk = keys[start : start + REFRESH_CHUNK]
            commands.append(
                scripts.REFRESH.run(
                    self.link, [self.keys.nick(key) for key in chunk], [self.ttl]
                )
            )
        replies = await gatherResults(commands, consumeErrors=True)
        beat = replies[0]
        assert isinstance(beat, list)
        refreshed: list[Reply] = [
            r for reply in replies[1:] if isinstance(reply, list) for r in reply
        ]
        self._note_reaped(beat[1:])
        expired = [key for key, done in zip(keys, refreshed, strict=True) if done == 0]
        if beat[0] == 1 or expired:
            # New, or taken for dead: everything this node had may be gone.
            await self.reassert()

    def _note_reaped(self, items: list[Reply]) -> None:
        reaped = []
        for i in range(0, len(items) - 3, 4):
            node, room, _, value = items[i : i + 4]
            if (
                isinstance(node, bytes)
                and isinstance(room, bytes)
                and isinstance(value, bytes)
            ):
                reaped.append(Reaped(node.decode(), room.decode(), _member(value)[1]))
        if reaped:
            self.log.info(
                "took {count} member(s) of dead nodes out of their rooms",
                count=len(reaped),
            )
            self.observer.reaped(reaped)

    async def reassert(self) -> None:
        """
        Claim again every nickname and membership of this node (after a
        reconnection, or after being taken for dead).  A nickname another
        node holds now is lost: the observer hears of it.
        """
        claims = {
            key: self.claim(info.nick, info, again=True)
            for key, info in list(self.nicks.items())
        }
        # All sent before waiting for any: one pipeline.
        results = await gatherResults(list(claims.values()), consumeErrors=True)
        lost = [key for key, ok in zip(list(claims), results, strict=True) if not ok]
        for members in self.memberships.values():
            for key in lost:
                members.pop(key, None)
        joins = [
            self._join(key, room, member)
            for key, members in self.memberships.items()
            for room, member in members.values()
        ]
        await gatherResults(joins, consumeErrors=True)
        for key in lost:
            info = self.nicks.pop(key, None)
            nick = info.nick if info is not None else key
            located = await self.locate(key)
            holder = located.node if located is not None else ""
            self.log.warn(
                "the nickname {nick} was taken by node {holder} while this "
                "node could not keep it",
                nick=nick,
                holder=holder,
            )
            self.observer.nick_lost(nick, holder)

    def _log_failure(self, failure: Failure, what: str) -> None:
        self.log.info("{what} failed: {why}", what=what, why=failure.getErrorMessage())
