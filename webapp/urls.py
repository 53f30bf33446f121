from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from graphs import pages as graph_pages
from jobs import pages as job_pages
from webapp import accounts, feature_page, pages, set_page
from webapp.health import healthz

urlpatterns = [
    path("", pages.home, name="home"),
    path("search", pages.search, name="search"),
    path("generate", job_pages.generate, name="generate"),
    path("upload", graph_pages.upload, name="upload"),
    path("me/graphs", pages.my_graphs, name="my-graphs"),
    path("me/graphs/<int:pk>/visibility", pages.graph_visibility, name="graph-visibility"),
    path("me/graphs/<int:pk>/delete", pages.graph_delete, name="graph-delete"),
    path("me/", pages.profile, name="profile"),
    path("me/jobs", job_pages.my_jobs, name="my-jobs"),
    path("me/jobs/<uuid:pk>/cancel", job_pages.job_cancel, name="job-cancel"),
    path("me/jobs/<uuid:pk>/rerun", job_pages.job_rerun, name="job-rerun"),
    path("me/tokens", pages.tokens, name="tokens"),
    path("me/tokens/<int:pk>/revoke", pages.token_revoke, name="token-revoke"),
    path(
        "features/<slug:model>/<slug:set_slug>",
        set_page.transcoder_set_page,
        name="transcoder-set-page",
    ),
    path(
        "features/<slug:model>/<slug:set_slug>/<int:layer>/<int:index>",
        feature_page.feature_page,
        name="feature-page",
    ),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("graphs/<slug:model>/<slug:slug>", graph_pages.explorer, name="graph-explorer"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("features.urls")),
    path("api/v1/", include("graphs.urls")),
    path("api/v1/", include("jobs.urls")),
    path("api/v1/", include("steering.urls")),
    path("api/v1/", include("analysis.urls")),
    path("api/v1/", include("webapp.token_views")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "webapp.pages.page_not_found"
handler500 = "webapp.pages.server_error"
