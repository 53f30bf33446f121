"""The feature page (HTML): explanations, dashboard and the graphs that contain the feature.

It shows features and the graphs they appear in, so it lives in the site, above both apps
(features sits below graphs in the layers). The REST API lives in features/views.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from features.models import Explanation, Feature
from graphs.models import Graph, GraphNode

GRAPHS_SHOWN = 50
EXAMPLES_SHOWN = 20


class ExplanationForm(forms.Form):
    text = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Your explanation",
        help_text="Plain text, shown with your name. What does this feature respond to?",
    )

    def clean_text(self) -> str:
        text: str = " ".join(self.cleaned_data["text"].split())
        if not text:
            raise forms.ValidationError("Write a few words.")
        return text


def _highlight(tokens: list[str], values: list[float], top: float) -> list[dict[str, Any]]:
    """Each token with its activation as an opacity in [0, 1] (the template draws the colour)."""
    scale = top if top > 0 else 1.0
    return [
        {"text": t, "value": v, "alpha": round(max(0.0, min(1.0, v / scale)), 3)}
        for t, v in zip(tokens, values, strict=False)
    ]


def _histogram(feature: Feature) -> dict[str, Any] | None:
    """Bars with their heights (linear, % of the tallest) and activation ranges, and the axes'
    ends: explicit ``{edges, counts}`` bins (``python -m inference dashboards`` writes these,
    from 0), or a bare list of counts spread over [act_min, act_max]."""
    raw = feature.histogram
    edges: list[float] = []
    counts = raw
    if isinstance(raw, dict):
        counts = raw.get("counts") or raw.get("y") or []
        edges = [float(e) for e in raw.get("edges") or [] if isinstance(e, int | float)]
    if not isinstance(counts, list) or not counts:
        return None
    numbers = [float(c) if isinstance(c, int | float) else 0.0 for c in counts][:200]
    if len(edges) != len(numbers) + 1:
        lo, hi = feature.act_min or 0.0, feature.act_max or 0.0
        edges = [lo + (hi - lo) * k / len(numbers) for k in range(len(numbers) + 1)]
    top = max(numbers) or 1.0
    bins = [
        {"count": c, "height": round(100 * c / top, 1), "lo": edges[k], "hi": edges[k + 1]}
        for k, c in enumerate(numbers)
    ]
    return {"bins": bins, "lo": edges[0], "hi": edges[-1], "peak": max(numbers)}


def _logits(tokens: list[str], values: list[float]) -> list[dict[str, Any]]:
    """Output tokens with their values (None where the import had none)."""
    known = values if len(values) == len(tokens) else []
    return [{"token": t, "value": known[k] if known else None} for k, t in enumerate(tokens[:12])]


def _graphs_with(request: HttpRequest, feature: Feature) -> list[dict[str, Any]]:
    """Graphs the user may list that contain the feature, most influential node first."""
    nodes = (
        GraphNode.objects.filter(
            transcoder_set=feature.transcoder_set, layer=feature.layer, feature_index=feature.index
        )
        .filter(graph__in=Graph.objects.listed_for(request.user))
        .select_related("graph__model")
        .order_by("influence", "graph_id")
    )
    seen: dict[int, dict[str, Any]] = {}
    for node in nodes[: GRAPHS_SHOWN * 4]:
        if node.graph_id in seen or len(seen) >= GRAPHS_SHOWN:
            continue
        graph = node.graph
        url = reverse("graph-explorer", kwargs={"model": graph.model.slug, "slug": graph.slug})
        seen[node.graph_id] = {
            "graph": graph,
            "node": node,
            "url": f"{url}?{urlencode({'clickedId': node.node_id})}",
        }
    return list(seen.values())


@require_http_methods(["GET", "POST"])
def feature_page(
    request: HttpRequest, model: str, set_slug: str, layer: int, index: int
) -> HttpResponse:
    feature = get_object_or_404(
        Feature.objects.visible_to(request.user).select_related("transcoder_set__model"),
        transcoder_set__model__slug=model,
        transcoder_set__slug=set_slug,
        layer=layer,
        index=index,
    )
    form = ExplanationForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if form.is_valid():
            assert isinstance(request.user, User)
            Explanation.objects.create(
                feature=feature, text=form.cleaned_data["text"], author=request.user, method="human"
            )
            return redirect(request.path + "#explanations")
        status = 400
    top = feature.max_activation or feature.act_max or 0.0
    examples = [
        {"example": e, "tokens": _highlight(e.tokens, e.values, top or e.max_value)}
        for e in feature.examples.order_by("rank")[:EXAMPLES_SHOWN]
    ]
    context = {
        "feature": feature,
        "model": feature.transcoder_set.model,
        "tset": feature.transcoder_set,
        "explanations": feature.explanations.select_related("author"),
        "examples": examples,
        "histogram": _histogram(feature),
        "top_logits": _logits(feature.top_logits, feature.top_logits_values),
        "bottom_logits": _logits(feature.bottom_logits, feature.bottom_logits_values),
        "graphs": _graphs_with(request, feature),
        "form": form,
    }
    return render(request, "features/feature.html", context, status=status)
