"""The real-checkpoint golden case: Gemma-3-270M (cached by `make gemma3-270m`) with seeded
JumpReLU transcoders, attributed once by circuit-tracer 0.5.0 (tests/engine/golden/make_golden.py
--gemma3) and on every test run where the checkpoint is present (test_gemma3_270m.py)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from .golden_cases import GOLDEN

CHECKPOINT = Path(__file__).resolve().parents[2] / "var" / "models" / "gemma-3-270m"
GOLDEN_FILE = GOLDEN / "gemma3-270m-jumprelu-16.safetensors"
PROMPT = "The capital of France is"
N_LAYERS = 18
D_MODEL = 640
D_TRANSCODER = 128
THRESHOLD = 2.5  # pre-activations are about N(0, 1): ~1 feature in 160 fires
MAX_FEATURE_NODES = 16
BATCH_SIZE = 8
INPUT_HOOK = "ln2.hook_normalized"
OUTPUT_HOOK = "hook_mlp_out"


def write_transcoders(folder: Path, seed: int = 0) -> Path:
    """Per-layer JumpReLU transcoders in circuit-tracer's layer_{i}.safetensors form."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    f, d = D_TRANSCODER, D_MODEL
    for layer in range(N_LAYERS):
        tensors = {
            "W_enc": torch.randn(f, d, generator=g) / d**0.5,
            "W_dec": torch.randn(f, d, generator=g) / f**0.5,
            "b_enc": torch.zeros(f),
            "b_dec": torch.zeros(d),
            "activation_function.threshold": torch.full((f,), THRESHOLD),
        }
        save_file(tensors, str(folder / f"layer_{layer}.safetensors"))
    config = {
        "model_kind": "transcoder_set",
        "feature_input_hook": INPUT_HOOK,
        "feature_output_hook": OUTPUT_HOOK,
        "transcoders": [f"layer_{i}.safetensors" for i in range(N_LAYERS)],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder
