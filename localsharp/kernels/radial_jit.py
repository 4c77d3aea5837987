"""Numba loop behind :func:`localsharp.kernels.radial.sphere_average_inplace` for large maps.

Imported on first use only (numba's import and first dispatch cost about half a second).  The
factor table is :func:`.radial.sphere_factor_table`'s, the same as the numpy path's.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def sphere_average_inplace(coeffs: np.ndarray, g: np.ndarray, table: np.ndarray, step: float) -> None:
    """Scale each coefficient by ``table`` interpolated at its |s|² (``step`` apart), in place."""
    nz, ny, nh = coeffs.shape
    n_table = table.size - 1
    for iz in range(nz):
        l = iz if 2 * iz < nz else iz - nz  # numpy's fftfreq order (Nyquist plane negative)
        for iy in range(ny):
            k = iy if 2 * iy < ny else iy - ny
            for ih in range(nh):
                h = ih
                s2 = (g[0, 0] * h * h + g[1, 1] * k * k + g[2, 2] * l * l
                      + 2.0 * (g[0, 1] * h * k + g[0, 2] * h * l + g[1, 2] * k * l))
                x = s2 / step
                i = min(int(x), n_table - 1)
                frac = x - i
                coeffs[iz, iy, ih] *= table[i] + frac * (table[i + 1] - table[i])
