"""
The protective limits of a server, and the count of connections per peer.
"""

from __future__ import annotations

from collections import Counter

from attrs import define, field, frozen

DEFAULT_MAX_LINE_LENGTH = 4096
DEFAULT_FLOOD_BURST = 20
DEFAULT_FLOOD_RATE = 5.0
DEFAULT_FLOOD_KICK = 100
DEFAULT_MAX_SEND_QUEUE = 256 * 1024
DEFAULT_MAX_CLIENTS = 5000
DEFAULT_MAX_PER_IP = 50
DEFAULT_IDLE_TIMEOUT = 0.0
DEFAULT_SOCKET_SEND_BUFFER = 64 * 1024


@frozen
class Limits:
    """
    Every limit a server enforces; C{twistd chat} has an option for each.

    @ivar max_line_length: longest line accepted, in bytes (without C{\\n}).
    @ivar flood_burst: lines a user may send at once before flood control.
    @ivar flood_rate: lines per second after the burst; C{0} turns flood
        control off.
    @ivar flood_kick: lines that may be delayed in a row before the user is
        disconnected for flooding.
    @ivar max_send_queue: bytes that may wait for a client that does not read
        before it is disconnected.
    @ivar max_clients: connections at once; C{0} for no limit.
    @ivar max_per_ip: connections at once from one IP address; C{0} for no
        limit.  UNIX socket connections are not counted.
    @ivar idle_timeout: seconds without a line from a user before they are
        disconnected; C{0} turns it off.
    @ivar socket_send_buffer: the kernel send buffer of each TCP connection,
        in bytes; C{0} leaves the kernel's own sizing.
    """

    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    flood_burst: int = DEFAULT_FLOOD_BURST
    flood_rate: float = DEFAULT_FLOOD_RATE
    flood_kick: int = DEFAULT_FLOOD_KICK
    max_send_queue: int = DEFAULT_MAX_SEND_QUEUE
    max_clients: int = DEFAULT_MAX_CLIENTS
    max_per_ip: int = DEFAULT_MAX_PER_IP
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    socket_send_buffer: int = DEFAULT_SOCKET_SEND_BUFFER


@define
class ConnectionCounter:
    """
    Counts open connections, in all and per peer host, and says why a new one
    must be refused.
    """

    max_clients: int
    max_per_ip: int
    total: int = 0
    per_host: Counter[str] = field(factory=Counter)

    def refusal(self, host: str | None) -> str | None:
        """
        Why a new connection from C{host} (L{None} for a UNIX socket) must be
        refused, or L{None} to accept it.
        """
        if self.max_clients and self.total >= self.max_clients:
            return (
                f"The server is full ({self.max_clients} users); "
                "please try again later."
            )
        if (
            host is not None
            and self.max_per_ip
            and self.per_host[host] >= self.max_per_ip
        ):
            return (
                f"Too many connections from your address (at most "
                f"{self.max_per_ip}); please close one and try again."
            )
        return None

    def add(self, host: str | None) -> None:
        self.total += 1
        if host is not None:
            self.per_host[host] += 1

    def remove(self, host: str | None) -> None:
        self.total -= 1
        if host is not None:
            self.per_host[host] -= 1
            if self.per_host[host] <= 0:
                del self.per_host[host]
