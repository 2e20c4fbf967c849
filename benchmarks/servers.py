"""
The servers the benchmark compares, each defined in one place: how to start
it, which protective limits the benchmark sets on it, and what the load
generator must know about its wire behaviour.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
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
    # Added to argv when a scenario has IRC clients, with {irc_port}; a
    # server without them has no IRC front end.
    irc_args: list[str] = field(default_factory=list)
    # Put first on the server's PYTHONPATH (another commit's tree), if any.
    pythonpath: str | None = None

    def command(self, port: int, log: Path, irc_port: int | None = None) -> list[str]:
        argv = self.argv + (self.irc_args if irc_port is not None else [])
        return [arg.format(port=port, log=log, irc_port=irc_port) for arg in argv]

    def environment(self) -> dict[str, str]:
        """The server's environment: ours, with C{pythonpath} first if set."""
        return server_env(self.pythonpath)


def server_env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
    return env


def neutral_directory() -> str:
    """
    A working directory with no twisted_chat in it: C{python -c} puts its
    working directory first on sys.path, ahead of PYTHONPATH, so a checkout
    there would shadow another commit's tree.
    """
    path = Path(tempfile.gettempdir()) / "twisted-chat-bench-cwd"
    path.mkdir(exist_ok=True)
    return str(path)


def twistd_chat_help(python: str, pythonpath: str | None = None) -> str:
    """The text of C{twistd chat --help} for this interpreter ('' if none)."""
    try:
        done = subprocess.run(
            [python, "-c", TWISTD, "chat", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=server_env(pythonpath),
            cwd=neutral_directory(),
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def code_location(python: str, pythonpath: str | None = None) -> Path:
    """Where a server started like ours imports twisted_chat from."""
    done = subprocess.run(
        [python, "-c", "import twisted_chat; print(twisted_chat.__file__)"],
        env=server_env(pythonpath),
        cwd=neutral_directory(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(done.stdout.strip()).parent.parent


def short_revision(rev: str, repo: Path = HERE.parent) -> str:
    """C{rev} as git's short hash; SystemExit if git does not know it."""
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"git does not know {rev!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def export_revision(rev: str, into: Path, repo: Path = HERE.parent) -> Path:
    """
    The tree of commit C{rev}, exported (C{git archive REV | tar -x}) to a
    fresh C{into/REV}; returns that folder.
    """
    short = short_revision(rev, repo)
    dest = into / short
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "-C", str(repo), "archive", short], stdout=subprocess.PIPE
    )
    untar = subprocess.run(
        ["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=False
    )
    assert archive.stdout is not None
    archive.stdout.close()
    if archive.wait(60) != 0 or untar.returncode != 0:
        raise SystemExit(f"could not export {short} to {dest}")
    return dest


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


def twisted_chat(
    python: str,
    limits: str,
    name: str = "twisted-chat",
    pythonpath: str | None = None,
    origin: str = "this project",
) -> Server:
    """
    twisted-chat from the installed package, or (C{pythonpath}) from another
    tree, with the options that version knows.
    """
    known = parse_options(twistd_chat_help(python, pythonpath))
    if not known:
        where = f" from {pythonpath}" if pythonpath else ""
        raise SystemExit(
            f"{name}: twistd chat --help{where} printed no options: "
            "is twisted-chat installed (and does that commit start)?"
        )
    if pythonpath is not None:
        found = code_location(python, pythonpath)
        if found.resolve() != Path(pythonpath).resolve():
            raise SystemExit(
                f"{name}: twisted_chat imports from {found}, not {pythonpath}"
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
        if option in ("help", "port", "irc-port", "version") or f"--{option}" in args:
            continue
        described.append(f"--{option} left at the server default ({default})")
    irc_args = (
        ["--irc-port", "tcp:{irc_port}:interface=127.0.0.1"]
        if "irc-port" in known
        else []
    )
    return Server(
        name=name,
        description=f"twisted-chat (twistd -n chat), {origin}",
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
            *(
                ["IRC scenarios: the same process listens on --irc-port too"]
                if irc_args
                else ["no --irc-port: IRC scenarios are skipped"]
            ),
            *([f"code: {pythonpath} first on PYTHONPATH"] if pythonpath else []),
        ],
        irc_args=irc_args,
        pythonpath=pythonpath,
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
