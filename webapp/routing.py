from django.urls import path

from jobs.consumers import JobConsumer
from webapp.realtime import AnnouncementConsumer

websocket_urlpatterns = [
    path("ws/announcements/", AnnouncementConsumer.as_asgi()),
    path("ws/jobs/<str:job_id>/", JobConsumer.as_asgi()),
]
