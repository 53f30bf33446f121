from django.urls import path

from graphs import views

_GRAPH = "graphs/<slug:model>/<slug:slug>"

urlpatterns = [
    path("graphs", views.GraphListView.as_view(), name="api-graphs"),
    path(_GRAPH, views.GraphDetailView.as_view(), name="api-graph"),
    path(f"{_GRAPH}/artifact", views.GraphArtifactView.as_view(), name="api-graph-artifact"),
    path(
        f"{_GRAPH}/artifact/binary",
        views.GraphArtifactBinaryView.as_view(),
        name="api-graph-artifact-binary",
    ),
    path(
        f"{_GRAPH}/neighbourhood",
        views.GraphNeighbourhoodView.as_view(),
        name="api-graph-neighbourhood",
    ),
    path(f"{_GRAPH}/subgraphs", views.GraphSubgraphsView.as_view(), name="api-graph-subgraphs"),
    path("subgraphs/<slug:share_slug>", views.SubgraphDetailView.as_view(), name="api-subgraph"),
    path(
        "features/<slug:model>/<slug:set_slug>/<int:layer>/<int:index>/graphs",
        views.FeatureGraphsView.as_view(),
        name="api-feature-graphs",
    ),
]
