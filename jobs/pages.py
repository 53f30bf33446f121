"""The generate page (HTML). It renders the form; the page script tokenizes as you type, posts
the settings to ``POST /api/v1/graphs/generate`` and follows the job over its websocket, or, in
batch mode, posts a list of prompts to ``POST /api/v1/graphs/generate-batch`` and opens the
batch on My jobs (``/me/jobs?batch=<id>``). The
ranges, defaults and descriptions of the settings are the contract's (``contract.params``), as
the API's are; the API validates."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from contract.params import AttributeParams
from core.visibility import Visibility
from features.models import LanguageModel
from graphs.models import Graph
from jobs import services
from jobs.models import Job

ADVANCED = [
    "max_n_logits",
    "desired_logit_prob",
    "max_feature_nodes",
    "node_threshold",
    "edge_threshold",
    "batch_size",
]


def _setting(name: str) -> forms.Field:
    """A number field for ``AttributeParams``' setting ``name``: its bounds, its default, and a
    help text that says them."""
    spec = AttributeParams.spec(name)
    integer = isinstance(spec.low, int) and not isinstance(spec.default, float)
    field_class = forms.IntegerField if integer else forms.FloatField
    attrs = {"min": spec.low, "max": spec.high, "step": 1 if integer else 0.01}
    default = "the worker's" if spec.default is None else f"{spec.default:g}"
    separator = ": " if spec.default is None else " "
    bounds: dict[str, Any] = {"min_value": spec.low, "max_value": spec.high}
    return field_class(
        required=spec.default is not None,
        initial=spec.default,
        **bounds,
        widget=forms.NumberInput(attrs={k: f"{v:g}" for k, v in attrs.items() if v is not None}),
        help_text=f"{spec.range_text()}, default{separator}{default}. {spec.doc}",
    )


class GenerateForm(forms.Form):
    model = forms.ChoiceField()
    transcoder_set = forms.ChoiceField(required=False, label="Transcoder set")
    prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        max_length=settings.JOBS_MAX_PROMPT_CHARS,
        help_text="The graph explains the model's prediction of the next token.",
    )
    mode = forms.ChoiceField(
        label="Generate",
        choices=[("one", "one graph"), ("batch", "a batch: one graph per prompt")],
        initial="one",
        widget=forms.RadioSelect,
        required=False,
    )
    prompts = forms.CharField(
        required=False,
        label="Prompts",
        widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}),
        help_text=f"One prompt per line, at most {settings.JOBS_BATCH_MAX_PROMPTS}; blank lines "
        "are skipped. Every prompt gets the same settings.",
    )
    prompts_file = forms.FileField(
        required=False,
        label="Or read the prompts from a text file",
        widget=forms.ClearableFileInput(attrs={"accept": ".txt,text/plain"}),
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
    max_n_logits = _setting("max_n_logits")
    desired_logit_prob = _setting("desired_logit_prob")
    max_feature_nodes = _setting("max_feature_nodes")
    node_threshold = _setting("node_threshold")
    edge_threshold = _setting("edge_threshold")
    batch_size = _setting("batch_size")

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
        names = ["model", "transcoder_set", "mode", "prompt", "prompts", "prompts_file", "title"]
        return [self[name] for name in [*names, "visibility"]]

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
    # A NUL can be in no stored slug (and Postgres refuses it in a query): such a ref is no graph.
    if (ref := request.GET.get("remix", "")[:300]) and "\x00" not in ref:
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
        "batch_url": reverse("api-generate-batch"),
        "jobs_url": reverse("my-jobs"),
        "batch_max_prompts": settings.JOBS_BATCH_MAX_PROMPTS,
        "max_prompt_chars": settings.JOBS_MAX_PROMPT_CHARS,
        "remixed": bool(ref and initial),
    }
    return render(request, "jobs/generate.html", context)


JOBS_SHOWN = 100


@login_required
def my_jobs(request: HttpRequest) -> HttpResponse:
    """Your jobs, newest first: status, phase, the failure message; cancel or re-run.

    ``?batch=<id>``: only that batch's jobs, in submission order, with its counts; the page
    script follows them from ``GET /api/v1/batches/<id>`` while any is queued or running."""
    mine = Job.objects.filter(owner_id=request.user.pk).select_related("model", "graph__model")
    batch = _batch_id(request.GET.get("batch"))
    if batch is None:
        jobs = list(mine.order_by("-created_at")[:JOBS_SHOWN])
        return render(request, "jobs/jobs.html", {"jobs": jobs})
    # A batch holds at most JOBS_BATCH_MAX_PROMPTS jobs: all of them are shown.
    jobs = [services.refresh_if_stale(job) for job in mine.in_batch(batch).order_by("created_at")]
    if not jobs:
        raise Http404("no such batch")
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.get_status_display()] = counts.get(job.get_status_display(), 0) + 1
    context = {
        "jobs": jobs,
        "batch_id": batch,
        "batch_url": reverse("api-batch", args=[batch]),
        "batch_counts": counts,
        "batch_active": any(job.status in Job.ACTIVE for job in jobs),
    }
    return render(request, "jobs/jobs.html", context)


def _batch_id(raw: str | None) -> uuid.UUID | None:
    """The ``batch`` query parameter as a batch id; a malformed one names no batch (404)."""
    if raw is None:
        return None
    try:
        return uuid.UUID(raw[:100])
    except ValueError:
        raise Http404("no such batch") from None


def _own_job(request: HttpRequest, pk: str) -> Job:
    return get_object_or_404(Job, pk=pk, owner_id=request.user.pk)


@login_required
@require_POST
def job_cancel(request: HttpRequest, pk: str) -> HttpResponse:
    services.cancel(_own_job(request, pk))  # a finished job stays as it finished
    # Back to the page it was cancelled from (a batch's), never to another site.
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("my-jobs")


@login_required
@require_POST
def job_rerun(request: HttpRequest, pk: str) -> HttpResponse:
    """Queue a failed or cancelled graph generation again with the same settings (a new job;
    without its slug, which a graph may hold by now)."""
    job = _own_job(request, pk)
    if job.kind == Job.Kind.ATTRIBUTION and job.status in (Job.Status.FAILED, Job.Status.CANCELLED):
        params = {k: v for k, v in job.params.items() if k not in ("prompt", "slug")}
        # At the per-user limit nothing is queued; the list shows the jobs that fill it.
        with contextlib.suppress(services.TooManyJobs):
            services.create_attribution_jobs(
                owner=job.owner,
                model=job.model,
                transcoder_set=job.transcoder_set,
                prompts=[job.params["prompt"]],
                params=params,
            )
    return redirect("my-jobs")
