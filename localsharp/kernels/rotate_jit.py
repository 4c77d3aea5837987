"""Correlation of a map with its rotated copies at a set of points (numba loop).

Used by :mod:`localsharp.symmetry.detect`: for each rotation ``R`` and each point ``p`` (Å,
relative to the rotation centre) the map is read at ``R⁻¹ p`` by trilinear interpolation (the
same values as ``scipy.ndimage.map_coordinates(order=1)`` inside the grid; 0 outside it) and the
Pearson correlation with the reference values at the points is accumulated on the fly, so no
array of rotated values is ever made.  Imported on first use only (numba's import costs ~0.5 s).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _trilinear(values: np.ndarray, fz: float, fy: float, fx: float) -> float:  # pragma: no cover
    nz, ny, nx = values.shape
    if not (0.0 <= fz <= nz - 1 and 0.0 <= fy <= ny - 1 and 0.0 <= fx <= nx - 1):
        return 0.0
    k0, j0, i0 = int(math.floor(fz)), int(math.floor(fy)), int(math.floor(fx))
    k1, j1, i1 = min(k0 + 1, nz - 1), min(j0 + 1, ny - 1), min(i0 + 1, nx - 1)
    tz, ty, tx = fz - k0, fy - j0, fx - i0
    c00 = values[k0, j0, i0] * (1 - tx) + values[k0, j0, i1] * tx
    c01 = values[k0, j1, i0] * (1 - tx) + values[k0, j1, i1] * tx
    c10 = values[k1, j0, i0] * (1 - tx) + values[k1, j0, i1] * tx
    c11 = values[k1, j1, i0] * (1 - tx) + values[k1, j1, i1] * tx
    return (c00 * (1 - ty) + c01 * ty) * (1 - tz) + (c10 * (1 - ty) + c11 * ty) * tz


@njit(nogil=True, cache=True)
def rotated_values(values: np.ndarray, spacing: np.ndarray, centre: np.ndarray, points: np.ndarray,
                   matrix: np.ndarray) -> np.ndarray:  # pragma: no cover
    """The map rotated by ``matrix`` about ``centre``, at ``points``: ``f(R⁻¹ p)``.

    Parameters
    ----------
    values : numpy.ndarray
        float32 grid ``[z, y, x]``.
    spacing, centre : numpy.ndarray
        float64 ``(3,)``: grid spacing (Å, x y z) and the centre as a fractional index (x, y, z).
    points : numpy.ndarray
        float64 ``(n, 3)`` positions (Å, x y z) relative to the centre.
    matrix : numpy.ndarray
        float64 ``(3, 3)`` rotation acting on (x, y, z) column vectors.
    """
    out = np.empty(points.shape[0], dtype=np.float64)
    for p in range(points.shape[0]):
        x, y, z = points[p, 0], points[p, 1], points[p, 2]
        sx = matrix[0, 0] * x + matrix[1, 0] * y + matrix[2, 0] * z
        sy = matrix[0, 1] * x + matrix[1, 1] * y + matrix[2, 1] * z
        sz = matrix[0, 2] * x + matrix[1, 2] * y + matrix[2, 2] * z
        out[p] = _trilinear(values, sz / spacing[2] + centre[2], sy / spacing[1] + centre[1],
                            sx / spacing[0] + centre[0])
    return out


@njit(nogil=True, cache=True)
def rotated_correlations(values: np.ndarray, spacing: np.ndarray, centre: np.ndarray, points: np.ndarray,
                         reference: np.ndarray, matrices: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Pearson correlation of ``reference`` with the map rotated by each of ``matrices`` (``(m, 3, 3)``).

    Arguments as for :func:`rotated_values`; ``reference`` is float64 ``(n,)``.  Returns float64 ``(m,)``;
    0 where either side is constant.
    """
    n = points.shape[0]
    mean_a = 0.0
    for p in range(n):
        mean_a += reference[p]
    mean_a /= max(n, 1)
    saa = 0.0
    for p in range(n):
        saa += (reference[p] - mean_a) ** 2
    out = np.zeros(matrices.shape[0], dtype=np.float64)
    for o in range(matrices.shape[0]):
        r = matrices[o]
        sb, sbb, sab = 0.0, 0.0, 0.0
        for p in range(n):
            x, y, z = points[p, 0], points[p, 1], points[p, 2]
            sx = r[0, 0] * x + r[1, 0] * y + r[2, 0] * z
            sy = r[0, 1] * x + r[1, 1] * y + r[2, 1] * z
            sz = r[0, 2] * x + r[1, 2] * y + r[2, 2] * z
            v = _trilinear(values, sz / spacing[2] + centre[2], sy / spacing[1] + centre[1],
                           sx / spacing[0] + centre[0])
            sb += v
            sbb += v * v
            sab += (reference[p] - mean_a) * v
        var_b = sbb - sb * sb / max(n, 1)
        if saa > 0 and var_b > 0:
            out[o] = sab / math.sqrt(saa * var_b)
    return out
