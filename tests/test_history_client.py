"""
Tests for how the client shows lines of a room's history: with the time
they were said, in the plain interface (unchanged) and the full-screen one
(the stamp is that time, the mark goes).
"""

from __future__ import annotations

import io
import time

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.trial.unittest import SynchronousTestCase

from tests.test_client import FakeEndpoint
from twisted_chat.client.app import ChatClient
from twisted_chat.client.cells import row_text
from twisted_chat.client.screen import HISTORY, Screen
from twisted_chat.client.server_lines import history_time
from twisted_chat.client.session import ClientSession
from twisted_chat.client.ui import Connection, Status
from twisted_chat.shared import lines

# 2026-12-01 14:05:03 UTC, and a day later.
SAID = 1796133903.0
NOW = SAID + 86400
OLD = "[history 2026-12-01 14:05:03Z] <bob> hi"


def utc_stamp(at: float, now: float) -> str:
    """A stamp that does not depend on the machine's time zone."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))


class HistoryTimeTests(SynchronousTestCase):
    """L{history_time}: when a line of history was said."""

    def test_lines(self) -> None:
        """Its own room or another: the time; a live line: none."""
        self.assertEqual(
            [
                history_time(line)
                for line in (
                    OLD,
                    "[#dev] " + OLD,
                    "<bob> hi",
                    "<bob> [history 2026-12-01 14:05:03Z] fake",
                    "[#dev] <bob> [history 2026-12-01 14:05:03Z] fake",
                )
            ],
            [SAID, SAID, None, None, None],
        )


class Recording:
    """A user interface that records each line with its time."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, float | None]] = []

    def show(self, text: str, at: float | None = None) -> None:
        self.shown.append((text, at))

    def status(self, status: Status) -> None:
        pass

    def close(self) -> Deferred[None]:
        return succeed(None)


class ClientTests(SynchronousTestCase):
    """The client hands each line of history to the interface with its time."""

    def test_show_at(self) -> None:
        """History lines carry their time; the greeting and live lines do not."""
        endpoint = FakeEndpoint()
        session = ClientSession()
        client = ChatClient(Clock(), endpoint, "here", session, io.StringIO())
        ui = Recording()
        client.start(ui)
        factory, d = endpoint.attempts[-1]
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert protocol is not None
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        d.callback(protocol)
        protocol.dataReceived(
            lines.encode(
                lines.welcome(),
                lines.self_nick("guest1"),
                lines.joined("guest1", "lobby"),
                lines.who("lobby", ["guest1"]),
                OLD,
                "[#dev] " + OLD,
                "<bob> now",
            )
        )
        self.assertEqual(
            ui.shown[-3:], [(OLD, SAID), ("[#dev] " + OLD, SAID), ("<bob> now", None)]
        )
        self.assertTrue(session.ready)
        self.assertEqual(session.room, "lobby")


class ScreenTests(SynchronousTestCase):
    """The full-screen client's scrollback shows when a line was said."""

    def test_stamp_is_when_said(self) -> None:
        """The mark goes; the stamp, in its own colour, is the time said."""
        screen = Screen(
            Status("here", Connection.CONNECTED, "alice", "lobby", ("lobby", "dev")),
            60,
            5,
            stamp=utc_stamp,
        )
        screen.add(OLD, SAID)
        screen.add("[#dev] " + OLD, SAID)
        screen.add("<bob> now", NOW)
        rows = screen.render(NOW)
        self.assertEqual(
            [row_text(row).rstrip() for row in rows[:3]],
            [
                "2026-12-01 14:05 <bob> hi",
                "2026-12-01 14:05 [#dev] <bob> hi",
                "2026-12-02 14:05 <bob> now",
            ],
        )
        self.assertEqual(
            [rows[i][0].style == HISTORY for i in range(3)], [True, True, False]
        )
        self.assertEqual(
            [entry.room for entry in screen.entries], ["lobby", "dev", "lobby"]
        )
