"""
A naive chat server as the Twisted documentation would first write it: a
C{LineReceiver} that adds itself to a list on connect and, for every line,
calls C{sendLine} on every connection, formatting the line once per
recipient.  No TCP_NODELAY, no limits, no rooms.  Kept here for comparison.

    python benchmarks/naive_chat.py PORT
"""

from __future__ import annotations

import sys

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure


class Chat(LineReceiver):
    delimiter = b"\n"

    def __init__(self, clients: list[Chat]) -> None:
        self.clients = clients
        self.name = b"?"

    def connectionMade(self) -> None:
        assert self.transport is not None
        peer = self.transport.getPeer()
        assert isinstance(peer, IPv4Address)
        self.name = f"{peer.host}:{peer.port}".encode()
        self.clients.append(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self in self.clients:
            self.clients.remove(self)

    def lineReceived(self, line: bytes) -> None:
        for client in self.clients:
            client.sendLine(b"<%s> %s" % (self.name, line))


class ChatFactory(ServerFactory):
    def __init__(self) -> None:
        self.clients: list[Chat] = []

    def buildProtocol(self, addr: object) -> Chat:
        return Chat(self.clients)


if __name__ == "__main__":
    reactor.listenTCP(int(sys.argv[1]), ChatFactory(), 1024, "127.0.0.1")
    reactor.run()
