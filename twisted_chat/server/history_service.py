"""
The rooms' history as a twistd service: the store is opened and read when
the server starts, before it serves anyone, and closed when it stops, after
the last lines have been committed and delivered.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from twisted_chat.core.history import DurableFanout, IHistoryStore, StoreError

# How long stopping waits for the writer to commit what is queued.
CLOSE_TIMEOUT = 10.0


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
