"""
Tests for L{tests.redis_helpers}: without redis-server the cluster tests are
skipped, except in CI, where they fail.
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests import redis_helpers


class MissingServerTests(SynchronousTestCase):
    """What happens when redis-server is not installed."""

    def setUp(self) -> None:
        self.patch(shutil, "which", lambda name: None)
        self.patch(os.path, "exists", lambda path: False)

    def test_skip(self) -> None:
        """Outside CI the tests are skipped, saying why."""
        self.patch(os, "environ", {})
        e = self.assertRaises(SkipTest, redis_helpers.redis_server_path)
        self.assertIn("redis-server is not installed", str(e))

    def test_fail_in_ci(self) -> None:
        """In CI (CI set) they fail loudly instead."""
        self.patch(os, "environ", {"CI": "true"})
        e = self.assertRaises(RuntimeError, redis_helpers.redis_server_path)
        self.assertIn("CI must run the cluster tests", str(e))


class FoundServerTests(SynchronousTestCase):
    """A free loopback port, and the server's path."""

    def test_free_port(self) -> None:
        """free_port gives a usable port number."""
        port = redis_helpers.free_port()
        self.assertTrue(1024 <= port < 65536)
