"""
The core's events as bytes, for Redis, and back.

An event is a compact JSON array: the format version, a short tag naming the
event type, then the event's fields in the order L{attrs} declares them
(a L{Source} as C{[nick, user, host]}, a user event's rooms as
C{[[name, seq], ...]}).  Decoding checks every field's type, so what comes
back is exactly the frozen value that went in, or L{WireError}.  Strings are
written with ASCII escapes, so any Python string survives, and floats with
Python's shortest round-tripping form.

What a room's channel and stream carry is a I{frame}: a header line that the
publish script writes, giving each room of the event its position in that
room's order (see L{Position}), then the event encoded with placeholder
sequence numbers.  L{framed_event} puts Redis's numbers back in.  Frames are
built by Lua (L{twisted_chat.cluster.scripts}) and by L{frame} alike::

    1 <epoch>:<base>:<seq>[ <epoch>:<base>:<seq> ...]\\n<event>

Messages to one user (a node's inbox) are an I{envelope}: the recipient's
nickname, the node to answer if they are gone, and the event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
from attrs import frozen

from twisted_chat.core import events
from twisted_chat.core.events import Source

WIRE_VERSION = 1


class WireError(ValueError):
    """Bytes that are not an event, frame or envelope this version reads."""


# The event types that cross between nodes, with their tags: room and user
# events (through a room's channel and stream), and what goes to one user
# (through a node's inbox).
TAGS: dict[type, str] = {
    events.Message: "m",
    events.Action: "a",
    events.RoomNotice: "n",
    events.Joined: "j",
    events.Parted: "p",
    events.Kicked: "k",
    events.TopicChanged: "t",
    events.Quit: "q",
    events.NickChanged: "c",
    events.PrivateMessage: "pm",
    events.Notice: "no",
    events.Error: "er",
}

_Encode = Callable[[Any], Any]
_Decode = Callable[[Any], Any]


def _check(ok: bool, what: str, value: object) -> None:
    if not ok:
        raise WireError(f"expected {what}, got {value!r}")


def _decode_str(value: object) -> str:
    _check(isinstance(value, str), "a string", value)
    assert isinstance(value, str)
    return value


def _decode_int(value: object) -> int:
    _check(type(value) is int, "an integer", value)
    assert isinstance(value, int)
    return value


def _decode_float(value: object) -> float:
    # JSON writes 1.0 as 1.0, but a time given as an int comes back as one.
    _check(type(value) in (int, float), "a number", value)
    assert isinstance(value, int | float)
    return value


def _decode_bool(value: object) -> bool:
    _check(isinstance(value, bool), "a boolean", value)
    assert isinstance(value, bool)
    return value


def _encode_source(source: Source) -> list[str]:
    return [source.nick, source.user, source.host]


def _decode_source(value: object) -> Source:
    _check(isinstance(value, list) and len(value) == 3, "a source", value)
    assert isinstance(value, list)
    nick, user, host = (_decode_str(part) for part in value)
    return Source(nick, user, host)


def _encode_rooms(rooms: tuple[tuple[str, int], ...]) -> list[list[object]]:
    return [[name, seq] for name, seq in rooms]


def _decode_rooms(value: object) -> tuple[tuple[str, int], ...]:
    _check(isinstance(value, list), "a list of rooms", value)
    assert isinstance(value, list)
    rooms = []
    for pair in value:
        _check(isinstance(pair, list) and len(pair) == 2, "[room, seq]", pair)
        rooms.append((_decode_str(pair[0]), _decode_int(pair[1])))
    return tuple(rooms)


def _encode_strs(values: tuple[str, ...]) -> list[str]:
    return list(values)


def _decode_strs(value: object) -> tuple[str, ...]:
    _check(isinstance(value, list), "a list of strings", value)
    assert isinstance(value, list)
    return tuple(_decode_str(item) for item in value)


def _identity(value: object) -> object:
    return value


# How each annotation of an event field is written and read.
_CODECS: dict[str, tuple[_Encode, _Decode]] = {
    "str": (_identity, _decode_str),
    "int": (_identity, _decode_int),
    "float": (_identity, _decode_float),
    "bool": (_identity, _decode_bool),
    "Source": (_encode_source, _decode_source),
    "tuple[tuple[str, int], ...]": (_encode_rooms, _decode_rooms),
    "tuple[str, ...]": (_encode_strs, _decode_strs),
}


@frozen
class _Spec:
    cls: type
    tag: str
    names: tuple[str, ...]
    encoders: tuple[_Encode, ...]
    decoders: tuple[_Decode, ...]


def _spec(cls: type, tag: str) -> _Spec:
    fields = attrs.fields(cls)
    for field in fields:
        if field.type not in _CODECS:
            # A new field type in core/events.py: teach this module first.
            raise TypeError(f"{cls.__name__}.{field.name}: no codec for {field.type}")
    return _Spec(
        cls,
        tag,
        tuple(field.name for field in fields),
        tuple(_CODECS[str(field.type)][0] for field in fields),
        tuple(_CODECS[str(field.type)][1] for field in fields),
    )


_BY_TYPE: dict[type, _Spec] = {cls: _spec(cls, tag) for cls, tag in TAGS.items()}
_BY_TAG: dict[str, _Spec] = {spec.tag: spec for spec in _BY_TYPE.values()}

_dumps = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False
).encode


def _event_array(event: object) -> list[object]:
    spec = _BY_TYPE.get(type(event))
    if spec is None:
        raise WireError(f"{type(event).__name__} does not cross between nodes")
    values = attrs.astuple(event, recurse=False)  # type: ignore[arg-type]
    return [
        spec.tag,
        *(encode(value) for encode, value in zip(spec.encoders, values, strict=True)),
    ]


def _from_array(value: object) -> object:
    _check(isinstance(value, list) and bool(value), "an event", value)
    assert isinstance(value, list)
    spec = _BY_TAG.get(value[0]) if isinstance(value[0], str) else None
    if spec is None:
        raise WireError(f"unknown event tag {value[0]!r}")
    if len(value) != len(spec.names) + 1:
        raise WireError(f"{spec.cls.__name__} needs {len(spec.names)} fields")
    return spec.cls(
        *(decode(item) for decode, item in zip(spec.decoders, value[1:], strict=True))
    )


def encode_event(event: object) -> bytes:
    """An event of L{TAGS} as bytes."""
    return _dumps([WIRE_VERSION, *_event_array(event)]).encode("ascii")


def _load(data: bytes) -> list[object]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise WireError(f"not JSON: {e}") from None
    _check(isinstance(value, list) and len(value) >= 1, "a versioned array", value)
    assert isinstance(value, list)
    if value[0] != WIRE_VERSION:
        raise WireError(f"wire version {value[0]!r}, this node reads {WIRE_VERSION}")
    return value


def decode_event(data: bytes) -> object:
    """The event that L{encode_event} gave C{data} for."""
    return _from_array(_load(data)[1:])


# Frames: a room event or user event with its positions in its rooms' orders.


@frozen
class Position:
    """
    Where one event stands in one room's order.

    @ivar epoch: the room's order this number belongs to.  A room's counter
        starts a new epoch when Redis lost it (or may have rolled it back);
        numbers of different epochs are not comparable.
    @ivar base: the room's counter when this epoch started: the epoch's
        events are numbered C{base + 1}, C{base + 2}, ...
    @ivar seq: the event's number.
    """

    epoch: str
    base: int
    seq: int


@frozen
class Frame:
    """An event as a room's channel and stream carry it."""

    positions: tuple[Position, ...]
    payload: bytes

    def event(self) -> object:
        """The event, with the sequence numbers of L{positions}."""
        return restamp(decode_event(self.payload), [p.seq for p in self.positions])


_EPOCH = re.compile(r"[0-9A-Za-z_-]{1,64}\Z")


def valid_epoch(epoch: str) -> bool:
    """Whether C{epoch} may stand in a frame's header."""
    return _EPOCH.match(epoch) is not None


def frame(positions: Sequence[Position], payload: bytes) -> bytes:
    """A frame's bytes, as the publish script writes them."""
    header = "".join(f" {p.epoch}:{p.base}:{p.seq}" for p in positions)
    return f"{WIRE_VERSION}{header}\n".encode("ascii") + payload


def parse_frame(data: bytes) -> Frame:
    """The L{Frame} in C{data}."""
    header, newline, payload = data.partition(b"\n")
    if not newline:
        raise WireError("a frame needs a header line")
    try:
        version, *fields = header.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise WireError("a frame's header is ASCII") from None
    if version != str(WIRE_VERSION):
        raise WireError(f"frame version {version!r}, this node reads {WIRE_VERSION}")
    positions = []
    for field in fields:
        parts = field.split(":")
        if (
            len(parts) != 3
            or not valid_epoch(parts[0])
            or not parts[1].isdigit()
            or not parts[2].isdigit()
        ):
            raise WireError(f"bad position {field!r}")
        positions.append(Position(parts[0], int(parts[1]), int(parts[2])))
    return Frame(tuple(positions), payload)


E = TypeVar("E")


def restamp(event: E, seqs: Sequence[int]) -> E:
    """
    C{event} with these sequence numbers: a room event's C{seq} (one
    number), or each room's in a user event's C{rooms}, in order.
    """
    if isinstance(event, events.Quit | events.NickChanged):
        if len(seqs) != len(event.rooms):
            raise WireError(f"{len(event.rooms)} rooms, {len(seqs)} numbers")
        rooms = tuple(
            (name, seq) for (name, _), seq in zip(event.rooms, seqs, strict=True)
        )
        return attrs.evolve(event, rooms=rooms)
    if isinstance(event, events.RoomEvent):
        if len(seqs) != 1:
            raise WireError(f"a room event has one number, not {len(seqs)}")
        return attrs.evolve(event, seq=seqs[0])
    raise WireError(f"{type(event).__name__} has no place in a room's order")


def event_rooms(event: object) -> list[str]:
    """The display names of the rooms whose order C{event} takes a place in."""
    if isinstance(event, events.Quit | events.NickChanged):
        return [name for name, _ in event.rooms]
    if isinstance(event, events.RoomEvent):
        return [event.room]
    raise WireError(f"{type(event).__name__} has no place in a room's order")


# Envelopes: to one user, through the inbox of the node they are on.


@frozen
class Envelope:
    """
    An event for one user on another node.

    @ivar to: the recipient's nickname.
    @ivar reply_to: the node of the user who caused it, told if the
        recipient is not there after all; empty for none.
    @ivar bounce: what to tell the user who caused it then (an event of
        L{TAGS}), or L{None}.
    @ivar sender: that user's nickname, to route C{bounce}.
    """

    to: str
    event: object
    reply_to: str = ""
    sender: str = ""
    bounce: object = None


def encode_envelope(envelope: Envelope) -> bytes:
    """An L{Envelope} as bytes."""
    bounce = None if envelope.bounce is None else _event_array(envelope.bounce)
    return _dumps(
        [
            WIRE_VERSION,
            envelope.to,
            envelope.reply_to,
            envelope.sender,
            _event_array(envelope.event),
            bounce,
        ]
    ).encode("ascii")


def decode_envelope(data: bytes) -> Envelope:
    """The L{Envelope} that L{encode_envelope} gave C{data} for."""
    value = _load(data)
    if len(value) != 6:
        raise WireError("an envelope has six fields")
    _, to, reply_to, sender, event, bounce = value
    return Envelope(
        _decode_str(to),
        _from_array(event),
        _decode_str(reply_to),
        _decode_str(sender),
        None if bounce is None else _from_array(bounce),
    )
