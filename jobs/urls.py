from django.urls import path

from jobs import dashboards, explain, views

urlpatterns = [
    path("graphs/generate", views.GenerateView.as_view(), name="api-generate"),
    path("graphs/generate-batch", views.GenerateBatchView.as_view(), name="api-generate-batch"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="api-job"),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="api-job-cancel"),
    path("batches/<uuid:batch_id>", views.BatchDetailView.as_view(), name="api-batch"),
    path("tokenize", views.TokenizeView.as_view(), name="api-tokenize"),
    path("explain", explain.ExplainView.as_view(), name="api-explain"),
    path(
        "models/<slug:model>/sets/<slug:set_slug>/dashboards",
        dashboards.DashboardsView.as_view(),
        name="api-dashboards",
    ),
]
