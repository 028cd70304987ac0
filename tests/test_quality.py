"""The sample-quality metrics of benchmarks/samples.py, on made-up feature sets."""

from __future__ import annotations

import numpy as np
import pytest

from electric_sheep.analysis.quality import frechet_distance, grey_share, kernel_distance

MIX = np.random.default_rng(99).standard_normal((8, 8)) * 0.5  # one distribution: correlated features


def _features(seed: int, n: int = 600, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 8)) @ MIX + shift


def test_identical_sets_are_at_distance_zero():
    a = _features(0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert abs(kernel_distance(a, _features(1))) < 0.01 * kernel_distance(a, _features(1, shift=1.0))


def test_distances_grow_with_a_shift():
    a = _features(0)
    others = [_features(1, shift=s) for s in (0.0, 0.3, 1.0)]
    fid = [frechet_distance(a, x) for x in others]
    kid = [kernel_distance(a, x) for x in others]
    assert fid[0] < fid[1] < fid[2] and kid[0] < kid[1] < kid[2]
    assert fid[2] - fid[0] == pytest.approx(8 * 1.0**2, rel=0.1)  # the means' squared distance


def test_grey_share_tells_blur_from_lines():
    lines = np.zeros((2, 28, 28), np.uint8)
    lines[:, 10, 4:24] = 255  # a thresholded line: no grey at all
    assert grey_share(lines) == 0.0
    blurred = np.full((1, 28, 28), 0.5)
    assert grey_share(blurred) == 1.0
    mixed = np.zeros((1, 28, 28))
    mixed[0, 0, :7] = [0.1, 0.2, 0.5, 0.8, 0.9, 1.0, 0.0]  # three of them grey
    assert grey_share(mixed) == pytest.approx(3 / 784)
