from django.urls import path, re_path

from core.realtime import AnnouncementConsumer, NoRouteConsumer
from jobs.consumers import JobConsumer

websocket_urlpatterns = [
    path("ws/announcements/", AnnouncementConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/", JobConsumer.as_asgi()),
    # Last: any other path is closed with 4404 instead of failing inside the router.
    re_path(r"", NoRouteConsumer.as_asgi()),
]
