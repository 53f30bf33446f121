"""Transcoder formats, activation functions, lazy decoders and load errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from inference.engine import (
    ReplacementModel,
    TranscoderLoadError,
    attribute,
    load_transcoders,
    transcoders,
)
from inference.engine.transcoders import JumpReLU, MappedTensor, ReLU, TopK

from .builders import (
    D_MODEL,
    D_TRANSCODER,
    N_LAYERS,
    random_plt_params,
    save_gemmascope_npz,
    save_plt,
    tiny_model,
)


def test_activation_functions() -> None:
    pre = torch.tensor([[-1.0, 0.05, 0.25, 2.0]])
    jump = JumpReLU(torch.tensor([0.0, 0.1, 0.1, 0.1]))(pre)
    torch.testing.assert_close(jump, torch.tensor([[0.0, 0.0, 0.25, 2.0]]))
    torch.testing.assert_close(ReLU()(pre), torch.tensor([[0.0, 0.05, 0.25, 2.0]]))
    torch.testing.assert_close(TopK(2)(pre), torch.tensor([[0.0, 0.0, 0.25, 2.0]]))


def test_topk_from_config_limits_active_features_per_position(tmp_path: Path) -> None:
    config = save_plt(tmp_path / "tc", activation="topk", k=3)
    rm = ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))
    graph = attribute([5, 6, 7, 8], rm)
    per_site = torch.unique(graph.active_features[:, :2], dim=0, return_counts=True)[1]
    assert per_site.max() <= 3
    assert len(per_site) == N_LAYERS * 4


def test_plt_files_load_with_jumprelu_and_skip(tmp_path: Path) -> None:
    config = save_plt(tmp_path / "tc", jumprelu=True, skip=True)
    tc = load_transcoders(config)
    expected = random_plt_params(1, jumprelu=True, skip=True)
    assert torch.equal(tc.W_enc[1], expected["W_enc"])
    assert isinstance(tc.activations[1], JumpReLU)
    assert torch.equal(tc.activations[1].threshold, expected["activation_function.threshold"])
    skip = tc.skip[1]
    assert skip is not None
    assert torch.equal(skip, expected["W_skip"].T)
    assert tc.feature_input_hook == "mlp.hook_in"
    assert not tc.cross_layer


def test_gemmascope_npz_loads_and_attributes_on_gemma2(tmp_path: Path) -> None:
    tc = load_transcoders(save_gemmascope_npz(tmp_path / "gs"))
    expected = random_plt_params(0, jumprelu=True)
    torch.testing.assert_close(tc.W_enc[0], expected["W_enc"])  # transposed back to (F, d)
    rm = ReplacementModel.from_parts(tiny_model("gemma2"), tc)
    assert attribute([5, 6, 7], rm).n_features > 0


def test_decoder_rows_are_read_from_a_memory_map(tmp_path: Path) -> None:
    weights = torch.randn(50, 8).to(torch.bfloat16)
    save_file({"W_dec": weights}, str(tmp_path / "w.safetensors"))
    mapped = MappedTensor(tmp_path / "w.safetensors", "W_dec")
    assert torch.equal(mapped.rows(torch.tensor([3, 41, 7])), weights[[3, 41, 7]])


def test_hf_uris_and_relative_paths_in_config(tmp_path: Path) -> None:
    config = save_plt(tmp_path / "tc")
    data = yaml.safe_load(config.read_text())
    data["transcoders"][0] = str((tmp_path / "tc" / "layer_0.safetensors").resolve())
    config.write_text(yaml.safe_dump(data))
    assert load_transcoders(config).n_layers == N_LAYERS
    data["transcoders"][0] = "hf://not-a-uri"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(TranscoderLoadError, match="malformed hf://"):
        load_transcoders(config)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_file", "not found"),
        ("bad_kind", "unknown model_kind"),
        ("bad_hook", "unsupported feature_input_hook"),
        ("bad_shape", "W_dec shape"),
        ("topk_without_k", "positive integer k"),
    ],
)
def test_load_errors_say_what_is_wrong(tmp_path: Path, breakage: str, message: str) -> None:
    config = save_plt(tmp_path / "tc")
    data = yaml.safe_load(config.read_text())
    if breakage == "missing_file":
        (tmp_path / "tc" / "layer_2.safetensors").unlink()
    elif breakage == "bad_kind":
        data["model_kind"] = "sae"
    elif breakage == "bad_hook":
        data["feature_input_hook"] = "hook_resid_pre"
    elif breakage == "bad_shape":
        params = random_plt_params(1)
        params["W_dec"] = torch.zeros(D_TRANSCODER + 1, D_MODEL)
        save_file(params, str(tmp_path / "tc" / "layer_1.safetensors"))
    elif breakage == "topk_without_k":
        data["activation"] = "topk"
    config.write_text(yaml.safe_dump(data))

    def load_and_check() -> None:
        load_transcoders(config).validate(N_LAYERS, D_MODEL)

    with pytest.raises(TranscoderLoadError, match=message):
        load_and_check()


def test_transcoders_for_another_model_are_refused(tmp_path: Path) -> None:
    config = save_plt(tmp_path / "tc", n_layers=N_LAYERS - 1)
    with pytest.raises(TranscoderLoadError, match="layers"):
        ReplacementModel.from_parts(tiny_model("llama"), load_transcoders(config))


def test_a_hub_id_loads_its_config_and_files_from_that_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_plt(tmp_path / "repo")
    fetched: list[tuple[str, str, str | None]] = []

    def fake_download(repo: str, filename: str, revision: str | None = None) -> str:
        fetched.append((repo, filename, revision))
        return str(tmp_path / "repo" / filename)

    monkeypatch.setattr(transcoders, "hf_hub_download", fake_download)
    tc = load_transcoders("org/plt-set@v1")
    assert tc.n_layers == N_LAYERS
    assert fetched[0] == ("org/plt-set", "config.yaml", "v1")
    assert fetched[1] == ("org/plt-set", "layer_0.safetensors", "v1")
    assert tc.scan == "org/plt-set@v1"
