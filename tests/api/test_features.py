"""Features: bulk lookup, single feature, search, explanations, and the import commands."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from contract.node_ids import cantor_pair
from features.models import ActivationExample, Explanation, Feature, LanguageModel
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def dashboard(index: int, *, layer: int | None = None, n_examples: int = 2) -> dict[str, Any]:
    examples = [
        {
            "tokens": ["The", " cat", f" {i}"],
            "tokens_acts_list": [0.0, 1.5 + i, 0.25],
            "train_token_ind": 100 + i,
            "is_repeated_datapoint": False,
        }
        for i in range(n_examples)
    ]
    obj: dict[str, Any] = {
        "index": index,
        "examples_quantiles": [{"quantile_name": "Top activations", "examples": examples}],
        "top_logits": [" cat", " kitten"],
        "bottom_logits": [" dog"],
        "act_min": 0.0,
        "act_max": 3.5,
        "quantile_values": [0.1, 0.5],
        "histogram": [5, 3, 1],
        "activation_frequency": 0.01 * (index % 10),
    }
    if layer is not None:
        obj["layer"] = layer
    return obj


def write_jsonl_gz(path: Path, objects: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt") as handle:
        for obj in objects:
            handle.write(json.dumps(obj) + "\n")
    return path


def import_layers(tmp_path: Path, n: int = 5) -> None:
    folder = tmp_path / "features"
    folder.mkdir(exist_ok=True)
    for layer in range(2):
        write_jsonl_gz(folder / f"layer_{layer}.jsonl.gz", [dashboard(i) for i in range(n)])
    call_command("import_features", folder, model="tiny", set_slug="plt", stdout=io.StringIO())


def key(layer: int, index: int, **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "set": "plt", "layer": layer, "index": index, **extra}


# Imports ------------------------------------------------------------------------------------


def test_import_reads_a_folder_of_gzipped_json_lines_with_layers_from_file_names(
    model: Any, tmp_path: Path
) -> None:
    import_layers(tmp_path)
    assert Feature.objects.count() == 10
    feature = Feature.objects.get(layer=1, index=3)
    assert feature.top_logits == [" cat", " kitten"]
    assert feature.density == pytest.approx(0.03)
    assert feature.max_activation == 3.5
    examples = list(ActivationExample.objects.filter(feature=feature).order_by("rank"))
    assert [e.max_value for e in examples] == [1.5, 2.5]
    assert examples[0].tokens == ["The", " cat", " 0"]
    assert examples[0].max_index == 1


def test_a_rerun_skips_finished_files_and_changes_nothing(model: Any, tmp_path: Path) -> None:
    import_layers(tmp_path)
    out = io.StringIO()
    call_command("import_features", tmp_path / "features", model="tiny", stdout=out)
    assert "2 skipped" in out.getvalue()
    assert Feature.objects.count() == 10
    assert ActivationExample.objects.count() == 20


def test_an_interrupted_import_resumes_without_duplicates(model: Any, tmp_path: Path) -> None:
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [dashboard(i) for i in range(3)])
    call_command("import_features", path, model="tiny", stdout=io.StringIO())
    # The file grew (or was only half-done): the rerun adds only what is missing.
    write_jsonl_gz(path, [dashboard(i) for i in range(6)])
    call_command("import_features", path, model="tiny", stdout=io.StringIO())
    assert Feature.objects.count() == 6
    assert ActivationExample.objects.count() == 12


def test_replace_overwrites_features_but_keeps_their_explanations(
    model: Any, tset: Any, tmp_path: Path
) -> None:
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [dashboard(0)])
    call_command("import_features", path, model="tiny", stdout=io.StringIO())
    feature = Feature.objects.get()
    Explanation.objects.create(feature=feature, text="cats")
    changed = dashboard(0, n_examples=1) | {"top_logits": [" meow"]}
    write_jsonl_gz(path, [changed])
    call_command("import_features", path, model="tiny", replace=True, stdout=io.StringIO())
    feature.refresh_from_db()
    assert feature.top_logits == [" meow"]
    assert ActivationExample.objects.count() == 1
    assert Explanation.objects.count() == 1


def test_output_token_values_are_stored_and_served_and_files_without_them_still_import(
    model: Any, tmp_path: Path
) -> None:
    with_values = dashboard(0) | {
        "top_logits_values": [2.5, 1.25],
        "bottom_logits_values": [-3.0],
    }
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [with_values, dashboard(1)])
    call_command("import_features", path, model="tiny", stdout=io.StringIO())
    assert Feature.objects.get(index=0).top_logits_values == [2.5, 1.25]
    assert Feature.objects.get(index=1).top_logits_values == []  # an older file: no values
    body = (
        client_for(None)
        .post("/api/v1/features/lookup", {"features": [key(0, 0), key(0, 1)]}, format="json")
        .json()
    )
    first, second = body["results"]
    assert first["top_logits"] == [" cat", " kitten"]
    assert first["top_logits_values"] == [2.5, 1.25]
    assert first["bottom_logits_values"] == [-3.0]
    assert second["top_logits_values"] == []
    detail = client_for(None).get("/api/v1/features/tiny/plt/0/0").json()
    assert detail["bottom_logits"] == [" dog"]
    assert detail["bottom_logits_values"] == [-3.0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("top_logits_values", [1.0]), ("bottom_logits_values", ["x"])],
)
def test_output_token_values_that_do_not_fit_their_tokens_are_refused(
    model: Any, tmp_path: Path, field: str, value: Any
) -> None:
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [dashboard(0) | {field: value}])
    with pytest.raises(CommandError, match=rf"layer_0.jsonl:1: {field}"):
        call_command("import_features", path, model="tiny", stdout=io.StringIO())
    assert Feature.objects.count() == 0


def test_import_reads_single_files_gzipped_bundles_and_tarballs(model: Any, tmp_path: Path) -> None:
    single = tmp_path / f"{cantor_pair(2, 9)}.json"  # circuit-tracer names files by Cantor id
    single.write_text(json.dumps(dashboard(9)))
    bundle = tmp_path / "bundle.json.gz"
    bundle.write_bytes(
        gzip.compress(json.dumps([dashboard(1, layer=3), dashboard(2, layer=3)]).encode())
    )
    tarball = tmp_path / "more.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        raw = json.dumps(dashboard(4)).encode()
        info = tarfile.TarInfo("layer_1/4.json")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    for path in (single, bundle, tarball):
        call_command("import_features", path, model="tiny", stdout=io.StringIO())
    keys = set(Feature.objects.values_list("layer", "index"))
    assert keys == {(2, 9), (3, 1), (3, 2), (1, 4)}


def test_a_feature_without_a_known_layer_is_refused_with_a_clear_message(
    model: Any, tmp_path: Path
) -> None:
    path = tmp_path / "features.json"
    path.write_text(json.dumps([dashboard(1)]))
    with pytest.raises(CommandError, match="layer"):
        call_command("import_features", path, model="tiny", stdout=io.StringIO())


def test_a_malformed_dashboard_names_the_line_and_field(model: Any, tmp_path: Path) -> None:
    bad = dashboard(1) | {"top_logits": "cat"}
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [dashboard(0), bad])
    with pytest.raises(CommandError, match=r"layer_0.jsonl:2: top_logits"):
        call_command("import_features", path, model="tiny", stdout=io.StringIO())


def test_a_histogram_with_explicit_bins_is_kept_and_a_mismatched_one_refused(
    model: Any, tmp_path: Path
) -> None:
    bins = {"edges": [0.0, 2.0, 4.0], "counts": [7, 1]}
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [dashboard(0) | {"histogram": bins}])
    call_command("import_features", path, model="tiny", stdout=io.StringIO())
    assert Feature.objects.get().histogram == bins
    bad = dashboard(1) | {"histogram": {"edges": [0.0, 1.0], "counts": [1, 2]}}
    path = write_jsonl_gz(tmp_path / "layer_1.jsonl.gz", [bad])
    with pytest.raises(CommandError, match=r"layer_1.jsonl:1: histogram"):
        call_command("import_features", path, model="tiny", stdout=io.StringIO())


def test_features_outside_the_set_are_refused(model: Any, tmp_path: Path) -> None:
    path = write_jsonl_gz(tmp_path / "layer_9.jsonl.gz", [dashboard(0)])
    with pytest.raises(CommandError, match="outside"):
        call_command("import_features", path, model="tiny", stdout=io.StringIO())


def test_explanations_import_from_json_lines_and_reruns_add_nothing(
    model: Any, tmp_path: Path
) -> None:
    import_layers(tmp_path)
    path = tmp_path / "explanations.jsonl"
    lines = [
        {"layer": 0, "index": 1, "text": "cats and kittens", "score": 0.9},
        {"feature": cantor_pair(1, 2), "text": "dogs", "method": "human"},
        {"layer": 0, "index": 999, "text": "no such feature"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    call_command("import_explanations", path, model="tiny", stdout=io.StringIO())
    call_command("import_explanations", path, model="tiny", stdout=io.StringIO())
    assert Explanation.objects.count() == 2
    assert Explanation.objects.get(text="dogs").feature.layer == 1


def test_register_model_is_idempotent_and_sets_the_default_set(db: Any) -> None:
    args = ["demo", "--n-layers", "2", "--d-model", "8", "--vocab-size", "50"]
    set_args = ["--set", "demo-plt", "--features-per-layer", "64", "--kind", "plt"]
    call_command("register_model", *args, *set_args, stdout=io.StringIO())
    call_command("register_model", *args, *set_args, stdout=io.StringIO())
    model = LanguageModel.objects.get(slug="demo")
    assert model.default_transcoder_set is not None
    assert model.default_transcoder_set.slug == "demo-plt"
    with pytest.raises(CommandError, match="--n-layers"):
        call_command("register_model", "other", stdout=io.StringIO())


# Lookup -------------------------------------------------------------------------------------


def test_lookup_returns_features_in_request_order_and_lists_missing_keys(
    model: Any, tmp_path: Path
) -> None:
    import_layers(tmp_path)
    Explanation.objects.create(feature=Feature.objects.get(layer=1, index=2), text="cats", score=1)
    keys = [key(1, 2), key(0, 4), key(0, 99), {**key(0, 1), "set": "nope"}, key(0, 0)]
    response = client_for(None).post("/api/v1/features/lookup", {"features": keys}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert [(r["layer"], r["index"]) for r in body["results"]] == [(1, 2), (0, 4), (0, 0)]
    assert body["results"][0]["explanations"][0]["text"] == "cats"
    assert body["results"][0]["top_logits"] == [" cat", " kitten"]
    assert "examples" not in body["results"][0]
    assert body["missing"] == [key(0, 99), {**key(0, 1), "set": "nope"}]
    assert "db;dur=" in response["Server-Timing"]


def test_lookup_includes_activations_when_asked(model: Any, tmp_path: Path) -> None:
    import_layers(tmp_path)
    body = (
        client_for(None)
        .post(
            "/api/v1/features/lookup",
            {
                "features": [key(0, 1)],
                "include": ["activations", "histogram"],
                "max_activations": 1,
            },
            format="json",
        )
        .json()
    )
    result = body["results"][0]
    assert len(result["examples"]) == 1
    assert result["examples"][0]["values"] == [0.0, 1.5, 0.25]
    assert result["histogram"] == [5, 3, 1]
    assert "explanations" not in result


def test_lookup_refuses_more_than_10000_keys(model: Any) -> None:
    response = client_for(None).post(
        "/api/v1/features/lookup", {"features": [key(0, 0)] * 10_001}, format="json"
    )
    assert response.status_code == 400
    assert "10,000" in response.json()["detail"]["features"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"features": []}, "features"),
        ({"features": "L0/1"}, "features"),
        ({"features": [{**key(0, 0), "index": "one"}]}, "features[0].index"),
        ({"features": [key(-1, 0)]}, "features[0].layer"),
        ({"features": [{"layer": 0, "index": 0}]}, "features[0].model"),
        ({"features": [key(0, 0)], "include": ["everything"]}, "include"),
        ({"features": [key(0, 0)], "max_activations": 500}, "max_activations"),
    ],
)
def test_malformed_lookups_name_the_field(model: Any, body: Any, field: str) -> None:
    response = client_for(None).post("/api/v1/features/lookup", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["detail"], response.json()


def test_features_of_a_private_model_are_missing_to_others(
    model: Any, tmp_path: Path, alice: Any
) -> None:
    import_layers(tmp_path)
    model.visibility = "private"
    model.save(update_fields=["visibility"])
    body = (
        client_for(alice)
        .post("/api/v1/features/lookup", {"features": [key(0, 1)]}, format="json")
        .json()
    )
    assert body["results"] == []
    assert client_for(alice).get("/api/v1/features/tiny/plt/0/1").status_code == 404
    assert client_for(alice).get("/api/v1/models").json()["results"] == []


def test_one_feature_by_get_has_everything(model: Any, tmp_path: Path) -> None:
    import_layers(tmp_path)
    response = client_for(None).get("/api/v1/features/tiny/plt/1/3")
    assert response.status_code == 200
    body = response.json()
    assert body["layer"] == 1
    assert body["index"] == 3
    assert len(body["examples"]) == 2
    assert body["histogram"] == [5, 3, 1]
    assert client_for(None).get("/api/v1/features/tiny/plt/1/300").status_code == 404


def test_models_list_their_transcoder_sets(model: Any) -> None:
    body = client_for(None).get("/api/v1/models").json()
    assert body["results"][0]["slug"] == "tiny"
    assert body["results"][0]["default_transcoder_set"] == "plt"
    assert body["results"][0]["transcoder_sets"][0]["features_per_layer"] == 1000


# Search and explanations --------------------------------------------------------------------


def test_search_ranks_features_by_explanation_text(model: Any, tmp_path: Path) -> None:
    import_layers(tmp_path)
    Explanation.objects.create(
        feature=Feature.objects.get(layer=0, index=1), text="the Texas state capital"
    )
    Explanation.objects.create(
        feature=Feature.objects.get(layer=1, index=2), text="capitals of states, Texas"
    )
    Explanation.objects.create(feature=Feature.objects.get(layer=1, index=3), text="dogs barking")
    body = client_for(None).get("/api/v1/features/search?q=texas capital").json()
    assert {(r["layer"], r["index"]) for r in body["results"]} == {(0, 1), (1, 2)}
    assert body["results"][0]["explanation"]
    assert body["results"][0]["rank"] > 0


def test_search_filters_by_layer_density_and_top_logit(model: Any, tmp_path: Path) -> None:
    import_layers(tmp_path)
    client = client_for(None)
    body = client.get("/api/v1/features/search?layer=1&min_density=0.015&max_density=0.035").json()
    assert [(r["layer"], r["index"]) for r in body["results"]] == [(1, 2), (1, 3)]
    Feature.objects.filter(layer=0, index=4).update(top_logits=[" Austin"])
    body = client.get("/api/v1/features/search?logit=%20Austin").json()
    assert [(r["layer"], r["index"]) for r in body["results"]] == [(0, 4)]
    assert client.get("/api/v1/features/search?min_density=lots").status_code == 400
    assert client.get("/api/v1/features/search?page_size=3").json()["count"] == 10


def test_signed_in_users_add_attributed_explanations(
    alice: Any, model: Any, tmp_path: Path
) -> None:
    import_layers(tmp_path)
    url = "/api/v1/features/tiny/plt/0/1/explanations"
    assert client_for(None).post(url, {"text": "cats"}, format="json").status_code == 401
    response = client_for(alice).post(url, {"text": "  <b>cats</b>  "}, format="json")
    assert response.status_code == 201
    assert response.json()["author"] == "alice"
    assert response.json()["text"] == "<b>cats</b>"
    assert client_for(alice).post(url, {"text": " "}, format="json").status_code == 400
    assert client_for(None).get(url).json()[0]["text"] == "<b>cats</b>"


def test_tokens_with_quotes_backslashes_tabs_and_nul_survive_the_import(
    model: Any, tmp_path: Path
) -> None:
    tokens = ['"quoted"', "back\\slash", "tab\there", "new\nline", "{brace,comma}", "nul\x00"]
    obj = dashboard(0)
    obj["examples_quantiles"][0]["examples"] = [
        {"tokens": tokens, "tokens_acts_list": [1.0] * len(tokens), "train_token_ind": 0}
    ]
    obj["top_logits"] = ['"', "\\", "\x00x"]
    path = write_jsonl_gz(tmp_path / "layer_0.jsonl.gz", [obj])
    call_command("import_features", path, model="tiny", stdout=io.StringIO())
    stored = ActivationExample.objects.get()
    assert stored.tokens == [*tokens[:-1], "nul"]
    assert Feature.objects.get().top_logits == ['"', "\\", "x"]


def test_searching_for_l_layer_slash_index_finds_that_feature(model: Any, tmp_path: Path) -> None:
    import_layers(tmp_path)
    body = client_for(None).get("/api/v1/features/search?q=L1/3").json()
    assert [(r["model"], r["set"], r["layer"], r["index"]) for r in body["results"]] == [
        ("tiny", "plt", 1, 3)
    ]


def test_lookup_sees_explanations_as_soon_as_they_are_added_or_deleted(
    alice: Any, model: Any, tmp_path: Path
) -> None:
    import_layers(tmp_path)
    lookup = {"features": [key(0, 1)]}
    client_for(alice).post(
        "/api/v1/features/tiny/plt/0/1/explanations", {"text": "cats"}, format="json"
    )
    weak = Explanation.objects.create(
        feature=Feature.objects.get(layer=0, index=1), text="x", score=0.1
    )
    Explanation.objects.create(feature=weak.feature, text="felines", score=0.9)
    found = client_for(None).post("/api/v1/features/lookup", lookup, format="json").json()
    explanations = found["results"][0]["explanations"]
    assert [e["text"] for e in explanations] == ["felines", "x", "cats"]
    assert explanations[2]["author"] == "alice"
    weak.delete()
    found = client_for(None).post("/api/v1/features/lookup", lookup, format="json").json()
    assert [e["text"] for e in found["results"][0]["explanations"]] == ["felines", "cats"]
