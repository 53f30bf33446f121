"""The generate page (HTML). It renders the form; the page script tokenizes as you type, posts
the settings to ``POST /api/v1/graphs/generate`` and follows the job over its websocket. The
ranges and defaults below are the API's (jobs/serializers.py); the API validates."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from core.visibility import Visibility
from features.models import LanguageModel
from graphs.models import Graph

ADVANCED = [
    "max_n_logits",
    "desired_logit_prob",
    "max_feature_nodes",
    "node_threshold",
    "edge_threshold",
    "batch_size",
]


def _number(**attrs: Any) -> forms.NumberInput:
    return forms.NumberInput(attrs={k: str(v) for k, v in attrs.items()})


class GenerateForm(forms.Form):
    model = forms.ChoiceField()
    transcoder_set = forms.ChoiceField(required=False, label="Transcoder set")
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        max_length=settings.JOBS_MAX_PROMPT_CHARS,
        help_text="The graph explains the model's prediction of the next token.",
    )
    title = forms.CharField(required=False, max_length=200)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)
    target_kind = forms.ChoiceField(
        label="Explain",
        choices=[
            ("top", "the top next tokens"),
            ("tokens", "these output tokens"),
            ("logit_diff", "a logit difference (A minus B)"),
        ],
        initial="top",
    )
    target_tokens = forms.CharField(
        required=False,
        label="Output tokens",
        help_text="Comma-separated; each must be one token, e.g. “ Paris, Paris”.",
    )
    target_a = forms.CharField(required=False, max_length=100, label="Token A")
    target_b = forms.CharField(required=False, max_length=100, label="Token B")
    max_n_logits = forms.IntegerField(
        min_value=1, max_value=50, initial=10, widget=_number(min=1, max=50, step=1),
        help_text="1–50, default 10. At most this many output logits.",
    )  # fmt: skip
    desired_logit_prob = forms.FloatField(
        min_value=0.01, max_value=1.0, initial=0.95, widget=_number(min=0.01, max=1, step=0.01),
        help_text="0.01–1, default 0.95. Keep top logits until their probability sums to this.",
    )  # fmt: skip
    max_feature_nodes = forms.IntegerField(
        min_value=1, initial=5000, widget=_number(min=1, step=1),
        help_text="≥ 1, default 5000. Most influential features kept before pruning.",
    )  # fmt: skip
    node_threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=0.8, widget=_number(min=0, max=1, step=0.01),
        help_text="0–1, default 0.8. Keep nodes up to this share of cumulative influence.",
    )  # fmt: skip
    edge_threshold = forms.FloatField(
        min_value=0.0, max_value=1.0, initial=0.98, widget=_number(min=0, max=1, step=0.01),
        help_text="0–1, default 0.98. Keep edges up to this share of cumulative influence.",
    )  # fmt: skip
    batch_size = forms.IntegerField(
        required=False, min_value=1, max_value=1024, widget=_number(min=1, max=1024, step=1),
        help_text="1–1024, default: the worker's. Backward passes per batch (memory vs speed).",
    )  # fmt: skip

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        models = list(LanguageModel.objects.visible_to(user).prefetch_related("transcoder_sets"))
        self.models = models
        self.fields["model"].choices = [  # type: ignore[attr-defined]
            (m.slug, m.display_name or m.slug) for m in models
        ]
        self.fields["transcoder_set"].choices = [("", "the model's default")] + [  # type: ignore[attr-defined]
            (ts.slug, f"{m.slug} / {ts.display_name or ts.slug}")
            for m in models
            for ts in m.transcoder_sets.all()
        ]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ADVANCED]

    def main_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ["model", "transcoder_set", "prompt", "title", "visibility"]]

    def target_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ["target_kind", "target_tokens", "target_a", "target_b"]]


def _remix_initial(request: HttpRequest, ref: str) -> dict[str, Any]:
    """Initial values from a graph the user may open: ``?remix=<model>/<slug>``."""
    model, _, slug = ref.partition("/")
    graph = (
        Graph.objects.visible_to(request.user)
        .select_related("model", "transcoder_set")
        .filter(model__slug=model, slug=slug)
        .first()
    )
    if graph is None:
        return {}
    initial: dict[str, Any] = {
        "model": graph.model.slug,
        "transcoder_set": graph.transcoder_set.slug if graph.transcoder_set else "",
        "prompt": graph.prompt,
        "title": f"Remix of {graph.title or graph.prompt}"[:200],
    }
    given = graph.generation_settings if isinstance(graph.generation_settings, dict) else {}
    initial.update({k: v for k, v in given.items() if k in ADVANCED and v is not None})
    target = graph.target if isinstance(graph.target, dict) else {}
    if isinstance(target.get("logit_diff"), list) and len(target["logit_diff"]) == 2:
        initial.update(target_kind="logit_diff", target_a=str(target["logit_diff"][0]))
        initial["target_b"] = str(target["logit_diff"][1])
    elif isinstance(target.get("tokens"), list):
        initial.update(target_kind="tokens", target_tokens=", ".join(map(str, target["tokens"])))
    return initial


def generate(request: HttpRequest) -> HttpResponse:
    initial: dict[str, Any] = {}
    if ref := request.GET.get("remix", "")[:300]:
        initial = _remix_initial(request, ref)
    if model := request.GET.get("model"):
        initial.setdefault("model", model[:100])
    if tset := request.GET.get("set"):
        initial.setdefault("transcoder_set", tset[:100])
    form = GenerateForm(initial=initial, user=request.user)
    context = {
        "form": form,
        "generate_url": reverse("api-generate"),
        "tokenize_url": reverse("api-tokenize"),
        "remixed": bool(ref and initial),
    }
    return render(request, "jobs/generate.html", context)
