"""Websocket plumbing: consumers that forward typed events sent to a Channels group.

Any process (web, worker, a management command) calls ``broadcast(group, event)``; every socket
subscribed to that group receives ``event`` as JSON. Subclasses decide who may subscribe to what
(the job-progress consumer checks the user may see the job).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

ANNOUNCEMENTS = "announcements"


def broadcast(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` (a JSON object with a ``type``) to every socket in ``group``."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("CHANNEL_LAYERS is not configured")
    async_to_sync(layer.group_send)(group, {"type": "forward.event", "event": event})


async def refuse(consumer: AsyncJsonWebsocketConsumer) -> None:
    """Close with 4404: the object does not exist or this user may not see it (one answer, on
    purpose). Accepted first: a close before accepting becomes an HTTP 403 refusal of the
    handshake on a real server, and the browser then sees code 1006, not ours."""
    await consumer.accept()
    await consumer.close(code=4404)


class NoRouteConsumer(AsyncJsonWebsocketConsumer):
    """Every websocket path no route matches: closed with 4404, as an unknown object is."""

    async def connect(self) -> None:
        await refuse(self)


class GroupEventConsumer(AsyncJsonWebsocketConsumer):
    """Joins the groups from ``groups_for_connection()``; closes with 4404 when there are none."""

    joined: list[str]

    async def groups_for_connection(self) -> list[str]:
        raise NotImplementedError

    async def connect(self) -> None:
        self.joined = await self.groups_for_connection()
        if not self.joined:
            await refuse(self)
            return
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.on_joined()

    async def on_joined(self) -> None:
        """Hook for a catch-up message after subscribing (e.g. the current job state)."""

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; anything they send is ignored rather than trusted."""

    async def forward_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])


class AnnouncementConsumer(GroupEventConsumer):
    """Site-wide notices from staff (``manage.py announce``), shown as a banner on every page."""

    async def groups_for_connection(self) -> list[str]:
        return [ANNOUNCEMENTS]
