from django.urls import path

from features import views

_FEATURE = "features/<slug:model>/<slug:set_slug>/<int:layer>/<int:index>"

urlpatterns = [
    path("models", views.ModelListView.as_view(), name="api-models"),
    path("models/<slug:slug>", views.ModelDetailView.as_view(), name="api-model"),
    path("features/lookup", views.FeatureLookupView.as_view(), name="api-feature-lookup"),
    path("features/search", views.FeatureSearchView.as_view(), name="api-feature-search"),
    path(_FEATURE, views.FeatureDetailView.as_view(), name="api-feature"),
    path(
        f"{_FEATURE}/explanations",
        views.ExplanationCreateView.as_view(),
        name="api-feature-explanations",
    ),
]
