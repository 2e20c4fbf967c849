"""
A thread-per-client chat server, written the way the socket tutorial in the
project's seed notes writes its group chat: a blocking accept loop, one
thread per connection, a dict of client sockets, and each line sent to every
client with a blocking send.

Two changes make it correct enough to measure: it frames lines (a line is
broadcast as C{<host:port> line}, including to its sender), and each client
socket has a lock, so that two threads never interleave their writes to one
socket.  Like the seed, it sets no socket options (Nagle stays on) and has
no protective limits.  It is kept here for comparison only.

    python benchmarks/thread_chat.py PORT
"""

from __future__ import annotations

import socket
import sys
import threading


class ThreadChat:
    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.clients: dict[tuple[str, int], tuple[socket.socket, threading.Lock]] = {}
        self.lock = threading.Lock()

    def load(self) -> None:
        self.sock.listen(1024)
        self._accept()

    def _accept(self) -> None:
        while True:
            conn, addr = self.sock.accept()
            with self.lock:
                self.clients[addr] = (conn, threading.Lock())
            threading.Thread(
                target=self._recv, args=(conn, addr), name=addr[0], daemon=True
            ).start()

    def _recv(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        prefix = f"<{addr[0]}:{addr[1]}> ".encode()
        try:
            with conn.makefile("rb") as reader:
                for line in reader:
                    if not line.endswith(b"\n"):
                        break
                    data = prefix + line
                    with self.lock:
                        targets = list(self.clients.values())
                    for other, lock in targets:
                        try:
                            with lock:
                                other.sendall(data)
                        except OSError:
                            pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.clients.pop(addr, None)
            conn.close()


if __name__ == "__main__":
    ThreadChat(("127.0.0.1", int(sys.argv[1]))).load()
