"""
twisted-chat: a group-chat server and client built on Twisted.

The package is layered: a pure core (L{twisted_chat.core.chat}) that knows users,
rooms and the rules of the chat; thin adapters that connect it to the network
(L{twisted_chat.server.line}); and wiring for C{twistd} (L{twisted_chat.server.tap}).
"""

from __future__ import annotations

__version__ = "0.1.0"
