"""`python -m inference attribute`: output files, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.graph_json import validate_graph
from inference.cli import main
from inference.engine import load_raw

from .builders import save_model, save_plt


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    save_model("llama", root / "model")
    save_plt(root / "tc")
    return root


def _run(files: Path, *extra: str) -> int:
    return main(
        ["attribute", "--model", str(files / "model"), "--transcoders", str(files / "tc"), *extra]
    )


def test_it_writes_the_pruned_json_and_the_raw_graph(files: Path, tmp_path: Path) -> None:
    out, raw = tmp_path / "g.json", tmp_path / "g.safetensors"
    code = _run(files, "--prompt", "w5 w9 w7", "--out", str(out), "--raw", str(raw), "--slug", "s1")
    assert code == 0
    data = validate_graph(json.loads(out.read_text())).document
    assert data["metadata"]["slug"] == "s1"
    assert data["metadata"]["prompt_tokens"] == ["<bos>", "w5", "w9", "w7"]
    assert load_raw(raw).input_tokens.tolist() == [1, 5, 9, 7]


def test_token_ids_are_used_as_given(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    assert _run(files, "--token-ids", "2,5,6", "--max-feature-nodes", "5", "--out", str(out)) == 0
    tokens = [n for n in json.loads(out.read_text())["nodes"] if n["feature_type"] == "embedding"]
    assert [n["node_id"] for n in tokens] == ["E_2_0", "E_5_1", "E_6_2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt", "  "], "prompt is empty"),
        (["--token-ids", "5,999"], "token ids must be in"),
        (["--prompt", "w5", "--transcoders", "/nonexistent/tc"], "transcoders not found"),
        (["--prompt", "w5", "--model", "/nonexistent/model"], "model folder not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = _run(files, "--out", str(tmp_path / "g.json"), *args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err
    assert len(err.splitlines()) == 1


def test_mismatched_transcoder_shapes_exit_2(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_plt(tmp_path / "small", d_model=16)
    code = _run(
        files,
        "--prompt",
        "w5",
        "--transcoders",
        str(tmp_path / "small"),
        "--out",
        str(tmp_path / "g.json"),
    )
    assert code == 2
    assert "d_model" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# python -m inference dashboards


def _dashboards(files: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "dashboards",
            "--model",
            str(files / "model"),
            "--transcoders",
            str(files / "tc"),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_dashboards_writes_the_layer_files_import_features_reads(
    files: Path, tmp_path: Path
) -> None:
    from inference.engine import read_layer

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(" ".join(f"w{(i * j) % 40 + 4}" for j in range(12)) for i in range(9))
    )
    out = tmp_path / "dash"
    code = _dashboards(files, out, "--corpus", str(corpus), "--layers", "0,2", "--top-k", "3")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["layer_0.jsonl.gz", "layer_2.jsonl.gz"]
    features = read_layer(out / "layer_2.jsonl.gz")
    assert [f["index"] for f in features] == list(range(40))
    fired = [f for f in features if f["activation_frequency"] > 0]
    assert fired
    for feature in fired:
        top = feature["examples_quantiles"][0]
        assert top["quantile_name"] == "Top activations"
        assert 1 <= len(top["examples"]) <= 3
        assert all(t.startswith("w") for e in top["examples"] for t in e["tokens"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corpus", "/nonexistent/corpus.txt"], "corpus not found: /nonexistent/corpus.txt"),
        (["--corpus", "EMPTY", "--layers", "0"], "empty.txt: the file is empty"),
        (["--corpus", "EMPTY", "--layers", "7"], "--layers must be in"),
    ],
)
def test_dashboards_bad_input_is_one_line_naming_it(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = [str(empty) if a == "EMPTY" else a for a in args]
    assert _dashboards(files, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert message in err
    assert "\n" not in err


def test_estimate_only_prints_the_estimate_and_exits_without_attributing(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import inference.engine

    def never(*_: object, **__: object) -> None:
        raise AssertionError("--estimate-only attributed")

    monkeypatch.setattr(inference.engine, "attribute", never)
    assert _run(files, "--prompt", "w5 w9 w7", "--estimate-only", "--batch-size", "8") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("estimate: ")
    assert "on cpu (run " in out[0]
    assert "4 tokens" in out[0]
    assert "batch size 8, max_feature_nodes all, dense ranking" in out[0]
    assert out[1].startswith("this device has ")
    # what the worker's planner would choose on this device's memory (all of it fits here)
    assert out[2].startswith("the planner would run it as: batch size ")
    assert "decoder blocks held, dense ranking in place, about " in out[2]
    assert [line.split(":")[0].strip() for line in out[3:]] == [
        "forward", "backward", "sources", "build", "fold", "rows", "batch", "decoder", "heap",
        "heap_build", "ranking", "rank_rows", "assemble", "gather",
    ]  # fmt: skip


def test_ranking_entries_gives_the_same_graph_with_a_smaller_ranking(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graphs = []
    for extra in ([], ["--ranking-entries", "2"]):
        out = tmp_path / f"g{len(extra)}.json"
        args = ["--prompt", "w5 w9 w7 w6", "--max-feature-nodes", "6", "--out", str(out)]
        assert _run(files, *args, *extra) == 0
        graphs.append(json.loads(out.read_text()))
    dense, sparse = graphs
    assert [n["node_id"] for n in sparse["nodes"]] == [n["node_id"] for n in dense["nodes"]]
    assert [(e["source"], e["target"]) for e in sparse["links"]] == [
        (e["source"], e["target"]) for e in dense["links"]
    ]
    for a, b in zip(sparse["links"], dense["links"], strict=True):
        assert a["weight"] == pytest.approx(b["weight"], rel=1e-4, abs=1e-6)
    capsys.readouterr()
    assert _run(files, "--prompt", "w5", "--estimate-only", "--max-feature-nodes", "2",
                "--ranking-entries", "2") == 0  # fmt: skip
    first = capsys.readouterr().out.splitlines()[0]
    assert "sparse ranking of 2 entries a row" in first


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_ranking_entries_is_refused_naming_the_argument(
    files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(files, "--prompt", "w5", "--out", str(tmp_path / "g.json"), "--ranking-entries", value)
    assert exited.value.code == 2
    assert "--ranking-entries must be" in capsys.readouterr().err
    assert not (tmp_path / "g.json").exists()


def test_out_is_required_unless_estimate_only(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(files, "--prompt", "w5") == 2
    assert capsys.readouterr().err == "error: --out is required (unless --estimate-only)\n"
