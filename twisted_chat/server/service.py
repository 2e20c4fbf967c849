"""
The chat as a twistd service: when the server stops, every user of every
front end is told and every connection closed before the process exits.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from twisted_chat.server.delivery import Delivery

SHUTDOWN_GRACE = 5.0

# The reason every user is given.
STOPPING = "the server is stopping"


def raise_file_limit(wanted: int) -> int:
    """
    Raise this process's soft limit on open files towards C{wanted} (as far
    as the hard limit allows): each connection is one file descriptor, and
    the usual soft limit of 1024 would refuse users long before
    C{--max-clients}.

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


class ChatService(Service):
    """
    On stop, sends every user a notice and closes the connections of every
    front end (those not registered yet too), then waits until they are
    closed (at most C{grace} seconds) so that the notice is actually written
    before the reactor stops.
    """

    log = Logger()

    def __init__(
        self,
        delivery: Delivery,
        clock: IReactorTime,
        grace: float = SHUTDOWN_GRACE,
        listening: Sequence[str] = (),
    ) -> None:
        self.delivery = delivery
        self.clock = clock
        self.grace = grace
        self.listening = list(listening)

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        limit = self.delivery.limits.max_clients
        # Room for every client, the listeners and a margin for the process.
        wanted = (limit or 1_000_000) + 64
        available = raise_file_limit(wanted)
        if limit and available < wanted:
            self.log.warn(
                "only {available} file descriptors are available; "
                "--max-clients {max_clients} cannot be reached",
                available=available,
                max_clients=limit,
            )

    def startService(self) -> None:
        super().startService()
        # twistd opened every listener (privilegedStartService) before
        # starting any service, so the server is ready now.
        self.log.info(
            "twisted-chat ready, listening on {where}",
            where=", ".join(self.listening) or "nothing",
        )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        delivery = self.delivery
        connections = list(delivery.connections)
        if not connections:
            delivery.chat.shutdown(STOPPING)
            return succeed(None)
        self.log.info(
            "telling {count} connections the server is stopping",
            count=len(connections),
        )
        waits = [connection.when_closed() for connection in connections]
        with delivery.batch():
            delivery.chat.shutdown(STOPPING)
            # Connections that are not users yet (IRC before its welcome).
            for connection in connections:
                connection.server_stopping(STOPPING)
        done = gatherResults(waits, consumeErrors=True)
        timeout = self.clock.callLater(self.grace, done.cancel)

        def finished(result: object) -> None:
            if timeout.active():
                timeout.cancel()

        return done.addBoth(finished)
