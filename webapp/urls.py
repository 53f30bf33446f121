from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from graphs import pages as graph_pages
from webapp import accounts, views
from webapp.health import healthz

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("graphs/<slug:model>/<slug:slug>", graph_pages.explorer, name="graph-explorer"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("features.urls")),
    path("api/v1/", include("graphs.urls")),
    path("api/v1/", include("jobs.urls")),
    path("api/v1/", include("webapp.token_views")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
