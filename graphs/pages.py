"""Page views of the graphs app (HTML). The REST API lives in graphs/views.py."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from graphs.models import Graph

# Above this many links the page asks for a skeleton (every node, the strongest links) and loads
# the other links of the nodes in focus from the neighbourhood endpoint.
LINKS_ON_DEMAND_ABOVE = 500_000
SKELETON_LINKS = 200_000


def explorer(request: HttpRequest, model: str, slug: str) -> HttpResponse:
    """The graph explorer. The page is a shell: the script downloads the graph artifact and
    looks features up through the API, so the same URLs serve the page and other tools."""
    graph = get_object_or_404(
        Graph.objects.visible_to(request.user).select_related("model", "transcoder_set"),
        model__slug=model,
        slug=slug,
    )
    names = {"model": model, "slug": slug}
    graph_url = reverse("api-graph-artifact", kwargs=names)
    if graph.n_links > LINKS_ON_DEMAND_ABOVE:
        graph_url += f"?max_links={SKELETON_LINKS}"
    context = {
        "graph": graph,
        "graph_url": graph_url,
        "neighbourhood_url": reverse("api-graph-neighbourhood", kwargs=names),
        # The script appends a share slug (?subgraph=<slug> opens a saved subgraph).
        "subgraph_url": reverse("api-subgraph", kwargs={"share_slug": "-"})[:-1],
        "lookup_url": reverse("api-feature-lookup"),
        "transcoder_set": graph.transcoder_set.slug if graph.transcoder_set else "",
    }
    return render(request, "graphs/explorer.html", context)
