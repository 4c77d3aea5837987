"""The slab/pencil 3-D FFT through zarr intermediates equals scipy's in-memory transform."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import scipy.fft

from localsharp.engine.overall import dfft
from localsharp.kernels import fourier, radial, slab_fft


def _produce(data: np.ndarray, z0: int, z1: int) -> tuple[np.ndarray, float]:
    return data[z0:z1], float(data[z0:z1].sum(dtype=np.float64))


def _keep(pencil: np.ndarray, y0: int, y1: int) -> None:
    return None


def _collect(out: np.ndarray, z0: int, z1: int, slab: np.ndarray) -> tuple[int, np.ndarray]:
    return z0, slab


@pytest.mark.parametrize("shape,t", [((20, 18, 16), 8), ((23, 17, 15), 8), ((9, 30, 11), 4), ((16, 16, 16), 16)])
def test_forward_and_inverse_match_scipy(tmp_path, shape, t):
    rng = np.random.default_rng(sum(shape))
    data = rng.standard_normal(shape).astype(np.float32) + 0.3
    array = dfft.SpectrumArray(str(tmp_path / "coeffs"), shape, t).create()
    runner = dfft.Runner(None)
    sums = dfft.forward_slabs(runner, array, partial(_produce, data))
    assert sum(sums) == pytest.approx(float(data.sum(dtype=np.float64)))
    full = array.like(str(tmp_path / "full"))
    dfft.pencil_pass(runner, array, _keep, forward=True, out=full)
    coeffs = np.asarray(full.open()[:])
    expected = scipy.fft.rfftn(data)
    scale = float(np.abs(expected).max())
    assert np.abs(coeffs - expected).max() <= 1e-5 * scale
    # a pass never writes into the array it reads: running it twice gives the same result
    dfft.pencil_pass(runner, array, _keep, forward=True, out=full)
    assert np.array_equal(np.asarray(full.open()[:]), coeffs)
    back2d = full.like(str(tmp_path / "back"))
    dfft.pencil_pass(runner, full, _keep, inverse=True, out=back2d)
    parts = dfft.inverse_slabs(runner, back2d, partial(_collect, None))
    back = np.concatenate([slab for _, slab in sorted(parts, key=lambda p: p[0])])
    assert back.shape == shape and back.dtype == np.float32
    assert np.abs(back - data).max() <= 1e-5 * float(np.abs(data).max())


def _sphere(grid: fourier.FourierGrid, radius: float, pencil: np.ndarray, y0: int, y1: int) -> None:
    slab_fft.sphere_average_pencil(pencil, grid, radius, y0, y1)


def test_pencil_geometry_and_sphere_factor_equal_the_whole_array(tmp_path):
    shape, voxel = (21, 18, 14), (1.3, 1.1, 1.2)
    grid = fourier.FourierGrid(shape, voxel)
    s2 = grid.s2
    keep_all = fourier.resolution_mask(grid, 3.0)
    flat = np.flatnonzero(keep_all)
    s_all = grid.s_cartesian_at(flat)
    pieces = [slab_fft.pencil_coefficients(grid, y0, min(y0 + 5, 18), 3.0) for y0 in range(0, 18, 5)]
    for y0, piece in zip(range(0, 18, 5), pieces):
        y1 = min(y0 + 5, 18)
        assert np.array_equal(slab_fft.pencil_s2(grid, y0, y1), s2[:, y0:y1])
        assert np.array_equal(piece.keep, keep_all[:, y0:y1])
        sub = keep_all.copy()
        sub[:, :y0] = False
        sub[:, y1:] = False
        at = np.isin(flat, np.flatnonzero(sub))
        for a, b in zip(piece.s_xyz, s_all):
            assert np.array_equal(a, b[at])
        assert np.array_equal(piece.weight, grid.multiplicity.ravel()[flat][at].astype(np.uint8))
    rng = np.random.default_rng(1)
    coeffs = (rng.standard_normal(grid.rfft_shape) + 1j * rng.standard_normal(grid.rfft_shape)).astype(np.complex64)
    whole = coeffs.copy()
    radial.sphere_average_inplace(whole, grid, 4.5)
    for y0 in range(0, 18, 5):
        part = coeffs[:, y0:y0 + 5].copy()
        slab_fft.sphere_average_pencil(part, grid, 4.5, y0, min(y0 + 5, 18))
        assert np.array_equal(part, whole[:, y0:y0 + 5])


def test_thin_pencils_when_a_pencil_would_exceed_its_byte_limit(tmp_path, monkeypatch):
    shape = (24, 20, 18)
    monkeypatch.setattr(dfft, "PENCIL_BYTES", 24 * 10 * 8 * 3)  # three y-rows per pencil
    array = dfft.SpectrumArray(str(tmp_path / "thin"), shape, 8).create()
    assert array.ty == 3 and len(array.y_slabs()) == 7
    data = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    runner = dfft.Runner(None)
    dfft.forward_slabs(runner, array, partial(_produce, data))
    full = array.like(str(tmp_path / "full"))
    dfft.pencil_pass(runner, array, _keep, forward=True, out=full)
    expected = scipy.fft.rfftn(data)
    assert np.abs(np.asarray(full.open()[:]) - expected).max() <= 1e-5 * float(np.abs(expected).max())
