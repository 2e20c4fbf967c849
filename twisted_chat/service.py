"""
The chat as a twistd service: when the server stops, every user is told and
every connection closed before the process exits.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from twisted_chat.protocol import ChatFactory

SHUTDOWN_GRACE = 5.0


class ChatService(Service):
    """
    On stop, sends every user a notice and closes the connections, then waits
    until they are closed (at most C{grace} seconds) so that the notice is
    actually written before the reactor stops.
    """

    log = Logger()

    def __init__(
        self, factory: ChatFactory, clock: IReactorTime, grace: float = SHUTDOWN_GRACE
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.grace = grace

    def stopService(self) -> Deferred[None]:
        super().stopService()
        connections = list(self.factory.connections)
        if not connections:
            self.factory.chat.shutdown("the server is stopping")
            return succeed(None)
        self.log.info(
            "telling {count} connections the server is stopping",
            count=len(connections),
        )
        waits = [connection.when_closed() for connection in connections]
        self.factory.chat.shutdown("the server is stopping")
        done = gatherResults(waits, consumeErrors=True)
        timeout = self.clock.callLater(self.grace, done.cancel)

        def finished(result: object) -> None:
            if timeout.active():
                timeout.cancel()

        return done.addBoth(finished)
