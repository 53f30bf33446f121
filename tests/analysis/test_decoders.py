"""Decoder rows read with numpy match what safetensors (the engine's reader) reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file, save_file

from analysis.decoders import DecoderFileError, read_decoders

PACK = Path(__file__).resolve().parents[2] / "inference" / "packs" / "demo" / "transcoders"


def test_the_demo_packs_rows_are_the_safetensors_rows() -> None:
    keys = [(0, 7), (0, 2047), (3, 818), (2, 1409)]
    got = read_decoders(PACK / "config.yaml", keys)
    assert set(got) == set(keys)
    for layer, index in keys:
        expected = load_file(str(PACK / f"layer_{layer}.safetensors"))["W_dec"][index]
        np.testing.assert_array_equal(got[(layer, index)], expected)


def test_a_folder_without_config_is_read_too(tmp_path: Path) -> None:
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    save_file({"W_dec": w, "W_enc": w}, str(tmp_path / "layer_1.safetensors"))
    got = read_decoders(tmp_path, [(1, 2), (1, 9), (0, 0)])
    assert list(got) == [(1, 2)]  # index 9 and layer 0 do not exist
    np.testing.assert_array_equal(got[(1, 2)], w[2])


def test_cross_layer_decoders_are_summed_over_the_layers_they_write(tmp_path: Path) -> None:
    w = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    save_file({"W_dec_1": w}, str(tmp_path / "W_dec_1.safetensors"))
    got = read_decoders(tmp_path, [(1, 1)])
    np.testing.assert_array_equal(got[(1, 1)], w[1].sum(axis=0))


def test_bfloat16_is_widened_exactly(tmp_path: Path) -> None:
    values = np.array([[1.0, -2.5, 0.15625], [3.0, 0.0, -0.5]], dtype=np.float32)
    # bfloat16 bits: the top 16 bits of each float32 (these values are exact in bf16).
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    header = b'{"W_dec":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}'
    (tmp_path / "layer_0.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bits.tobytes()
    )
    got = read_decoders(tmp_path, [(0, 0), (0, 1)])
    np.testing.assert_array_equal(got[(0, 1)], values[1])
    np.testing.assert_array_equal(got[(0, 0)], values[0])


def test_a_set_on_the_hub_or_elsewhere_has_no_decoders_here(tmp_path: Path) -> None:
    config = {"model_kind": "transcoder_set", "transcoders": ["hf://org/repo/layer_0.safetensors"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert read_decoders(tmp_path / "config.yaml", [(0, 1)]) == {}
    assert read_decoders(tmp_path / "missing", [(0, 1)]) == {}


def test_a_file_that_is_not_safetensors_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "layer_0.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(DecoderFileError, match="not a safetensors file"):
        read_decoders(tmp_path, [(0, 0)])
