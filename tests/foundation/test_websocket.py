"""A websocket client on the ASGI app receives what another process sends through the layer."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from channels.testing.websocket import WebsocketCommunicator

from tests.foundation.conftest import ROOT
from webapp.asgi import application

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def _announce_from_another_process(text: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "announce", "--level", "warning", text],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_socket_receives_an_announcement_sent_by_another_process() -> None:
    async def scenario() -> object:
        communicator = WebsocketCommunicator(
            application, "/ws/announcements/", headers=[(b"origin", b"http://localhost")]
        )
        connected, _ = await communicator.connect()
        assert connected
        await asyncio.to_thread(_announce_from_another_process, "Maintenance at 18:00")
        message = await communicator.receive_json_from(timeout=10)
        await communicator.disconnect()
        return message

    assert asyncio.run(scenario()) == {
        "type": "announcement",
        "level": "warning",
        "text": "Maintenance at 18:00",
    }


def test_a_socket_from_a_foreign_origin_is_refused() -> None:
    async def scenario() -> bool:
        communicator = WebsocketCommunicator(
            application, "/ws/announcements/", headers=[(b"origin", b"http://evil.example")]
        )
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return bool(connected)

    assert asyncio.run(scenario()) is False


def test_announce_refuses_an_empty_notice() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "announce", "   "],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "text: the notice is empty" in result.stderr


def test_a_socket_to_an_unknown_route_is_closed_with_4404() -> None:
    async def scenario() -> object:
        communicator = WebsocketCommunicator(
            application, "/ws/no-such-route/", headers=[(b"origin", b"http://localhost")]
        )
        connected, _ = await communicator.connect()
        closed = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return connected, closed

    assert asyncio.run(scenario()) == (True, {"type": "websocket.close", "code": 4404})
