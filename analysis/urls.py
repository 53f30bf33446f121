"""The analysis endpoints, mounted under /api/v1/."""

from django.urls import URLPattern, path

from analysis import diff_views, supernode_views

urlpatterns: list[URLPattern] = [
    path("graph-diff", diff_views.GraphDiffView.as_view(), name="api-graph-diff"),
    path(
        "graphs/<slug:model>/<slug:slug>/supernode-suggestions",
        supernode_views.SupernodeSuggestionsView.as_view(),
        name="api-graph-supernode-suggestions",
    ),
]
