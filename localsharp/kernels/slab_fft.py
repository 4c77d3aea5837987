"""Pieces of a 3-D real FFT done slab by slab and pencil by pencil (pure numpy/scipy, no I/O).

A map ``[z, y, x]`` is transformed in two steps that never need the whole map:

1. a z-slab ``(t, ny, nx)``: the 2-D real FFT over ``(y, x)`` → ``(t, ny, nx//2 + 1)`` complex;
2. a y-pencil ``(nz, t, nx//2 + 1)`` of those: the FFT along z.

Together they are ``scipy.fft.rfftn`` of the map (same convention, unnormalised forward);
the inverse runs the steps backwards.  The geometry helpers give, for one y-pencil, the
same per-coefficient values (|s|², s components, multiplicity, sphere factor) as
:class:`~localsharp.kernels.fourier.FourierGrid` and :mod:`.radial` give for the whole
array, with the same arithmetic, so that masks and factors agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from . import radial
from .fourier import FourierGrid, metric_s2


def rfft2_slab(slab: np.ndarray) -> np.ndarray:
    """2-D real FFT over the last two axes of a real slab (complex64, one thread)."""
    return scipy.fft.rfft2(np.asarray(slab, dtype=np.float32), axes=(-2, -1), workers=1)


def irfft2_slab(coeffs: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """Inverse of :func:`rfft2_slab` (float32); ``coeffs`` may be overwritten."""
    out = scipy.fft.irfft2(coeffs, s=(ny, nx), axes=(-2, -1), workers=1, overwrite_x=True)
    return out.astype(np.float32, copy=False)


def fft_z(pencil: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    """FFT (or inverse FFT) along axis 0 of a complex pencil, in place where scipy can."""
    fn = scipy.fft.ifft if inverse else scipy.fft.fft
    return fn(pencil, axis=0, workers=1, overwrite_x=True)


def pencil_miller(grid: FourierGrid, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable Miller indices ``(l, k, h)`` of the pencil ``[:, y0:y1, :]`` of ``grid``'s rfft array."""
    l_idx, k_idx, h_idx = grid.miller
    return l_idx, k_idx[:, y0:y1, :], h_idx


def pencil_s2(grid: FourierGrid, y0: int, y1: int) -> np.ndarray:
    """|s|² (float32) on the pencil, with the arithmetic of :attr:`FourierGrid.s2`."""
    l_idx, k_idx, h_idx = pencil_miller(grid, y0, y1)
    return metric_s2(grid.metric, l_idx, k_idx, h_idx, (l_idx.shape[0], k_idx.shape[1], h_idx.shape[2]))


@dataclass(frozen=True)
class PencilCoefficients:
    """Where a pencil holds the coefficients of a Spectrum (``d >= d_min``, F000 excluded).

    ``keep`` is the pencil-shaped mask; the other arrays are 1-D over the kept coefficients
    in the pencil's C order, as :meth:`Spectrum.from_map` computes them.
    """

    keep: np.ndarray
    s_xyz: tuple[np.ndarray, np.ndarray, np.ndarray]
    sthol2: np.ndarray
    weight: np.ndarray


def pencil_coefficients(grid: FourierGrid, y0: int, y1: int, d_min: float) -> PencilCoefficients:
    """The kept coefficients of the pencil ``[:, y0:y1, :]`` and their geometry."""
    keep = pencil_s2(grid, y0, y1) <= np.float32(1.0 / d_min**2)
    if y0 == 0:
        keep[0, 0, 0] = False
    l_idx, k_idx, h_idx = pencil_miller(grid, y0, y1)
    iz, iy, ix = np.nonzero(keep)
    h, k, l = h_idx.ravel()[ix], k_idx.ravel()[iy], l_idx.ravel()[iz]
    m = grid.reciprocal_matrix
    s_xyz = tuple((row[0] * h + row[1] * k + row[2] * l).astype(np.float32) for row in m)
    s2 = s_xyz[0] ** 2 + s_xyz[1] ** 2 + s_xyz[2] ** 2
    weight = np.ascontiguousarray(grid.multiplicity[0, 0][ix], dtype=np.uint8)
    return PencilCoefficients(keep, s_xyz, (0.25 * s2).astype(np.float32), weight)  # type: ignore[arg-type]


def sphere_average_pencil(coeffs: np.ndarray, grid: FourierGrid, radius: float, y0: int, y1: int) -> None:
    """:func:`radial.sphere_average_inplace` (numpy path) on the pencil ``[:, y0:y1, :]``, in place."""
    g = grid.metric
    top = radial._s2_max(grid.rfft_shape, g)
    if top <= 0.0:
        return
    table, step = radial.sphere_factor_table(float(radius), top * (1.0 + 1e-9))
    l_idx, k_idx, h_idx = pencil_miller(grid, y0, y1)
    s2 = (g[0, 0] * h_idx * h_idx + g[1, 1] * k_idx * k_idx + g[2, 2] * l_idx * l_idx
          + 2.0 * (g[0, 1] * h_idx * k_idx + g[0, 2] * h_idx * l_idx + g[1, 2] * k_idx * l_idx))
    x = s2 / step
    i = np.minimum(x.astype(np.int64), radial.TABLE_POINTS - 1)
    coeffs *= table[i] + (x - i) * (table[i + 1] - table[i])
