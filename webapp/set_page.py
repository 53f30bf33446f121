"""The transcoder set's page (HTML): its layers and how many features have dashboards, and for
staff and the set's owner, the form that starts a dashboards job and follows it.

The form only renders the fields: the page script (frontend/src/site/dashboards.ts) posts them to
``POST /api/v1/models/{model}/sets/{set}/dashboards``, which validates (jobs/dashboards.py), and
follows the job with site/followJob.ts. It shows a set's features and its jobs, so it lives in
the site, above both apps.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from contract.corpus import SUFFIXES
from contract.params import DashboardsParams
from features.models import LanguageModel, TranscoderSet
from jobs.dashboards import active_job
from jobs.models import Job
from jobs.serializers import JobSerializer

RECENT_JOBS = 10
TOP_PER_LAYER = 5  # the strongest features of each layer, linked from the page


class DashboardsForm(forms.Form):
    """The fields of a dashboards request, as the page shows them (the API validates)."""

    corpus_file = forms.FileField(
        required=False,
        label="Upload a corpus",
        widget=forms.ClearableFileInput(attrs={"accept": ",".join(SUFFIXES)}),
    )
    corpus_path = forms.CharField(
        required=False, label="…or a file or folder on the server", max_length=4096
    )
    max_tokens = forms.IntegerField(label="Token budget")
    layers = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every layer.",
    )

    def __init__(self, transcoder_set: TranscoderSet, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = DashboardsParams.spec("max_tokens")
        high = min(int(spec.high or settings.DASHBOARDS_MAX_TOKENS), settings.DASHBOARDS_MAX_TOKENS)
        budget = self.fields["max_tokens"]
        budget.initial = spec.default
        budget.widget.attrs.update({"min": spec.low, "max": high, "step": 1})
        budget.help_text = f"{spec.doc} At most {high:,}."
        layers = self.fields["layers"]
        assert isinstance(layers, forms.MultipleChoiceField)
        layers.choices = [(str(i), str(i)) for i in range(transcoder_set.model.n_layers)]
        upload = self.fields["corpus_file"]
        limit = settings.DASHBOARDS_UPLOAD_MAX_BYTES
        upload.help_text = f"{', '.join(SUFFIXES)}; at most {limit / 2**20:,.0f} MiB."
        roots = ", ".join(str(root) for root in settings.DASHBOARDS_CORPUS_ROOTS) or "none set"
        self.fields["corpus_path"].help_text = f"An absolute path under {roots}."


def _layers(transcoder_set: TranscoderSet) -> list[dict[str, Any]]:
    """Each layer with its stored features and how many have a dashboard (a firing density)."""
    counts: dict[int, dict[str, Any]] = {
        row["layer"]: dict(row)
        for row in transcoder_set.features.values("layer").annotate(
            stored=Count("id"), with_dashboard=Count("id", filter=Q(density__isnull=False))
        )
    }
    model, slug = transcoder_set.model.slug, transcoder_set.slug
    rows = []
    for layer in range(transcoder_set.model.n_layers):
        found = counts.get(layer, {})
        top = (
            transcoder_set.features.filter(layer=layer, max_activation__isnull=False)
            .order_by("-max_activation", "index")
            .values_list("index", flat=True)[:TOP_PER_LAYER]
            if found.get("with_dashboard")
            else []
        )
        rows.append(
            {
                "layer": layer,
                "stored": found.get("stored", 0),
                "with_dashboard": found.get("with_dashboard", 0),
                "top": [
                    {"index": i, "url": reverse("feature-page", args=[model, slug, layer, i])}
                    for i in top
                ],
            }
        )
    return rows


@require_GET
def transcoder_set_page(request: HttpRequest, model: str, set_slug: str) -> HttpResponse:
    found = get_object_or_404(LanguageModel.objects.visible_to(request.user), slug=model)
    transcoder_set = get_object_or_404(
        TranscoderSet.objects.select_related("model", "owner"), model=found, slug=set_slug
    )
    manager = transcoder_set.can_manage(request.user)
    context: dict[str, Any] = {
        "model": found,
        "tset": transcoder_set,
        "layers": _layers(transcoder_set),
        "manager": manager,
    }
    if manager:
        context["form"] = DashboardsForm(transcoder_set)
        context["api_url"] = reverse("api-dashboards", args=[found.slug, transcoder_set.slug])
        active = active_job(transcoder_set)
        context["active"] = active
        # The page script follows a job already under way (docs: site/followJob.ts).
        context["active_json"] = JobSerializer(active).data if active is not None else None
        context["jobs"] = (
            Job.objects.filter(kind=Job.Kind.DASHBOARDS, transcoder_set=transcoder_set)
            .select_related("owner")
            .order_by("-created_at")[:RECENT_JOBS]
        )
    return render(request, "site/transcoder_set.html", context)
