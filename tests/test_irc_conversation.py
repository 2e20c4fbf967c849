"""
The conversation suite (L{tests.conversation}) over IRC, and in rooms where
IRC and line-protocol users meet.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.conversation import Conversation, IRCPeer, LinePeer


class IRCConversationTests(Conversation, SynchronousTestCase):
    """The conversation suite, every user on IRC."""

    front_ends = (IRCPeer,)


class MixedConversationTests(Conversation, SynchronousTestCase):
    """The conversation suite with alice and carol on IRC, bob on the line
    protocol."""

    front_ends = (IRCPeer, LinePeer)


class OtherMixedConversationTests(Conversation, SynchronousTestCase):
    """The conversation suite with alice and carol on the line protocol, bob
    on IRC."""

    front_ends = (LinePeer, IRCPeer)
