"""The diff's edges are the ``max_edges`` that changed most, as a full stable sort would give."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import diff


@pytest.mark.parametrize("limit", [None, 0, 1, 7, 50, 199, 200, 500])
def test_the_most_changed_edges_are_a_stable_sort_s_first(limit: int | None) -> None:
    # Rounded values: many ties, which must keep their index order.
    change = np.round(np.random.default_rng(limit or 0).standard_normal(200), 1)
    expected = np.argsort(-np.abs(change), kind="stable")[:limit]
    assert diff._most_changed(change, limit).tolist() == expected.tolist()
