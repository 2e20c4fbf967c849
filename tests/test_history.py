"""
Tests for L{twisted_chat.core.history}: the durable fan-out and the rooms'
history in the core, driven with fake clients and a store whose commits the
test makes happen (L{FakeStore}).
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from tests.helpers import FakeClient, observe_logs, property_settings
from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer, User
from twisted_chat.core.events import ErrorCode, StoredEvent
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import (
    NOT_STORED_TEXT,
    DurableFanout,
    IHistoryStore,
    Loaded,
    Query,
    storable,
)
from twisted_chat.core.interfaces import IFanout
from twisted_chat.shared import commands as cmd
from twisted_chat.shared import lines

START = 1_796_133_903.0  # 2026-12-01 14:05:03 UTC
STAMP = "[history 2026-12-01 14:05:03Z] "


@implementer(IHistoryStore)
class FakeStore:
    """
    An L{IHistoryStore} in memory.  With C{auto}, each event is committed as
    it is appended; otherwise the test commits (L{commit}) or fails
    (L{fail}) what waits.  Reads wait in L{reads} for the test to answer.
    """

    description = "fake"

    def __init__(self, loaded: Loaded | None = None, auto: bool = False) -> None:
        self.loaded = loaded or Loaded({}, {})
        self.auto = auto
        self.waiting: list[StoredEvent] = []
        self.stored: list[StoredEvent] = []
        self.reads: list[tuple[Query, Deferred[list[StoredEvent]]]] = []
        self.opened_with: int | None = None
        self._committed: Callable[[int], None] | None = None
        self._failed: Callable[[int, str], None] | None = None

    def open(self, recent: int) -> Loaded:
        self.opened_with = recent
        return self.loaded

    def start(
        self, committed: Callable[[int], None], failed: Callable[[int, str], None]
    ) -> None:
        self._committed, self._failed = committed, failed

    def append(self, event: StoredEvent) -> None:
        self.waiting.append(event)
        if self.auto:
            self.commit()

    def commit(self, count: int | None = None) -> None:
        """Commit the first C{count} events waiting (all by default)."""
        count = len(self.waiting) if count is None else count
        batch, self.waiting = self.waiting[:count], self.waiting[count:]
        self.stored += batch
        assert self._committed is not None
        self._committed(len(batch))

    def fail(self, why: str = "database or disk is full") -> None:
        """Fail every event waiting."""
        count, self.waiting = len(self.waiting), []
        assert self._failed is not None
        self._failed(count, why)

    def read(self, query: Query) -> Deferred[list[StoredEvent]]:
        d: Deferred[list[StoredEvent]] = Deferred()
        self.reads.append((query, d))
        return d

    def close(self) -> Deferred[None]:
        return succeed(None)


def message_texts(client: FakeClient) -> list[str]:
    """The messages a client was shown, live or replayed, without marks."""
    shown = []
    for line in client.lines:
        parsed = lines.parse_history(line)
        text = parsed[1] if parsed else line
        if text.startswith("<"):
            shown.append(text)
    return shown


class HistoryTestCase(SynchronousTestCase):
    """A chat whose rooms keep history in a L{FakeStore}."""

    replay = 50
    auto = False
    loaded: Loaded | None = None

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = FakeStore(self.loaded, self.auto)
        self.fanout = DurableFanout(
            LocalFanout(), self.store, self.clock, replay=self.replay, limit=500
        )
        self.fanout.load(self.store.open(self.fanout.cache_size))
        self.store.start(self.fanout.committed, self.fanout.failed)
        self.chat = ChatServer(
            fanout=self.fanout, history=self.fanout, clock=self.clock
        )

    def connect(self, nick: str) -> tuple[FakeClient, User]:
        """Connect, commit anything waiting, rename; forget what was seen."""
        client = FakeClient(peer=nick)
        user = self.chat.connect(client)
        client.user = user
        self.chat.line_received(user, f"/nick {nick}")
        for other in self.chat.users.values():
            assert isinstance(other.client, FakeClient)
            other.client.take()
        return client, user

    def type(self, user: User, *typed: str) -> None:
        for line in typed:
            self.chat.line_received(user, line)


class InterfaceTests(SynchronousTestCase):
    """What is stored, and the interfaces."""

    def test_interfaces(self) -> None:
        """The durable fan-out is a fan-out; the fake store is a store."""
        store = FakeStore()
        verifyObject(IHistoryStore, store)
        verifyObject(IFanout, DurableFanout(LocalFanout(), store, Clock()))

    def test_what_is_stored(self) -> None:
        """Messages, actions, notices and topic changes; no joins, quits, renames."""
        source = events.Source("bob", "bob", "h")
        kept = [
            events.Message("dev", 1, 0.0, source, "hi"),
            events.Action("dev", 1, 0.0, source, "waves"),
            events.RoomNotice("dev", 1, 0.0, source, "psst"),
            events.TopicChanged("dev", 1, 0.0, source, "plans"),
        ]
        not_kept = [
            events.Joined("dev", 1, 0.0, source),
            events.Parted("dev", 1, 0.0, source, ""),
            events.Kicked("dev", 1, 0.0, source, "carol", "out"),
            events.Quit(0.0, source, "bye", (("dev", 1),)),
            events.NickChanged(0.0, source, "robert", (("dev", 1),)),
            events.PrivateMessage(0.0, source, "alice", "secret"),
        ]
        self.assertEqual(
            [storable(e) for e in kept + not_kept],
            [True] * len(kept) + [False] * len(not_kept),
        )

    def test_cache_size(self) -> None:
        """Memory keeps the replay, or fewer lines if rooms keep fewer."""
        store = FakeStore()
        self.assertEqual(
            [
                DurableFanout(
                    LocalFanout(), store, Clock(), replay=r, max_lines=m
                ).cache_size
                for r, m in ((50, 0), (50, 10), (0, 10), (20, 100))
            ],
            [50, 10, 0, 20],
        )


class DurabilityTests(HistoryTestCase):
    """A line is delivered only once it is stored."""

    def test_delivered_after_commit(self) -> None:
        """Nobody, the sender included, sees a line before it is committed."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "hello")
        self.assertEqual((alice.lines, bob.lines), ([], []))
        self.assertEqual([e.text for e in self.store.waiting], ["hello"])  # type: ignore[union-attr]
        self.store.commit()
        self.assertEqual((alice.take(), bob.take()), (["<alice> hello"],) * 2)

    def test_group_commit(self) -> None:
        """Lines committed together are delivered together, in order."""
        alice, alice_user = self.connect("alice")
        _, bob_user = self.connect("bob")
        self.type(alice_user, "one")
        self.type(bob_user, "two", "/me three")
        self.store.commit(1)
        self.assertEqual(alice.take(), ["<alice> one"])
        self.store.commit()
        self.assertEqual(alice.take(), ["<bob> two", "* bob three"])
        self.assertEqual(alice.sent[-1:], [])  # take() forgot them

    def test_everything_keeps_its_place(self) -> None:
        """A reply, a join and a rename asked for after a line come after it."""
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "first", "/who")
        self.type(bob_user, "/nick robert")
        self.assertEqual((alice.lines, bob.lines), ([], []))
        self.store.commit()
        self.assertEqual(
            alice.take(),
            [
                "<alice> first",
                "*** Users in #lobby (2): alice, bob",
                "*** bob is now known as robert",
            ],
        )
        self.assertEqual(
            bob.take(), ["<alice> first", "*** bob is now known as robert"]
        )

    def test_fast_path(self) -> None:
        """With nothing waiting for a commit, everything goes straight through."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/who", "/join dev")
        self.assertEqual(
            alice.take(),
            [
                "*** Users in #lobby (1): alice",
                "*** alice has joined #dev",
                "*** Users in #dev (1): alice",
            ],
        )
        self.assertEqual(self.fanout.waiting, 0)

    def test_quit_after_the_last_line(self) -> None:
        """A line said just before /quit comes first, then the goodbye, the close."""
        alice, alice_user = self.connect("alice")
        bob, _ = self.connect("bob")
        self.type(alice_user, "bye all", "/quit off")
        self.assertEqual((alice.lines, alice.disconnects), ([], []))
        self.store.commit()
        self.assertEqual(alice.take(), ["<alice> bye all", "*** Goodbye (off)"])
        self.assertEqual(alice.disconnects, ["off"])
        self.assertEqual(bob.take(), ["<alice> bye all", "*** alice has quit (off)"])

    def test_shutdown_after_the_last_line(self) -> None:
        """At shutdown, lines waiting are delivered before the notice and the close."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "last words")
        self.chat.shutdown("maintenance")
        self.assertEqual(alice.disconnects, [])
        self.store.commit()
        self.assertEqual(
            alice.take(),
            ["<alice> last words", "*** Server shutting down: maintenance"],
        )
        self.assertEqual(alice.disconnects, ["server shutdown"])

    def test_failed_commit(self) -> None:
        """
        Lines that cannot be stored reach nobody; their senders are told and
        the log says why; later lines are delivered.
        """
        logged = observe_logs(self)
        alice, alice_user = self.connect("alice")
        bob, bob_user = self.connect("bob")
        self.type(alice_user, "lost")
        self.type(bob_user, "lost too", "/who")
        self.store.fail("database or disk is full")
        error = f"!!! {NOT_STORED_TEXT}"
        self.assertEqual(alice.take(), [error])
        self.assertEqual(bob.take(), [error, "*** Users in #lobby (2): alice, bob"])
        self.assertEqual(
            [r for r in alice.replies if isinstance(r, events.Error)],
            [events.Error(ErrorCode.NOT_STORED, NOT_STORED_TEXT, ("lobby",))],
        )
        [failure] = [e for e in logged if e["log_level"] == LogLevel.error]
        self.assertEqual(
            (failure["count"], failure["why"]), (2, "database or disk is full")
        )
        self.type(alice_user, "again")
        self.store.commit()
        self.assertEqual(bob.take(), ["<alice> again"])
        # What failed is not history either.
        _, carol_user = self.connect("carol")
        self.type(carol_user, "/history")
        carol = carol_user.client
        assert isinstance(carol, FakeClient)
        self.assertEqual(
            carol.take(), ["*** History of #lobby: 1 line", f"{STAMP}<alice> again"]
        )


class ReplayTests(HistoryTestCase):
    """Joining a room shows what was said there."""

    auto = True
    replay = 3

    def test_on_connect(self) -> None:
        """The default room's history comes after the greeting, marked."""
        _, alice_user = self.connect("alice")
        self.type(alice_user, "hello", "/me waves")
        self.clock.advance(61)
        carol = FakeClient()
        carol.user = self.chat.connect(carol)
        self.assertEqual(
            carol.lines,
            [
                lines.welcome(),
                lines.self_nick("guest2"),
                lines.joined("guest2", "lobby"),
                lines.who("lobby", ["alice", "guest2"]),
                f"{STAMP}<alice> hello",
                f"{STAMP}* alice waves",
            ],
        )

    def test_last_lines_only(self) -> None:
        """Only the last lines are replayed; the topic too; joins are not."""
        _, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev", "one", "two", "/topic plans", "three")
        bob, bob_user = self.connect("bob")
        self.type(bob_user, "/join dev")
        self.assertEqual(
            bob.take(),
            [
                "*** bob has joined #dev",
                "*** Topic of #dev: plans (set by alice)",
                "*** Users in #dev (2): alice, bob",
                f"{STAMP}<alice> two",
                f"{STAMP}*** alice set the topic of #dev: plans",
                f"{STAMP}<alice> three",
            ],
        )

    def test_nothing_to_replay(self) -> None:
        """An empty room's join is as before: nothing marked as history."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev")
        self.assertEqual(
            alice.take(), ["*** alice has joined #dev", "*** Users in #dev (1): alice"]
        )

    def test_private_messages_never(self) -> None:
        """Private messages are not history."""
        _, alice_user = self.connect("alice")
        self.connect("bob")
        self.type(alice_user, "/msg bob secret")
        self.assertEqual(self.store.stored, [])

    def test_max_age(self) -> None:
        """Lines older than the maximum age are not replayed."""
        self.fanout.max_age = 3600
        _, alice_user = self.connect("alice")
        self.type(alice_user, "old")
        self.clock.advance(3000)
        self.type(alice_user, "recent")
        self.clock.advance(1000)
        bob, _ = self.connect("bob")
        self.type(self.chat.users["bob"], "/part", "/join lobby")
        self.assertIn("[history 2026-12-01 14:55:03Z] <alice> recent", bob.lines)
        self.assertNotIn("old", " ".join(bob.lines))

    def test_room_comes_back(self) -> None:
        """A room left empty keeps its history and its sequence numbers."""
        seen: list[int] = []
        _, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev", "one", "/part dev")
        seen.append(self.store.stored[-1].seq)
        self.assertNotIn("dev", self.chat.rooms)
        self.type(alice_user, "/join dev", "two")
        self.assertGreater(self.store.stored[-1].seq, seen[0])
        self.assertEqual(
            [line for line in alice_user.client.lines if "history" in line],  # type: ignore[attr-defined]
            [f"{STAMP}<alice> one"],
        )


class LoadedTests(HistoryTestCase):
    """What the store held at start-up."""

    auto = True
    loaded = Loaded(
        {"dev": 41, "lobby": 7},
        {
            "dev": [
                events.Message(
                    "dev", 40, START - 86400, events.Source("bob", "bob", "h"), "old"
                ),
                events.Message(
                    "dev", 41, START - 60, events.Source("bob", "bob", "h"), "hi"
                ),
            ]
        },
    )

    def test_seq_continues(self) -> None:
        """A room made after a restart goes on from its last sequence number."""
        _, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev", "back")
        self.assertEqual([e.seq for e in self.store.stored], [43])  # 42: the join

    def test_replayed_after_restart(self) -> None:
        """The lines loaded at start-up are replayed on joining."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "/join dev")
        self.assertEqual(
            alice.lines[-2:],
            [
                "[history 2026-11-30 14:05:03Z] <bob> old",
                "[history 2026-12-01 14:04:03Z] <bob> hi",
            ],
        )
        self.assertEqual(self.store.opened_with, 50)


class SeamTests(HistoryTestCase):
    """Between history and live lines, none missing and none twice."""

    def test_join_while_lines_wait(self) -> None:
        """
        A line said before a join but not yet committed is replayed to the
        newcomer, not delivered live; a line said after the join is live.
        """
        _, alice_user = self.connect("alice")
        self.type(alice_user, "before")
        carol = FakeClient()
        carol.user = self.chat.connect(carol)
        self.type(alice_user, "after")
        self.assertEqual(carol.lines, [])
        self.store.commit(1)
        self.assertEqual(carol.lines[-1], f"{STAMP}<alice> before")
        self.store.commit()
        self.assertEqual(message_texts(carol), ["<alice> before", "<alice> after"])
        self.assertEqual(carol.lines[-1], "<alice> after")

    @given(
        st.lists(
            st.one_of(
                st.tuples(st.just("say"), st.integers(0, 2)),
                st.tuples(st.just("join"), st.just(0)),
                st.tuples(st.just("commit"), st.integers(0, 3)),
            ),
            max_size=40,
        )
    )
    @property_settings
    def test_no_gap_no_duplicate(self, steps: list[tuple[str, int]]) -> None:
        """
        However talking, joining and commits interleave, every user sees the
        room's lines as one unbroken run, in order: the replay (at most its
        size), then every line live.
        """
        self.setUp()
        talkers = [self.connect(nick)[1] for nick in ("a", "b", "c")]
        joiners: list[object] = []
        said = 0
        for kind, n in steps:
            if kind == "say":
                said += 1
                self.type(talkers[n], f"line {said}")
            elif kind == "join":
                joiner = FakeClient()
                joiner.user = self.chat.connect(joiner)
                joiners.append(joiner)
            else:
                self.store.commit(min(n, len(self.store.waiting)))
        self.store.commit()
        every = [
            f"<{e.source.nick}> {e.text}"
            for e in self.store.stored
            if isinstance(e, events.Message)
        ]
        self.assertEqual(len(every), said)
        clients = joiners + [t.client for t in talkers]
        for client in clients:
            assert isinstance(client, FakeClient)
            seen = message_texts(client)
            if seen:
                start = every.index(seen[0])
                self.assertEqual(seen, every[start:])
                replayed = [
                    line for line in client.lines if line.startswith("[history")
                ]
                self.assertLessEqual(len(replayed), self.replay)
                self.assertTrue(start == 0 or len(replayed) == self.replay)


class HistoryCommandTests(HistoryTestCase):
    """C{/history [#ROOM] [N]}."""

    auto = True
    replay = 2

    def test_from_memory(self) -> None:
        """What memory holds is shown at once, after a count."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "one", "two", "three", "/history 2")
        self.assertEqual(
            alice.lines[-3:],
            [
                "*** History of #lobby: 2 lines",
                f"{STAMP}<alice> two",
                f"{STAMP}<alice> three",
            ],
        )
        self.assertEqual(self.store.reads, [])

    def test_all_in_memory(self) -> None:
        """A room with fewer lines than memory keeps is answered from memory."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "only", "/history 200")
        self.assertEqual(
            alice.lines[-2:], ["*** History of #lobby: 1 line", f"{STAMP}<alice> only"]
        )
        self.assertEqual(self.store.reads, [])

    def test_from_the_store(self) -> None:
        """More than memory holds is read from the store, up to the limit."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "one", "two", "three")
        alice.take()
        self.type(alice_user, "/history 9999")
        [(query, d)] = self.store.reads
        self.assertEqual(
            query,
            Query("lobby", cmd.LATEST, None, None, 500, self.store.stored[-1].seq),
        )
        self.assertEqual(alice.lines, [])
        d.callback(self.store.stored)
        self.assertEqual(
            alice.take(),
            [
                "*** History of #lobby: 3 lines",
                f"{STAMP}<alice> one",
                f"{STAMP}<alice> two",
                f"{STAMP}<alice> three",
            ],
        )

    def test_default_count(self) -> None:
        """Without a number, /history asks for 100 lines."""
        _, alice_user = self.connect("alice")
        self.type(alice_user, "one", "two", "three", "/history")
        [(query, _)] = self.store.reads
        self.assertEqual(query.limit, 100)

    def test_read_fails(self) -> None:
        """A store that cannot read: the user is told, and the log has why."""
        logged = observe_logs(self)
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "one", "two", "three")
        alice.take()
        self.type(alice_user, "/history 3")
        self.store.reads[0][1].errback(RuntimeError("disk on fire"))
        self.assertEqual(
            alice.take(), ["!!! The history of #lobby cannot be read just now."]
        )
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any(e.get("room") == "lobby" for e in logged))

    def test_other_room(self) -> None:
        """The history of another room of the user's is marked with the room."""
        alice, alice_user = self.connect("alice")
        self.type(alice_user, "in the lobby", "/join dev", "/history #lobby 1")
        self.assertEqual(
            alice.lines[-2:],
            ["*** History of #lobby: 1 line", f"[#lobby] {STAMP}<alice> in the lobby"],
        )

    def test_not_in_room(self) -> None:
        """Only the rooms one is in."""
        alice, alice_user = self.connect("alice")
        _, bob_user = self.connect("bob")
        self.type(bob_user, "/join dev", "secret plans")
        alice.take()
        self.type(alice_user, "/history #dev")
        self.assertEqual(alice.take(), ["!!! You are not in #dev."])

    def test_without_history(self) -> None:
        """A server that keeps no history says so."""
        chat = ChatServer()
        client = FakeClient()
        user = chat.connect(client)
        client.take()
        chat.line_received(user, "/history")
        self.assertEqual(client.take(), ["!!! This server keeps no history."])
