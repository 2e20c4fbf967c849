"""
Tests for the history options of C{twistd chat} and the services they make
(L{twisted_chat.server.history_service}).
"""

from __future__ import annotations

import os
import resource
import sqlite3
from typing import Any

from twisted.application.service import MultiService
from twisted.python.usage import UsageError
from twisted.trial.unittest import TestCase

from tests.e2e import global_reactor, short_temp_dir
from twisted_chat.core.chat import ChatServer
from twisted_chat.core.fanout import LocalFanout
from twisted_chat.core.history import DurableFanout
from twisted_chat.server.history_service import (
    DAY,
    HistoryService,
    StoreFailed,
    history_from_options,
)
from twisted_chat.server.service import ChatService
from twisted_chat.server.sqlite_store import SqliteStore
from twisted_chat.server.tap import Options, makeService

# The history options with their defaults, as Options holds them.
HISTORY_DEFAULTS: dict[str, Any] = {
    "database": "chat-history.sqlite3",
    "history-replay": 50,
    "history-limit": 1000,
    "history-max-lines": 10_000,
    "history-max-age": 30.0,
    "no-history": 0,
}


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(TestCase):
    """The history options."""

    def test_defaults(self) -> None:
        """History is on, in a file in the working directory, 50 lines replayed."""
        options = parse()
        self.assertEqual(
            {key: options[key] for key in HISTORY_DEFAULTS}, HISTORY_DEFAULTS
        )

    def test_every_option(self) -> None:
        """Each option is parsed into its key, as a number where it is one."""
        options = parse(
            "--database=/var/lib/chat/history.db",
            "--history-replay=0",
            "--history-limit=200",
            "--history-max-lines=0",
            "--history-max-age=0.5",
            "--no-history",
        )
        self.assertEqual(
            {key: options[key] for key in HISTORY_DEFAULTS},
            {
                "database": "/var/lib/chat/history.db",
                "history-replay": 0,
                "history-limit": 200,
                "history-max-lines": 0,
                "history-max-age": 0.5,
                "no-history": 1,
            },
        )

    def test_bad_numbers(self) -> None:
        """Counts and ages out of range, or not numbers, are usage errors."""
        bad = {
            "history-replay": ["-1", "x", "1.5", ""],
            "history-limit": ["0", "-1", "x", "1.5"],
            "history-max-lines": ["-1", "x", ""],
            "history-max-age": ["-1", "-0.5", "x", ""],
        }
        for name, values in bad.items():
            for value in values:
                with self.assertRaises(UsageError, msg=f"--{name}={value}"):
                    parse(f"--{name}={value}")


class MakeServiceTests(TestCase):
    """What C{makeService} makes of the history options."""

    def setUp(self) -> None:
        # makeService raises this process's open-file limit; put it back.
        self.addCleanup(
            resource.setrlimit,
            resource.RLIMIT_NOFILE,
            resource.getrlimit(resource.RLIMIT_NOFILE),
        )
        self.directory = short_temp_dir(self)
        self.path = os.path.join(self.directory, "history.sqlite3")

    def build(self, *args: str) -> MultiService:
        service = makeService(
            parse("--port=tcp:0:interface=127.0.0.1", *args), global_reactor()
        )
        assert isinstance(service, MultiService)
        return service

    def chat(self, service: MultiService) -> ChatServer:
        [chat] = [child for child in service if isinstance(child, ChatService)]
        return chat.delivery.chat

    async def test_history_first(self) -> None:
        """
        The history service comes first, so the store is open and loaded
        before the chat starts; the chat consults it and publishes through
        it; it opens and closes the store.
        """
        service = self.build(f"--database={self.path}", "--history-replay=7")
        children = list(service)
        history = children[0]
        assert isinstance(history, HistoryService)
        self.assertIsInstance(children[1], ChatService)
        chat = self.chat(service)
        self.assertIs(history.fanout, chat.history)
        assert isinstance(chat.history, DurableFanout)
        self.assertEqual(chat.history.replay_count, 7)
        self.assertEqual(chat.history.max_age, 30 * DAY)
        history.startService()
        await history.stopService()
        self.assertFalse(history.running)

    def test_checked_when_made(self) -> None:
        """The database is created (checked) when the service is made."""
        self.build(f"--database={self.path}")
        con = sqlite3.connect(self.path)
        self.addCleanup(con.close)
        self.assertEqual(con.execute("PRAGMA user_version").fetchone(), (1,))

    def test_relative_path(self) -> None:
        """A relative path is taken from the working directory, once."""
        options = parse("--database=relative.db", "--history-max-lines=5")
        self.patch(os.path, "abspath", lambda p: os.path.join(self.directory, p))
        wiring = history_from_options(options, global_reactor())
        assert wiring.service is not None
        store = wiring.service.store
        assert isinstance(store, SqliteStore)
        self.assertEqual(
            (store.path, store.max_lines),
            (os.path.join(self.directory, "relative.db"), 5),
        )

    def test_memory(self) -> None:
        """C{:memory:} is not a path: no file anywhere."""
        wiring = history_from_options(parse("--database=:memory:"), global_reactor())
        assert wiring.service is not None
        self.assertEqual(wiring.service.store.description, ":memory:")
        self.assertFalse(os.path.exists(":memory:"))

    def test_no_history(self) -> None:
        """Without history: no store, no service, the plain fan-out."""
        service = self.build("--no-history")
        self.assertEqual(
            [type(child) for child in service if isinstance(child, HistoryService)],
            [],
        )
        chat = self.chat(service)
        self.assertIsNone(chat.history)
        self.assertIsInstance(getattr(chat.fanout, "fanout", chat.fanout), LocalFanout)

    def test_unusable_database(self) -> None:
        """A database that cannot be used stops start-up with one line."""
        with open(self.path, "wb") as file:
            file.write(b"garbage" * 1000)
        with self.assertRaises(StoreFailed) as caught:
            self.build(f"--database={self.path}")
        self.assertEqual(
            caught.exception.code,
            f"twistd chat: cannot open the history database {self.path}: file is "
            "not a database (is it corrupt, or not a SQLite file?)",
        )
