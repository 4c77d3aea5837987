"""Brute-force oracles for small kernels whose only other tests run through larger paths.

Added where mutation testing (``benchmarks/mutation.py``) showed a changed kernel passing the tests
that exercise its module: each kernel is compared with a plain numpy computation of what its
docstring says, on values that reach every branch (below, inside, at and above the bounds).
"""

from __future__ import annotations

import numpy as np
import pytest

from localsharp.kernels import order_stats, regions
from localsharp.kernels import regions_jit
from localsharp.kernels.regions_jit import kth_in_bracket, kurtosis_and_bracket


@pytest.fixture
def values() -> np.ndarray:
    rng = np.random.default_rng(11)
    v = rng.normal(size=5000).astype(np.float32)
    v[:50] = 0.5  # ties at a bound
    v[50:60] = 1.5
    return v


@pytest.mark.parametrize("lo, hi, n_bins", [(-1.0, 1.5, 7), (0.5, 1.5, 4), (-5.0, 5.0, 13)])
def test_range_histogram_counts_below_and_in_equal_bins(values: np.ndarray, lo: float, hi: float,
                                                        n_bins: int) -> None:
    below, counts = order_stats.range_histogram(values, lo, hi, n_bins)
    assert below == int(np.count_nonzero(values < lo))
    edges = np.linspace(lo, hi, n_bins + 1)
    inside = values[(values >= lo) & (values < hi)].astype(np.float64)
    expected = np.array([np.count_nonzero((inside >= a) & (inside < b)) for a, b in zip(edges[:-1], edges[1:])])
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == np.count_nonzero((values >= lo) & (values < hi))  # values >= hi are not counted
    a, b = order_stats.bin_bounds(lo, hi, n_bins, n_bins - 1)
    assert (a, b) == (edges[-2], edges[-1])
    got = np.sort(order_stats.values_in(values, lo, hi))
    np.testing.assert_array_equal(got, np.sort(values[(values >= lo) & (values < hi)]))


@pytest.mark.parametrize("n, q", [(10, 0.0), (10, 0.3), (11, 0.5), (7, 0.99), (1, 0.4)])
def test_quantile_from_order_statistics_is_numpy_quantile(n: int, q: float) -> None:
    v = np.sort(np.random.default_rng(n).normal(size=n))
    below, above, gamma = order_stats.quantile_ranks(n, q)
    assert order_stats.linear_quantile(v[below], v[above], gamma) == pytest.approx(float(np.quantile(v, q)),
                                                                                   rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("k, t_lo, t_hi", [(1, -10.0, 10.0), (60, 0.5, 1.5), (100, 0.0, 2.0), (2500, -0.2, 0.2),
                                           (10, 3.0, 4.0), (5000, -10.0, 10.0), (4000, 1.0, 2.0)])
def test_kth_in_bracket_numpy_and_jit_agree_with_sorting(values: np.ndarray, k: int, t_lo: float,
                                                         t_hi: float) -> None:
    ordered = np.sort(values)[::-1]
    truth = float(ordered[k - 1])
    inside = t_lo <= truth <= t_hi
    for found, value in (regions._kth_in_bracket_numpy(values, k, t_lo, t_hi),  # noqa: SLF001
                         kth_in_bracket(values, k, t_lo, t_hi)):
        assert bool(found) == inside
        if inside:
            assert float(value) == truth


@pytest.mark.parametrize("t_lo, t_hi", [(0.5, 1.5), (-0.3, 0.9), (-1.0, 0.0)])
def test_kth_in_bracket_at_the_bracket_edges(values: np.ndarray, t_lo: float, t_hi: float) -> None:
    """k at the ends of the bracket: the largest value in it, and the smallest (k = all values ≥ t_lo)."""
    ordered = np.sort(values)[::-1]
    n_hi = int(np.count_nonzero(values > t_hi))
    n_in = int(np.count_nonzero((values >= t_lo) & (values <= t_hi)))
    for k, inside in ((n_hi + 1, True), (n_hi + n_in, True), (n_hi + n_in + 1, False), (n_hi, False)):
        kurt, ok, counted, bracket = kurtosis_and_bracket(values, k, t_lo, t_hi)
        assert kurt == regions_jit.kurtosis(values) and counted == n_hi
        from_bracket = (bool(ok), float(np.sort(bracket)[::-1][k - n_hi - 1]) if ok else 0.0)
        for found, value in (regions._kth_in_bracket_numpy(values, k, t_lo, t_hi),  # noqa: SLF001
                             kth_in_bracket(values, k, t_lo, t_hi), from_bracket):
            assert bool(found) == inside, (k, n_hi, n_in)
            if inside:
                assert float(value) == float(ordered[k - 1])


def test_splat_gaussians_adds_each_atom_within_its_reach() -> None:
    """The numba kernel against a direct sum of ``amplitude·exp(−alpha·r²)`` for r ≤ reach, on a block
    that starts inside the grid, with atoms near and across its faces."""
    from localsharp.kernels.splat_jit import splat_gaussians

    rng = np.random.default_rng(5)
    voxel, start = 1.3, np.array([4, 2, 6], dtype=np.int64)
    block = np.zeros((9, 11, 10), np.float32)
    xyz = np.column_stack([rng.uniform(4, 22, 12), rng.uniform(0, 18, 12), rng.uniform(3, 18, 12)])
    amplitude, alpha, reach = rng.uniform(0.5, 2, 12), rng.uniform(0.1, 0.6, 12), rng.uniform(2, 5, 12)
    splat_gaussians(block, start, voxel, xyz, amplitude, alpha, reach)
    k, j, i = np.indices(block.shape)
    gz, gy, gx = (k + start[0]) * voxel, (j + start[1]) * voxel, (i + start[2]) * voxel
    expected = np.zeros(block.shape)
    for (x, y, z), amp, a, r in zip(xyz, amplitude, alpha, reach):
        inside = (np.abs(gx - x) <= r) & (np.abs(gy - y) <= r) & (np.abs(gz - z) <= r)  # the atom's cube
        expected += np.where(inside, amp * np.exp(-a * ((gx - x) ** 2 + (gy - y) ** 2 + (gz - z) ** 2)), 0.0)
    assert np.abs(expected).max() > 0.5
    np.testing.assert_allclose(block, expected, rtol=1e-5, atol=1e-6)
