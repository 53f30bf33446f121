"""The tiny models and transcoders of the golden files: what circuit-tracer 0.5.0 attributed once
(tests/engine/golden/make_golden.py) and `test_golden.py` attributes on every run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import builders

GOLDEN = Path(__file__).parent / "golden"
NODE_THRESHOLD = 0.8
EDGE_THRESHOLD = 0.98


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "plt" or "clt"
    tokens: tuple[int, ...]  # special first token included, so both engines see the same ids
    max_feature_nodes: int | None
    batch_size: int
    d_transcoder: int

    @property
    def path(self) -> Path:
        return GOLDEN / f"{self.name}.safetensors"

    def write_files(self, folder: Path) -> tuple[Path, Path]:
        """The model folder and transcoder folder (its config.yaml inside), seeded."""
        model_dir = builders.save_model("llama", folder / "model")
        transcoders = folder / self.name
        if self.kind == "clt":
            builders.save_clt(
                transcoders,
                d_transcoder=self.d_transcoder,
                jumprelu=True,
                input_hook="mlp.hook_in",
                output_hook="mlp.hook_out",
            )
        else:
            builders.save_plt(transcoders, d_transcoder=self.d_transcoder, jumprelu=True, skip=True)
        return model_dir, transcoders


CASES = (
    # The influence ranking picks 16 of the active features, in batches of 4 (4 re-rankings).
    Case("llama-plt-jumprelu-skip-16", "plt", (builders.BOS, 5, 9, 7, 12, 30), 16, 4, 40),
    # A cross-layer set, every active feature kept.
    Case("llama-clt-jumprelu-all", "clt", (builders.BOS, 5, 9, 7), None, 64, 6),
)
