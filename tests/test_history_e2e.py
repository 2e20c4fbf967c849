"""
Room history as users meet it: the real C{twistd -n chat} on a temporary
database, real sockets, and a server killed with SIGKILL in the middle of a
conversation.
"""

from __future__ import annotations

import os
import sqlite3

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.trial.unittest import TestCase

from tests.e2e import (
    ChatUser,
    ServerProcess,
    connect_user,
    free_port,
    global_reactor,
    poll,
    short_temp_dir,
    spawn_twistd,
    start_server,
)
from twisted_chat.shared import lines

HISTORY_OF = "*** History of #lobby: "
NO_HISTORY = "*** No history in #lobby."


def said(user: ChatUser) -> list[str]:
    """The messages a user was shown, live or replayed, without the mark."""
    shown = []
    for line in user.lines:
        parsed = lines.parse_history(line)
        text = parsed[1] if parsed else line
        if text.startswith("<"):
            shown.append(text)
    return shown


def is_header(line: str) -> bool:
    """Whether C{line} is the notice before what /history shows."""
    return line.startswith(HISTORY_OF) or line == NO_HISTORY


def unmarked(shown: list[str]) -> list[str]:
    """Lines of history without their mark (and no other lines)."""
    return [parsed[1] for parsed in map(lines.parse_history, shown) if parsed]


def live(user: ChatUser) -> list[str]:
    """The messages a user was shown live."""
    return [line for line in user.lines if line.startswith("<")]


class HistoryServer:
    """Starts and restarts a real server on one database and one port."""

    def __init__(self, test: TestCase, *options: str) -> None:
        self.test = test
        self.reactor = global_reactor()
        self.directory = short_temp_dir(test)
        self.database = os.path.join(self.directory, "history.sqlite3")
        self.port = free_port()
        self.options = ["--database", self.database, "--flood-rate", "0", *options]
        self.endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port)

    async def start(self) -> ServerProcess:
        return await start_server(
            self.test,
            self.reactor,
            [f"tcp:{self.port}:interface=127.0.0.1"],
            self.options,
            cwd=self.directory,
        )

    async def user(self, nick: str | None = None) -> ChatUser:
        """A connected user, greeted (and renamed)."""
        user = await connect_user(self.test, self.reactor, self.endpoint)
        await poll(
            self.reactor,
            lambda: any(line.startswith("*** Users in #lobby") for line in user.lines),
            "the greeting",
        )
        if nick is not None:
            user.say(f"/nick {nick}")
            await poll(
                self.reactor,
                lambda: any(
                    line.endswith(f" is now known as {nick}") for line in user.lines
                ),
                "the rename",
            )
        return user

    async def history(self, user: ChatUser, count: int) -> list[str]:
        """Ask for /history COUNT and return the lines it shows."""
        user.say(f"/history {count}")
        await poll(
            self.reactor,
            lambda: any(is_header(line) for line in user.lines),
            "the history header",
        )
        [header] = [i for i, line in enumerate(user.lines) if is_header(line)]
        if user.lines[header] == NO_HISTORY:
            return []
        total = int(user.lines[header].removeprefix(HISTORY_OF).split()[0])
        await poll(
            self.reactor,
            lambda: len(user.lines) >= header + 1 + total,
            f"{total} lines of history",
        )
        return user.lines[header + 1 : header + 1 + total]


class CrashTests(TestCase):
    """SIGKILL in the middle of a conversation loses nothing anyone saw."""

    async def test_kill_9_mid_stream(self) -> None:
        """
        Several users talk without pause; the server is killed with SIGKILL;
        after a restart on the same file, every line any user received is in
        the history a new user gets, in the same order, with no duplicates,
        and the replay on joining is its end.

        So that lines are certainly on their way when the server dies, the
        test holds the database's write lock for the last moments (as a
        stalled disk would): the server's writer waits, lines pile up, and
        a server that delivered before committing would lose lines users
        saw.
        """
        chat = HistoryServer(
            self, "--history-limit", "1000000", "--history-max-lines", "0"
        )
        server = await chat.start()
        talkers = [await chat.user(f"talker{n}") for n in range(4)]
        observer = await chat.user("observer")
        counters = [0] * len(talkers)

        def talk() -> None:
            for n, talker in enumerate(talkers):
                if not talker.is_closed:
                    batch = []
                    for _ in range(10):
                        counters[n] += 1
                        batch.append(f"talker{n} says {counters[n]}")
                    talker.say(*batch)

        loop = LoopingCall(talk)
        loop.clock = chat.reactor
        loop.start(0.005)
        self.addCleanup(lambda: loop.stop() if loop.running else None)
        await poll(chat.reactor, lambda: len(live(observer)) >= 2000, "2000 lines seen")
        lock = sqlite3.connect(chat.database, isolation_level=None, timeout=10)
        self.addCleanup(lock.close)
        lock.execute("BEGIN IMMEDIATE")
        sent = sum(counters)
        await poll(chat.reactor, lambda: sum(counters) >= sent + 400, "more lines sent")
        server.signal("KILL")
        await server.wait_ended()
        loop.stop()
        lock.execute("ROLLBACK")
        for user in [*talkers, observer]:
            await user.wait_closed()
        seen = {id(user): live(user) for user in [*talkers, observer]}
        self.assertGreaterEqual(len(seen[id(observer)]), 2000)

        await chat.start()
        newcomer = await chat.user()
        history = unmarked(await chat.history(newcomer, 1000000))
        self.assertEqual(len(history), len(set(history)), "duplicates in history")
        for received in seen.values():
            # Everyone was there from the start: what each saw is the
            # beginning of the history, in the same order.
            self.assertEqual(received, history[: len(received)])
        # Lines committed but not yet delivered when the server died may
        # follow; never more than were sent.
        self.assertLessEqual(len(history), sum(counters))
        header = newcomer.lines.index(f"{HISTORY_OF}{len(history)} lines")
        self.assertEqual(unmarked(newcomer.lines[:header]), history[-50:])


class RestartTests(TestCase):
    """History across a clean restart, and what is kept."""

    async def test_restart_and_history(self) -> None:
        """
        After a restart, a user who connects sees the last lines with their
        times, then live lines; /history shows more; private messages and
        joins are not kept.
        """
        chat = HistoryServer(self, "--history-replay", "3")
        server = await chat.start()
        alice = await chat.user("alice")
        bob = await chat.user("bob")
        alice.say(*(f"line {n}" for n in range(1, 6)), "/me waves", "/msg bob secret")
        await poll(
            chat.reactor, lambda: "*alice* secret" in bob.lines, "the private message"
        )
        server.signal("TERM")
        await server.wait_ended()

        await chat.start()
        carol = await chat.user()
        replay = [line for line in carol.lines if lines.parse_history(line)]
        self.assertEqual(
            unmarked(replay), ["<alice> line 4", "<alice> line 5", "* alice waves"]
        )
        for line in replay:
            self.assertRegex(line, r"^\[history \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\] ")
        shown = await chat.history(carol, 200)
        self.assertEqual(
            unmarked(shown),
            [*(f"<alice> line {n}" for n in range(1, 6)), "* alice waves"],
        )
        self.assertEqual(len(shown), 6)
        self.assertNotIn("secret", " ".join(carol.lines))
        con = sqlite3.connect(chat.database)
        self.addCleanup(con.close)
        self.assertEqual(con.execute("SELECT count(*) FROM lines").fetchone(), (6,))
        self.assertEqual(
            con.execute(
                "SELECT count(*) FROM lines WHERE text LIKE '%secret%'"
            ).fetchone(),
            (0,),
        )

    async def test_memory(self) -> None:
        """With --database :memory:, history lasts as long as the process."""
        chat = HistoryServer(self)
        chat.options[1] = ":memory:"
        server = await chat.start()
        alice = await chat.user("alice")
        alice.say("remember me")
        bob = await chat.user()
        await poll(chat.reactor, lambda: "<alice> remember me" in said(bob), "the line")
        late = await chat.user()
        await poll(
            chat.reactor, lambda: "<alice> remember me" in said(late), "the replay"
        )
        server.signal("TERM")
        await server.wait_ended()
        await chat.start()
        again = await chat.user()
        self.assertEqual(await chat.history(again, 10), [])
        self.assertEqual(os.listdir(chat.directory), [])


class StartupTests(TestCase):
    """A database that cannot be used stops start-up with one line."""

    async def refused(self, path: str, why: str, daemon: bool = False) -> None:
        reactor = global_reactor()
        directory = short_temp_dir(self)
        server = spawn_twistd(
            self,
            reactor,
            [
                "chat",
                "--port",
                f"tcp:{free_port()}:interface=127.0.0.1",
                "--database",
                path,
            ],
            cwd=directory,
            daemon=daemon,
        )
        self.assertEqual(await server.wait_ended(), 1)
        message = f"twistd chat: cannot open the history database {path}: {why}\n"
        self.assertEqual(server.errors, message)
        self.assertNotIn("Traceback", server.output)

    async def test_corrupt(self) -> None:
        """A file that is not a database."""
        path = os.path.join(short_temp_dir(self), "history.sqlite3")
        with open(path, "wb") as file:
            file.write(b"not a database\n" * 500)
        await self.refused(
            path, "file is not a database (is it corrupt, or not a SQLite file?)"
        )

    async def test_corrupt_daemon(self) -> None:
        """The same without -n: the waiting parent says why and exits with 1."""
        path = os.path.join(short_temp_dir(self), "history.sqlite3")
        with open(path, "wb") as file:
            file.write(b"not a database\n" * 500)
        await self.refused(
            path,
            "file is not a database (is it corrupt, or not a SQLite file?)",
            daemon=True,
        )

    async def test_unwritable(self) -> None:
        """A place where the database cannot be created (even by root)."""
        await self.refused(
            "/proc/self/history.sqlite3",
            "unable to open database file (does its directory exist, and may "
            "this user write there?)",
        )

    async def test_newer(self) -> None:
        """A database a newer version wrote."""
        path = os.path.join(short_temp_dir(self), "history.sqlite3")
        con = sqlite3.connect(path)
        con.execute("PRAGMA application_id = 1952671860")
        con.execute("PRAGMA user_version = 7")
        con.close()
        await self.refused(
            path,
            "a newer twisted-chat wrote it (schema version 7; this version knows "
            "versions up to 1); run the newer version, or give another --database",
        )
