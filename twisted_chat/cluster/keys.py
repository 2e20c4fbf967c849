"""
The names of everything the cluster keeps in Redis.

Keys live in the URL's database and start with a prefix (C{chat:} unless
told otherwise), so several clusters may share one Redis.  Pub/sub channels
ignore databases, so theirs also name the database.  Room and nick keys are
the case-folded names of L{twisted_chat.shared.rules.name_key}.
"""

from __future__ import annotations

from attrs import frozen

DEFAULT_PREFIX = "chat:"


@frozen
class Keys:
    """The key and channel names of one cluster."""

    prefix: str = DEFAULT_PREFIX
    db: int = 0

    # Rooms: the order and history of each (see rooms.py)

    def room_meta(self, room: str) -> str:
        """Hash: the room's epoch (e), its base (b), last number (s), the
        run_id of the Redis that gave it (r) and recent epochs (h)."""
        return f"{self.prefix}r:{room}:m"

    def room_stream(self, room: str) -> str:
        """Stream: the room's recent events, by number."""
        return f"{self.prefix}r:{room}:s"

    def room_channel(self, room: str) -> bytes:
        """Channel: the room's events, for the nodes with members there."""
        return f"{self.prefix}{self.db}:r:{room}".encode()

    def inbox(self, node: str) -> bytes:
        """Channel: what is sent to one user of one node."""
        return f"{self.prefix}{self.db}:n:{node}".encode()

    # The directory (see directory.py)

    def nick(self, nick: str) -> str:
        """String: which node has this nickname, and what WHOIS shows."""
        return f"{self.prefix}nick:{nick}"

    def guests(self) -> str:
        """Counter: the last guest number given."""
        return f"{self.prefix}guests"

    def nodes(self) -> str:
        """Sorted set: each live node, scored by its last heartbeat."""
        return f"{self.prefix}nodes"

    def node_rooms(self, node: str) -> str:
        """Set: the rooms where a node has members."""
        return f"{self.prefix}n:{node}:rooms"

    def members(self, room: str) -> str:
        """Hash: a room's members, nick key to their details and node."""
        return f"{self.prefix}r:{room}:members"

    def member_order(self, room: str) -> str:
        """Sorted set: a room's members by when they joined."""
        return f"{self.prefix}r:{room}:order"

    def room_info(self, room: str) -> str:
        """Hash: a room's display name and topic."""
        return f"{self.prefix}r:{room}:info"

    def rooms(self) -> str:
        """Hash: each room with members, and how many."""
        return f"{self.prefix}rooms"
