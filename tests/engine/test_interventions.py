"""Interventions and steering: constrained effects are the graph's own edges, free mode is the real
network with a decoder contribution edited by hand, steering is coupled and KV-cache exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from transformers import PreTrainedModel

from inference.engine import ReplacementModel, attribute, load_transcoders
from inference.engine.graph import Graph
from inference.engine.interventions import Intervention, InterventionError, intervene
from inference.engine.steering import steer_generate

from .builders import random_plt_params, save_clt, save_plt, tiny_model

PROMPT = [5, 9, 7, 12, 30, 8]
TOKENS = [1, *PROMPT]  # the special first token is prepended

FAMILIES = [
    ("llama", "mlp.hook_in", "mlp.hook_out", {"jumprelu": True}),
    ("qwen2", "hook_resid_mid", "mlp.hook_out", {"skip": True}),
    ("qwen3", "mlp.hook_in", "mlp.hook_out", {"jumprelu": True}),
    ("gemma2", "ln2.hook_normalized", "hook_mlp_out", {"jumprelu": True}),
    ("gemma3", "mlp.hook_in", "mlp.hook_out", {}),
    ("gpt2", "mlp.hook_in", "mlp.hook_out", {"skip": True}),
    ("llama-topk", "mlp.hook_in", "mlp.hook_out", {"activation": "topk", "k": 6}),
]


def _model(family: str, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    model = tiny_model(family)
    nn.Module.to(model, dtype)
    # The graph's logit targets are taken before the final softcap; without one, the logits
    # intervene() returns are those targets.
    if getattr(model.config, "final_logit_softcapping", None) is not None:
        model.config.final_logit_softcapping = None
    return model


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> ReplacementModel:
    config = save_plt(Path(tmp_path_factory.mktemp("tc")), jumprelu=True)
    return ReplacementModel.from_parts(_model("llama"), load_transcoders(config))


@pytest.fixture(scope="module")
def llama_graph(llama: ReplacementModel) -> Graph:
    return attribute(PROMPT, llama, batch_size=32)


@pytest.fixture(scope="module")
def clt_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(tmp_path_factory.mktemp("clt"))
    save_clt(folder, jumprelu=True)
    return folder


@pytest.fixture(scope="module")
def clt(clt_folder: Path) -> ReplacementModel:
    return ReplacementModel.from_parts(_model("llama"), load_transcoders(clt_folder))


def _strongest_features(graph: Graph, n: int) -> list[int]:
    """Graph feature nodes with the largest direct effect on the target logits."""
    logit_edges = graph.adjacency[graph.logit_offset :, : graph.n_features]
    return logit_edges.abs().sum(0).argsort(descending=True)[:n].tolist()


def _node(graph: Graph, k: int) -> tuple[int, int, int]:
    layer, pos, feature = graph.active_features[graph.selected_features[k]].tolist()
    return layer, pos, feature


def _target_logit_change(graph: Graph, logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Change of each target logit as the graph defines it: de-meaned over the vocabulary."""
    change = (logits - logits.mean()) - (clean - clean.mean())
    return change[graph.logit_tokens]


def _assert_edges(graph: Graph, k: int, change: torch.Tensor, factor: float) -> None:
    expected = factor * graph.adjacency[graph.logit_offset :, k]
    scale = expected.abs().max().item() + 1e-6
    torch.testing.assert_close(change, expected, atol=2e-5 * scale + 1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Constrained mode: the graph's own linear model


@pytest.mark.parametrize(
    ("family", "in_hook", "out_hook", "options"), FAMILIES, ids=[f[0] for f in FAMILIES]
)
def test_constrained_ablation_moves_each_target_logit_by_minus_its_edge_weight(
    tmp_path: Path, family: str, in_hook: str, out_hook: str, options: dict[str, Any]
) -> None:
    config = save_plt(tmp_path / "tc", input_hook=in_hook, output_hook=out_hook, **options)
    rm = ReplacementModel.from_parts(_model(family.split("-")[0]), load_transcoders(config))
    graph = attribute(PROMPT, rm, batch_size=32)
    for k in _strongest_features(graph, 3):
        result = intervene(PROMPT, rm, [Intervention.ablate(*_node(graph, k))], mode="constrained")
        change = _target_logit_change(graph, result.logits, result.clean_logits)
        _assert_edges(graph, k, change, -1.0)


@pytest.mark.parametrize("factor", [0.0, 0.5, 3.0])
def test_constrained_scaling_by_k_moves_each_target_logit_by_k_minus_one_edges(
    llama: ReplacementModel, llama_graph: Graph, factor: float
) -> None:
    k = _strongest_features(llama_graph, 1)[0]
    interventions = [Intervention.scale_by(*_node(llama_graph, k), factor)]
    result = intervene(PROMPT, llama, interventions, mode="constrained")
    change = _target_logit_change(llama_graph, result.logits, result.clean_logits)
    _assert_edges(llama_graph, k, change, factor - 1.0)


def test_constrained_effects_of_several_features_add_up(
    llama: ReplacementModel, llama_graph: Graph
) -> None:
    # Downstream features are frozen, so ablating two features is the sum of their edges, even
    # when one sits upstream of the other.
    ks = _strongest_features(llama_graph, 2)
    result = intervene(
        PROMPT, llama, [Intervention.ablate(*_node(llama_graph, k)) for k in ks], mode="constrained"
    )
    change = _target_logit_change(llama_graph, result.logits, result.clean_logits)
    expected = -llama_graph.adjacency[llama_graph.logit_offset :, ks].sum(1)
    torch.testing.assert_close(change, expected, atol=1e-4, rtol=1e-4)


def test_cross_layer_features_write_into_every_downstream_layer(clt: ReplacementModel) -> None:
    # A CLT feature's edge to a logit sums its decoder writes into all later layers: matching
    # it needs every one of them.
    graph = attribute(PROMPT, clt, batch_size=32)
    early = [k for k in _strongest_features(graph, graph.n_features) if _node(graph, k)[0] == 0]
    k = early[0]
    result = intervene(PROMPT, clt, [Intervention.ablate(*_node(graph, k))], mode="constrained")
    _assert_edges(graph, k, _target_logit_change(graph, result.logits, result.clean_logits), -1.0)


def test_bfloat16_interventions_track_float32(tmp_path: Path) -> None:
    config = save_plt(tmp_path / "tc", jumprelu=True)
    full, half = (
        ReplacementModel.from_parts(_model("llama", dtype), load_transcoders(config))
        for dtype in (torch.float32, torch.bfloat16)
    )
    acts = intervene(PROMPT, full, [], mode="free").clean_activations
    ablate = [Intervention.ablate(*acts.features[acts.values.argmax()].tolist())]
    for mode in ("constrained", "free"):
        expected = intervene(PROMPT, full, ablate, mode=mode).logits
        got = intervene(PROMPT, half, ablate, mode=mode).logits
        torch.testing.assert_close(got, expected, atol=0.1, rtol=0.05)


def test_no_interventions_leave_the_logits_of_every_mode_unchanged(llama: ReplacementModel) -> None:
    plain = llama.model(input_ids=torch.tensor([TOKENS])).logits[0, -1]
    for mode, freeze in [("constrained", True), ("free", True), ("free", False)]:
        result = intervene(PROMPT, llama, [], mode=mode, freeze_attention=freeze)  # type: ignore[arg-type]
        torch.testing.assert_close(result.logits, plain, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(result.clean_logits, plain, atol=1e-5, rtol=1e-5)


def test_clean_activations_are_the_graphs_active_features(
    llama: ReplacementModel, llama_graph: Graph
) -> None:
    result = intervene(PROMPT, llama, [], mode="constrained")
    assert torch.equal(result.clean_activations.features, llama_graph.active_features)
    torch.testing.assert_close(result.clean_activations.values, llama_graph.activation_values)


def test_logit_table_lists_before_and_after_probabilities(
    llama: ReplacementModel, llama_graph: Graph
) -> None:
    k = _strongest_features(llama_graph, 1)[0]
    result = intervene(PROMPT, llama, [Intervention.ablate(*_node(llama_graph, k))])
    table = result.logit_table(top_k=3, tokens=llama_graph.logit_tokens.tolist(), decode=str)
    assert {r["token"] for r in table} >= set(llama_graph.logit_tokens.tolist())
    first = table[0]
    assert first["clean_probability"] == pytest.approx(float(result.clean_probabilities.max()))
    assert first["text"] == str(first["token"])
    assert first["probability"] == pytest.approx(float(result.probabilities[first["token"]]))


def test_intervened_features_report_their_new_value(
    llama: ReplacementModel, llama_graph: Graph
) -> None:
    layer, pos, feature = _node(llama_graph, _strongest_features(llama_graph, 1)[0])
    result = intervene(
        PROMPT, llama, [Intervention.set_to(layer, pos, feature, 7.5)], mode="constrained"
    )
    assert result.activations.get(layer, pos, feature) == pytest.approx(7.5)
    assert result.clean_activations.get(layer, pos, feature) > 0
    ablated = intervene(PROMPT, llama, [Intervention.ablate(layer, pos, feature)], mode="free")
    assert ablated.activations.get(layer, pos, feature) == 0.0


# ---------------------------------------------------------------------------------------------
# Free mode: the real network, edited by hand


def _jumprelu(pre: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return pre * (pre > threshold)


def _hand_edited_logits(
    model: nn.Module,
    edits: list[tuple[int, slice | int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    write_layers: dict[int, list[tuple[int, torch.Tensor]]],
    read_at: str = "mlp",
) -> torch.Tensor:
    """A plain HF forward pass in which, for each (layer, positions, W_enc row, b_enc, threshold,
    factor), the feature is read from the MLP input and its MLP output moves by
    (factor - 1) * a * W_dec, written to the layers in ``write_layers[layer]`` as
    (out_layer, decoder row) pairs. Features read the input of the block's ``read_at`` module
    (``mlp`` for mlp.hook_in, ``post_attention_layernorm`` for hook_resid_mid)."""
    layers = cast(Any, model).model.layers
    inputs: dict[int, torch.Tensor] = {}
    pending: dict[int, torch.Tensor] = {}
    handles = []

    def pre_hook(layer: int) -> Any:
        def hook(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            inputs[layer] = args[0][0]

        return hook

    def out_hook(layer: int) -> Any:
        def hook(_m: nn.Module, _a: Any, output: torch.Tensor) -> torch.Tensor:
            for src, positions, w_enc, b_enc, threshold, factor in edits:
                if src != layer:
                    continue
                a = _jumprelu(inputs[layer] @ w_enc + b_enc, threshold)  # (n_pos,)
                change = torch.zeros_like(a)
                change[positions] = (factor - 1.0) * a[positions]
                for out_layer, row in write_layers[src]:
                    pending[out_layer] = pending.get(out_layer, 0) + change[:, None] * row
            if layer in pending:
                output = output + pending[layer][None]
            return output

        return hook

    try:
        for i, block in enumerate(layers):
            handles.append(getattr(block, read_at).register_forward_pre_hook(pre_hook(i)))
            handles.append(block.mlp.register_forward_hook(out_hook(i)))
        with torch.no_grad():
            return cast(torch.Tensor, model(input_ids=torch.tensor([TOKENS])).logits[0, -1])
    finally:
        for handle in handles:
            handle.remove()


def test_free_mode_equals_a_forward_pass_with_the_decoder_contribution_edited_by_hand(
    llama: ReplacementModel,
) -> None:
    # Ablate a feature at one position in layer 0 and triple another at every position in
    # layer 1: the layer-1 feature is read from the residual stream the first edit changed.
    p0, p1 = random_plt_params(0, jumprelu=True), random_plt_params(1, jumprelu=True)
    acts = intervene(PROMPT, llama, [], mode="free").clean_activations
    f0 = int(acts.features[acts.features[:, 0] == 0][0, 2])  # a feature that fires in layer 0
    pos0 = int(acts.features[(acts.features[:, 0] == 0) & (acts.features[:, 2] == f0)][0, 1])
    f1 = int(acts.features[acts.features[:, 0] == 1][0, 2])
    interventions = [
        Intervention.ablate(0, pos0, f0),
        Intervention.scale_by(1, None, f1, 3.0),
    ]
    result = intervene(PROMPT, llama, interventions, mode="free", freeze_attention=False)

    def edit(params: dict[str, torch.Tensor], layer: int, pos: slice | int, f: int, factor: float):
        threshold = params["activation_function.threshold"][f]
        return (layer, pos, params["W_enc"][f], params["b_enc"][f], threshold, torch.tensor(factor))

    by_hand = _hand_edited_logits(
        llama.model,
        [edit(p0, 0, pos0, f0, 0.0), edit(p1, 1, slice(1, None), f1, 3.0)],
        {0: [(0, p0["W_dec"][f0])], 1: [(1, p1["W_dec"][f1])]},
    )
    torch.testing.assert_close(result.logits, by_hand, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(result.logits, result.clean_logits, atol=1e-3)


def test_free_mode_cross_layer_feature_is_edited_in_every_downstream_layer(
    clt: ReplacementModel, clt_folder: Path
) -> None:
    enc = load_file(str(clt_folder / "W_enc_0.safetensors"))
    dec = load_file(str(clt_folder / "W_dec_0.safetensors"))["W_dec_0"]  # (F, n_layers, d)
    acts = intervene(PROMPT, clt, [], mode="free").clean_activations
    layer0 = acts.features[acts.features[:, 0] == 0]
    _, pos, f = layer0[acts.values[acts.features[:, 0] == 0].argmax()].tolist()
    result = intervene(
        PROMPT, clt, [Intervention.ablate(0, pos, f)], mode="free", freeze_attention=False
    )
    edit = (0, pos, enc["W_enc_0"][f], enc["b_enc_0"][f], enc["threshold_0"][f], torch.tensor(0.0))
    every_layer = {0: [(out, dec[f, out]) for out in range(clt.n_layers)]}
    by_hand = _hand_edited_logits(clt.model, [edit], every_layer, "post_attention_layernorm")
    torch.testing.assert_close(result.logits, by_hand, atol=1e-5, rtol=1e-5)
    source_only = _hand_edited_logits(
        clt.model, [edit], {0: [(0, dec[f, 0])]}, "post_attention_layernorm"
    )
    assert not torch.allclose(result.logits, source_only, atol=1e-4)


def test_frozen_attention_matters_only_upstream_of_some_attention(
    llama: ReplacementModel,
) -> None:
    acts = intervene(PROMPT, llama, [], mode="free").clean_activations
    last = llama.n_layers - 1
    first = acts.features[acts.features[:, 0] == 0][0].tolist()
    final = acts.features[acts.features[:, 0] == last][0].tolist()
    frozen, live = (
        intervene(PROMPT, llama, [Intervention.ablate(*final)], mode="free", freeze_attention=f)
        for f in (True, False)
    )
    torch.testing.assert_close(frozen.logits, live.logits)  # no attention after the last MLP
    frozen, live = (
        intervene(PROMPT, llama, [Intervention.ablate(*first)], mode="free", freeze_attention=f)
        for f in (True, False)
    )
    assert not torch.allclose(frozen.logits, live.logits, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Steering


def test_without_interventions_steered_and_default_are_identical(llama: ReplacementModel) -> None:
    result = steer_generate(PROMPT, llama, [], n_tokens=12, temperature=1.0, seed=7)
    assert result.steered == result.default
    assert len(result.default.tokens) >= 1
    again = steer_generate(PROMPT, llama, [], n_tokens=12, temperature=1.0, seed=7)
    assert again.default == result.default


def test_greedy_default_continuation_is_plain_generate(llama: ReplacementModel) -> None:
    result = steer_generate(PROMPT, llama, [], n_tokens=6, temperature=0.0, seed=0)
    generated = cast(Any, llama.model).generate(
        torch.tensor([TOKENS]), max_new_tokens=6, do_sample=False, eos_token_id=None
    )
    n = len(result.default.tokens)
    assert result.default.token_ids == generated[0, len(TOKENS) : len(TOKENS) + n].tolist()


def test_steered_steps_match_free_interventions_on_the_whole_sequence(
    llama: ReplacementModel,
) -> None:
    # KV-cached steering = a free intervention (live attention) on prompt + generated tokens.
    acts = intervene(PROMPT, llama, [], mode="free").clean_activations
    layer, _, feature = acts.features[acts.features[:, 0] == 1][0].tolist()
    steer = [Intervention.set_to(layer, None, feature, 6.0)]
    result = steer_generate(PROMPT, llama, steer, n_tokens=2, temperature=0.0, seed=0, top_k=5)
    assert len(result.steered.tokens) == 2
    first, second = result.steered.tokens
    for prefix, step in ((PROMPT, first), ([*PROMPT, first.token], second)):
        free = intervene(prefix, llama, steer, mode="free", freeze_attention=False)
        top_p, top_i = torch.topk(free.probabilities, 5)
        assert step.top_tokens == top_i.tolist()
        torch.testing.assert_close(torch.tensor(step.top_probabilities), top_p, atol=1e-5, rtol=0)
    # Applied to the prompt only: the generated token's position is left alone.
    prompt_only = steer_generate(
        PROMPT, llama, steer, n_tokens=2, temperature=0.0, apply_to_generated=False
    )
    token = prompt_only.steered.tokens[0].token
    per_position = [Intervention.set_to(layer, p, feature, 6.0) for p in range(1, len(TOKENS))]
    free = intervene([*PROMPT, token], llama, per_position, mode="free", freeze_attention=False)
    torch.testing.assert_close(
        torch.tensor(prompt_only.steered.tokens[1].top_probabilities),
        torch.topk(free.probabilities, 5).values,
        atol=1e-5,
        rtol=0,
    )


def test_steering_results_are_plain_json_data(llama: ReplacementModel) -> None:
    result = steer_generate(PROMPT, llama, [Intervention.ablate(1, None, 4)], n_tokens=3, seed=2)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["input_tokens"] == TOKENS
    assert data["steered"]["tokens"][0]["top_tokens"] == result.steered.tokens[0].top_tokens


def test_a_strong_intervention_changes_the_steered_continuation(llama: ReplacementModel) -> None:
    acts = intervene(PROMPT, llama, [], mode="free").clean_activations
    layer, _, feature = acts.features[acts.features[:, 0] == 2][0].tolist()
    result = steer_generate(
        PROMPT, llama, [Intervention.set_to(layer, None, feature, 50.0)], n_tokens=8, seed=1
    )
    first_steered, first_default = result.steered.tokens[0], result.default.tokens[0]
    assert first_steered.top_probabilities != first_default.top_probabilities
    assert all(len(t.top_tokens) == 5 for t in result.steered.tokens)


# ---------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("interventions", "field"),
    [
        (
            [Intervention.ablate(0, 3, 1), Intervention.ablate(0, 40, 1)],
            "interventions[1].position",
        ),
        ([Intervention.ablate(0, 0, 1)], "interventions[0].position"),
        ([Intervention.ablate(0, -9, 1)], "interventions[0].position"),
        ([Intervention.ablate(3, 1, 1)], "interventions[0].layer"),
        ([Intervention.ablate(0, 1, 40)], "interventions[0].feature"),
        ([Intervention.scale_by(0, 1, 2, 1e9)], "interventions[0].value"),
        ([Intervention.set_to(0, 1, 2, float("nan"))], "interventions[0].value"),
        ([{"layer": 0, "position": 1, "feature": 2, "action": "boost"}], "interventions[0].action"),
        ([{"layer": 0, "position": 1, "feature": 2, "action": "set"}], "interventions[0].value"),
        (
            [{"layer": "0", "position": 1, "feature": 2, "action": "ablate"}],
            "interventions[0].layer",
        ),
        (
            [{"layer": 0, "feature": 2, "action": "ablate", "strength": 3}],
            "interventions[0].strength",
        ),
        ([{"position": 1, "feature": 2, "action": "ablate"}], "interventions[0].layer"),
        ([(0, 1, 2, "ablate")], "interventions[0]"),
        ("ablate", "interventions"),
    ],
)
def test_bad_interventions_raise_an_error_naming_the_field(
    llama: ReplacementModel, interventions: Any, field: str
) -> None:
    with pytest.raises(InterventionError) as raised:
        intervene(PROMPT, llama, interventions)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_position_out_of_range_message_counts_the_prompt_tokens(llama: ReplacementModel) -> None:
    with pytest.raises(InterventionError, match=r"40 is outside the prompt \(7 tokens\)"):
        intervene(PROMPT, llama, [Intervention.ablate(0, 40, 1)])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "loose"}, "mode"),
        ({"mode": "constrained", "freeze_attention": False}, "freeze_attention"),
    ],
)
def test_bad_intervene_settings_name_the_field(
    llama: ReplacementModel, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InterventionError) as raised:
        intervene(PROMPT, llama, [], **kwargs)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_tokens": 0}, "n_tokens"),
        ({"n_tokens": 5000}, "n_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"seed": -3}, "seed"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_bad_steering_settings_name_the_field(
    llama: ReplacementModel, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InterventionError) as raised:
        steer_generate(PROMPT, llama, [], **kwargs)
    assert raised.value.field == field


def test_steering_past_the_models_context_names_n_tokens(llama: ReplacementModel) -> None:
    with pytest.raises(InterventionError, match=r"^n_tokens: 7 prompt tokens \+ 60 new tokens"):
        steer_generate(PROMPT, llama, [], n_tokens=60)


def test_an_empty_too_long_or_out_of_vocabulary_prompt_names_the_prompt(
    llama: ReplacementModel,
) -> None:
    for prompt in ([], [5, 999], [5] * 80):
        with pytest.raises(InterventionError) as raised:
            intervene(prompt, llama, [])
        assert raised.value.field == "prompt"
