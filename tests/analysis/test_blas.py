"""analysis.blas: numpy's matrix products on one thread while an analysis runs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from analysis import blas


@pytest.fixture
def three_threads() -> Iterator[None]:
    controls = blas._controls()
    if controls is None:
        pytest.skip("numpy's BLAS here is not an OpenBLAS whose threads can be set")
    before = blas.threads()
    controls.set_threads(3)
    yield
    controls.set_threads(before)


def test_products_run_on_one_thread_inside_and_as_before_after(three_threads: None) -> None:
    with blas.one_thread():
        assert blas.threads() == 1
        product = np.ones((64, 64)) @ np.ones((64, 64))
    assert product[0, 0] == 64
    assert blas.threads() == 3


def test_the_count_comes_back_only_when_the_last_caller_leaves(three_threads: None) -> None:
    with blas.one_thread():
        with blas.one_thread():
            assert blas.threads() == 1
        assert blas.threads() == 1
    assert blas.threads() == 3


def test_an_error_inside_still_gives_the_threads_back(three_threads: None) -> None:
    with pytest.raises(ZeroDivisionError), blas.one_thread():
        1 / 0  # noqa: B018
    assert blas.threads() == 3
