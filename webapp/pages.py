"""Site pages (HTML) that belong to no single app: home and search, my graphs, profile, API
tokens, and the friendly error pages. The REST API lives in the apps' views.py."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import loader
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from core.api import error_body
from core.visibility import Visibility
from features.keys import parse_short
from features.models import Explanation, Feature, LanguageModel
from graphs import services as graph_services
from graphs.models import Graph, GraphNode, Subgraph
from webapp.auth import create_token, revoke_token
from webapp.models import ApiToken

LIST_SIZE = 12
SEARCH_RESULTS = 20


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    listed = Graph.objects.listed_for(user).select_related("model", "owner")
    # "Recent public" leaves out your own graphs and the featured ones (both listed above);
    # ownerless ones stay in.
    others = listed.exclude(owner_id=user.pk) if user.is_authenticated else listed
    others = others.exclude(featured=True)
    context = {
        "models": LanguageModel.objects.listed_for(user).prefetch_related("transcoder_sets"),
        "featured": listed.filter(featured=True)[:LIST_SIZE],
        "mine": Graph.objects.owned_by(user).select_related("model")[:LIST_SIZE],
        "recent": others.filter(visibility=Visibility.PUBLIC)[:LIST_SIZE],
    }
    return render(request, "site/home.html", context)


def search(request: HttpRequest) -> HttpResponse:
    """Graphs by prompt or title, features by explanation text or ``L12/3456``."""
    # NUL characters are dropped: no stored text can hold one (Postgres refuses them, which would
    # be a 500), so they can be part of no match, and the rest of the words still search.
    q = request.GET.get("q", "").replace("\x00", "").strip()[:200]
    graphs: list[Graph] = []
    features: list[Feature] = []
    if q:
        short = parse_short(q)
        matching = Q(prompt__icontains=q) | Q(title__icontains=q)
        if short is not None:
            # L12/3456 also finds the graphs that contain such a feature (in any set).
            nodes = GraphNode.objects.filter(layer=short[0], feature_index=short[1])
            matching |= Q(id__in=nodes.values("graph_id"))
        graphs = list(
            Graph.objects.listed_for(request.user)
            .filter(matching)
            .select_related("model", "owner")[:SEARCH_RESULTS]
        )
        visible = Feature.objects.visible_to(request.user).select_related("transcoder_set__model")
        if short is not None:
            features = list(visible.filter(layer=short[0], index=short[1])[:SEARCH_RESULTS])
        else:
            hits = Explanation.objects.search(q).values_list("feature_id", flat=True)
            order = list(dict.fromkeys(hits[: SEARCH_RESULTS * 3]))  # best explanation first
            found = {f.pk: f for f in visible.filter(id__in=order)}
            features = [found[i] for i in order if i in found][:SEARCH_RESULTS]
    return render(request, "site/search.html", {"q": q, "graphs": graphs, "features": features})


class VisibilityForm(forms.Form):
    visibility = forms.ChoiceField(choices=Visibility.choices)


@login_required
def my_graphs(request: HttpRequest) -> HttpResponse:
    graphs = Graph.objects.owned_by(request.user).select_related("model", "transcoder_set")
    return render(
        request, "site/my_graphs.html", {"graphs": graphs, "visibilities": Visibility.choices}
    )


def _own_graph(request: HttpRequest, pk: int) -> Graph:
    graph = get_object_or_404(Graph.objects.visible_to(request.user), pk=pk)
    if not graph.can_edit(request.user):
        # Someone else's graph: as if it were not there.
        raise Http404("No such graph.")
    return graph


@login_required
@require_POST
def graph_visibility(request: HttpRequest, pk: int) -> HttpResponse:
    graph = _own_graph(request, pk)
    form = VisibilityForm(request.POST)
    if form.is_valid():
        graph.visibility = form.cleaned_data["visibility"]
        graph.save(update_fields=["visibility"])
    return redirect("my-graphs")


@login_required
@require_http_methods(["GET", "POST"])
def graph_delete(request: HttpRequest, pk: int) -> HttpResponse:
    graph = _own_graph(request, pk)
    if request.method == "POST":
        graph_services.delete_graph(graph)
        return redirect("my-graphs")
    return render(request, "site/graph_delete.html", {"graph": graph})


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        "graphs": Graph.objects.owned_by(user).select_related("model")[:50],
        "subgraphs": Subgraph.objects.filter(owner_id=user.pk).select_related("graph__model")[:50],
        "explanations": Explanation.objects.filter(author_id=user.pk)
        .select_related("feature__transcoder_set__model")
        .order_by("-created_at")[:50],
    }
    return render(request, "site/profile.html", context)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. “notebook”.")

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A token needs a name.")
        return name


_NEW_TOKEN = "new_api_token"


@never_cache  # a new token is in the page once; no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """Create a token with POST, then redirect: a refresh of the page that shows the new token
    must not post again (a second token). The token travels to that page in the session, which
    hands it out once."""
    assert isinstance(request.user, User)
    form = TokenForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            _, request.session[_NEW_TOKEN] = create_token(request.user, form.cleaned_data["name"])
            return redirect("tokens")
        status = 400
    new_token = request.session.pop(_NEW_TOKEN, "")
    rows = ApiToken.objects.filter(user=request.user).order_by("revoked_at", "-created_at")
    context = {"form": form, "tokens": rows, "new_token": new_token, "now": timezone.now()}
    return render(request, "site/tokens.html", context, status=status)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(ApiToken, pk=pk, user_id=request.user.pk)
    if row.revoked_at is None:
        revoke_token(row)
    return redirect("tokens")


def _is_api(request: HttpRequest) -> bool:
    """API clients get the API's JSON error shape even where no API view ran."""
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(f"no API route {request.path}"), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        # The details are in the server's log, not for the client.
        return JsonResponse(error_body("internal server error"), status=500)
    # A plain template without context processors: the database may be what failed.
    return HttpResponse(loader.get_template("500.html").render(), status=500)
