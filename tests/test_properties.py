"""
Properties of the line protocol that hold whatever bytes users send, in
whatever TCP segments: several real L{ChatProtocol}s on one L{ChatFactory}
are fed arbitrary input, and everything each of them is sent is checked.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import SPEC_FORBIDDEN
from tests.test_limits import Peer, Server
from twisted_chat.server.limits import Limits
from twisted_chat.shared.rules import has_forbidden_characters

# No example database (nothing written to the tree), no deadline (the machine
# is shared, and timing is not what these test).
property_settings = settings(database=None, deadline=None, max_examples=200)

MAX = 64
USERS = 3

# Flood control off: these properties are about content, not rate.
LIMITS = Limits(max_line_length=MAX, flood_rate=0, max_send_queue=10**9)

# Bytes that make interesting input when strung together: commands, the
# prefixes of other people's lines, line endings, escapes, broken UTF-8.
FRAGMENTS = [
    b"\n",
    b"\r\n",
    b"\r",
    b"/nick ",
    b"/me ",
    b"/msg ",
    b"/join ",
    b"/quit",
    b"/who",
    b"/rooms",
    b"/help",
    b"//",
    b"*** ",
    b"!!! ",
    b"<u1> ",
    b"* u2 ",
    b"*u0* ",
    b"-> *u1* ",
    b"u0",
    b"u1",
    b"u2",
    b"guest1",
    b"lobby",
    b"#side",
    b" ",
    b"\t",
    b"hello",
    b"\x1b[31m",
    b"\x00",
    b"\x7f",
    b"\xc2\x85",  # NEL
    b"\xc2\x9b",  # CSI
    b"\xe2\x80\xae",  # RIGHT-TO-LEFT OVERRIDE
    b"\xe2\x80\xa8",  # LINE SEPARATOR
    b"\xc3",
    b"\xa9",
    b"\xff",
    b"\xed\xa0\x80",  # an encoded surrogate
    "é😀".encode(),
    b"x" * (MAX + 3),
]

chunks = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=8
).map(b"".join)

events = st.lists(st.tuples(st.integers(0, USERS - 1), chunks), max_size=25)

# Where a user's words may appear: after a prefix naming the sender.
_AUTHORED = re.compile(r"(?:<([^ >]+)> |\* ([^ ]+) |\*([^ *]+)\* )")

_NICK_CHANGE = re.compile(r"\*\*\* (\S+) is now known as (\S+)\Z")


def connect_all(server: Server) -> list[Peer]:
    peers = [server.connect(f"u{i}") for i in range(USERS)]
    for i, peer in enumerate(peers):
        assert peer.nick == f"u{i}"
    return peers


class ArbitraryInputTests(SynchronousTestCase):
    """Whatever users send, what others receive is safe and attributed."""

    def check_line(self, line: str) -> None:
        self.assertIsNone(SPEC_FORBIDDEN.search(line), repr(line))
        self.assertFalse(has_forbidden_characters(line), repr(line))

    @property_settings
    @given(events)
    def test_arbitrary_input(self, script: list[tuple[int, bytes]]) -> None:
        """
        Never raises, never relays a control character, and every line one
        user's input makes another user receive is a server notice or is
        attributed to the sender under a nickname the sender really had.
        """
        server = Server(LIMITS)
        peers = connect_all(server)
        for index, data in script:
            sender = peers[index]
            if sender.lost:
                continue
            nicks = {sender.nick}
            sender.send(data)
            received = {}
            for peer in peers:
                raw = peer.received()
                self.assertTrue(raw == b"" or raw.endswith(b"\n"), raw)
                # Strict decoding: the server only ever writes UTF-8.
                received[id(peer)] = peer.take()
            for line in received[id(sender)]:
                self.check_line(line)
                change = _NICK_CHANGE.match(line)
                if change and change.group(1) in nicks:
                    nicks.add(change.group(2))
            for peer in peers:
                if peer is sender:
                    continue
                for line in received[id(peer)]:
                    self.check_line(line)
                    if line.startswith("*** "):
                        continue
                    authored = _AUTHORED.match(line)
                    self.assertIsNotNone(authored, repr(line))
                    assert authored is not None
                    author = next(group for group in authored.groups() if group)
                    self.assertIn(author, nicks, repr(line))
            if sender.closing:
                sender.lose()


# Text as a person types it: printable characters and tabs, not a command,
# not blank, and within the limit once encoded.
typed_text = (
    st.text(
        st.one_of(st.characters(codec="utf-8").filter(str.isprintable), st.just("\t")),
        min_size=1,
        max_size=MAX,
    )
    .filter(lambda text: not text.startswith("/") and bool(text.strip()))
    .filter(lambda text: len(text.encode("utf-8")) <= MAX)
)


def _clean(data: bytes) -> bytes:
    """No newline inside, and no leading "/" that would make it a command."""
    data = data.replace(b"\n", b"")
    return b"_" + data[1:] if data.startswith(b"/") else data


# Any line that is not a command, including lines around the length limit.
garbage_line = st.one_of(
    st.binary(max_size=MAX),
    st.lists(st.sampled_from(FRAGMENTS[2:])).map(b"".join),
    st.binary(min_size=MAX - 1, max_size=3 * MAX),
    st.tuples(
        st.text("ab", min_size=MAX - 1, max_size=MAX + 2).map(str.encode),
        st.sampled_from([b"", b"\r"]),
    ).map(b"".join),
).map(_clean)

# One line of input: well-formed text (sent with LF or CRLF) or anything.
input_line = st.one_of(
    st.tuples(typed_text, st.sampled_from([b"\n", b"\r\n"])).map(
        lambda pair: pair[0].encode("utf-8") + pair[1]
    ),
    garbage_line.map(lambda data: data + b"\n"),
)


def expected_message(nick: str, raw: bytes) -> str | None:
    """
    The specification, for one line without its C{\\n}: the message the
    room receives for it, or L{None}.
    """
    line = raw[:-1] if raw.endswith(b"\r") else raw
    if len(line) > MAX:
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if SPEC_FORBIDDEN.search(text) or not text.strip():
        return None
    return f"<{nick}> {text}"


class DeliveryTests(SynchronousTestCase):
    """Every acceptable line is delivered to the whole room, in order."""

    @property_settings
    @given(st.data())
    def test_delivered_in_order(self, data: st.DataObject) -> None:
        """
        Users send lines (well-formed or not, never commands) in arbitrary
        segments, interleaved: every member of the room receives exactly the
        acceptable lines, as C{<nick> text}, in the order they were completed.
        """
        server = Server(LIMITS)
        peers = connect_all(server)
        queues: list[list[bytes]] = []
        for _ in peers:
            stream = b"".join(data.draw(st.lists(input_line, max_size=8)))
            cuts = data.draw(
                st.lists(st.integers(0, len(stream)), max_size=6, unique=True)
            )
            bounds = [0, *sorted(cuts), len(stream)]
            queues.append([stream[a:b] for a, b in itertools.pairwise(bounds) if b > a])
        schedule = data.draw(
            st.permutations([i for i, queue in enumerate(queues) for _ in queue])
        )

        expected: list[str] = []
        buffers = [b""] * len(peers)
        received: list[list[str]] = [[] for _ in peers]
        for index in schedule:
            chunk = queues[index].pop(0)
            peers[index].send(chunk)
            *complete, buffers[index] = (buffers[index] + chunk).split(b"\n")
            for raw in complete:
                message = expected_message(peers[index].nick, raw)
                if message is not None:
                    expected.append(message)
            for peer, lines in zip(peers, received, strict=True):
                lines.extend(peer.take())
        for peer, lines in zip(peers, received, strict=True):
            messages = [line for line in lines if not line.startswith("!!! ")]
            self.assertEqual(messages, expected, peer.nick)
            self.assertFalse(peer.closing)
