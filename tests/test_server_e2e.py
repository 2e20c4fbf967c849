"""
The real server, as users meet it: C{twistd -n chat} in a subprocess, real
sockets on the loopback interface and UNIX sockets in a temporary directory.
"""

from __future__ import annotations

import os
import signal
import socket

from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
)
from twisted.trial.unittest import SkipTest, TestCase

from tests.e2e import (
    connect_user,
    free_port,
    global_reactor,
    has_ipv6,
    poll,
    short_temp_dir,
    spawn_twistd,
    start_server,
)

WELCOME = "*** Welcome to twisted-chat! Type /help for the commands."
SHUTDOWN = "*** Server shutting down: the server is stopping"


def read_text(path: str) -> str:
    """The text of the file at C{path}, or C{""} if it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except OSError:
        return ""


def greeting(nick: str, room: str, members: str) -> list[str]:
    """The four lines a new user receives."""
    count = len(members.split(", "))
    return [
        WELCOME,
        f"*** You are {nick}. Change your name with /nick NAME.",
        f"*** {nick} has joined #{room}",
        f"*** Users in #{room} ({count}): {members}",
    ]


class ChatTests(TestCase):
    """Users chatting through one real server."""

    async def test_conversation(self) -> None:
        """
        Three users on IPv4 get exactly the right lines as they rename, talk
        in two rooms, send a private message and quit; the server logs each
        connection and disconnection with the peer's address.
        """
        reactor = global_reactor()
        port = free_port()
        server = await start_server(self, reactor, [f"tcp:{port}:interface=127.0.0.1"])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)

        a = await connect_user(self, reactor, endpoint)
        self.assertEqual(await a.read(4), greeting("guest1", "lobby", "guest1"))
        a.say("/nick alice")
        self.assertEqual(await a.read(1), ["*** guest1 is now known as alice"])

        b = await connect_user(self, reactor, endpoint)
        self.assertEqual(await b.read(4), greeting("guest2", "lobby", "alice, guest2"))
        self.assertEqual(await a.read(1), ["*** guest2 has joined #lobby"])
        b.say("/nick bob")
        for user in (a, b):
            self.assertEqual(await user.read(1), ["*** guest2 is now known as bob"])

        c = await connect_user(self, reactor, endpoint)
        self.assertEqual(
            await c.read(4), greeting("guest3", "lobby", "alice, bob, guest3")
        )
        c.say("/nick carol", "/join games", "/part lobby")
        self.assertEqual(
            await c.read(4),
            [
                "*** guest3 is now known as carol",
                "*** carol has joined #games",
                "*** Users in #games (1): carol",
                "[#lobby] *** carol has left #lobby",
            ],
        )
        for user in (a, b):
            self.assertEqual(
                await user.read(3),
                [
                    "*** guest3 has joined #lobby",
                    "*** guest3 is now known as carol",
                    "*** carol has left #lobby",
                ],
            )

        a.say("hello lobby")
        c.say("/me waves")
        self.assertEqual(await c.read(1), ["* carol waves"])
        for user in (a, b):
            self.assertEqual(await user.read(1), ["<alice> hello lobby"])

        b.say("/msg carol psst")
        self.assertEqual(await b.read(1), ["-> *carol* psst"])
        self.assertEqual(await c.read(1), ["*bob* psst"])

        b.say("/quit gotta go")
        self.assertEqual(await b.read(1), ["*** Goodbye (gotta go)"])
        await b.wait_closed()
        self.assertEqual(await a.read(1), ["*** bob has quit (gotta go)"])

        # A last command each: its answer is the next line, so nothing
        # unexpected arrived in between.
        a.say("/rooms")
        self.assertEqual(await a.read(1), ["*** Rooms (2): #games (1), #lobby (1)"])
        c.say("/who")
        self.assertEqual(await c.read(1), ["*** Users in #games (1): carol"])
        self.assertEqual((a.unread(), b.unread(), c.unread()), ([], [], []))

        await server.wait_for(f"{b.address} (bob) disconnected: ")
        for user, nick in ((a, "guest1"), (b, "guest2"), (c, "guest3")):
            self.assertIn(f"{user.address} connected as {nick}", server.output)


class ListenerTests(TestCase):
    """The listeners one server process can have at once."""

    def setUp(self) -> None:
        if not has_ipv6():
            raise SkipTest("this machine cannot listen on ::1")

    async def test_ipv4_ipv6_and_unix_at_once(self) -> None:
        """
        One server listens on 127.0.0.1, ::1 and a UNIX socket at the same
        time, and users on all three share its rooms.
        """
        reactor = global_reactor()
        port = free_port(["127.0.0.1", "::1"])
        path = os.path.join(short_temp_dir(self), "chat.sock")
        server = await start_server(
            self,
            reactor,
            [
                f"tcp:{port}:interface=127.0.0.1",
                f"tcp6:{port}:interface=\\:\\:1",
                f"unix:{path}",
            ],
        )

        v4 = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        self.assertEqual(await v4.read(4), greeting("guest1", "lobby", "guest1"))
        v6 = await connect_user(self, reactor, TCP6ClientEndpoint(reactor, "::1", port))
        self.assertEqual(
            await v6.read(4), greeting("guest2", "lobby", "guest1, guest2")
        )
        local = await connect_user(self, reactor, UNIXClientEndpoint(reactor, path))
        self.assertEqual(
            await local.read(4), greeting("guest3", "lobby", "guest1, guest2, guest3")
        )
        self.assertEqual(
            await v4.read(2),
            ["*** guest2 has joined #lobby", "*** guest3 has joined #lobby"],
        )
        self.assertEqual(await v6.read(1), ["*** guest3 has joined #lobby"])

        local.say("one room for all")
        for user in (v4, v6, local):
            self.assertEqual(await user.read(1), ["<guest3> one room for all"])

        self.assertTrue(v6.address.startswith("[::1]:"), v6.address)
        for user, nick in ((v4, "guest1"), (v6, "guest2")):
            self.assertIn(f"{user.address} connected as {nick}", server.output)
        self.assertIn("unix connected as guest3", server.output)

    async def test_tcp_and_tcp6_wildcards_on_one_port(self) -> None:
        """
        C{--port tcp:P} and C{--port tcp6:P:interface=\\:\\:} work together:
        the IPv6 listener is IPv6-only, so IPv4 users reach the IPv4 one.
        """
        reactor = global_reactor()
        port = free_port(["0.0.0.0", "::"])
        server = await start_server(
            self, reactor, [f"tcp:{port}", f"tcp6:{port}:interface=\\:\\:"]
        )
        v4 = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        self.assertEqual(await v4.read(4), greeting("guest1", "lobby", "guest1"))
        v6 = await connect_user(self, reactor, TCP6ClientEndpoint(reactor, "::1", port))
        self.assertEqual(
            await v6.read(4), greeting("guest2", "lobby", "guest1, guest2")
        )
        # Had the IPv6 socket taken IPv4 too, the IPv4 user would show up as
        # [::ffff:127.0.0.1]:N.
        self.assertIn(f"{v4.address} connected as guest1", server.output)
        self.assertIn(f"{v6.address} connected as guest2", server.output)


class StartStopTests(TestCase):
    """How the server starts and stops."""

    async def test_port_in_use(self) -> None:
        """
        A server whose port is taken exits with status 1 and says so in one
        line, without a traceback.
        """
        reactor = global_reactor()
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        typed = f"tcp:{port}:interface=127.0.0.1"

        server = spawn_twistd(self, reactor, ["chat", "--port", typed])
        self.assertEqual(await server.wait_ended(), 1)
        message = f"twistd chat: cannot listen on {typed}: Address already in use"
        self.assertEqual(
            [line for line in server.output.splitlines() if "cannot listen" in line],
            [line for line in server.output.splitlines() if line.endswith(message)],
        )
        self.assertEqual(server.output.count(message), 1)
        self.assertNotIn("Traceback", server.output)

    async def test_port_in_use_daemon(self) -> None:
        """
        Without C{-n}, a server whose port is taken exits with status 1 and
        says why, instead of leaving twistd waiting for ever for the daemon
        to start; the daemon's log holds the whole line.
        """
        reactor = global_reactor()
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        typed = str(taken.getsockname()[1])
        directory = short_temp_dir(self)

        server = spawn_twistd(
            self, reactor, ["chat", "--port", typed], cwd=directory, daemon=True
        )
        self.assertEqual(await server.wait_ended(), 1)
        self.assertIn(f"cannot listen on {typed}: ", server.errors)
        log = os.path.join(directory, "twistd.log")
        message = f"twistd chat: cannot listen on {typed}: Address already in use"
        await poll(reactor, lambda: message in read_text(log), "the daemon's log")
        self.assertNotIn("Traceback", read_text(log))

    async def test_ssl_files_missing(self) -> None:
        """
        An C{ssl} port whose certificate and key files do not exist stops
        start-up with exit status 1 and one line on stderr, naming the file.
        """
        reactor = global_reactor()
        directory = short_temp_dir(self)
        typed = "ssl:6697:privateKey=missing.pem:certKey=missing.pem"

        server = spawn_twistd(self, reactor, ["chat", "--port", typed], directory)
        self.assertEqual(await server.wait_ended(), 1)
        missing = os.path.join(os.path.realpath(directory), "missing.pem")
        self.assertEqual(
            (server.errors, server.output),
            (
                f"twistd chat: cannot listen on {typed}: {missing}: No such file "
                "or directory\n",
            )
            * 2,
        )

    async def test_usage_error(self) -> None:
        """
        A mistake in the text of C{--port} is twistd's usage error: the
        options and one line naming it on stdout, exit status 1.
        """
        reactor = global_reactor()
        server = spawn_twistd(self, reactor, ["chat", "--port", "bogus:1"])
        self.assertEqual(await server.wait_ended(), 1)
        lines = server.output.splitlines()
        self.assertTrue(
            lines[-1].endswith(": --port bogus:1: Unknown endpoint type: 'bogus'"),
            lines[-1],
        )
        self.assertIn("--max-clients=", server.output)
        self.assertEqual(server.errors, "")

    async def test_sigterm_tells_every_user(self) -> None:
        """
        On SIGTERM every connected user, whatever the room, is told the
        server is stopping before the connection closes, and the server
        shuts down cleanly.
        """
        reactor = global_reactor()
        port = free_port()
        server = await start_server(self, reactor, [f"tcp:{port}:interface=127.0.0.1"])
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        a = await connect_user(self, reactor, endpoint)
        await a.read(4)
        b = await connect_user(self, reactor, endpoint)
        await b.read(4)
        b.say("/join elsewhere", "/part lobby")
        self.assertEqual(
            await b.read(3),
            [
                "*** guest2 has joined #elsewhere",
                "*** Users in #elsewhere (1): guest2",
                "[#lobby] *** guest2 has left #lobby",
            ],
        )
        self.assertEqual(
            await a.read(2),
            ["*** guest2 has joined #lobby", "*** guest2 has left #lobby"],
        )

        server.signal("TERM")
        for user in (a, b):
            self.assertEqual(await user.read(1), [SHUTDOWN])
            await user.wait_closed()
            self.assertEqual(user.unread(), [])
        # twistd stops cleanly, then ends itself with the signal it was sent
        # (as Twisted has done since 19.7), so a supervisor sees why it
        # stopped; systemd counts SIGTERM as a clean exit.
        self.assertEqual(await server.wait_ended(), None)
        self.assertEqual(server.exit_signal, signal.SIGTERM)
        self.assertIn("Server Shut Down.", server.output)
        for user, nick in ((a, "guest1"), (b, "guest2")):
            self.assertIn(f"{user.address} ({nick}) disconnected: ", server.output)
        self.assertNotIn("Traceback", server.output)
        self.assertNotIn("Unhandled", server.output)
