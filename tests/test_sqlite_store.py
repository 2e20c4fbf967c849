"""
Tests for L{twisted_chat.server.sqlite_store}: the SQLite history store, with
its real writer and reader threads.  Nothing sleeps: each test waits on the
Deferred of a commit, a read or a call queued behind the writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase
from zope.interface.verify import verifyObject

from tests.e2e import global_reactor, poll, short_temp_dir
from tests.helpers import FakeClient, observe_logs
from twisted_chat.core import events
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.events import StoredEvent
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import (
    NOT_STORED_TEXT,
    DurableFanout,
    IHistoryStore,
    Query,
    StoreError,
)
from twisted_chat.server import sqlite_store
from twisted_chat.server.history_service import HistoryService, StoreFailed
from twisted_chat.server.sqlite_store import (
    APPLICATION_ID,
    MEMORY,
    SqliteStore,
    schema_version,
)
from twisted_chat.shared import commands as cmd
from twisted_chat.shared.commands import HistoryRef

T0 = 1_796_133_903.0
BOB = events.Source("bob", "~bob", "example.org")


def said(room: str, seq: int, text: str, at: float | None = None) -> StoredEvent:
    """A message in C{room}, said at T0 + seq unless C{at} says otherwise."""
    return events.Message(room, seq, T0 + seq if at is None else at, BOB, text)


class StoreTestCase(TestCase):
    """Stores on files in a temporary directory, closed after each test."""

    def setUp(self) -> None:
        self.reactor = global_reactor()
        self.directory = short_temp_dir(self)
        self.path = os.path.join(self.directory, "history.sqlite3")
        self.committed: list[int] = []
        self.failures: list[tuple[int, str]] = []

    def store(self, path: str | None = None, **kwargs: Any) -> SqliteStore:
        """A store on C{path} (this test's file by default), not opened."""
        store = SqliteStore(path or self.path, self.reactor.callFromThread, **kwargs)
        self.addCleanup(store.close)
        return store

    def running(
        self, path: str | None = None, recent: int = 50, **kwargs: Any
    ) -> SqliteStore:
        """A store opened and started, reporting to this test."""
        store = self.store(path, **kwargs)
        self.loaded = store.open(recent)
        store.start(
            self.committed.append, lambda n, why: self.failures.append((n, why))
        )
        return store

    async def write(self, store: SqliteStore, *lines: StoredEvent) -> None:
        """Append C{lines} and wait until they are committed and reported."""
        for line in lines:
            store.append(line)
        await store.sync()

    def raw(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """Run SQL on the file with a connection of the test's own."""
        con = sqlite3.connect(self.path, isolation_level=None)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()


class WriteTests(StoreTestCase):
    """Lines go in through the writer and come back after a restart."""

    async def test_interface(self) -> None:
        """The store is an L{IHistoryStore}."""
        verifyObject(IHistoryStore, self.running())

    async def test_round_trip(self) -> None:
        """Every kind of stored line comes back whole, in a new store."""
        lines: list[StoredEvent] = [
            events.Message("Dev", 3, T0 + 0.25, BOB, "hi ünïcode 🎉"),
            events.Action("Dev", 5, T0 + 1, BOB, "waves"),
            events.RoomNotice("Dev", 6, T0 + 2, BOB, "a notice"),
            events.TopicChanged("Dev", 8, T0 + 3, BOB, "plans"),
            events.Message("lobby", 2, T0 + 4, BOB, "elsewhere"),
        ]
        store = self.running()
        await self.write(store, *lines)
        self.assertEqual(sum(self.committed), 5)
        await store.close()

        self.running()
        self.assertEqual(self.loaded.last_seq, {"dev": 8, "lobby": 2})
        self.assertEqual(self.loaded.recent, {"dev": lines[:4], "lobby": lines[4:]})

    async def test_recent_only(self) -> None:
        """At start-up, only the last lines of each room are read."""
        store = self.running()
        await self.write(store, *(said("dev", n, f"line {n}") for n in range(1, 11)))
        await store.close()
        self.running(recent=3)
        self.assertEqual(
            [e.text for e in self.loaded.recent["dev"]],  # type: ignore[union-attr]
            ["line 8", "line 9", "line 10"],
        )

    async def test_group_commit(self) -> None:
        """What accumulates while a commit runs is committed together, in order."""
        store = self.running()
        await self.write(store, *(said("dev", n, "x") for n in range(1, 1001)))
        self.assertEqual(sum(self.committed), 1000)
        self.assertLess(store.stats.commits, 1000)
        self.assertEqual(store.stats.lines, 1000)
        self.assertEqual(
            [row[0] for row in self.raw("SELECT seq FROM lines ORDER BY seq")],
            list(range(1, 1001)),
        )

    async def test_close_commits_what_waits(self) -> None:
        """Closing commits and reports every line appended before."""
        logged = observe_logs(self)
        store = self.running()
        for n in range(1, 51):
            store.append(said("dev", n, "x"))
        await store.close()
        self.assertEqual(sum(self.committed), 50)
        self.assertEqual(self.raw("SELECT count(*) FROM lines"), [(50,)])
        [stats] = [e["stats"] for e in logged if "stats" in e]
        summary = json.loads(stats)
        self.assertEqual(summary["lines"], 50)
        self.assertGreaterEqual(summary["batch_max"], 1)

    async def test_memory(self) -> None:
        """C{:memory:} keeps lines for the life of the store only."""
        store = self.running(MEMORY)
        await self.write(store, said("dev", 1, "fleeting"))
        found = await store.read(Query("dev", cmd.LATEST, None, None, 10, 1))
        self.assertEqual([e.text for e in found], ["fleeting"])  # type: ignore[union-attr]
        await store.close()
        self.running(MEMORY)
        self.assertEqual((self.loaded.last_seq, self.loaded.recent), ({}, {}))
        self.assertFalse(os.path.exists(MEMORY))

    async def test_wal(self) -> None:
        """The database is in WAL mode, so the reader never waits for the writer."""
        self.running()
        self.assertEqual(self.raw("PRAGMA journal_mode"), [("wal",)])


class SchemaTests(StoreTestCase):
    """The server creates, checks and migrates its own schema."""

    def test_new_file(self) -> None:
        """A new database gets the current version and our application id."""
        self.store().check()
        self.assertEqual(self.raw("PRAGMA user_version"), [(schema_version(),)])
        self.assertEqual(self.raw("PRAGMA application_id"), [(APPLICATION_ID,)])
        self.assertEqual(schema_version(), 1)

    def test_newer_refused(self) -> None:
        """A database written by a newer version is refused, saying so."""
        self.store().check()
        self.raw(f"PRAGMA user_version = {schema_version() + 1}")
        for attempt in (self.store().check, lambda: self.store().open(5)):
            with self.assertRaises(StoreError) as caught:
                attempt()
            self.assertEqual(
                str(caught.exception),
                "a newer twisted-chat wrote it (schema version 2; this version "
                "knows versions up to 1); run the newer version, or give another "
                "--database",
            )
        # Left as it was.
        self.assertEqual(self.raw("PRAGMA user_version"), [(2,)])

    def test_not_ours(self) -> None:
        """Another program's SQLite database is left alone."""
        self.raw("CREATE TABLE accounts (id INTEGER)")
        with self.assertRaises(StoreError) as caught:
            self.store().check()
        self.assertEqual(
            str(caught.exception), "it is not a twisted-chat history database"
        )
        self.assertEqual(self.raw("PRAGMA user_version"), [(0,)])

    async def test_migration(self) -> None:
        """An older database is migrated in place, its lines kept."""
        store = self.running()
        await self.write(store, said("dev", 1, "kept"))
        await store.close()
        newer = [*sqlite_store.MIGRATIONS, ("ALTER TABLE rooms ADD COLUMN topic TEXT",)]
        self.patch(sqlite_store, "MIGRATIONS", newer)
        logged = observe_logs(self)
        self.running()
        self.assertEqual(self.raw("PRAGMA user_version"), [(2,)])
        self.assertIn("topic", [row[1] for row in self.raw("PRAGMA table_info(rooms)")])
        self.assertEqual([e.text for e in self.loaded.recent["dev"]], ["kept"])  # type: ignore[union-attr]
        self.assertTrue(any(e.get("new") == 2 and e.get("old") == 1 for e in logged))

    def test_corrupt(self) -> None:
        """A file that is not a database is refused in one line."""
        with open(self.path, "wb") as file:
            file.write(b"this is not SQLite at all\n" * 1000)
        for attempt in (self.store().check, lambda: self.store().open(5)):
            with self.assertRaises(StoreError) as caught:
                attempt()
            self.assertEqual(
                str(caught.exception),
                "file is not a database (is it corrupt, or not a SQLite file?)",
            )

    def test_no_directory(self) -> None:
        """A database in a directory that does not exist is refused."""
        path = os.path.join(self.directory, "missing", "history.sqlite3")
        with self.assertRaises(StoreError) as caught:
            self.store(path).check()
        self.assertEqual(
            str(caught.exception),
            "unable to open database file (does its directory exist, and may "
            "this user write there?)",
        )

    def test_read_only_file(self) -> None:
        """A database this user may not write is refused."""
        if os.geteuid() == 0:
            raise SkipTest("root may write any file")
        self.store().check()
        os.chmod(self.path, 0o444)
        with self.assertRaises(StoreError) as caught:
            self.store().open(5)
        self.assertIn("readonly database", str(caught.exception))

    def test_unwritable_place(self) -> None:
        """A database where nobody may create files (even root) is refused."""
        if not os.path.isdir("/proc/self"):
            raise SkipTest("no /proc")
        with self.assertRaises(StoreError) as caught:
            self.store("/proc/self/history.sqlite3").check()
        self.assertTrue(
            str(caught.exception).startswith("unable to open database file"),
            str(caught.exception),
        )

    def test_memory_needs_no_check(self) -> None:
        """C{:memory:} has no file to check."""
        self.store(MEMORY).check()
        self.assertFalse(os.path.exists(MEMORY))


class ReadTests(StoreTestCase):
    """The selectors of IRC CHATHISTORY, and /history."""

    async def setUp(self) -> None:  # type: ignore[override]
        super().setUp()
        self.history = self.running()
        # Sequence numbers 2, 4, ... 20 (odd numbers: events not stored);
        # line n was said at T0 + n.
        await self.write(
            self.history, *(said("dev", n, f"{n}") for n in range(2, 21, 2))
        )

    async def read(
        self,
        selector: str,
        start: HistoryRef | None = None,
        end: HistoryRef | None = None,
        limit: int = 3,
        upto: int = 20,
        room: str = "dev",
    ) -> list[int]:
        found = await self.history.read(Query(room, selector, start, end, limit, upto))
        return [line.seq for line in found]

    async def test_latest(self) -> None:
        """The newest lines, or the newest after a point, oldest first."""
        self.assertEqual(await self.read(cmd.LATEST), [16, 18, 20])
        self.assertEqual(await self.read(cmd.LATEST, limit=100), list(range(2, 21, 2)))
        self.assertEqual(
            await self.read(cmd.LATEST, HistoryRef(seq=16), limit=100), [18, 20]
        )
        self.assertEqual(
            await self.read(cmd.LATEST, HistoryRef(time=T0 + 15), limit=100),
            [16, 18, 20],
        )

    async def test_upto(self) -> None:
        """Nothing newer than what was committed when the question was asked."""
        self.assertEqual(await self.read(cmd.LATEST, upto=11), [6, 8, 10])

    async def test_before_after(self) -> None:
        """Just before or after a line or a time, excluding it."""
        self.assertEqual(await self.read(cmd.BEFORE, HistoryRef(seq=10)), [4, 6, 8])
        self.assertEqual(await self.read(cmd.AFTER, HistoryRef(seq=10)), [12, 14, 16])
        self.assertEqual(
            await self.read(cmd.BEFORE, HistoryRef(time=T0 + 10.5)), [6, 8, 10]
        )
        self.assertEqual(
            await self.read(cmd.AFTER, HistoryRef(time=T0 + 10)), [12, 14, 16]
        )
        self.assertEqual(await self.read(cmd.BEFORE, HistoryRef(seq=2)), [])

    async def test_around(self) -> None:
        """Half before, and the rest from the line on."""
        self.assertEqual(
            await self.read(cmd.AROUND, HistoryRef(seq=10), limit=4), [6, 8, 10, 12]
        )
        self.assertEqual(
            await self.read(cmd.AROUND, HistoryRef(time=T0 + 11), limit=3), [10, 12, 14]
        )

    async def test_between(self) -> None:
        """Between two points, counted from the first, whichever way round."""
        self.assertEqual(
            await self.read(cmd.BETWEEN, HistoryRef(seq=4), HistoryRef(seq=16)),
            [6, 8, 10],
        )
        self.assertEqual(
            await self.read(cmd.BETWEEN, HistoryRef(seq=16), HistoryRef(seq=4)),
            [10, 12, 14],
        )
        self.assertEqual(
            await self.read(
                cmd.BETWEEN, HistoryRef(time=T0 + 5), HistoryRef(seq=12), limit=10
            ),
            [6, 8, 10],
        )
        self.assertEqual(
            await self.read(
                cmd.BETWEEN, HistoryRef(seq=12), HistoryRef(time=T0 + 5), limit=10
            ),
            [6, 8, 10],
        )

    async def test_nothing(self) -> None:
        """An unknown room, or a selector without its point, is no lines."""
        self.assertEqual(await self.read(cmd.LATEST, room="nowhere"), [])
        self.assertEqual(await self.read(cmd.BEFORE), [])
        self.assertEqual(await self.read(cmd.BETWEEN, HistoryRef(seq=4)), [])


class RetentionTests(StoreTestCase):
    """The cap on lines per room, and the maximum age."""

    async def test_cap(self) -> None:
        """Each room keeps its newest lines; its sequence numbers go on."""
        store = self.running(max_lines=5, retention_chunk=2, retention_interval=3600)
        await self.write(store, *(said("dev", n, "x") for n in range(1, 13)))
        await self.write(store, *(said("lobby", n, "x") for n in range(1, 4)))
        self.assertEqual(await store.retain(), 7)
        self.assertEqual(
            self.raw("SELECT seq FROM lines WHERE room = 1 ORDER BY seq"),
            [(n,) for n in range(8, 13)],
        )
        self.assertEqual(self.raw("SELECT count(*) FROM lines WHERE room = 2"), [(3,)])
        await store.close()
        self.running()
        self.assertEqual(self.loaded.last_seq, {"dev": 12, "lobby": 3})

    async def test_age(self) -> None:
        """Lines older than the maximum age go; the room's numbers stay."""
        store = self.running(max_age=10, now=lambda: T0 + 100, retention_interval=3600)
        await self.write(
            store, *(said("dev", n, "x", at=T0 + 85 + n) for n in range(1, 11))
        )
        self.assertEqual(await store.retain(), 4)
        self.assertEqual(
            self.raw("SELECT seq FROM lines ORDER BY seq"), [(n,) for n in range(5, 11)]
        )
        await self.write(store, *(said("dev", n, "x", at=T0) for n in (11, 12)))
        self.assertEqual(await store.retain(), 2)
        self.assertEqual(
            self.raw("SELECT seq FROM lines ORDER BY seq"), [(n,) for n in range(5, 11)]
        )
        self.assertEqual(self.raw("SELECT last_seq FROM rooms"), [(12,)])

    async def test_in_the_background(self) -> None:
        """Retention runs by itself in the writer, while lines keep coming."""
        store = self.running(max_lines=3, retention_chunk=1, retention_interval=0.01)
        for n in range(1, 101):
            store.append(said("dev", n, "x"))
        await store.sync()
        await poll(
            self.reactor,
            lambda: store.stats.deleted >= 97,
            "retention in the background",
        )
        await store.sync()
        self.assertEqual(self.raw("SELECT count(*) FROM lines"), [(3,)])
        self.assertEqual(sum(self.committed), 100)


class FullDiskTests(StoreTestCase):
    """A store that cannot write: users are told, the server goes on."""

    async def test_full_disk(self) -> None:
        """
        Lines that cannot be committed reach nobody, their senders get an
        error, and once there is room again lines are stored and delivered.
        """
        observe_logs(self)
        store = self.store()
        fanout = DurableFanout(LocalFanout(), store, self.reactor)
        fanout.load(store.open(fanout.cache_size))
        store.start(fanout.committed, fanout.failed)
        chat = ChatServer(fanout=fanout, history=fanout)
        alice, bob = FakeClient(), FakeClient()
        for client in (alice, bob):
            client.user = chat.connect(client)
        alice_user = alice.user
        assert alice_user is not None
        chat.line_received(alice_user, "fits")
        await store.sync()
        pages = (
            await store.call(lambda con: con.execute("PRAGMA page_count").fetchone())
        )[0]
        await store.call(lambda con: con.execute(f"PRAGMA max_page_count = {pages}"))
        alice.take(), bob.take()

        chat.line_received(alice_user, "x" * 20000)
        await store.sync()
        self.assertEqual(alice.take(), [f"!!! {NOT_STORED_TEXT}"])
        self.assertEqual(bob.take(), [])
        self.assertEqual(store.stats.failed, 1)

        await store.call(lambda con: con.execute("PRAGMA max_page_count = 1000000"))
        chat.line_received(alice_user, "room again")
        await store.sync()
        self.assertEqual(bob.take(), ["<guest1> room again"])
        self.assertEqual(self.flushLoggedErrors(), [])


class ServiceTests(StoreTestCase):
    """L{HistoryService} opens the store on start and closes it on stop."""

    def service(self, path: str) -> tuple[HistoryService, DurableFanout]:
        store = self.store(path)
        fanout = DurableFanout(LocalFanout(), store, self.reactor)
        return HistoryService(store, fanout, self.reactor), fanout

    async def test_start_and_stop(self) -> None:
        """Started, the fan-out has what the store held; stopped, all is closed."""
        store = self.running()
        await self.write(store, said("dev", 7, "before"))
        await store.close()
        service, fanout = self.service(self.path)
        service.startService()
        self.assertEqual(fanout.last_seq("dev"), 7)
        self.assertTrue(service.running)
        await service.stopService()
        self.assertFalse(service.running)

    def test_corrupt(self) -> None:
        """A corrupt file stops start-up with one line (exit status 1)."""
        with open(self.path, "wb") as file:
            file.write(b"\0garbage" * 512)
        service, _ = self.service(self.path)
        with self.assertRaises(StoreFailed) as caught:
            service.startService()
        self.assertEqual(
            str(caught.exception),
            f"twistd chat: cannot open the history database {self.path}: file is "
            "not a database (is it corrupt, or not a SQLite file?)",
        )
        self.assertIsInstance(caught.exception, SystemExit)
        self.assertFalse(service.running)
