from django.contrib import admin

from webapp.models import ApiToken, WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "queue", "pid", "last_seen")
    ordering = ("-last_seen",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    # The digest is useless to a person and the token itself is never stored.
    readonly_fields = ("prefix", "digest", "created_at", "last_used_at")
