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

The adjacency, ``adjacency[t, s]``, is the direct linear effect of source s on target t in the
linearised model: rows are targets, columns sources. Only feature and logit rows can be non-zero
(errors and tokens have no inputs), so the graph holds just those: ``target_rows``
(n_selected + n_logits, N) float32, the feature rows then the logit rows, in node order. The
(N, N) form would be mostly zeros, and at long prompts the zeros are what does not fit: at 8,192
tokens of a 26-layer model the error nodes alone make N about 229k, so (N, N) is 210 GB against
7.5 GB for the rows of 8,192 features. ``adjacency`` builds the square form for small graphs
(comparisons, tests). The special first token's features and errors are zeroed, so they never
appear as active.
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
    target_rows: torch.Tensor  # (n_selected + n_logits, N) float32: features', then logits' rows
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
        return int(self.target_rows.shape[1])

    @property
    def row_nodes(self) -> torch.Tensor:
        """The node of each of ``target_rows``' rows: the features, then the logits."""
        n = self.n_nodes
        return torch.cat([torch.arange(self.n_features), torch.arange(n - self.n_logits, n)])

    @property
    def adjacency(self) -> torch.Tensor:
        """The (N, N) adjacency, zero rows included: O(N^2) memory, for small graphs."""
        square = torch.zeros(self.n_nodes, self.n_nodes, dtype=self.target_rows.dtype)
        square[self.row_nodes] = self.target_rows
        return square

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
