"""Numba loop behind :func:`localsharp.kernels.radial.sphere_average_inplace` for large maps.

Imported on first use only (numba's import and first dispatch cost about half a second).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .radial import TABLE_POINTS


@njit(nogil=True, cache=True)
def _sphere_factor(w: float) -> float:
    if w < 1e-4:
        return 1.0 - w * w / 10.0
    return 3.0 * (math.sin(w) - w * math.cos(w)) / (w * w * w)


@njit(nogil=True, cache=True)
def sphere_average_inplace(coeffs: np.ndarray, g: np.ndarray, radius: float, s2_top: float) -> None:
    nz, ny, nh = coeffs.shape
    two_pi_r = 2.0 * math.pi * radius
    step = s2_top / (TABLE_POINTS - 1)
    table = np.empty(TABLE_POINTS + 1)
    for i in range(TABLE_POINTS + 1):
        table[i] = _sphere_factor(two_pi_r * math.sqrt(i * step))
    for iz in range(nz):
        l = iz if 2 * iz < nz else iz - nz  # numpy's fftfreq order (Nyquist plane negative)
        for iy in range(ny):
            k = iy if 2 * iy < ny else iy - ny
            for ih in range(nh):
                h = ih
                s2 = (g[0, 0] * h * h + g[1, 1] * k * k + g[2, 2] * l * l
                      + 2.0 * (g[0, 1] * h * k + g[0, 2] * h * l + g[1, 2] * k * l))
                x = s2 / step
                i = min(int(x), TABLE_POINTS - 1)
                frac = x - i
                coeffs[iz, iy, ih] *= table[i] + frac * (table[i + 1] - table[i])
