from django.urls import path

from steering import views

urlpatterns = [
    path("intervene", views.InterveneView.as_view(), name="api-intervene"),
    path("steer", views.SteerView.as_view(), name="api-steer"),
    path(
        "steering-runs/<uuid:run_id>",
        views.SteeringRunDetailView.as_view(),
        name="api-steering-run",
    ),
    path(
        "steering-runs/<uuid:run_id>/rerun",
        views.SteeringRunRerunView.as_view(),
        name="api-steering-run-rerun",
    ),
    path(
        "graphs/<slug:model>/<slug:slug>/runs", views.GraphRunsView.as_view(), name="api-graph-runs"
    ),
    path(
        "subgraphs/<slug:share_slug>/runs",
        views.SubgraphRunsView.as_view(),
        name="api-subgraph-runs",
    ),
]
