from django.contrib import admin

from webapp.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "queue", "pid", "last_seen")
    ordering = ("-last_seen",)
