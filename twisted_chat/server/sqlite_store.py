"""
Rooms' history in a SQLite database file: the default store, nothing to
install (L{IHistoryStore}).

B{Threads.}  The reactor thread never waits for the disk once the server
serves.  One writer thread owns the writing connection: events are handed
to it through a queue without waiting, and it commits whatever has
accumulated while its previous commit ran (group commit), then reports the
commit to the reactor thread (C{callFromThread}), where the durable fan-out
delivers the lines.  A second thread with its own read-only connection
answers reads (C{/history} beyond memory, IRC C{CHATHISTORY}); WAL mode lets
it read while the writer writes.  With C{:memory:} there is no file and one
connection, so the writer answers reads too.

B{Durability.}  WAL mode with C{synchronous=NORMAL}: a commit is written to
the write-ahead log before the writer reports it, but not flushed to the
disk; the log is flushed at checkpoints.  A crash of the process (C{kill
-9}, an exception, the OOM killer) loses nothing committed, because what was
written is in the operating system's cache, which outlives the process and
reaches the file.  Only a crash of the operating system or a power cut can
lose the last commits (the database stays consistent); C{synchronous=FULL}
would flush every commit to survive those too, at the price of a disk flush
per batch.

B{Schema.}  Versioned with C{PRAGMA user_version} and marked as ours with
C{PRAGMA application_id}; the server creates and migrates its own schema
(L{MIGRATIONS}) and refuses a database a newer version wrote.

B{Retention.}  A cap on the lines kept per room and a maximum age, both
enforced by the writer in small chunks, each its own transaction, between
batches: a waiting batch never waits for more than one chunk.

B{Failures.}  A database that cannot be opened, is corrupt, is not ours or
is newer raises L{StoreError} at start-up.  A commit that fails at run time
(a full disk) fails its batch (reported as such: the fan-out tells the
senders) and the writer carries on with the next batch.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from itertools import chain
from queue import Empty, SimpleQueue
from typing import Any

from attrs import define, field
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_chat.core import events
from twisted_chat.core.events import StoredEvent
from twisted_chat.core.history import IHistoryStore, Loaded, Query, StoreError
from twisted_chat.shared import commands as cmd
from twisted_chat.shared.rules import name_key

MEMORY = ":memory:"

# The database without --database: in the server's working directory, like
# twistd's own twistd.log and twistd.pid.
DEFAULT_DATABASE = "chat-history.sqlite3"

# Marks a database as ours ("tcht").
APPLICATION_ID = 0x74636874

# Each version's statements, applied in order to reach it from the one
# before; a new version appends here and never edits an old one.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        # Every room with stored lines, and the last sequence number it
        # used: kept when retention deletes its lines, so that sequence
        # numbers only grow.
        """CREATE TABLE rooms (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            last_seq INTEGER NOT NULL
        )""",
        # Lines in the order they were stored (rowid), which is cheap to
        # append to, and indexed by (room, seq): the newest lines of a room,
        # or those around a sequence number, are a range of the index.  The
        # source is nick!user@host (a nickname and a user name hold neither
        # "!" nor "@").
        """CREATE TABLE lines (
            room INTEGER NOT NULL REFERENCES rooms (id),
            seq INTEGER NOT NULL,
            time REAL NOT NULL,
            kind INTEGER NOT NULL,
            source TEXT NOT NULL,
            text TEXT NOT NULL,
            UNIQUE (room, seq)
        )""",
    ),
]

# How often the writer enforces retention, in seconds, and how many lines
# one of its transactions deletes at most.
RETENTION_INTERVAL = 60.0
RETENTION_CHUNK = 500

# How long a connection waits for a lock another process holds.
BUSY_TIMEOUT = 5.0

# Under load (the last batch held BUSY_BATCH lines or more), the writer
# waits this long before committing, so that batches grow: a commit costs
# about the same whatever it holds, and each batch is one delivery round,
# one write to every member.  At a low rate, each line is committed alone,
# at once.
GROUP_COMMIT_DELAY = 0.002
BUSY_BATCH = 16

_KINDS: dict[type, int] = {
    events.Message: 0,
    events.Action: 1,
    events.RoomNotice: 2,
    events.TopicChanged: 3,
}
_MAKERS: list[type[Any]] = [
    events.Message,
    events.Action,
    events.RoomNotice,
    events.TopicChanged,
]
_COLUMNS = "seq, time, kind, source, text"

# Lines are inserted with multi-row INSERTs of these sizes (a batch of 79 is
# 64 + 8 + 4 + 2 + 1): a few statements per batch rather than one per line,
# because sqlite3 lets go of the GIL around each statement, and on a busy
# server every let-go can hand the GIL to the reactor and wait to get it
# back.  Few sizes, so that the statements stay in the connection's cache;
# 128 rows of 6 values stay below the 999 parameters SQLite allowed before
# version 3.32.
_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)
_INSERTS = {
    size: "INSERT INTO lines VALUES " + ",".join(["(?, ?, ?, ?, ?, ?)"] * size)
    for size in _CHUNKS
}

_STOP = object()


def schema_version() -> int:
    """The schema version this code writes."""
    return len(MIGRATIONS)


def describe_error(error: sqlite3.Error | OSError) -> str:
    """SQLite's reason for a failure, with what to check where it helps."""
    text = str(error) or type(error).__name__
    hints = {
        "file is not a database": "(is it corrupt, or not a SQLite file?)",
        "unable to open database file": (
            "(does its directory exist, and may this user write there?)"
        ),
        "attempt to write a readonly database": (
            "(may this user write the file and its directory?)"
        ),
        "database is locked": "(is another server using it?)",
    }
    for start, hint in hints.items():
        if text.startswith(start):
            return f"{text} {hint}"
    return text


def _row(room: int, event: StoredEvent) -> tuple[Any, ...]:
    source = event.source
    text = event.topic if type(event) is events.TopicChanged else event.text  # type: ignore[union-attr]
    return (
        room,
        event.seq,
        event.time,
        _KINDS[type(event)],
        f"{source.nick}!{source.user}@{source.host}",
        text,
    )


def _insert(con: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert C{rows} into C{lines} with as few statements as L{_CHUNKS} allow."""
    done = 0
    left = len(rows)
    for size in _CHUNKS:
        while left >= size:
            chunk = rows[done : done + size]
            con.execute(_INSERTS[size], list(chain.from_iterable(chunk)))
            done += size
            left -= size


def _event(room: str, row: tuple[Any, ...]) -> StoredEvent:
    seq, when, kind, source, text = row
    nick, _, address = source.partition("!")
    user, _, host = address.partition("@")
    event: StoredEvent = _MAKERS[kind](
        room, seq, when, events.Source(nick, user, host), text
    )
    return event


@define
class WriterStats:
    """What the writer did: for the log when it stops, and benchmarks."""

    lines: int = 0
    commits: int = 0
    failed: int = 0
    deleted: int = 0
    busy: float = 0.0  # seconds spent committing
    first: float | None = None  # when the first commit ended (monotonic)
    last: float | None = None
    sizes: Counter[int] = field(factory=Counter)

    def record(self, size: int, started: float, ended: float) -> None:
        self.lines += size
        self.commits += 1
        self.busy += ended - started
        self.sizes[size] += 1
        if self.first is None:
            self.first = started
        self.last = ended

    def size_at(self, fraction: float) -> int:
        """The batch size that C{fraction} of the commits do not exceed."""
        wanted = fraction * self.commits
        seen = 0
        for size in sorted(self.sizes):
            seen += self.sizes[size]
            if seen >= wanted:
                return size
        return 0

    def summary(self) -> dict[str, Any]:
        span = (self.last - self.first) if self.first and self.last else 0.0
        return {
            "lines": self.lines,
            "commits": self.commits,
            "failed": self.failed,
            "deleted": self.deleted,
            "lines_per_second": round(self.lines / span, 1) if span else None,
            "commit_ms_mean": round(1000 * self.busy / self.commits, 3)
            if self.commits
            else None,
            "batch_mean": round(self.lines / self.commits, 2) if self.commits else None,
            "batch_p50": self.size_at(0.5),
            "batch_p90": self.size_at(0.9),
            "batch_p99": self.size_at(0.99),
            "batch_max": max(self.sizes, default=0),
        }


class _Call:
    """Work for a database thread: C{fn(connection)}, its result to C{d}."""

    __slots__ = ("d", "fn")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any], d: Deferred[Any]
    ) -> None:
        self.fn = fn
        self.d = d


@implementer(IHistoryStore)
class SqliteStore:
    """
    Rooms' history in the SQLite database at C{path} (or L{MEMORY}).

    @param call_from_thread: how the database threads hand results to the
        reactor thread (C{reactor.callFromThread}).
    @param max_lines: lines kept per room; C{0}: no cap.
    @param max_age: seconds a line is kept; C{0}: for ever.
    @param now: the time, for the maximum age.
    """

    log = Logger()

    def __init__(
        self,
        path: str,
        call_from_thread: Callable[..., object],
        max_lines: int = 0,
        max_age: float = 0.0,
        now: Callable[[], float] = time.time,
        retention_interval: float = RETENTION_INTERVAL,
        retention_chunk: int = RETENTION_CHUNK,
        group_commit_delay: float = GROUP_COMMIT_DELAY,
    ) -> None:
        self.path = path
        self.description = path
        self.memory = path == MEMORY
        self.max_lines = max_lines
        self.max_age = max_age
        self.stats = WriterStats()
        self._call_from_thread = call_from_thread
        self._now = now
        self._retention_interval = retention_interval
        self._retention_chunk = retention_chunk
        self._group_commit_delay = group_commit_delay
        self._writes: SimpleQueue[object] = SimpleQueue()
        self._reads: SimpleQueue[object] | None = None
        self._con: sqlite3.Connection | None = None
        self._read_con: sqlite3.Connection | None = None
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._closing = False
        self._stopped = False
        self._waiting: list[Deferred[None]] = []
        self._committed: Callable[[int], None] | None = None
        self._failed: Callable[[int, str], None] | None = None
        # Room key -> id, owned by the writer once it runs.
        self._room_ids: dict[str, int] = {}

    # Start-up: the calling thread, before serving

    def _connect(self, read_only: bool = False) -> sqlite3.Connection:
        con = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            if not self.memory:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"cannot use WAL mode (it stays in {mode})")
                con.execute("PRAGMA synchronous=NORMAL")
            if read_only:
                con.execute("PRAGMA query_only=ON")
        except BaseException:
            con.close()
            raise
        return con

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Check that the database is ours and not newer; create or migrate."""
        wanted = schema_version()
        con.execute("BEGIN IMMEDIATE")
        try:
            owner = con.execute("PRAGMA application_id").fetchone()[0]
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if owner != APPLICATION_ID:
                count = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if owner != 0 or count or version:
                    raise StoreError("it is not a twisted-chat history database")
            if version > wanted:
                raise StoreError(
                    f"a newer twisted-chat wrote it (schema version {version}; "
                    f"this version knows versions up to {wanted}); run the newer "
                    "version, or give another --database"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    con.execute(statement)
            if version != wanted:
                con.execute(f"PRAGMA user_version = {wanted:d}")
                con.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        if version and version != wanted:
            self.log.info(
                "history: migrated {path} from schema version {old} to {new}",
                path=self.path,
                old=version,
                new=wanted,
            )

    def check(self) -> None:
        """
        Open the database, create or migrate its schema, and close it: at
        C{makeService}, before twistd writes its log or forks, so that a
        database that cannot be used stops start-up with one line on stderr.

        @raise StoreError: the database cannot be used.
        """
        if self.memory:
            return
        try:
            con = self._connect()
            try:
                self._migrate(con)
            finally:
                con.close()
        except sqlite3.Error as e:
            raise StoreError(describe_error(e)) from None

    def open(self, recent: int) -> Loaded:
        try:
            self._con = self._connect()
            self._migrate(self._con)
            loaded = self._load(self._con, recent)
            if not self.memory:
                self._read_con = self._connect(read_only=True)
        except (sqlite3.Error, StoreError) as e:
            for con in (self._con, self._read_con):
                if con is not None:
                    con.close()
            self._con = self._read_con = None
            if isinstance(e, StoreError):
                raise
            raise StoreError(describe_error(e)) from None
        return loaded

    def _load(self, con: sqlite3.Connection, recent: int) -> Loaded:
        last_seq: dict[str, int] = {}
        lines: dict[str, list[StoredEvent]] = {}
        rooms = con.execute("SELECT id, key, name, last_seq FROM rooms").fetchall()
        for room, key, name, last in rooms:
            self._room_ids[key] = room
            last_seq[key] = last
            if recent > 0:
                rows = con.execute(
                    f"SELECT {_COLUMNS} FROM lines WHERE room = ? "
                    "ORDER BY seq DESC LIMIT ?",
                    (room, recent),
                ).fetchall()
                if rows:
                    lines[key] = [_event(name, row) for row in reversed(rows)]
        return Loaded(last_seq, lines)

    # IHistoryStore, in the reactor thread

    def start(
        self, committed: Callable[[int], None], failed: Callable[[int, str], None]
    ) -> None:
        if self._con is None:
            raise RuntimeError("open() the store first")
        self._committed, self._failed = committed, failed
        writer = threading.Thread(
            target=self._write_loop, name="twisted-chat history writer", daemon=True
        )
        self._threads.append(writer)
        if self._read_con is not None:
            self._reads = SimpleQueue()
            reader = threading.Thread(
                target=self._read_loop,
                args=(self._read_con, self._reads),
                name="twisted-chat history reader",
                daemon=True,
            )
            self._threads.append(reader)
        self._running = len(self._threads)
        for thread in self._threads:
            thread.start()

    def append(self, event: StoredEvent) -> None:
        if self._closing:
            # Nothing is published after the chat has stopped; if something
            # is, it is refused rather than lost without a word.
            assert self._failed is not None
            self._call_from_thread(self._failed, 1, "the server is stopping")
            return
        self._writes.put(event)

    def read(self, query: Query) -> Deferred[list[StoredEvent]]:
        return self._submit(lambda con: select(con, query), self._reads)

    def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Deferred[Any]:
        """
        Run C{fn(connection)} in the writer thread, after what was appended
        before has been committed and reported.
        """
        return self._submit(fn, None)

    def sync(self) -> Deferred[None]:
        """Fires once everything appended before is committed and reported."""
        return self.call(lambda con: None)

    def retain(self) -> Deferred[int]:
        """Enforce retention now, all of it; fires with the lines deleted."""

        def everything(con: sqlite3.Connection) -> int:
            before = self.stats.deleted
            for _ in self._retention_steps(con):
                pass
            return self.stats.deleted - before

        return self.call(everything)

    def close(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self._stopped:
            d.callback(None)
            return d
        self._waiting.append(d)
        if not self._closing:
            self._closing = True
            if not self._threads:
                for con in (self._con, self._read_con):
                    if con is not None:
                        con.close()
                self._done()
            else:
                self._writes.put(_STOP)
                if self._reads is not None:
                    self._reads.put(_STOP)
        return d

    def _submit(
        self, fn: Callable[[sqlite3.Connection], Any], queue: SimpleQueue[object] | None
    ) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if self._closing or not self._threads:
            d.errback(RuntimeError("the history store is not running"))
            return d
        (queue or self._writes).put(_Call(fn, d))
        return d

    def _retention_failed(self, why: str) -> None:
        self.log.warn("history: retention failed, will try again: {why}", why=why)

    def _thread_ended(self) -> None:
        self._running -= 1
        if self._running:
            return
        self.log.info(
            "history: {path} closed; the writer stored {lines} lines in "
            "{commits} commits; writer stats: {stats}",
            path=self.path,
            lines=self.stats.lines,
            commits=self.stats.commits,
            stats=json.dumps(self.stats.summary()),
        )
        self._done()

    def _done(self) -> None:
        self._stopped = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    # The database threads

    def _report(self, fn: Callable[..., object], *args: object) -> None:
        self._call_from_thread(fn, *args)

    def _run_call(self, con: sqlite3.Connection, call: _Call) -> None:
        try:
            result = call.fn(con)
        except BaseException:
            self._report(call.d.errback, Failure())
        else:
            self._report(call.d.callback, result)

    def _read_loop(self, con: sqlite3.Connection, queue: SimpleQueue[object]) -> None:
        try:
            while True:
                item = queue.get()
                if item is _STOP:
                    break
                assert isinstance(item, _Call)
                self._run_call(con, item)
        finally:
            con.close()
            self._report(self._thread_ended)

    def _write_loop(self) -> None:
        """
        Commit whatever accumulated while the last commit ran; run the calls
        that were queued with it, after it; and, when retention is due, one
        small step of it per turn, so that it goes on under a steady load
        and delays a batch by one step at most.
        """
        con = self._con
        assert con is not None
        queue = self._writes
        retaining = bool(self.max_lines or self.max_age)
        steps: Iterator[None] | None = None
        next_pass = time.monotonic()
        stop = False
        busy = False
        try:
            while not stop:
                due = retaining and (steps is not None or time.monotonic() >= next_pass)
                item: object
                try:
                    if due:
                        item = queue.get_nowait()
                    elif retaining:
                        item = queue.get(True, max(0.0, next_pass - time.monotonic()))
                    else:
                        item = queue.get()
                except Empty:
                    item = None
                batch: list[StoredEvent] = []
                calls: list[_Call] = []
                stop = self._take(item, batch, calls)
                if batch and busy and not stop:
                    time.sleep(self._group_commit_delay)
                    stop = self._take(None, batch, calls)
                busy = len(batch) >= BUSY_BATCH and self._group_commit_delay > 0
                if batch:
                    self._commit(con, batch)
                for call in calls:
                    self._run_call(con, call)
                if stop or not retaining:
                    continue
                if steps is None and time.monotonic() >= next_pass:
                    steps = self._retention_steps(con)
                if steps is not None:
                    try:
                        next(steps)
                    except StopIteration:
                        steps = None
                        next_pass = time.monotonic() + self._retention_interval
        finally:
            con.close()
            self._report(self._thread_ended)

    def _take(self, item: object, batch: list[StoredEvent], calls: list[_Call]) -> bool:
        """
        C{item} (if any) and whatever else is queued, into C{batch} and
        C{calls}; whether the queue said to stop.
        """
        queue = self._writes
        stop = False
        while True:
            if item is _STOP:
                stop = True
            elif isinstance(item, _Call):
                calls.append(item)
            elif item is not None:
                batch.append(item)  # type: ignore[arg-type]
            try:
                item = queue.get_nowait()
            except Empty:
                return stop

    def _commit(self, con: sqlite3.Connection, batch: list[StoredEvent]) -> None:
        started = time.monotonic()
        new_rooms: list[str] = []
        try:
            con.execute("BEGIN")
            room_ids = self._room_ids
            rows = []
            last: dict[int, int] = {}
            for event in batch:
                key = name_key(event.room)
                room = room_ids.get(key)
                if room is None:
                    cursor = con.execute(
                        "INSERT INTO rooms (key, name, last_seq) VALUES (?, ?, 0)",
                        (key, event.room),
                    )
                    room = room_ids[key] = cursor.lastrowid  # type: ignore[assignment]
                    assert room is not None
                    new_rooms.append(key)
                rows.append(_row(room, event))
                last[room] = event.seq
            _insert(con, rows)
            con.executemany(
                "UPDATE rooms SET last_seq = ?2 WHERE id = ?1 AND last_seq < ?2",
                last.items(),
            )
            con.execute("COMMIT")
        except sqlite3.Error as e:
            if con.in_transaction:
                with suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
            for key in new_rooms:
                del self._room_ids[key]
            self.stats.failed += len(batch)
            assert self._failed is not None
            self._report(self._failed, len(batch), describe_error(e))
            return
        self.stats.record(len(batch), started, time.monotonic())
        assert self._committed is not None
        self._report(self._committed, len(batch))

    def _retention_steps(self, con: sqlite3.Connection) -> Iterator[None]:
        """
        Delete what the cap and the maximum age no longer keep, one small
        transaction per step.  Errors (a full disk) are logged; the next
        pass tries again.
        """
        chunk = self._retention_chunk
        oldest = self._now() - self.max_age if self.max_age else None
        for room in list(self._room_ids.values()):
            try:
                if self.max_lines:
                    found = con.execute(
                        "SELECT seq FROM lines WHERE room = ? "
                        "ORDER BY seq DESC LIMIT 1 OFFSET ?",
                        (room, self.max_lines - 1),
                    ).fetchone()
                    if found is not None:
                        while (
                            self._delete(con, "seq < ?", room, found[0], chunk) == chunk
                        ):
                            yield
                if oldest is not None:
                    while self._delete(con, "time < ?", room, oldest, chunk) == chunk:
                        yield
            except sqlite3.Error as e:
                self._report(self._retention_failed, describe_error(e))
                return
            yield

    def _delete(
        self, con: sqlite3.Connection, condition: str, room: int, value: Any, chunk: int
    ) -> int:
        """Delete the oldest lines of C{room} meeting C{condition}: C{chunk} at most."""
        cursor = con.execute(
            "DELETE FROM lines WHERE room = ?1 AND seq IN (SELECT seq FROM lines "
            f"WHERE room = ?1 AND {condition.replace('?', '?2')} "
            "ORDER BY seq LIMIT ?3)",
            (room, value, chunk),
        )
        deleted = cursor.rowcount
        self.stats.deleted += deleted
        return deleted


# Reading


def _after(ref: cmd.HistoryRef) -> tuple[str, float]:
    if ref.seq is not None:
        return "seq > ?", ref.seq
    assert ref.time is not None
    return "time > ?", ref.time


def _before(ref: cmd.HistoryRef) -> tuple[str, float]:
    if ref.seq is not None:
        return "seq < ?", ref.seq
    assert ref.time is not None
    return "time < ?", ref.time


def _at_or_after(ref: cmd.HistoryRef) -> tuple[str, float]:
    if ref.seq is not None:
        return "seq >= ?", ref.seq
    assert ref.time is not None
    return "time >= ?", ref.time


def select(con: sqlite3.Connection, query: Query) -> list[StoredEvent]:
    """The stored lines C{query} selects, oldest first (in a database thread)."""
    found = con.execute(
        "SELECT id, name FROM rooms WHERE key = ?", (query.room,)
    ).fetchone()
    if found is None or query.limit <= 0:
        return []
    room, name = found

    def pick(
        conditions: list[tuple[str, float]], limit: int, newest: bool
    ) -> list[StoredEvent]:
        if limit <= 0:
            return []
        where = " AND ".join(
            ["room = ?", "seq <= ?", *(condition for condition, _ in conditions)]
        )
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM lines WHERE {where} "
            f"ORDER BY seq {'DESC' if newest else 'ASC'} LIMIT ?",
            (room, query.upto, *(value for _, value in conditions), limit),
        ).fetchall()
        if newest:
            rows.reverse()
        return [_event(name, row) for row in rows]

    def position(ref: cmd.HistoryRef) -> float:
        """Where C{ref} falls among the room's lines, to compare two."""
        if ref.seq is not None:
            return ref.seq
        first = con.execute(
            "SELECT min(seq) FROM lines WHERE room = ? AND time >= ?",
            (room, ref.time),
        ).fetchone()[0]
        return (first if first is not None else query.upto + 1) - 0.5

    start, end, limit = query.start, query.end, query.limit
    if query.selector == cmd.LATEST:
        return pick([_after(start)] if start else [], limit, newest=True)
    if start is None:
        return []
    if query.selector == cmd.BEFORE:
        return pick([_before(start)], limit, newest=True)
    if query.selector == cmd.AFTER:
        return pick([_after(start)], limit, newest=False)
    if query.selector == cmd.AROUND:
        earlier = pick([_before(start)], limit // 2, newest=True)
        return earlier + pick([_at_or_after(start)], limit - len(earlier), False)
    if query.selector == cmd.BETWEEN and end is not None:
        if position(start) <= position(end):
            return pick([_after(start), _before(end)], limit, newest=False)
        return pick([_after(end), _before(start)], limit, newest=True)
    return []
