"""
The servers the benchmark compares, each defined in one place: how to start
it, which protective limits the benchmark sets on it, and what the load
generator must know about its wire behaviour.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)

# The limits the benchmark sets on twisted-chat with --limits=off: the limits
# that exist to refuse or delay a user's own traffic (flood control,
# connection counts, the idle timeout) are turned off for the benchmark's
# senders and crowds.  The slow-reader protection (--max-send-queue,
# --socket-send-buffer) stays at its defaults: it is measured, not disabled.
# Options the installed server does not know yet are reported, not passed.
TWISTED_CHAT_LIMITS_OFF: dict[str, tuple[str, str]] = {
    "flood-rate": ("0", "flood control off (0 = off)"),
    "max-clients": ("0", "no connection limit (0 = none)"),
    "max-per-ip": ("0", "no per-IP connection limit (0 = none)"),
    "idle-timeout": ("0", "no idle timeout (0 = off)"),
}
NCAT_MAX_CONNS = 1010
NCAT_CLIENT_LIMIT = 1000


@dataclass
class Server:
    """One server under test."""

    name: str
    description: str
    argv: list[str]  # with {port} and {log} placeholders
    limits: list[str]
    echo_to_sender: bool = True
    on_connect_idle: str = ""
    client_limit: int | None = None
    client_limit_reason: str = ""
    greets: bool = False  # sends something to each new connection
    connect_concurrency: int = 64
    notes: list[str] = field(default_factory=list)

    def command(self, port: int, log: Path) -> list[str]:
        return [arg.format(port=port, log=log) for arg in self.argv]


def twistd_chat_help(python: str) -> str:
    """The text of C{twistd chat --help} for this interpreter ('' if none)."""
    try:
        done = subprocess.run(
            [python, "-c", TWISTD, "chat", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def parse_options(help_text: str) -> dict[str, str | None]:
    """Long option names in a usage text, each with its default if shown."""
    options: dict[str, str | None] = {}
    current: str | None = None
    block: list[str] = []

    def finish() -> None:
        if current is not None:
            text = " ".join(" ".join(block).split())
            found = re.search(r"\[default:\s*([^\]]*)\]", text)
            options[current] = found.group(1).strip() if found else None

    for line in help_text.splitlines():
        match = re.match(r"\s+(?:-\w, )?--([a-z][\w-]*)", line)
        if match:
            finish()
            current, block = match.group(1), [line]
        elif current is not None:
            block.append(line)
    finish()
    return options


def twisted_chat(python: str, limits: str) -> Server:
    known = parse_options(twistd_chat_help(python))
    if not known:
        raise SystemExit(
            "twistd chat --help printed no options: is twisted-chat installed?"
        )
    args: list[str] = []
    described: list[str] = []
    if limits == "off":
        for option, (value, why) in TWISTED_CHAT_LIMITS_OFF.items():
            if option in known:
                args += [f"--{option}", value]
                described.append(f"--{option} {value}: {why}")
            else:
                described.append(f"--{option}: not an option of this server version")
    for option, default in sorted(known.items()):
        if option in ("help", "port", "version") or f"--{option}" in args:
            continue
        described.append(f"--{option} left at the server default ({default})")
    return Server(
        name="twisted-chat",
        description="twisted-chat (twistd -n chat), this project",
        argv=[
            python,
            "-c",
            TWISTD,
            "-n",
            "--pidfile=",
            "--logfile={log}",
            "chat",
            "--port",
            "tcp:{port}:interface=127.0.0.1",
            *args,
        ],
        limits=described,
        # Idle clients each move to a room of 100 on connecting, so that the
        # idle scenario measures idle connections rather than the O(N^2)
        # join announcements of one 50,000-member room.
        on_connect_idle="/join idle-{group}",
        greets=True,
        notes=[
            "idle clients send '/join idle-K' (rooms of 100) on connecting",
        ],
    )


def thread_chat(python: str) -> Server:
    return Server(
        name="thread",
        description="thread-per-client sockets (benchmarks/thread_chat.py)",
        argv=[python, str(HERE / "thread_chat.py"), "{port}"],
        limits=["none: this server has no protective limits"],
    )


def naive_chat(python: str) -> Server:
    return Server(
        name="naive",
        description="naive Twisted LineReceiver chat (benchmarks/naive_chat.py)",
        argv=[python, str(HERE / "naive_chat.py"), "{port}"],
        limits=["none: this server has no protective limits"],
    )


def ncat_chat() -> Server | None:
    ncat = shutil.which("ncat")
    if ncat is None:
        return None
    return Server(
        name="ncat",
        description="ncat --chat (C, select())",
        argv=[
            ncat,
            "--chat",
            "-l",
            "127.0.0.1",
            "{port}",
            "--max-conns",
            str(NCAT_MAX_CONNS),
        ],
        limits=[f"--max-conns {NCAT_MAX_CONNS} (ncat's default is 100)"],
        echo_to_sender=False,
        client_limit=NCAT_CLIENT_LIMIT,
        greets=True,
        # Its listen backlog is 10: keep fewer connections than that waiting.
        connect_concurrency=8,
        client_limit_reason="ncat --chat uses select(): it drops clients past ~1020",
        notes=[
            "does not echo a line to its sender",
            "prefixes each read chunk, not each line, with <userN>",
        ],
    )


def all_servers(limits: str, python: str = sys.executable) -> list[Server]:
    servers = [twisted_chat(python, limits), thread_chat(python), naive_chat(python)]
    ncat = ncat_chat()
    if ncat is not None:
        servers.append(ncat)
    return servers
