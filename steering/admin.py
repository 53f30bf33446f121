from django.contrib import admin

from steering.models import SteeringRun


@admin.register(SteeringRun)
class SteeringRunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "model", "owner", "visibility", "graph", "created_at")
    list_filter = ("kind", "visibility", "model")
    search_fields = ("id", "title", "prompt", "owner__username")
    raw_id_fields = ("owner", "graph", "subgraph", "job", "rerun_of")
    readonly_fields = ("id", "created_at", "result")
