from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs import services
from jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "phase", "percent", "model", "owner", "worker",
                    "attempts", "created_at")  # fmt: skip
    list_filter = ("status", "kind", "model")
    search_fields = ("id", "owner__username", "worker", "error")
    readonly_fields = ("id", "created_at", "started_at", "finished_at", "heartbeat_at", "attempts")
    raw_id_fields = ("owner", "graph")
    actions = ["cancel_jobs"]

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        cancelled = sum(services.cancel(job) for job in queryset)
        self.message_user(request, f"{cancelled} job(s) cancelled", messages.SUCCESS)
