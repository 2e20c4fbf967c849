"""
IRC as users meet it: Debian's irssi in a real terminal (a tmux session of
the test's own, read with C{capture-pane}) against the real
C{twistd -n chat --port ... --irc-port ...} on the loopback interface, in a
room with a line-protocol user on a raw socket (as C{nc} would be); and raw
IRC sockets for what a client does not show (the keepalive, a line too long).

irssi and tmux must be installed (CI installs them); without them the irssi
test is skipped and says why.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil

from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from tests.e2e import (
    ChatUser,
    Terminal,
    connect_user,
    free_port,
    global_reactor,
    short_temp_dir,
    start_server,
)
from tests.tls_helpers import new_authority, write_server_files

IRSSI = shutil.which("irssi")
TMUX = shutil.which("tmux")

# irssi's settings for the test, in a home of its own, so nothing of the
# machine's user is read or written.  irssi paces its own commands (2.2 s
# apart past a burst), which only slows a test down: the server has flood
# control of its own.
IRSSI_CONFIG = """
settings = {
  core = { real_name = "Alice Tester"; user_name = "alice"; nick = "alice"; };
  "irc/core" = { cmd_queue_speed = "0msec"; };
  "fe-common/core" = { autocreate_own_query = "no"; };
};
"""


def irssi_command(home: str, port: int) -> str:
    """A shell command that runs irssi as alice, then says how it ended."""
    irssi = shlex.join(
        [
            str(IRSSI),
            f"--home={home}",
            "-n",
            "alice",
            "-c",
            "127.0.0.1",
            "-p",
            str(port),
        ]
    )
    return f'{irssi}; echo "irssi exited with status $?"; exec cat'


class IrssiTests(TestCase):
    """irssi and an nc-style user talk in one room through the real server."""

    if IRSSI is None or TMUX is None:
        skip = "irssi and tmux are needed (apt-get install -y irssi tmux)"

    async def test_irssi_and_nc(self) -> None:
        """
        irssi connects and joins #lobby, where a line-protocol user is; they
        talk both ways, exchange private messages; irssi changes its
        nickname, parts, joins again and quits, and the line-protocol user
        sees each step.
        """
        reactor = global_reactor()
        port, irc_port = free_port(), free_port()
        server = await start_server(
            self,
            reactor,
            [f"tcp:{port}:interface=127.0.0.1"],
            irc_ports=[f"tcp:{irc_port}:interface=127.0.0.1"],
        )
        bob = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        await bob.read(4)
        bob.say("/nick bob")
        self.assertEqual(await bob.read(1), ["*** guest1 is now known as bob"])

        home = os.path.join(short_temp_dir(self), "irssi")
        os.mkdir(home)
        with open(os.path.join(home, "config"), "w") as config:
            config.write(IRSSI_CONFIG)
        term = Terminal(reactor, self)
        await term.start(irssi_command(home, irc_port))
        await term.wait_for("Welcome to the twisted-chat Network, alice")
        await term.wait_for("MOTD File is missing")

        await term.line("/join #lobby")
        await term.wait_for("alice [~alice@irc.twisted-chat] has joined #lobby")
        self.assertEqual(await bob.read(1), ["*** alice has joined #lobby"])

        bob.say("hello from nc")
        await term.wait_for("bob> hello from nc")
        await term.line("hi bob, this is irssi")
        self.assertEqual(
            await bob.read(2), ["<bob> hello from nc", "<alice> hi bob, this is irssi"]
        )

        await term.line("/msg bob psst")
        self.assertEqual(await bob.read(1), ["*alice* psst"])
        bob.say("/msg alice back at you")
        self.assertEqual(await bob.read(1), ["-> *alice* back at you"])
        # irssi shows the message in a window of its own for bob.
        await term.line("/window goto bob")
        await term.wait_for("<bob> back at you")
        await term.line("/window close")

        await term.line("/nick alicia")
        await term.wait_for("You're now known as alicia")
        self.assertEqual(await bob.read(1), ["*** alice is now known as alicia"])

        await term.line("/part #lobby see you later")
        self.assertEqual(
            await bob.read(1), ["*** alicia has left #lobby (see you later)"]
        )
        await term.line("/join #lobby")
        self.assertEqual(await bob.read(1), ["*** alicia has joined #lobby"])
        await term.wait_for("alicia [~alice@irc.twisted-chat] has joined #lobby")

        await term.line("/quit bye all")
        self.assertEqual(await bob.read(1), ["*** alicia has quit (bye all)"])
        await term.wait_for("irssi exited with status 0")

        bob.say("/who")
        self.assertEqual(await bob.read(1), ["*** Users in #lobby (1): bob"])
        self.assertEqual(bob.unread(), [])
        await server.wait_for("(alicia) disconnected")
        self.assertRegex(server.output, r"127\.0\.0\.1:\d+ registered as alice \(IRC\)")
        self.assertNotIn("Traceback", server.output)


class RawIRCTests(TestCase):
    """A raw IRC connection to the real server: what clients do not show."""

    async def start(self, *options: str) -> tuple[ChatUser, ChatUser]:
        """A server; an IRC connection registered as al in #lobby, and bob
        on the line protocol."""
        reactor = global_reactor()
        port, irc_port = free_port(), free_port()
        await start_server(
            self,
            reactor,
            [f"tcp:{port}:interface=127.0.0.1"],
            options=options,
            irc_ports=[f"tcp:{irc_port}:interface=127.0.0.1"],
        )
        bob = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        await bob.read(4)
        al = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", irc_port)
        )
        al.say("NICK al", "USER al 0 * :Al", "JOIN #lobby")
        lines = await al.read(9)
        self.assertEqual(lines[-3][-13:], " JOIN #lobby\r")
        await bob.read(1)
        return al, bob

    async def test_line_too_long(self) -> None:
        """A 600-byte line gets 417 and reaches nobody; the next one does."""
        al, bob = await self.start()
        al.say("PRIVMSG #lobby :" + "x" * 584, "PRIVMSG #lobby :short")
        self.assertEqual(
            await al.read(1),
            [":server.twisted-chat 417 al :Input line was too long\r"],
        )
        self.assertEqual(await bob.read(1), ["<al> short"])

    async def test_ping_timeout(self) -> None:
        """
        A client that never answers is sent PING after the interval, and
        dropped after another; the room hears why.
        """
        al, bob = await self.start("--ping-interval=0.5")
        self.assertEqual(await al.read(1), ["PING :server.twisted-chat\r"])
        [closing] = await al.read(1)
        self.assertTrue(
            re.fullmatch(r"ERROR :Closing link: Ping timeout: 1 seconds\r", closing),
            closing,
        )
        await al.wait_closed()
        self.assertEqual(
            await bob.read(1), ["*** al has quit (Ping timeout: 1 seconds)"]
        )

    async def test_tls(self) -> None:
        """
        C{--irc-port ssl:...} is IRC over TLS: a verifying client registers
        and talks with a line-protocol user.
        """
        reactor = global_reactor()
        port, irc_port = free_port(), free_port()
        files = write_server_files(short_temp_dir(self), new_authority())
        await start_server(
            self,
            reactor,
            [f"tcp:{port}:interface=127.0.0.1"],
            irc_ports=[files.description(irc_port)],
        )
        bob = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        await bob.read(4)
        with open(files.ca, "rb") as ca:
            trust = Certificate.loadPEM(ca.read())
        endpoint = wrapClientTLS(
            optionsForClientTLS("localhost", trustRoot=trust),
            TCP4ClientEndpoint(reactor, "127.0.0.1", irc_port),
        )
        al = await connect_user(self, reactor, endpoint)
        al.say("NICK al", "USER al 0 * :Al", "JOIN #lobby", "PRIVMSG #lobby :secure")
        self.assertEqual(
            (await al.read(1))[0],
            ":server.twisted-chat 001 al :Welcome to the twisted-chat Network, al\r",
        )
        self.assertEqual(await bob.read(2), ["*** al has joined #lobby", "<al> secure"])

    async def test_sigterm(self) -> None:
        """
        On SIGTERM, IRC clients are told in IRC before their connections
        close, one still registering too, as line-protocol users are.
        """
        reactor = global_reactor()
        port, irc_port = free_port(), free_port()
        server = await start_server(
            self,
            reactor,
            [f"tcp:{port}:interface=127.0.0.1"],
            irc_ports=[f"tcp:{irc_port}:interface=127.0.0.1"],
        )
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", irc_port)
        al = await connect_user(self, reactor, endpoint)
        al.say("NICK al", "USER al 0 * :Al")
        await al.read(6)
        waiting = await connect_user(self, reactor, endpoint)
        waiting.say("NICK wait")
        await server.wait_for("connected (IRC)", 2)
        server.signal("TERM")
        stopping = "ERROR :Server shutting down: the server is stopping\r"
        for client in (al, waiting):
            self.assertEqual(await client.read(1), [stopping])
            await client.wait_closed()
        await server.wait_ended()
        self.assertNotIn("Traceback", server.output)
