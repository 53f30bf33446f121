from django.urls import path

from webapp.realtime import AnnouncementConsumer

websocket_urlpatterns = [
    path("ws/announcements/", AnnouncementConsumer.as_asgi()),
]
