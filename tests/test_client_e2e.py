"""
The real client, as users run it: C{python -m twisted_chat.client} in a
subprocess with piped standard input, talking to the real C{twistd -n chat}
on the loopback interface, watched by a raw-socket user in the same room.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IProcessTransport, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

import twisted_chat
from tests.e2e import (
    TIMEOUT,
    ChatUser,
    connect_user,
    free_port,
    global_reactor,
    observe,
    poll,
    short_temp_dir,
    start_server,
    with_timeout,
)
from twisted_chat.client.app import LOST, RECONNECTED

SOURCE_ROOT = str(Path(twisted_chat.__file__).resolve().parent.parent)


class ClientProcess(ProcessProtocol):
    """
    A running client: what it prints on standard output and standard error,
    kept apart, and its exit status.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.out = b""
        self.err = b""
        self.running = True
        self.exit_code: int | None = None
        self.ended: Deferred[int | None] = Deferred()

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.exit_code = getattr(reason.value, "exitCode", None)
        self.ended.callback(self.exit_code)

    def _process(self) -> IProcessTransport:
        assert self.transport is not None
        transport: IProcessTransport = self.transport
        return transport

    def type(self, *texts: str) -> None:
        """Write each of C{texts} as a line on the client's standard input."""
        self._process().write("".join(text + "\n" for text in texts).encode())

    def end_input(self) -> None:
        """Close the client's standard input, as at the end of a pipe."""
        self._process().closeStdin()

    async def wait_for(self, text: str, seconds: float = TIMEOUT) -> None:
        """Wait until standard output holds C{text}."""
        await poll(
            self.clock,
            lambda: text in self.stdout or not self.running,
            f"waiting for the client to print {text!r}",
            seconds,
        )
        if text not in self.stdout:
            raise AssertionError(
                f"the client ended (status {self.exit_code}) without printing "
                f"{text!r}; stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )

    def wait_ended(self, seconds: float = TIMEOUT) -> Deferred[int | None]:
        """The exit status, once the client has exited."""
        return with_timeout(
            observe(self.ended), self.clock, "waiting for the client to exit", seconds
        )

    def kill(self) -> Deferred[int | None]:
        """Kill the client if it is still running, and wait until it is gone."""
        # (contextlib.suppress is not imported by name: trial would take a
        # module-level "suppress" for its list of warnings to suppress.)
        if self.running:
            with contextlib.suppress(ProcessExitedAlready):
                self._process().signalProcess("KILL")
        return self.wait_ended()


def spawn_client(
    test: SynchronousTestCase, reactor: Any, args: Sequence[str]
) -> ClientProcess:
    """
    Run C{python -m twisted_chat.client ARGS...} with pipes for standard
    input, output and error; it is killed when C{test} is cleaned up.
    """
    client = ClientProcess(reactor)
    argv = [sys.executable, "-m", "twisted_chat.client", *args]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [SOURCE_ROOT, *filter(None, [env.get("PYTHONPATH")])]
    )
    reactor.spawnProcess(client, argv[0], argv, env=env, path=short_temp_dir(test))
    test.addCleanup(client.kill)
    return client


def to_port(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


async def join_room(user: ChatUser, room: str) -> None:
    """Read a new user's greeting, then move it to C{room}."""
    await user.read(4)
    user.say(f"/join {room}")
    await user.read(2)


class PipedTests(TestCase):
    """C{printf 'hello\\n' | python -m twisted_chat.client --nick bot}."""

    async def test_piped(self) -> None:
        """
        A piped line reaches the room under the chosen nick, the client
        prints the replies and exits with status 0.
        """
        reactor = global_reactor()
        port = free_port()
        await start_server(self, reactor, [f"tcp:{port}:interface=127.0.0.1"])
        observer = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        await join_room(observer, "dev")

        chat = spawn_client(self, reactor, [*to_port(port), "--nick=bot", "--room=dev"])
        chat.type("hello")
        chat.end_input()

        await poll(
            reactor,
            lambda: "*** bot has quit (quit)" in observer.lines,
            f"bot's quit; the observer saw {observer.lines}",
        )
        # The lines of #dev.  Where users stay in every room they join, the
        # observer, still in #lobby too, also sees bot arrive there (marked
        # [#lobby]) and take its name.
        self.assertEqual(
            [
                line
                for line in observer.unread()
                if not line.startswith("[#") and " is now known as " not in line
            ],
            ["*** bot has joined #dev", "<bot> hello", "*** bot has quit (quit)"],
        )
        self.assertEqual(await chat.wait_ended(), 0)
        output = chat.stdout.splitlines()
        # Whether the observer is still in #lobby depends on the server.
        self.assertRegex(output[3], r"^\*\*\* Users in #lobby \(\d\): ")
        del output[3]
        self.assertEqual(
            output,
            [
                "*** Welcome to twisted-chat! Type /help for the commands.",
                "*** You are guest2. Change your name with /nick NAME.",
                "*** guest2 has joined #lobby",
                "*** guest2 is now known as bot",
                "*** bot has joined #dev",
                "*** Users in #dev (2): guest1, bot",
                "<bot> hello",
                "*** Goodbye (quit)",
            ],
        )
        self.assertEqual(chat.stderr, "")

    async def test_unix_socket(self) -> None:
        """C{--connect unix:PATH} reaches a server on a UNIX socket."""
        reactor = global_reactor()
        path = os.path.join(short_temp_dir(self), "chat.sock")
        await start_server(self, reactor, [f"unix:{path}"])
        chat = spawn_client(self, reactor, [f"--connect=unix:{path}"])
        chat.type("/rooms")
        chat.end_input()
        self.assertEqual(await chat.wait_ended(), 0)
        self.assertEqual(
            chat.stdout.splitlines()[-2:],
            ["*** Rooms (1): #lobby (1)", "*** Goodbye (quit)"],
        )


class NoServerTests(TestCase):
    """A server that is not there at start."""

    async def test_refused(self) -> None:
        """One line on stderr, status 1, nothing on stdout, no retrying."""
        reactor = global_reactor()
        port = free_port()
        chat = spawn_client(self, reactor, to_port(port))
        # Standard input stays open: the client must give up by itself.
        self.assertEqual(await chat.wait_ended(), 1)
        self.assertEqual(
            chat.stderr,
            f"twisted-chat: cannot connect to 127.0.0.1:{port}: Connection refused\n",
        )
        self.assertEqual(chat.stdout, "")


def in_room(lines: list[str], nick: str, room: str) -> bool:
    """Whether C{lines} show that C{nick} is in C{room}."""
    for line in lines:
        if line == f"*** {nick} has joined #{room}":
            return True
        prefix = f"*** Users in #{room} ("
        if line.startswith(prefix) and nick in line.split(": ", 1)[1].split(", "):
            return True
    return False


class ReconnectTests(TestCase):
    """A server that goes away and comes back."""

    async def test_restores_nick_and_room(self) -> None:
        """
        When the server restarts, the client says so, reconnects, comes back
        under its nickname in its room, and carries on.
        """
        reactor = global_reactor()
        port = free_port()
        listen = f"tcp:{port}:interface=127.0.0.1"
        first = await start_server(self, reactor, [listen])
        chat = spawn_client(
            self, reactor, [*to_port(port), "--nick=alice", "--room=dev"]
        )
        await chat.wait_for("*** alice has joined #dev\n")

        first.signal("TERM")
        await first.wait_ended()
        await chat.wait_for(LOST)
        await start_server(self, reactor, [listen])
        observer = await connect_user(
            self, reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        )
        observer.say("/join dev")
        # The client may come back before or after the observer joins #dev.
        await poll(
            reactor,
            lambda: in_room(observer.lines, "alice", "dev"),
            f"alice back in #dev; the observer saw {observer.lines}",
        )
        await chat.wait_for(RECONNECTED)

        chat.type("back again")
        await poll(
            reactor,
            lambda: "<alice> back again" in observer.lines,
            "the line typed after reconnecting",
        )
        chat.end_input()
        self.assertEqual(await chat.wait_ended(), 0)
        self.assertEqual(chat.stderr, "")
        output = chat.stdout.splitlines()
        self.assertLess(output.index(LOST), output.index(RECONNECTED))


def write_certificates(directory: str) -> tuple[str, str, str]:
    """
    Make a CA and a certificate it signs for C{localhost} and C{127.0.0.1}.

    @return: the paths of the CA certificate, the server certificate and the
        server key, all PEM.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "twisted-chat test CA")]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tuple(
        os.path.join(directory, name) for name in ("ca.pem", "cert.pem", "key.pem")
    )
    Path(paths[0]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths[1]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths[2]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths[0], paths[1], paths[2]


class TLSTests(TestCase):
    """C{--tls} and C{--ca} against a server listening with C{ssl:}."""

    async def test_tls(self) -> None:
        """
        With the right CA the client chats over TLS; with the system's CAs
        it refuses the unknown certificate in one line; a name the
        certificate does not hold is refused too.
        """
        reactor = global_reactor()
        directory = short_temp_dir(self)
        ca, cert, key = write_certificates(directory)
        port = free_port()
        await start_server(
            self,
            reactor,
            [f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"],
        )

        chat = spawn_client(self, reactor, ["--tls", f"--ca={ca}", *to_port(port)])
        chat.type("over tls")
        chat.end_input()
        self.assertEqual(await chat.wait_ended(), 0)
        self.assertIn("<guest1> over tls", chat.stdout.splitlines())

        untrusted = spawn_client(self, reactor, ["--tls", *to_port(port)])
        wrong_name = spawn_client(
            self,
            reactor,
            [
                "--tls",
                f"--ca={ca}",
                f"--connect=tcp:127.0.0.1:{port}",
                "--host=chat.example",
            ],
        )
        self.assertEqual(await untrusted.wait_ended(), 1)
        self.assertEqual(
            untrusted.stderr,
            f"twisted-chat: cannot connect to 127.0.0.1:{port}: "
            "TLS error: certificate verify failed\n",
        )
        self.assertEqual(await wrong_name.wait_ended(), 1)
        self.assertEqual(
            wrong_name.stderr,
            f"twisted-chat: cannot connect to tcp:127.0.0.1:{port}: "
            "TLS error: the server certificate does not match the host name\n",
        )
