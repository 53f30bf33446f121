from django.contrib import admin

from graphs.models import Graph, GraphNode, Subgraph


@admin.register(Graph)
class GraphAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "model",
        "owner",
        "visibility",
        "featured",
        "n_nodes",
        "n_links",
        "created_at",
    )
    list_filter = ("visibility", "featured", "source", "model")
    search_fields = ("slug", "title", "prompt")
    raw_id_fields = ("owner",)
    readonly_fields = ("artifact", "artifact_bytes", "artifact_gzip_bytes", "artifact_sha256")
    list_editable = ("featured",)


@admin.register(GraphNode)
class GraphNodeAdmin(admin.ModelAdmin):
    list_display = ("node_id", "graph", "layer", "feature_index", "position", "influence")
    raw_id_fields = ("graph", "transcoder_set")
    show_full_result_count = False


@admin.register(Subgraph)
class SubgraphAdmin(admin.ModelAdmin):
    list_display = ("title", "graph", "owner", "visibility", "version", "updated_at")
    list_filter = ("visibility",)
    search_fields = ("title", "share_slug")
    raw_id_fields = ("graph", "owner")
