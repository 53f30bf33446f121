"""Page views of the graphs app (HTML). The REST API lives in graphs/views.py."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from core.visibility import Visibility
from features.models import LanguageModel
from graphs.models import Graph

# Above this many links the page's JSON is a skeleton (every node, the strongest links), and the
# other links of the nodes in focus come from the neighbourhood endpoint.
LINKS_ON_DEMAND_ABOVE = 500_000
SKELETON_LINKS = 200_000
# Up to this many links the page reads the whole graph from its binary sidecar all the same, the
# skeleton being only its fallback: from the sidecar a 2,000,000-link graph opens in about 1.5 s
# in a tab under 500 MB (docs/explorer.md), where its JSON took 3-4 s.
WHOLE_FROM_SIDECAR_UP_TO = 2_000_000

# The scores a graph may carry (Graph.scores, from the engine's pruning or the file's metadata),
# shown on its page with what they measure.
SCORES = [
    (
        "replacement_score",
        "replacement",
        "Share of the influence on the logits that traces back to the prompt's tokens rather "
        "than ending in error nodes (1: the features explain it all).",
    ),
    (
        "completeness_score",
        "completeness",
        "Share of each node's input that comes from other nodes rather than error nodes, "
        "weighted by its influence on the logits (1: no error input at all).",
    ),
]


def _scores(graph: Graph) -> list[dict[str, Any]]:
    scores = graph.scores if isinstance(graph.scores, dict) else {}
    return [
        {"name": name, "value": scores[key], "help": help}
        for key, name, help in SCORES
        if isinstance(scores.get(key), int | float) and not isinstance(scores.get(key), bool)
    ]


def _feature_page_prefix(graph: Graph) -> str:
    if graph.transcoder_set is None:
        return ""
    names = {"model": graph.model.slug, "set_slug": graph.transcoder_set.slug}
    return reverse("feature-page", kwargs={**names, "layer": 0, "index": 0}).removesuffix("0/0")


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
    # The page reads the binary sidecar of the whole graph, and the JSON if that fails; a graph
    # too big for either whole has only its skeleton's JSON (the strongest links), which has no
    # sidecar.
    graph_binary_url = reverse("api-graph-artifact-binary", kwargs=names)
    if graph.n_links > LINKS_ON_DEMAND_ABOVE:
        graph_url += f"?max_links={SKELETON_LINKS}"
    if graph.n_links > WHOLE_FROM_SIDECAR_UP_TO:
        graph_binary_url = ""
    context = {
        "graph": graph,
        "graph_url": graph_url,
        "graph_binary_url": graph_binary_url,
        "neighbourhood_url": reverse("api-graph-neighbourhood", kwargs=names),
        # The script appends a share slug (?subgraph=<slug> opens a saved subgraph).
        "subgraph_url": reverse("api-subgraph", kwargs={"share_slug": "-"})[:-1],
        "lookup_url": reverse("api-feature-lookup"),
        "transcoder_set": graph.transcoder_set.slug if graph.transcoder_set else "",
        # The script appends "<layer>/<index>" to link a node to its feature's page.
        "feature_page_prefix": _feature_page_prefix(graph),
        "subgraphs_url": reverse("api-graph-subgraphs", kwargs=names),
        # The Test panel: interventions and steering (steering/), and the runs made on this
        # graph; the script puts a share slug in place of "-" for a saved subgraph's runs.
        "intervene_url": reverse("api-intervene"),
        "steer_url": reverse("api-steer"),
        # "Explain this graph's features" (jobs/explain.py), for signed-in users.
        "explain_url": reverse("api-explain"),
        "graph_runs_url": reverse("api-graph-runs", kwargs=names),
        "subgraph_runs_url": reverse("api-subgraph-runs", kwargs={"share_slug": "-"}),
        "can_save": request.user.is_authenticated,
        "can_edit": graph.can_edit(request.user),
        "graph_api_url": reverse("api-graph", kwargs=names),
        "scores": _scores(graph),
        "embed": request.GET.get("embed") == "1",
        "visibilities": Visibility.choices,
    }
    response = render(request, "graphs/explorer.html", context)
    if context["embed"]:
        # Embeds are meant to be framed by other sites (the graph must be unlisted or public).
        response.xframe_options_exempt = True
    return response


class UploadForm(forms.Form):
    """The upload page's fields. The page posts them to the API (``POST /api/v1/graphs``) with
    a progress bar; this form only renders them, and the API validates."""

    file = forms.FileField(
        label="Graph file",
        help_text="circuit-tracer or Neuronpedia graph JSON (optionally gzipped).",
        widget=forms.ClearableFileInput(attrs={"accept": ".json,.gz,application/json"}),
    )
    model = forms.ChoiceField(required=False, help_text="Default: the file's metadata.scan.")
    title = forms.CharField(required=False, max_length=200)
    slug = forms.SlugField(
        required=False, max_length=100, help_text="Default: metadata.slug or the prompt."
    )
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = LanguageModel.objects.visible_to(user)
        choices = [("", "from the file")] + [(m.slug, m.display_name or m.slug) for m in models]
        cast(forms.ChoiceField, self.fields["model"]).choices = choices


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    context = {
        "form": UploadForm(user=request.user),
        "api_url": reverse("api-graphs"),
        "max_bytes": settings.GRAPH_UPLOAD_MAX_BYTES,
    }
    return render(request, "graphs/upload.html", context)
