"""
Rooms in Redis: the ordered publish of their events, and their history.

Each room has a meta hash (its counter and epoch) and a stream (its recent
events, by number: the stream ID of event number N is C{N-0}).  Publishing
runs L{twisted_chat.cluster.scripts.PUBLISH}: one atomic step that numbers
the event in each of its rooms, appends it to each room's stream and
publishes it on each room's channel.  The caller gets the event's
L{Position}s back.

History in cluster mode is the room's stream: the last C{maxlen} events
(XADD's C{MAXLEN ~}: at least that many, trimmed in whole blocks), kept
C{ttl} seconds after the room's last event (0: as long as Redis keeps its
data).  L{RoomStreams.recent} reads it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from attrs import define
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from twisted_chat.cluster import scripts
from twisted_chat.cluster.keys import Keys
from twisted_chat.cluster.link import Link, Reply
from twisted_chat.cluster.ordering import Meta
from twisted_chat.cluster.wire import (
    Frame,
    Position,
    WireError,
    encode_event,
    event_rooms,
    parse_frame,
    restamp,
    valid_epoch,
)
from twisted_chat.shared.rules import name_key

# History: how many events each room's stream keeps, and for how long after
# the room's last event.
MAXLEN = 1000
TTL = 30 * 24 * 3600


class RedisDataError(Exception):
    """Redis holds something this node cannot read."""


@define(eq=False)
class RoomStreams:
    """The rooms of one cluster, through one command link."""

    link: Link
    keys: Keys
    maxlen: int = MAXLEN
    ttl: int = TTL

    log = Logger()

    def publish(self, event: object) -> Deferred[Frame]:
        """
        Number C{event} in each of its rooms, store and publish it.

        @return: the L{Frame} as published: the event's positions and the
            bytes of the event (with its numbers at 0).
        """
        rooms = [name_key(name) for name in event_rooms(event)]
        payload = encode_event(restamp(event, [0] * len(rooms)))
        keys: list[str] = []
        for room in rooms:
            keys += [self.keys.room_meta(room), self.keys.room_stream(room)]
        args: list[scripts.Arg] = [
            payload,
            self.link.run_id,
            secrets.token_hex(6),
            self.maxlen,
            self.ttl,
            *(self.keys.room_channel(room) for room in rooms),
        ]

        def framed(header: Reply) -> Frame:
            if not isinstance(header, bytes):
                raise RedisDataError(f"publish replied {header!r}")
            return Frame(parse_frame(header + b"\n").positions, payload)

        return scripts.PUBLISH.run(self.link, keys, args).addCallback(framed)

    def meta(self, room: str) -> Deferred[Meta | None]:
        """The room's meta hash."""
        d = self.link.command("HMGET", self.keys.room_meta(room), "e", "b", "s", "h")
        return d.addCallback(_meta)

    def read(
        self, room: str, after: int, count: int
    ) -> Deferred[list[tuple[Position, object]]]:
        """At most C{count} events of the room's stream numbered after C{after}."""
        d = self.link.command(
            "XRANGE", self.keys.room_stream(room), f"({after}", "+", "COUNT", count
        )
        return d.addCallback(self._entries, room)

    def recent(self, room: str, count: int) -> Deferred[list[object]]:
        """The room's last C{count} events, oldest first (its history)."""
        d = self.link.command(
            "XREVRANGE", self.keys.room_stream(room), "+", "-", "COUNT", count
        )

        def events(reply: Reply) -> list[object]:
            return [event for _, event in reversed(self._entries(reply, room))]

        return d.addCallback(events)

    def _entries(self, reply: Reply, room: str) -> list[tuple[Position, object]]:
        if not isinstance(reply, list):
            raise RedisDataError(f"XRANGE replied {reply!r}")
        entries = []
        for entry in reply:
            try:
                entries.append(framed_entry(entry, room))
            except (WireError, RedisDataError) as e:
                self.log.warn(
                    "room {room}: unreadable stream entry: {why}", room=room, why=e
                )
        return entries


def framed_entry(entry: Reply, room: str) -> tuple[Position, object]:
    """A stream entry's position in C{room}'s order, and its event."""
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
        raise RedisDataError(f"not a stream entry: {entry!r}")
    fields = entry[1]
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    data = values.get(b"f")
    if not isinstance(data, bytes):
        raise RedisDataError("a stream entry without a frame")
    return position_in(parse_frame(data), room)


def position_in(frame: Frame, room: str) -> tuple[Position, object]:
    """C{frame}'s position in C{room}'s order, and its event."""
    event = frame.event()
    keys = [name_key(name) for name in event_rooms(event)]
    if room not in keys:
        raise WireError(f"an event of {keys} in the stream of {room}")
    return frame.positions[keys.index(room)], event


def _meta(reply: Reply) -> Meta | None:
    if not isinstance(reply, list) or len(reply) != 4:
        raise RedisDataError(f"HMGET replied {reply!r}")
    epoch, base, seq, chain = reply
    if epoch is None:
        return None
    if not (
        isinstance(epoch, bytes) and isinstance(base, bytes) and isinstance(seq, bytes)
    ):
        raise RedisDataError(f"a room's meta is {reply!r}")
    return Meta(
        epoch.decode("ascii", "replace"),
        int(base),
        int(seq),
        _chain(chain if isinstance(chain, bytes) else b""),
    )


def _chain(text: bytes) -> tuple[tuple[str, int], ...]:
    chain = []
    for item in text.decode("ascii", "replace").split():
        epoch, _, base = item.rpartition(":")
        if valid_epoch(epoch) and base.isdigit():
            chain.append((epoch, int(base)))
    return tuple(chain)


def frames_of(entries: Sequence[tuple[Position, object]]) -> list[object]:
    """The events of some entries, in order."""
    return [event for _, event in entries]
