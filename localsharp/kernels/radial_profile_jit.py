"""A radial profile laid on a 3-D grid (numba loop): ``out[i] = f(|i − c|)`` from a table of ``f``.

Used by :func:`localsharp.kernels.masks.ball_edge_mask`: the round window of a symmetric run's box
copies is a function of the distance to its centre only, and evaluating ``erfc`` at every voxel
of the cube (54³ for a 4 Å map at 1.4 Å) cost more than the box's Fourier transform; a table at
σ/256 read with linear interpolation is within 1e-6 of it (the profile's second derivative is
below 1/σ²).  Imported on first use only (numba's import costs ~0.5 s).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def radial_from_table(shape0: int, shape1: int, shape2: int, c0: float, c1: float, c2: float,
                      v0: float, v1: float, v2: float, table: np.ndarray, step: float) -> np.ndarray:  # pragma: no cover
    """float32 array of ``shape``: ``table`` read at ``r / step`` (linear interpolation; its last value beyond it),
    ``r`` the distance (Å) of each voxel from ``(c0, c1, c2)`` (voxel coordinates z y x; edges ``v0 v1 v2`` Å)."""
    out = np.empty((shape0, shape1, shape2), dtype=np.float32)
    last = table.size - 1
    for i in range(shape0):
        dz = (i - c0) * v0
        for j in range(shape1):
            dy = (j - c1) * v1
            base = dz * dz + dy * dy
            for k in range(shape2):
                dx = (k - c2) * v2
                x = math.sqrt(base + dx * dx) / step
                n = int(x)
                if n >= last:
                    out[i, j, k] = table[last]
                else:
                    f = x - n
                    out[i, j, k] = table[n] * (1.0 - f) + table[n + 1] * f
    return out
