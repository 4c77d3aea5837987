"""Oracles for the analysis-box helpers of ``localsharp.sharpening.box`` (added where mutation testing
showed a changed helper passing the fast tests): FFT-friendly growth of every axis, and a
segmentation contour that follows the map's level."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from localsharp.sharpening.box import fft_friendly, segmentation_threshold


@pytest.mark.parametrize("bounds, shape", [
    (((0, 47), (3, 34), (5, 36)), (47, 40, 48)),    # the first axis cannot grow (48 > 47); the others can
    (((2, 9), (0, 40), (10, 17)), (20, 40, 30)),
    (((0, 7), (1, 8), (0, 11)), (7, 9, 11))])
def test_fft_friendly_grows_every_axis_that_can_grow(bounds, shape) -> None:
    out = fft_friendly(bounds, shape)
    assert len(out) == 3
    for (a, b), (c, d), n in zip(bounds, out, shape):
        fast = scipy.fft.next_fast_len(b - a, real=True)
        if fast > n:
            assert (c, d) == (a, b)  # kept as it is
        else:
            assert d - c == fast and 0 <= c <= a and b <= d <= n  # grown around it, inside the map


def test_segmentation_threshold_follows_a_constant_offset() -> None:
    rng = np.random.default_rng(3)
    data = np.zeros((32, 32, 32), np.float32)
    z, y, x = np.indices(data.shape)
    for _ in range(12):
        c = rng.uniform(6, 26, 3)
        data += np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / 6.0).astype(np.float32)
    data += 0.02 * rng.standard_normal(data.shape).astype(np.float32)
    level, expected = segmentation_threshold(data, 0.8, 1.0)
    shifted, expected_shifted = segmentation_threshold(data + np.float32(5.0), 0.8, 1.0)
    assert expected_shifted == expected >= 1
    assert shifted - 5.0 == pytest.approx(level, abs=1e-4)  # measured from the map's median
    assert float(np.median(data)) < level < float(data.max())
