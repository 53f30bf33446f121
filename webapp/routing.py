from django.urls import path

from core.realtime import AnnouncementConsumer
from jobs.consumers import JobConsumer

websocket_urlpatterns = [
    path("ws/announcements/", AnnouncementConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/", JobConsumer.as_asgi()),
]
