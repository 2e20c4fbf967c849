"""
The rooms' history as a twistd service: the store is opened and read when
the server starts, before it serves anyone, and closed when it stops, after
the last lines have been committed and delivered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from attrs import frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger

from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import (
    DEFAULT_LIMIT,
    DEFAULT_REPLAY,
    DurableFanout,
    IHistoryStore,
    StoreError,
)
from twisted_chat.core.interfaces import IFanout
from twisted_chat.server.sqlite_store import DEFAULT_DATABASE, MEMORY, SqliteStore

# How long stopping waits for the writer to commit what is queued.
CLOSE_TIMEOUT = 10.0

# Retention defaults: lines kept per room, and days a line is kept.
DEFAULT_MAX_LINES = 10_000
DEFAULT_MAX_AGE_DAYS = 30.0
DAY = 86_400.0


def _at_least(kind: type, minimum: float) -> Any:
    def convert(value: str) -> Any:
        number = kind(value)
        if number < minimum:
            raise ValueError(f"{value} is less than {minimum}")
        return number

    return convert


# The options of twistd chat that are about history, in the form of
# usage.Options.optParameters.
HISTORY_PARAMETERS: list[list[Any]] = [
    ["database", None, DEFAULT_DATABASE,
     "The history database (SQLite), created if needed; relative to the "
     "working directory; :memory: keeps history for the life of the process "
     "only."],
    ["history-replay", None, DEFAULT_REPLAY,
     "Lines of a room's history shown to a user who joins it (0: none).",
     _at_least(int, 0)],
    ["history-limit", None, DEFAULT_LIMIT,
     "The most lines one /history or IRC CHATHISTORY shows.",
     _at_least(int, 1)],
    ["history-max-lines", None, DEFAULT_MAX_LINES,
     "Lines of history kept per room (0: no cap).", _at_least(int, 0)],
    ["history-max-age", None, DEFAULT_MAX_AGE_DAYS,
     "Days a line of history is kept (0: for ever).", _at_least(float, 0)],
]  # fmt: skip

HISTORY_FLAGS: list[list[Any]] = [
    ["no-history", None, "Keep no history: no database, nothing replayed."],
]


@frozen
class HistoryWiring:
    """
    What the options ask for: the fan-out the chat publishes through, the
    history the chat consults (L{None} without history), and the service
    that opens and closes the store (to start before anything else).
    """

    fanout: IFanout
    history: DurableFanout | None = None
    service: HistoryService | None = None


def history_from_options(options: Mapping[str, Any], reactor: Any) -> HistoryWiring:
    """
    The history C{twistd chat}'s options ask for, on C{reactor} (an
    L{IReactorTime} and L{IReactorFromThreads}).  The database is checked
    (created or migrated) at once, before twistd starts logging or forks,
    so that one it cannot use stops start-up with one line on stderr.

    @raise StoreFailed: the database cannot be used.
    """
    if options["no-history"]:
        return HistoryWiring(LocalFanout())
    path = options["database"]
    if path != MEMORY:
        path = os.path.abspath(path)
    max_lines = options["history-max-lines"]
    max_age = options["history-max-age"] * DAY
    threads = cast(IReactorFromThreads, reactor)
    store = SqliteStore(
        path, threads.callFromThread, max_lines=max_lines, max_age=max_age
    )
    try:
        store.check()
    except StoreError as e:
        raise store_failed(path, str(e)) from None
    history = DurableFanout(
        LocalFanout(),
        store,
        cast(IReactorTime, reactor),
        replay=options["history-replay"],
        limit=options["history-limit"],
        max_age=max_age,
        max_lines=max_lines,
    )
    service = HistoryService(store, history, cast(IReactorTime, reactor))
    return HistoryWiring(history, history, service)


class StoreFailed(SystemExit, Exception):
    """
    The history database cannot be used: one line for twistd to print before
    it exits with status 1, like L{twisted_chat.server.listen.ListenFailed}
    (a L{SystemExit} so that no traceback is printed, an L{Exception} so
    that a daemonizing twistd tells its waiting parent).
    """


def store_failed(where: str, why: str) -> StoreFailed:
    """The one line that says why the database at C{where} cannot be used."""
    return StoreFailed(f"twistd chat: cannot open the history database {where}: {why}")


class HistoryService(Service):
    """
    Opens C{store} and loads what it holds into C{fanout} when started (the
    first child of the server's service, so before anyone connects); closes
    it when stopped.  A store that cannot be opened stops start-up with
    L{StoreFailed}.
    """

    log = Logger()

    def __init__(
        self,
        store: IHistoryStore,
        fanout: DurableFanout,
        clock: IReactorTime,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.clock = clock
        self.close_timeout = close_timeout

    def startService(self) -> None:
        try:
            loaded = self.store.open(self.fanout.cache_size)
        except StoreError as e:
            raise store_failed(self.store.description, str(e)) from None
        self.fanout.load(loaded)
        self.store.start(self.fanout.committed, self.fanout.failed)
        super().startService()
        self.log.info(
            "history: {where}: {rooms} rooms with history; replaying the last "
            "{replay} lines on joining",
            where=self.store.description,
            rooms=len(loaded.last_seq),
            replay=self.fanout.replay_count,
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        done: Deferred[None] = Deferred()

        def closed(result: object) -> None:
            if timeout.active():
                timeout.cancel()
            if not done.called:
                done.callback(None)

        def timed_out() -> None:
            self.log.error(
                "history: the writer did not finish within {seconds} seconds; "
                "{waiting} deliveries were still waiting for it",
                seconds=self.close_timeout,
                waiting=self.fanout.waiting,
            )
            done.callback(None)

        timeout = self.clock.callLater(self.close_timeout, timed_out)
        self.store.close().addBoth(closed)
        return done
