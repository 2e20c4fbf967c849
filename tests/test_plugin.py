"""
Tests for the twistd plugin: C{twistd} finds C{chat} and it is wired to
L{twisted_chat.server.tap}.
"""

from __future__ import annotations

import subprocess

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin, getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from tests.e2e import TIMEOUT, twistd_command
from twisted_chat.server import tap


class PluginTests(SynchronousTestCase):
    """The C{chat} service maker."""

    def chat_makers(self) -> list[IServiceMaker]:
        return [maker for maker in getPlugins(IServiceMaker) if maker.tapname == "chat"]

    def test_found(self) -> None:
        """Exactly one plugin is called C{chat}, and it is a valid service maker."""
        [maker] = self.chat_makers()
        verifyObject(IServiceMaker, maker)
        verifyObject(IPlugin, maker)

    def test_wired_to_tap(self) -> None:
        """The plugin's options and makeService are those of L{tap}."""
        [maker] = self.chat_makers()
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)

    def test_twistd_help(self) -> None:
        """C{twistd --help} lists the chat command, and C{twistd chat --help} works."""
        listing = subprocess.run(
            [*twistd_command(), "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        commands = [line.split() for line in listing.stdout.splitlines()]
        self.assertIn("chat", [words[0] for words in commands if words])

        usage = subprocess.run(
            [*twistd_command(), "chat", "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        self.assertIn("--port=", usage.stdout)
        self.assertEqual(usage.stderr, "")
