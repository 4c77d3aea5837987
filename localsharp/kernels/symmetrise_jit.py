"""Average of a periodic grid over a set of rotations about a centre (numba loop).

Used by the capsid phantom's symmetric noise (:mod:`localsharp.capsid`): a reconstruction made
with imposed symmetry has noise that is symmetric too, so a phantom of one averages its noise over
the point group.  For every voxel ``p`` the output is ``mean_R f(R⁻¹ p)`` with ``f`` read by
trilinear interpolation on the grid taken as periodic (the phantom's noise is periodic over the
box), so no value falls outside the grid.  Imported on first use only (numba's import costs ~0.5 s).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(nogil=True, cache=True)
def _trilinear_periodic(values: np.ndarray, fz: float, fy: float, fx: float) -> float:  # pragma: no cover
    nz, ny, nx = values.shape
    fz, fy, fx = fz % nz, fy % ny, fx % nx
    k0, j0, i0 = int(math.floor(fz)), int(math.floor(fy)), int(math.floor(fx))
    tz, ty, tx = fz - k0, fy - j0, fx - i0
    k0, j0, i0 = k0 % nz, j0 % ny, i0 % nx
    k1, j1, i1 = (k0 + 1) % nz, (j0 + 1) % ny, (i0 + 1) % nx
    c00 = values[k0, j0, i0] * (1 - tx) + values[k0, j0, i1] * tx
    c01 = values[k0, j1, i0] * (1 - tx) + values[k0, j1, i1] * tx
    c10 = values[k1, j0, i0] * (1 - tx) + values[k1, j0, i1] * tx
    c11 = values[k1, j1, i0] * (1 - tx) + values[k1, j1, i1] * tx
    return (c00 * (1 - ty) + c01 * ty) * (1 - tz) + (c10 * (1 - ty) + c11 * ty) * tz


@njit(parallel=True, nogil=True, cache=True)
def rotation_average_periodic(values: np.ndarray, centre: np.ndarray, matrices: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``mean_R values(R⁻¹ (p − c) + c)`` at every voxel ``p`` of a periodic grid (cubic voxels).

    Parameters
    ----------
    values : numpy.ndarray
        float32 grid ``[z, y, x]`` (cubic voxels: the rotations act on voxel indices).
    centre : numpy.ndarray
        float64 ``(3,)``: the rotation centre as a fractional index (x, y, z).
    matrices : numpy.ndarray
        float64 ``(n, 3, 3)`` rotations acting on (x, y, z) column vectors.

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``values``.
    """
    nz, ny, nx = values.shape
    out = np.empty_like(values)
    n = matrices.shape[0]
    for k in prange(nz):
        z = k - centre[2]
        for j in range(ny):
            y = j - centre[1]
            for i in range(nx):
                x = i - centre[0]
                total = 0.0
                for r in range(n):
                    m = matrices[r]
                    sx = m[0, 0] * x + m[1, 0] * y + m[2, 0] * z
                    sy = m[0, 1] * x + m[1, 1] * y + m[2, 1] * z
                    sz = m[0, 2] * x + m[1, 2] * y + m[2, 2] * z
                    total += _trilinear_periodic(values, sz + centre[2], sy + centre[1], sx + centre[0])
                out[k, j, i] = total / n
    return out
