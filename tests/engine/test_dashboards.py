"""compute_dashboards against a brute-force computation: every activation of a small corpus
materialised (through the attribution engine's own forward pass, not the dashboards hooks), then
sorted and counted."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from inference.engine import ReplacementModel, load_transcoders
from inference.engine.adapters import resolve
from inference.engine.dashboards import DashboardsCancelled, compute_dashboards
from inference.engine.replacement import run_linearised

from .builders import BOS, save_clt, save_gemmascope_npz, save_plt, tiny_model

OPTIONS: dict[str, Any] = {
    "top_k": 4,
    "tokens_before": 3,
    "tokens_after": 2,
    "n_intervals": 3,
    "examples_per_interval": 2,
    "histogram_bins": 5,
    "n_logits": 6,
    "seed": 7,
}


def _corpus() -> list[torch.Tensor]:
    """Contexts of 3-20 tokens; contexts 3 and 11 repeat 0 and 4, so windows repeat exactly."""
    g = torch.Generator().manual_seed(1)
    rows = []
    for _ in range(26):
        n = int(torch.randint(2, 19, (1,), generator=g))
        rows.append(torch.cat([torch.tensor([BOS]), torch.randint(4, 48, (n,), generator=g)]))
    rows[3] = rows[0].clone()
    rows[11] = rows[4].clone()
    return rows


def _set(kind: str, folder: Path) -> tuple[str, Path]:
    if kind == "jumprelu":
        return "llama", save_plt(folder, jumprelu=True)
    if kind == "relu":
        return "llama", save_plt(folder, input_hook="hook_resid_mid")
    if kind == "topk":
        return "qwen3", save_plt(folder, activation="topk", k=6)
    if kind == "clt":
        return "llama", save_clt(folder, jumprelu=True)
    if kind == "gemmascope":
        return "gemma2", save_gemmascope_npz(folder)
    if kind == "gpt2":
        return "gpt2", save_plt(folder, input_hook="ln2.hook_normalized")
    raise ValueError(kind)


@dataclass
class Case:
    rm: ReplacementModel
    rows: list[torch.Tensor]


def _case(kind: str, folder: Path) -> Case:
    family, config = _set(kind, folder)
    transcoders = load_transcoders(config)
    if kind == "relu":
        # Feature 0 is the same everywhere: every token ties, so tie-breaking decides it all.
        for layer in range(transcoders.n_layers):
            transcoders.W_enc[layer][0] = 0.0
            transcoders.b_enc[layer][0] = 0.5
    return Case(ReplacementModel.from_parts(tiny_model(family), transcoders), _corpus())


@pytest.fixture(scope="module", params=["jumprelu", "relu", "topk", "clt", "gemmascope", "gpt2"])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    return _case(request.param, Path(tmp_path_factory.mktemp("tc")))


@pytest.fixture(scope="module")
def relu(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """The set with a constant feature; reruns (batch size, resume, seed) use it alone, as
    they exercise the streaming state, which is the same for every family."""
    return _case("relu", Path(tmp_path_factory.mktemp("relu")))


@pytest.fixture(scope="module")
def relu_result(relu: Case) -> dict[int, list[dict[str, Any]]]:
    return _run(relu, batch_size=5)


def _run(case: Case, **kwargs: Any) -> dict[int, list[dict[str, Any]]]:
    options = OPTIONS | kwargs
    return compute_dashboards(case.rm.model, case.rm.transcoders, case.rows, **options)


@pytest.fixture(scope="module")
def result(case: Case) -> dict[int, list[dict[str, Any]]]:
    return _run(case, batch_size=5)


# ---------------------------------------------------------------------------------------------
# Brute force


@dataclass
class Firing:
    row: int
    pos: int
    value: float


def _all_acts(case: Case) -> list[torch.Tensor]:
    """Per context: (n_layers, n_pos, F) activations, from the attribution forward pass."""
    out = []
    for row in case.rows:
        trace = run_linearised(case.rm, row)
        acts = [
            case.rm.transcoders.encode(layer, x[0].detach())
            for layer, x in enumerate(trace.feature_inputs)
        ]
        out.append(torch.stack(acts).float())
    return out


@pytest.fixture(scope="module")
def acts(case: Case) -> list[torch.Tensor]:
    return _all_acts(case)


def _firings(acts: list[torch.Tensor], layer: int, feature: int) -> list[Firing]:
    return [
        Firing(r, p, float(a[layer, p, feature]))
        for r, a in enumerate(acts)
        for p in range(1, a.shape[1])
        if a[layer, p, feature] > 0
    ]


def _window(case: Case, row: int, pos: int) -> tuple[int, ...]:
    o = OPTIONS
    start = max(1, pos - o["tokens_before"])
    return (*case.rows[row][start : pos + o["tokens_after"] + 1].tolist(), pos - start)


def _expected_top(case: Case, firings: list[Firing]) -> list[Firing]:
    """Each context's best token, each distinct window's best, sorted by (value desc, corpus
    order), first top_k."""
    order = sorted(firings, key=lambda x: (-x.value, x.row, x.pos))
    best_per_row: dict[int, Firing] = {}
    for x in order:
        best_per_row.setdefault(x.row, x)
    best_per_window: dict[tuple[int, ...], Firing] = {}
    for x in sorted(best_per_row.values(), key=lambda x: (-x.value, x.row, x.pos)):
        best_per_window.setdefault(_window(case, x.row, x.pos), x)
    kept = sorted(best_per_window.values(), key=lambda x: (-x.value, x.row, x.pos))
    return kept[: OPTIONS["top_k"]]


def _isolated(x: Firing, others: list[Firing]) -> bool:
    return all(y is x or abs(y.value - x.value) > 1e-5 for y in others)


def _examples(feature: dict[str, Any], name: str) -> list[dict[str, Any]]:
    for group in feature["examples_quantiles"]:
        if group["quantile_name"] == name:
            return list(group["examples"])
    return []


# ---------------------------------------------------------------------------------------------
# The checks


def test_density_and_activation_range_match_brute_force(
    case: Case, acts: list[torch.Tensor], result: dict[int, list[dict[str, Any]]]
) -> None:
    n_tokens = sum(len(r) - 1 for r in case.rows)
    for layer, features in result.items():
        for f, feature in enumerate(features):
            firings = _firings(acts, layer, f)
            assert feature["activation_frequency"] == pytest.approx(len(firings) / n_tokens)
            if not firings:
                assert feature["examples_quantiles"] == []
                continue
            values = [x.value for x in firings]
            assert feature["act_max"] == pytest.approx(max(values), abs=1e-4)
            assert feature["act_min"] == pytest.approx(min(values), abs=1e-4)
            assert feature["act_mean"] == pytest.approx(sum(values) / len(values), abs=1e-4)


def test_top_examples_are_the_brute_force_top_k_with_ties_to_the_earlier_token(
    case: Case, acts: list[torch.Tensor], result: dict[int, list[dict[str, Any]]]
) -> None:
    checked = 0
    for layer, features in result.items():
        for f, feature in enumerate(features):
            firings = _firings(acts, layer, f)
            expected = _expected_top(case, firings)
            got = _examples(feature, "Top activations")
            # Two tokens whose values are equal up to rounding may come in either order (the
            # batched forward rounds differently from this one); exact ties are checked below.
            values = {(x.row, x.pos): x.value for x in firings}
            pointers = [(e["corpus_context"], e["corpus_position"]) for e in got]
            assert [values[p] for p in pointers] == pytest.approx(
                [x.value for x in expected], abs=1e-5
            ), (layer, f)
            # Isolated among every firing, not only the kept ones: two contexts with the same
            # window keep only one of them here, and which one is a rounding tie in the engine.
            clear = [i for i, x in enumerate(expected) if _isolated(x, firings)]
            assert [pointers[i] for i in clear] == [
                (expected[i].row, expected[i].pos) for i in clear
            ]
            for example, (row, pos) in zip(got, pointers, strict=True):
                x = Firing(row, pos, values[(row, pos)])
                center = example["tokens_acts_list"][example["train_token_ind"]]
                assert center == pytest.approx(x.value, abs=2e-3)
                start = max(1, x.pos - OPTIONS["tokens_before"])
                ids = case.rows[x.row][start : x.pos + OPTIONS["tokens_after"] + 1].tolist()
                assert example["tokens"] == [case.rm.decode_token(i) for i in ids]
                window = acts[x.row][layer, start : x.pos + OPTIONS["tokens_after"] + 1, f]
                assert example["tokens_acts_list"] == pytest.approx(window.tolist(), abs=2e-3)
            checked += len(got)
    assert checked > 0


def test_a_feature_that_ties_everywhere_keeps_the_earliest_distinct_windows(
    relu_result: dict[int, list[dict[str, Any]]],
) -> None:
    got = _examples(relu_result[0][0], "Top activations")
    # Context 3 repeats context 0, so its window is the same and it is skipped.
    assert [(e["corpus_context"], e["corpus_position"]) for e in got] == [
        (0, 1),
        (1, 1),
        (2, 1),
        (4, 1),
    ]


def test_histogram_counts_follow_the_documented_bins_and_sum_to_the_firings(
    acts: list[torch.Tensor], result: dict[int, list[dict[str, Any]]]
) -> None:
    bins = OPTIONS["histogram_bins"]
    fine_bins = 32 * bins
    for layer, features in result.items():
        for f, feature in enumerate(features):
            firings = _firings(acts, layer, f)
            if not firings:
                continue
            values = torch.tensor([x.value for x in firings])
            top = float(values.max())
            R = 2.0 ** math.floor(math.log2(top) + 1)  # the power of two strictly above
            used = math.floor(top / R * fine_bins) + 1
            width = -(-used // bins)
            fine = (values / R * fine_bins).floor().long()
            counts = torch.bincount(fine // width, minlength=bins)
            assert feature["histogram"]["counts"] == counts.tolist(), (layer, f)
            assert sum(feature["histogram"]["counts"]) == len(firings)
            edges = feature["histogram"]["edges"]
            assert edges[0] == 0.0
            assert edges[-1] >= top
            assert edges[-1] <= top * (1 + 1 / 16) + 1e-9


def _repeats_a_top_example(case: Case, pointer: tuple[int, int], top: list[Firing]) -> bool:
    """The documented rule: same context with overlapping windows, or the same tokens shown
    around the same activating token."""
    span = OPTIONS["tokens_before"] + OPTIONS["tokens_after"]
    row, pos = pointer
    shown = _shown(case, row, pos)
    return any(
        (x.row == row and abs(x.pos - pos) <= span) or _shown(case, x.row, x.pos) == shown
        for x in top
    )


def _shown(case: Case, row: int, pos: int) -> tuple[str, ...]:
    *ids, center = _window(case, row, pos)
    return (*(case.rm.decode_token(i) for i in ids), str(center))


def test_every_interval_sample_lies_in_its_interval_and_intervals_fill_up(
    case: Case, acts: list[torch.Tensor], result: dict[int, list[dict[str, Any]]]
) -> None:
    per = OPTIONS["examples_per_interval"]
    full = bands = 0
    for layer, features in result.items():
        for f, feature in enumerate(features):
            firings = _firings(acts, layer, f)
            if not firings:
                continue
            # The engine's own top examples (checked against the brute force above, up to the
            # order of near-ties): the samples are drawn from the other firing tokens.
            top = [
                Firing(e["corpus_context"], e["corpus_position"], 0.0)
                for e in _examples(feature, "Top activations")
            ]
            tops = {(x.row, x.pos) for x in top}
            by_pointer = {(x.row, x.pos): x.value for x in firings if (x.row, x.pos) not in tops}
            intervals = feature["quantile_intervals"]
            assert intervals[0][0] == 0.0
            assert intervals[-1][1] >= feature["act_max"]
            assert feature["quantile_values"] == [lo for lo, _ in intervals]
            for i, (lo, hi) in enumerate(intervals):
                samples = _examples(feature, f"Subsample Interval {i}")
                pointers = [(e["corpus_context"], e["corpus_position"]) for e in samples]
                windows = [_window(case, *p) for p in pointers]
                assert len(set(windows)) == len(windows)  # one sample per distinct window
                for pointer, window in zip(pointers, windows, strict=True):
                    assert lo <= by_pointer[pointer] < hi  # and not a top example's token
                    # Shown at the window's earliest (non-top) token in the band.
                    same = [
                        p
                        for p, v in by_pointer.items()
                        if lo <= v < hi and _window(case, *p) == window
                    ]
                    assert pointer == min(same)
                # Each distinct window of the band at its earliest token there.
                inside: dict[tuple[int, ...], tuple[int, int]] = {}
                for p, v in sorted(by_pointer.items()):
                    if lo <= v < hi:
                        inside.setdefault(_window(case, *p), p)
                repeats = sum(_repeats_a_top_example(case, p, top) for p in inside.values())
                # The draw takes min(per, windows); those still repeating a top example (a
                # neighbouring token, or the same text elsewhere) are left out.
                drawn = min(per, len(inside))
                assert drawn - repeats <= len(samples) <= min(per, len(inside) - repeats)
                full += len(samples) == drawn
                bands += 1
    assert full > bands / 2, (full, bands)  # most bands lose nothing


def test_no_interval_sample_repeats_a_top_example(
    case: Case, result: dict[int, list[dict[str, Any]]]
) -> None:
    """Checked against the top examples shown (the tests above compare those with the brute
    force where it is unambiguous): the brute force's own forward differs from the batched one
    in the last bit on some tokens, so on a tie within 1 ulp the two pick different top
    examples (gemmascope and gpt2 have one: 1.6980997 against 1.6980999)."""
    checked = 0
    for layer, features in result.items():
        for f, feature in enumerate(features):
            top = [
                Firing(e["corpus_context"], e["corpus_position"], 0.0)
                for e in _examples(feature, "Top activations")
            ]
            for group in feature["examples_quantiles"][1:]:
                for e in group["examples"]:
                    pointer = (e["corpus_context"], e["corpus_position"])
                    assert not _repeats_a_top_example(case, pointer, top), (layer, f, pointer)
                    checked += 1
    assert checked > 0


def test_output_token_values_are_the_decoder_through_the_unembedding(
    case: Case, result: dict[int, list[dict[str, Any]]]
) -> None:
    rm = case.rm
    weight = resolve(rm.model, rm.adapter.final_norm).weight
    assert isinstance(weight, torch.Tensor)
    gain = weight.detach().float()
    if rm.adapter.norm_kind == "rms_plus_one":
        gain = 1 + gain
    special = set(rm.special_token_ids())
    for layer, features in result.items():
        decoder = rm.transcoders.decoders[layer]
        rows = decoder.rows(torch.arange(decoder.d_transcoder), torch.device("cpu"), torch.float32)
        logits = rows.sum(1) @ (rm.unembed_weight.float() * gain).T  # (F, vocab)
        for f, feature in enumerate(features):
            order = [i for i in logits[f].argsort(descending=True).tolist() if i not in special]
            top, bottom = order[:6], order[::-1][:6]
            assert feature["top_logits"] == [rm.decode_token(i) for i in top]
            assert feature["bottom_logits"] == [rm.decode_token(i) for i in bottom]
            assert feature["top_logits_values"] == pytest.approx(logits[f, top].tolist(), abs=1e-4)
            assert feature["bottom_logits_values"] == pytest.approx(
                logits[f, bottom].tolist(), abs=1e-4
            )


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-4: another batch size pads to another length, and the matrix
    products then round differently in the last bits."""
    if isinstance(a, float) or isinstance(b, float):
        return bool(a == pytest.approx(b, rel=1e-4, abs=1e-4))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    return bool(a == b)


def test_results_do_not_depend_on_the_batch_size(
    relu: Case, relu_result: dict[int, list[dict[str, Any]]]
) -> None:
    other = _run(relu, batch_size=26)
    for layer, features in relu_result.items():
        for a, b in zip(features, other[layer], strict=True):
            assert _close(a, b), (layer, a["index"])


def test_a_cancelled_run_resumed_from_its_checkpoint_equals_an_uninterrupted_one(
    relu: Case, relu_result: dict[int, list[dict[str, Any]]], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "run.ckpt"
    polls = iter(range(100))
    with pytest.raises(DashboardsCancelled):
        _run(
            relu,
            batch_size=5,
            checkpoint=checkpoint,
            checkpoint_every=1,
            should_stop=lambda: next(polls) == 3,
        )
    assert checkpoint.is_file()
    assert _run(relu, batch_size=5, checkpoint=checkpoint) == relu_result
    assert not checkpoint.exists()


def test_windows_kept_while_streaming_equal_those_of_a_second_forward(
    case: Case, result: dict[int, list[dict[str, Any]]]
) -> None:
    """A set whose window store is over the limit gets its windows from a second forward over
    the examples' contexts instead: every feature's output is the same either way."""
    assert _run(case, batch_size=5, window_store_limit=0) == result


def test_a_corpus_that_can_be_read_only_once_gives_the_same_dashboards(
    relu: Case, relu_result: dict[int, list[dict[str, Any]]]
) -> None:
    """The corpus is read once and its ids kept for the later passes: a generator, which a
    second pass would find empty, gives what the list gives."""
    options = OPTIONS | {"batch_size": 5}
    once = (row for row in relu.rows)
    assert compute_dashboards(relu.rm.model, relu.rm.transcoders, once, **options) == relu_result


@pytest.mark.parametrize("chunk", [1, 7])
def test_layers_handed_over_as_they_are_read_in_chunks_equal_the_returned_ones(
    case: Case, result: dict[int, list[dict[str, Any]]], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``on_layer`` each layer's features are made a chunk of features at a time while the
    callback reads them, in chunks that split the picks and windows at every feature boundary
    (1) or at none in particular (7), and the repeats of top examples are looked for that many
    picks at a time; the store's and the second forward's windows both."""
    from inference.engine import dashboard_files

    monkeypatch.setattr(dashboard_files, "_CHUNK_FEATURES", chunk)
    monkeypatch.setattr(dashboard_files, "_REPEAT_ROWS", chunk)  # and the repeat check's picks
    for limit in (None, 0):
        got: dict[int, list[dict[str, Any]]] = {}

        def read(layer: int, features: Iterator[dict[str, Any]], got: dict = got) -> None:
            got[layer] = list(features)

        options = {} if limit is None else {"window_store_limit": limit}
        assert _run(case, batch_size=5, on_layer=read, **options) == {}
        assert got == result


def test_a_layer_subset_gives_those_layers_unchanged(
    relu: Case, relu_result: dict[int, list[dict[str, Any]]]
) -> None:
    assert _run(relu, batch_size=5, layers=[1]) == {1: relu_result[1]}


def test_another_seed_draws_other_samples_with_the_same_statistics(
    relu: Case, relu_result: dict[int, list[dict[str, Any]]]
) -> None:
    other = _run(relu, batch_size=5, seed=8)
    drawn = same = 0
    for layer, features in relu_result.items():
        for a, b in zip(features, other[layer], strict=True):
            assert a["histogram"] == b["histogram"]
            assert _examples(a, "Top activations") == _examples(b, "Top activations")
            for i in range(OPTIONS["n_intervals"]):
                drawn += 1
                same += _examples(a, f"Subsample Interval {i}") == _examples(
                    b, f"Subsample Interval {i}"
                )
    assert same < drawn


@pytest.mark.parametrize(
    ("option", "value"),
    [("top_k", 0), ("batch_size", 0), ("tokens_before", -1), ("layers", [3])],
)
def test_bad_options_are_refused(relu: Case, option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        _run(relu, **{option: value})


def test_token_ids_outside_the_vocabulary_are_refused(relu: Case) -> None:
    with pytest.raises(ValueError, match="outside"):
        compute_dashboards(relu.rm.model, relu.rm.transcoders, [torch.tensor([BOS, 999])])


def test_the_sparse_topk_windows_equal_the_dense_activations(tmp_path: Path) -> None:
    """The examples' windows read a TopK set's activations from its kept (feature, value) pairs
    instead of the dense encode: every window of every (row, position, feature), the kept
    negative values and the zeros, equals the dense one inside the row."""
    from inference.engine.dashboard_forward import _dense, _lookup

    transcoders = _case("topk", tmp_path).rm.transcoders
    x = torch.randn((3, 7, transcoders.d_model), generator=torch.Generator().manual_seed(0))
    signs = set()
    for shift in (0.0, -1000.0):  # then every pre-activation is below 0: the kept k too
        for layer in range(transcoders.n_layers):
            transcoders.b_enc[layer] += shift
            dense, kept = _dense(transcoders, layer, x), _lookup(transcoders, layer, x)
            row, pos, feature = (i.reshape(-1) for i in torch.meshgrid(
                *(torch.arange(n) for n in dense.shape), indexing="ij"
            ))  # fmt: skip
            for before, after in ((2, 3), (0, 0), (9, 1)):
                at = pos[:, None] + torch.arange(-before, after + 1)[None, :]
                inside = (at >= 0) & (at < x.shape[1])
                expected = dense[row[:, None], at.clamp(0, x.shape[1] - 1), feature[:, None]]
                got = kept.windows(row, pos, feature, before, after)
                assert torch.equal(got, torch.where(inside, expected, 0.0))
            signs |= set(dense.sign().unique().tolist())
    assert signs == {-1.0, 0.0, 1.0}


def test_a_layers_json_objects_leave_in_the_oldest_gc_generation() -> None:
    """`_layer_json` runs with the cycle collector off and hands its new objects to the oldest
    generation on the way out (so the collection due then does not walk them all), turns the
    collector back on only if it was on, and leaves objects frozen by the process frozen."""
    import gc

    from inference.engine.dashboard_files import _no_cycle_collection

    @_no_cycle_collection()
    def build() -> list[dict[str, list[int]]]:
        assert not gc.isenabled()
        return [{"tokens": [i]} for i in range(1000)]

    assert gc.isenabled()
    built = build()
    assert gc.isenabled()
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(d) in oldest and id(d["tokens"]) in oldest for d in built)

    gc.freeze()  # a process that keeps frozen objects of its own (say, before a fork)
    try:
        frozen = gc.get_freeze_count()
        build()
        # Not unfrozen (the count would be 0) and nothing added (it would grow by the 2,000 new
        # objects); it may drop a little, as a frozen object still dies when its last reference
        # goes (CI once saw 1 fewer).
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()

    gc.disable()
    try:
        build()
        assert not gc.isenabled()
    finally:
        gc.enable()
