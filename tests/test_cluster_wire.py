"""
Tests for L{twisted_chat.cluster.wire}: events, frames and envelopes as
bytes, and back.
"""

from __future__ import annotations

import json

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import property_settings
from twisted_chat.cluster import wire
from twisted_chat.cluster.wire import (
    Envelope,
    Frame,
    Position,
    WireError,
    decode_envelope,
    decode_event,
    encode_envelope,
    encode_event,
    frame,
    parse_frame,
    restamp,
)
from twisted_chat.core import events
from twisted_chat.core.events import SHARED_EVENTS

# Any string at all: the wire must not depend on what the core lets through.
texts = st.text()
times = st.floats(allow_nan=False, allow_infinity=False)
seqs = st.integers(min_value=0, max_value=2**63)
sources = st.builds(events.Source, texts, texts, texts)
room_seqs = st.lists(st.tuples(texts, seqs), max_size=4).map(tuple)


def _room(cls: type, *extra: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.builds(cls, texts, seqs, times, sources, *extra)


room_events = st.one_of(
    _room(events.Message, texts),
    _room(events.Action, texts),
    _room(events.RoomNotice, texts),
    _room(events.Joined),
    _room(events.Parted, texts),
    _room(events.Kicked, texts, texts),
    _room(events.TopicChanged, texts),
)
user_events = st.one_of(
    st.builds(events.Quit, times, sources, texts, room_seqs, st.booleans()),
    st.builds(events.NickChanged, times, sources, texts, room_seqs),
)
direct_events = st.one_of(
    st.builds(
        events.PrivateMessage,
        times,
        sources,
        texts,
        texts,
        st.sampled_from(["message", "action", "notice"]),
    ),
    st.builds(events.Notice, texts, texts, st.lists(texts, max_size=3).map(tuple)),
    st.builds(events.Error, texts, texts, st.lists(texts, max_size=3).map(tuple)),
)
any_events = st.one_of(room_events, user_events, direct_events)
epochs = st.from_regex(r"[0-9A-Za-z_-]{1,64}", fullmatch=True)
positions = st.builds(Position, epochs, seqs, seqs)


class EventTests(SynchronousTestCase):
    """Events survive the trip exactly."""

    def test_every_shared_event_and_the_private_message(self) -> None:
        """Every room and user event type, and PrivateMessage, has a tag."""
        for cls in (*SHARED_EVENTS, events.PrivateMessage):
            self.assertIn(cls, wire.TAGS)
        self.assertEqual(len(set(wire.TAGS.values())), len(wire.TAGS))

    @property_settings
    @given(any_events)
    def test_round_trip(self, event: object) -> None:
        """decode_event(encode_event(e)) == e, with the same types inside."""
        data = encode_event(event)
        back = decode_event(data)
        self.assertEqual(back, event)
        self.assertIs(type(back), type(event))
        for name in attrs.fields_dict(type(event)):  # type: ignore[arg-type]
            value = getattr(back, name)
            self.assertIs(type(value), type(getattr(event, name)), name)

    @property_settings
    @given(any_events)
    def test_ascii_one_line(self, event: object) -> None:
        """The bytes are ASCII and hold no line break (a frame's header ends
        at the first one)."""
        data = encode_event(event)
        data.decode("ascii")
        self.assertNotIn(b"\n", data)

    def test_compact(self) -> None:
        """A message is a short array: version, tag, then the fields."""
        event = events.Message(
            "dev", 7, 1.5, events.Source("alice", "alice", "h"), "hi"
        )
        self.assertEqual(
            encode_event(event), b'[1,"m","dev",7,1.5,["alice","alice","h"],"hi"]'
        )

    def test_not_an_event(self) -> None:
        """Values that do not cross between nodes are refused."""
        self.assertRaises(WireError, encode_event, events.Help())
        self.assertRaises(WireError, encode_event, "text")

    def test_bad_bytes(self) -> None:
        """Anything malformed is one WireError, never another exception."""
        good = json.loads(
            encode_event(events.Joined("r", 1, 2.0, events.Source("a", "b", "c")))
        )
        bad = [
            b"",
            b"\xff",
            b"{}",
            b"[]",
            b"[2]",
            b'[1,"zz"]',
            b"[1,5]",
            json.dumps([*good, "extra"]).encode(),
            json.dumps(good[:-1]).encode(),
            json.dumps([1, "j", "r", "1", 2.0, ["a", "b", "c"]]).encode(),
            json.dumps([1, "j", "r", True, 2.0, ["a", "b", "c"]]).encode(),
            json.dumps([1, "j", "r", 1, "2", ["a", "b", "c"]]).encode(),
            json.dumps([1, "j", "r", 1, 2.0, ["a", "b"]]).encode(),
            json.dumps([1, "j", 5, 1, 2.0, ["a", "b", "c"]]).encode(),
            json.dumps([1, "q", 1.0, ["a", "b", "c"], "x", [["r"]], False]).encode(),
            json.dumps([1, "q", 1.0, ["a", "b", "c"], "x", [["r", 1]], 0]).encode(),
            json.dumps([1, "er", "c", "t", ["a", 1]]).encode(),
        ]
        for data in bad:
            self.assertRaises(WireError, decode_event, data)

    def test_time_as_int(self) -> None:
        """A time written as an integer still reads as equal."""
        data = b'[1,"j","r",1,2,["a","b","c"]]'
        self.assertEqual(
            decode_event(data),
            events.Joined("r", 1, 2.0, events.Source("a", "b", "c")),
        )


class FrameTests(SynchronousTestCase):
    """Frames: an event with its places in its rooms' orders."""

    @property_settings
    @given(room_events, positions)
    def test_room_event(self, event: object, position: Position) -> None:
        """A room event comes back with the frame's sequence number."""
        data = frame([position], encode_event(event))
        parsed = parse_frame(data)
        self.assertEqual(parsed.positions, (position,))
        self.assertEqual(parsed.event(), attrs.evolve(event, seq=position.seq))  # type: ignore[misc]

    @property_settings
    @given(user_events, st.data())
    def test_user_event(self, event: events.Quit, data: st.DataObject) -> None:
        """A user event comes back with each room's number in order."""
        places = data.draw(
            st.lists(positions, min_size=len(event.rooms), max_size=len(event.rooms))
        )
        parsed = parse_frame(frame(places, encode_event(event)))
        back = parsed.event()
        assert isinstance(back, events.Quit | events.NickChanged)
        self.assertEqual(
            back.rooms,
            tuple(
                (name, p.seq) for (name, _), p in zip(event.rooms, places, strict=True)
            ),
        )
        self.assertEqual(attrs.evolve(back, rooms=event.rooms), event)

    def test_wrong_count(self) -> None:
        """A frame whose numbers do not match its rooms is refused."""
        event = events.Joined("r", 0, 1.0, events.Source("a", "a", ""))
        two = [Position("e", 0, 1), Position("e", 0, 2)]
        self.assertRaises(WireError, parse_frame(frame(two, encode_event(event))).event)
        self.assertRaises(WireError, parse_frame(frame([], encode_event(event))).event)
        self.assertRaises(WireError, restamp, events.Notice("c", "t"), [1])

    def test_written_by_lua(self) -> None:
        """The header the publish script writes parses."""
        self.assertEqual(
            parse_frame(b"1 ab12:0:5 x-y:3:4\n[]"),
            Frame((Position("ab12", 0, 5), Position("x-y", 3, 4)), b"[]"),
        )

    def test_bad_frames(self) -> None:
        """Malformed headers are refused."""
        for data in [
            b"",
            b"1 e:0:1",
            b"2 e:0:1\n[]",
            b"1 e:0\n[]",
            b"1 e:x:1\n[]",
            b"1 e:0:-1\n[]",
            b"1 e e:0:1\n[]",
            b"1 :0:1\n[]",
            b"1 \xff:0:1\n[]",
        ]:
            self.assertRaises(WireError, parse_frame, data)


class EnvelopeTests(SynchronousTestCase):
    """Envelopes carry an event to one user on another node."""

    @property_settings
    @given(texts, direct_events, texts, texts, st.none() | direct_events)
    def test_round_trip(
        self, to: str, event: object, reply_to: str, sender: str, bounce: object
    ) -> None:
        """decode_envelope(encode_envelope(e)) == e."""
        envelope = Envelope(to, event, reply_to, sender, bounce)
        self.assertEqual(decode_envelope(encode_envelope(envelope)), envelope)

    def test_bad(self) -> None:
        """Malformed envelopes are refused."""
        for data in [
            b"[1]",
            b'[1,"a","b","c",[],null]',
            b'[1,5,"","",["no","c","t",[]],null]',
        ]:
            self.assertRaises(WireError, decode_envelope, data)
