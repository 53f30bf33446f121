"""The site's pages through Django's test client: who sees what (alice owns, bob has an
unlisted link, charlie has no access), forms with inline errors, CSRF, escaping."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from features.models import Feature
from graphs.models import Graph, Subgraph
from tests.site.conftest import browser, graph_for
from webapp.models import ApiToken
from webapp.pages import server_error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("model")]


def page(client: Client, url: str) -> tuple[int, str]:
    response = client.get(url)
    return response.status_code, response.content.decode()


def test_home_lists_models_your_graphs_and_public_ones_but_not_others_unlisted(
    alice: User, bob: User, model: object
) -> None:
    graph_for(alice, "mine-private", "private", label="x")
    graph_for(bob, "bobs-public", "public")
    graph_for(bob, "bobs-unlisted", "unlisted")
    status, html = page(browser(alice), "/")
    assert status == 200
    assert "/graphs/tiny/mine-private" in html
    assert "/graphs/tiny/bobs-public" in html
    assert "/graphs/tiny/bobs-unlisted" not in html
    assert "Tiny" in html
    _, anonymous = page(Client(), "/")
    assert "/graphs/tiny/mine-private" not in anonymous
    assert "/graphs/tiny/bobs-public" in anonymous
    graph_for(None, "ownerless", "public")  # e.g. the demo pack's graphs
    assert "/graphs/tiny/ownerless" in page(Client(), "/")[1]


def test_home_lists_a_featured_graph_once_under_featured_not_again_under_recent(
    bob: User,
) -> None:
    graph_for(bob, "star", "public").__class__.objects.filter(slug="star").update(featured=True)
    graph_for(bob, "plain", "public")
    html = page(Client(), "/")[1]
    assert html.count("/graphs/tiny/star") == 1
    featured, recent = html.split("Recent public graphs")
    assert "/graphs/tiny/star" in featured
    assert "/graphs/tiny/plain" in recent


def test_search_finds_graphs_by_prompt_and_features_by_text_or_key(
    alice: User, feature: Feature
) -> None:
    graph_for(alice, "cat", "public")
    _, html = page(Client(), "/search?q=cat")
    assert "/graphs/tiny/cat" in html
    _, html = page(Client(), "/search?q=L2/42")
    assert "/features/tiny/plt/2/42" in html
    assert "/graphs/tiny/cat" in html  # the graph contains L2/42
    _, html = page(Client(), "/search?q=kittens")
    assert "/features/tiny/plt/2/42" in html
    assert "cats &lt;b&gt;and&lt;/b&gt; kittens" in html


def test_a_private_graph_is_a_friendly_404_to_charlie_and_unlisted_opens_for_bob(
    alice: User, bob: User, charlie: User
) -> None:
    graph_for(alice, "secret", "private")
    graph_for(alice, "linked", "unlisted")
    assert page(browser(alice), "/graphs/tiny/secret")[0] == 200
    status, html = page(browser(charlie), "/graphs/tiny/secret")
    assert status == 404
    assert "Nothing here" in html
    assert page(browser(bob), "/graphs/tiny/linked")[0] == 200
    assert page(Client(), "/graphs/tiny/linked")[0] == 200


def test_an_embed_has_no_site_chrome_and_may_be_framed(alice: User) -> None:
    graph_for(alice, "cat", "public")
    response = Client().get("/graphs/tiny/cat?embed=1")
    html = response.content.decode()
    assert 'class="site-header"' not in html
    assert "saved-subgraphs" not in html
    assert "X-Frame-Options" not in response.headers
    assert "X-Frame-Options" in Client().get("/graphs/tiny/cat").headers


def test_my_graphs_changes_visibility_and_deletes_after_confirmation(alice: User) -> None:
    graph = graph_for(alice, "cat", "private")
    client = browser(alice)
    status, html = page(client, "/me/graphs")
    assert status == 200
    assert "/graphs/tiny/cat" in html
    client.post(f"/me/graphs/{graph.pk}/visibility", {"visibility": "public"})
    graph.refresh_from_db()
    assert graph.visibility == "public"
    status, html = page(client, f"/me/graphs/{graph.pk}/delete")
    assert "cannot be undone" in html
    assert Graph.objects.filter(pk=graph.pk).exists()
    assert client.post(f"/me/graphs/{graph.pk}/delete").status_code == 302
    assert not Graph.objects.filter(pk=graph.pk).exists()


def test_nobody_else_can_change_or_delete_alices_graph(alice: User, bob: User) -> None:
    graph = graph_for(alice, "cat", "public")
    client = browser(bob)
    assert (
        client.post(f"/me/graphs/{graph.pk}/visibility", {"visibility": "private"}).status_code
        == 404
    )
    assert client.post(f"/me/graphs/{graph.pk}/delete").status_code == 404
    graph.refresh_from_db()
    assert graph.visibility == "public"
    assert Client().get("/me/graphs").status_code == 302  # to the login page


def test_page_forms_refuse_a_post_without_the_csrf_token(alice: User) -> None:
    graph = graph_for(alice, "cat", "private")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(f"/me/graphs/{graph.pk}/delete").status_code == 403
    assert client.post("/me/tokens", {"name": "x"}).status_code == 403
    assert Graph.objects.filter(pk=graph.pk).exists()


def test_the_feature_page_shows_the_dashboard_and_the_graphs_with_the_node_selected(
    alice: User, feature: Feature
) -> None:
    graph_for(alice, "cat", "public")
    graph_for(alice, "hidden", "private")
    status, html = page(Client(), "/features/tiny/plt/2/42")
    # The breadcrumb's model leads to it on the home page's list, its set to the set's page.
    assert '<a href="/#model-tiny">Tiny</a>' in html
    assert '<a href="/features/tiny/plt">plt</a>' in html
    home = page(Client(), "/")[1]
    assert 'id="model-tiny"' in home
    assert 'id="set-tiny-plt"' in home
    assert status == 200
    assert "cats &lt;b&gt;and&lt;/b&gt; kittens" in html
    assert "/graphs/tiny/cat?clickedId=2_42_2" in html
    assert "/graphs/tiny/hidden" not in html
    assert "Log in</a> to add an explanation" in html
    assert "--a: 1.0" in html  # the top token highlighted fully
    assert page(Client(), "/features/tiny/plt/2/43")[0] == 404


def test_the_feature_page_shows_output_token_values_and_a_labelled_histogram(
    feature: Feature,
) -> None:
    feature.top_logits_values = [1.5, 0.75]
    feature.histogram = {"edges": [0.0, 1.0, 2.0, 3.0], "counts": [7, 2, 1]}
    feature.save(update_fields=["top_logits_values", "histogram"])
    _, html = page(Client(), "/features/tiny/plt/2/42")
    assert '<code> mat</code> <span class="logit-value">1.50</span>' in html
    assert "<code> sky</code></li>" in html  # no value stored for it: none shown
    # x from the bins' own edges (0 to 3, not act_min..act_max), y up to the tallest count.
    assert '<span>0.00</span><span class="axis-title">activation</span><span>3.00</span>' in html
    assert '<span>7</span><span class="axis-title">tokens</span><span>0</span>' in html
    assert 'title="1.000–2.000: 2 tokens"' in html


def test_adding_an_explanation_shows_errors_inline_and_attributes_it(
    bob: User, feature: Feature
) -> None:
    client = browser(bob)
    response = client.post("/features/tiny/plt/2/42", {"text": "   "})
    assert response.status_code == 400
    assert 'id="id_text-errors"' in response.content.decode()
    response = client.post("/features/tiny/plt/2/42", {"text": "<script>x</script> cats"})
    assert response.status_code == 302
    _, html = page(client, "/features/tiny/plt/2/42")
    assert "&lt;script&gt;x&lt;/script&gt; cats" in html
    assert feature.explanations.get(author=bob).method == "human"
    anonymous = Client().post("/features/tiny/plt/2/42", {"text": "anon"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/")
    assert not feature.explanations.filter(text="anon").exists()


def test_a_token_is_shown_once_and_can_be_revoked_by_its_owner_only(alice: User, bob: User) -> None:
    client = browser(alice)
    response = client.post("/me/tokens", {"name": " "})
    assert response.status_code == 400
    assert 'id="id_name-errors"' in response.content.decode()
    created = client.post("/me/tokens", {"name": "notebook"})
    assert (created.status_code, created["Location"]) == (302, "/me/tokens")
    shown = client.get("/me/tokens")
    assert "no-store" in shown["Cache-Control"]
    html = shown.content.decode()
    row = ApiToken.objects.get(user=alice)
    assert 'id="new-token"' in html
    assert row.prefix in html
    assert 'id="new-token"' not in page(client, "/me/tokens")[1]
    assert ApiToken.objects.filter(user=alice).count() == 1  # reloading made no second token
    assert browser(bob).post(f"/me/tokens/{row.pk}/revoke").status_code == 404
    client.post(f"/me/tokens/{row.pk}/revoke")
    row.refresh_from_db()
    assert row.revoked_at is not None


def test_the_profile_lists_graphs_subgraphs_and_explanations(alice: User, feature: Feature) -> None:
    graph = graph_for(alice, "cat", "private")
    Subgraph.objects.create(graph=graph, owner=alice, title="<em>pair</em>")
    status, html = page(browser(alice), "/me/")
    assert status == 200
    assert "/graphs/tiny/cat" in html
    assert "&lt;em&gt;pair&lt;/em&gt;" in html


def test_generate_remixes_a_graph_the_user_may_open_only(alice: User, charlie: User) -> None:
    graph = graph_for(alice, "cat", "private")
    graph.generation_settings = {"max_n_logits": 7, "node_threshold": 0.6}
    graph.target = {"logit_diff": [" mat", " rug"]}
    graph.save(update_fields=["generation_settings", "target"])
    _, html = page(browser(alice), "/generate?remix=tiny/cat")
    assert 'name="max_n_logits" value="7"' in html
    assert 'value=" mat"' in html
    assert "Prefilled" in html
    _, html = page(browser(charlie), "/generate?remix=tiny/cat")
    assert "Prefilled" not in html
    assert 'value="7"' not in html


def test_upload_and_generate_pages_render_for_a_signed_in_user(alice: User, model: object) -> None:
    status, html = page(browser(alice), "/upload")
    assert status == 200
    assert 'data-api-url="/api/v1/graphs"' in html
    status, html = page(browser(alice), "/generate")
    assert status == 200
    assert 'data-tokenize-url="/api/v1/tokenize"' in html
    assert "0.01–1, default 0.95" in html


def test_the_500_page_renders_without_the_database() -> None:
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert b"Something went wrong" in response.content
