"""The attribution graph: the data contract every other module reads.

Nodes, in this order (N = n_selected + n_layers * n_pos + n_pos + n_logits):

    [selected features | errors (layer-major, then position) | tokens | logits]

- feature node k is ``active_features[selected_features[k]]`` = (layer, pos, feature index);
  its activation is ``activation_values[selected_features[k]]``.
- error node (layer, pos) sits at ``n_selected + layer * n_pos + pos``: the transcoder's
  reconstruction error at that layer's output hook.
- token node pos sits at ``n_selected + n_layers * n_pos + pos``: its token embedding.
- logit node i is target i: ``logit_tokens[i]`` is a vocabulary id, or ``vocab_size + i`` for a
  custom target (logit difference, arbitrary direction); ``logit_probabilities[i]`` is its
  softmax probability (or the weight given for a custom target).

``adjacency`` (N, N) float32: ``adjacency[t, s]`` is the direct linear effect of source s on
target t in the linearised model. Rows are targets, columns sources; only feature and logit rows
can be non-zero (errors and tokens have no inputs). The special first token's features and
errors are zeroed, so they never appear as active.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Graph:
    input_string: str
    input_tokens: torch.Tensor  # (n_pos,) int64
    input_token_strings: list[str]  # decoded tokens, for display and JSON export
    active_features: torch.Tensor  # (n_active, 3) int64: layer, pos, feature index
    activation_values: torch.Tensor  # (n_active,) float32
    selected_features: torch.Tensor  # (n_selected,) int64 indices into active_features
    adjacency: torch.Tensor  # (N, N) float32, rows = targets, cols = sources
    logit_tokens: torch.Tensor  # (n_logits,) int64
    logit_probabilities: torch.Tensor  # (n_logits,) float32
    logit_labels: list[str]  # decoded target tokens or custom target labels
    n_layers: int
    vocab_size: int
    scan: str | None = None
    model_name: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # generation settings, for metadata

    @property
    def n_pos(self) -> int:
        return int(self.input_tokens.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.selected_features.shape[0])

    @property
    def n_logits(self) -> int:
        return int(self.logit_tokens.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def error_offset(self) -> int:
        return self.n_features

    @property
    def token_offset(self) -> int:
        return self.n_features + self.n_layers * self.n_pos

    @property
    def logit_offset(self) -> int:
        return self.token_offset + self.n_pos

    @property
    def logit_weights(self) -> torch.Tensor:
        """(N,) zero except the logit nodes, which carry their probabilities."""
        weights = torch.zeros(self.n_nodes, dtype=torch.float32)
        weights[self.logit_offset :] = self.logit_probabilities.float()
        return weights
