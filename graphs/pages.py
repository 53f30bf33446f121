"""Page views of the graphs app (HTML). The REST API lives in graphs/views.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from graphs.models import Graph


def explorer(request: HttpRequest, model: str, slug: str) -> HttpResponse:
    """The graph explorer. The page is a shell: the script downloads the graph artifact and
    looks features up through the API, so the same URLs serve the page and other tools."""
    graph = get_object_or_404(
        Graph.objects.visible_to(request.user).select_related("model", "transcoder_set"),
        model__slug=model,
        slug=slug,
    )
    context = {
        "graph": graph,
        "graph_url": reverse("api-graph-artifact", kwargs={"model": model, "slug": slug}),
        "lookup_url": reverse("api-feature-lookup"),
        "transcoder_set": graph.transcoder_set.slug if graph.transcoder_set else "",
    }
    return render(request, "graphs/explorer.html", context)
