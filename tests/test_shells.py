"""Resolution shells and Fourier shell correlation (localsharp.kernels.shells)."""

from __future__ import annotations

import numpy as np
import pytest

from localsharp.kernels.fourier import FourierGrid, to_coefficients
from localsharp.kernels.shells import assign_shells, fsc_crossing, shell_centres, shell_fsc, shell_sum


def _random_map(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def grid() -> FourierGrid:
    return FourierGrid((24, 20, 22), (1.1, 1.0, 0.9))


def test_assign_shells_covers_the_sphere_without_empty_shells(grid: FourierGrid) -> None:
    index, edges = assign_shells(grid, 2.5, 12)
    assert index.shape == grid.rfft_shape and index.dtype == np.int32
    assert len(edges) == 13 and np.all(np.diff(edges) > 0)
    assert np.allclose(np.diff(edges**3), (edges[-1] ** 3 - edges[0] ** 3) / 12)  # equal reciprocal volume
    counts = np.bincount(index[index >= 0], minlength=12)
    assert np.all(counts > 0)
    inside = (grid.s2 <= np.float32(1 / 2.5**2))
    inside[0, 0, 0] = False
    assert np.array_equal(index >= 0, inside)  # F000 and d < d_min are -1
    s = np.sqrt(grid.s2.astype(np.float64))
    for i in range(12):
        sel = s[index == i]
        assert sel.min() >= edges[i] - 1e-6 and sel.max() <= edges[i + 1] + 1e-6


def test_assign_shells_reduces_bins_until_none_is_empty() -> None:
    small = FourierGrid((6, 6, 6), (1.0, 1.0, 1.0))
    index, edges = assign_shells(small, 2.0, 100)
    n = len(edges) - 1
    assert 1 <= n < 100
    assert np.all(np.bincount(index[index >= 0], minlength=n) > 0)


def test_assign_shells_rejects_bad_arguments(grid: FourierGrid) -> None:
    with pytest.raises(ValueError, match="d_min"):
        assign_shells(grid, 0.0, 10)
    with pytest.raises(ValueError, match="n_bins"):
        assign_shells(grid, 3.0, 0)
    with pytest.raises(ValueError, match="no Fourier coefficient"):
        assign_shells(grid, 1000.0, 10)


def test_fsc_of_identical_maps_is_one_in_every_shell(grid: FourierGrid) -> None:
    coeffs = to_coefficients(_random_map(grid.shape, 1))
    index, edges = assign_shells(grid, 2.0, 10)
    fsc = shell_fsc(coeffs, coeffs, index, len(edges) - 1, grid.multiplicity)
    assert np.allclose(fsc, 1.0, atol=1e-9)
    assert np.allclose(shell_fsc(coeffs, 3 * coeffs, index, len(edges) - 1, grid.multiplicity), 1.0)
    assert np.allclose(shell_fsc(coeffs, -coeffs, index, len(edges) - 1, grid.multiplicity), -1.0)


def test_fsc_is_symmetric_and_near_zero_for_independent_noise(grid: FourierGrid) -> None:
    a = to_coefficients(_random_map(grid.shape, 2))
    b = to_coefficients(_random_map(grid.shape, 3))
    index, edges = assign_shells(grid, 2.0, 8)
    n = len(edges) - 1
    ab = shell_fsc(a, b, index, n, grid.multiplicity)
    ba = shell_fsc(b, a, index, n, grid.multiplicity)
    assert np.array_equal(ab, ba)
    counts = shell_sum(np.ones(index.shape), index, n, grid.multiplicity)
    assert np.all(np.abs(ab) < 5 / np.sqrt(counts / 2))  # half of the full-sphere count is independent


def test_fsc_is_zero_where_a_map_has_no_power(grid: FourierGrid) -> None:
    a = to_coefficients(_random_map(grid.shape, 4))
    index, edges = assign_shells(grid, 2.0, 5)
    assert np.array_equal(shell_fsc(a, np.zeros_like(a), index, 5, grid.multiplicity), np.zeros(5))


@pytest.mark.parametrize("shape", [(12, 10, 14), (12, 10, 13)])  # even and odd nx
def test_rfft_multiplicity_reproduces_the_full_sphere_fsc(shape: tuple[int, int, int]) -> None:
    grid = FourierGrid(shape, (1.0, 1.0, 1.0))
    m1, m2 = _random_map(shape, 5), _random_map(shape, 6)
    m2 = m2 + 0.7 * m1
    index, edges = assign_shells(grid, 2.0, 4)
    n = len(edges) - 1
    fsc = shell_fsc(to_coefficients(m1), to_coefficients(m2), index, n, grid.multiplicity)
    # Reference: full complex FFT, shells from the same |s| (every coefficient counted once).
    full1, full2 = np.fft.fftn(m1), np.fft.fftn(m2)
    nz, ny, nx = shape
    s2 = (np.fft.fftfreq(nz)[:, None, None] ** 2 + np.fft.fftfreq(ny)[None, :, None] ** 2
          + np.fft.fftfreq(nx)[None, None, :] ** 2)
    s = np.sqrt(s2)
    keep = (s2 <= 1 / 4.0) & (s > 0)
    shell = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n - 1)
    for i in range(n):
        sel = keep & (shell == i)
        cross = np.sum((full1[sel] * np.conj(full2[sel])).real)
        ref = cross / np.sqrt(np.sum(np.abs(full1[sel]) ** 2) * np.sum(np.abs(full2[sel]) ** 2))
        assert fsc[i] == pytest.approx(ref, abs=1e-6)


def test_shell_centres_are_midpoints() -> None:
    assert np.allclose(shell_centres(np.array([0.1, 0.2, 0.4])), [0.15, 0.3])


def test_fsc_crossing_interpolates_in_s() -> None:
    s = np.array([0.1, 0.2, 0.3, 0.4])
    fsc = np.array([0.9, 0.5, 0.1, 0.3])
    s_cross = 0.2 + (0.5 - 0.143) / (0.5 - 0.1) * 0.1
    assert fsc_crossing(s, fsc) == pytest.approx(1 / s_cross)
    assert fsc_crossing(s, np.array([0.9, 0.8, 0.7, 0.6])) is None
    assert fsc_crossing(s, np.array([0.1, 0.8, 0.7, 0.6])) == pytest.approx(10.0)
