"""
The full-screen client as users meet it: C{python -m twisted_chat.client} in
a real terminal (a detached tmux session of the test's own, read with
C{capture-pane}), against the real C{twistd -n chat} on the loopback
interface, with another user talking over a raw socket.

tmux must be installed (CI installs it); without it these tests are skipped.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase

from tests.e2e import (
    ChatUser,
    Terminal,
    connect_user,
    free_port,
    global_reactor,
    poll,
    start_server,
)
from tests.test_client_e2e import SOURCE_ROOT

TMUX = shutil.which("tmux")
WIDTH, HEIGHT = 100, 30
BEFORE = "--- the shell, before the client ---"


class Tmux(Terminal):
    """
    The terminal the client runs in, under a shell: what the client leaves
    behind when it ends (the shell's screen, its mode) stays to be seen.
    """

    def __init__(self, reactor: Any, test: TestCase) -> None:
        super().__init__(reactor, test, WIDTH, HEIGHT)

    async def start(self, command: str) -> None:
        size = ["-x", str(self.width), "-y", str(self.height)]
        await self.run("new-session", "-d", "-s", "term", *size)
        await self.line(command)

    async def type(self, text: str) -> None:
        """Type C{text}, character by character."""
        await self.run("send-keys", "-t", "term", "-l", text)


def client_command(port: int, *args: str) -> str:
    """
    A shell command line that runs the client, then says whether the
    terminal's mode is as before and the client's exit status, and stays.
    """
    client = shlex.join(
        [
            "env",
            f"PYTHONPATH={SOURCE_ROOT}",
            sys.executable,
            "-m",
            "twisted_chat.client",
            "--host=127.0.0.1",
            f"--port={port}",
            *args,
        ]
    )
    return (
        f"clear; echo {shlex.quote(BEFORE)}; before=$(stty -g); {client}; "
        'status=$?; if [ "$(stty -g)" = "$before" ]; then echo "terminal '
        'restored, status $status"; else echo "terminal NOT restored, status '
        '$status"; fi; exec cat'
    )


def status_line(rows: list[str]) -> str:
    return rows[-2] if len(rows) >= 2 else ""


def input_line(rows: list[str]) -> str:
    return rows[-1] if rows else ""


class FullScreenTests(TestCase):
    """The full-screen client in a real terminal."""

    if TMUX is None:
        skip = "tmux is not installed (apt-get install -y tmux)"

    async def start(self, *args: str) -> tuple[Tmux, ChatUser, int]:
        """A server, bob in #lobby, and the client in tmux as alice."""
        reactor = global_reactor()
        port = free_port()
        await start_server(
            self, reactor, [f"tcp:{port}:interface=127.0.0.1"], ["--flood-rate", "0"]
        )
        bob = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        await bob.read(4)
        bob.say("/nick bob")
        await bob.read(1)
        tmux = Tmux(reactor, self)
        await tmux.start(client_command(port, "--nick=alice", *args))
        await tmux.wait(
            lambda rows: (
                "[alice] [#lobby]" in status_line(rows)
                and "[connected]" in status_line(rows)
            ),
            "the status line, connected as alice in #lobby",
        )
        return tmux, bob, port

    async def test_flood(self) -> None:
        """
        While bob floods the room, what alice types stays whole on the input
        line; Enter sends it, Up recalls it; the status line follows /join;
        the screen follows a resize; Ctrl-C gives the terminal back.
        """
        tmux, bob, _ = await self.start()
        await tmux.type("hello wörld, ")
        bob.say(*(f"flood {i} " + "x" * (i % 120) for i in range(300)))
        await tmux.type("still typing")
        rows = await tmux.wait(
            lambda rows: (
                any(row.endswith("<bob> flood 299 " + "x" * 59) for row in rows)
                and input_line(rows) == "[#lobby] hello wörld, still typing"
            ),
            "the whole flood above, and the whole input line below",
        )
        self.assertIn("[alice] [#lobby] [1:#lobby] [connected]", status_line(rows))
        self.assertEqual(len(rows), HEIGHT)
        # Every row of the scrollback starts with a time, or is the
        # indented rest of a long line: nothing was written over them.
        for row in rows[:-2]:
            self.assertRegex(row, r"^(\d\d:\d\d |      \S|$)")

        await tmux.keys("Enter")
        await poll(
            global_reactor(),
            lambda: "<alice> hello wörld, still typing" in bob.lines,
            "bob hears alice",
        )
        await tmux.wait(
            lambda rows: (
                input_line(rows) == "[#lobby]"
                and any(
                    row.endswith(" <alice> hello wörld, still typing") for row in rows
                )
            ),
            "alice's line, sent once, and the input line cleared",
        )
        await tmux.keys("Up")
        await tmux.wait(
            lambda rows: input_line(rows) == "[#lobby] hello wörld, still typing",
            "the last line, recalled with Up",
        )

        await tmux.keys("C-u")
        await tmux.type("/join dev")
        await tmux.keys("Enter")
        await tmux.wait(
            lambda rows: "[#dev]" in status_line(rows) and input_line(rows) == "[#dev]",
            "#dev on the status line and the prompt after /join dev",
        )

        await tmux.run("resize-window", "-t", "term", "-x", "60", "-y", "12")
        rows = await tmux.wait(
            lambda rows: (
                len(rows) == 12
                and status_line(rows).startswith(" [alice] [#dev]")
                and input_line(rows) == "[#dev]"
            ),
            "the screen redrawn at 60 by 12",
        )
        self.assertTrue(all(len(row) <= 60 for row in rows))

        await tmux.keys("C-c")
        rows = await tmux.wait(
            lambda rows: any(row.startswith("terminal ") for row in rows),
            "the client's exit",
        )
        self.assertIn("terminal restored, status 0", rows)
        # The shell's own screen is back: the client's screen is gone.
        self.assertIn(BEFORE, rows)
        self.assertFalse([row for row in rows if "[alice]" in row])
        await poll(
            global_reactor(),
            lambda: (
                "*** alice has quit (quit)" in bob.lines
                or "*** alice has left #lobby" in bob.lines
            ),
            "bob sees alice go",
        )

    async def test_leaving(self) -> None:
        """
        Ctrl-D on an empty line, and /quit, leave with status 0 and give the
        terminal back.
        """
        tmux, bob, port = await self.start()
        await tmux.keys("C-d")
        rows = await tmux.wait(
            lambda rows: any(row.startswith("terminal ") for row in rows),
            "the client's exit after Ctrl-D",
        )
        self.assertIn("terminal restored, status 0", rows)

        await tmux.run("kill-server")
        tmux = Tmux(global_reactor(), self)
        await tmux.start(client_command(port, "--nick=carol"))
        await tmux.wait(lambda rows: "[carol]" in status_line(rows), "carol connected")
        await tmux.type("/quit see you")
        await tmux.keys("Enter")
        rows = await tmux.wait(
            lambda rows: any(row.startswith("terminal ") for row in rows),
            "the client's exit after /quit",
        )
        self.assertIn("terminal restored, status 0", rows)
        await poll(
            global_reactor(),
            lambda: "*** carol has quit (see you)" in bob.lines,
            "bob sees carol's reason",
        )

    async def test_plain_option(self) -> None:
        """With --plain, a terminal gets the plain filter: lines as they come."""
        reactor = global_reactor()
        port = free_port()
        await start_server(self, reactor, [f"tcp:{port}:interface=127.0.0.1"])
        tmux = Tmux(reactor, self)
        await tmux.start(client_command(port, "--nick=dave", "--plain"))
        rows = await tmux.wait(
            lambda rows: "*** guest1 is now known as dave" in rows,
            "the plain client's lines",
        )
        self.assertFalse([row for row in rows if "[connected]" in row])
        await tmux.keys("C-d")
        rows = await tmux.wait(
            lambda rows: any(row.startswith("terminal ") for row in rows),
            "the plain client's exit after Ctrl-D",
        )
        self.assertIn("terminal restored, status 0", rows)
        self.assertIn("*** Goodbye (quit)", rows)
