"""Radial filters applied in place to rfft coefficients (numba, no temporaries).

Multiplying a whole-map transform by a function of |s| with numpy needs the
|s|² grid and several same-sized temporaries (≈ 2–3 extra map-sized arrays for
``3(sin w − w cos w)/w³``).  These loops compute |s|² from the reciprocal metric
per coefficient and scale it where it lies, so a 1000³ map needs no memory
beyond its coefficients.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .fourier import FourierGrid


#: Points of the lookup table of the radial factor (linear interpolation in |s|²; the factor
#: oscillates a few times over the sphere, so the interpolation error is ~1e-8).
TABLE_POINTS = 1 << 16


@njit(nogil=True, cache=True)
def _sphere_factor(w: float) -> float:
    if w < 1e-4:
        return 1.0 - w * w / 10.0
    return 3.0 * (math.sin(w) - w * math.cos(w)) / (w * w * w)


@njit(nogil=True, cache=True)
def _s2_max(shape: tuple, g: np.ndarray) -> float:
    nz, ny, nh = shape
    top = 0.0
    for l in (-(nz // 2), (nz - 1) // 2):
        for k in (-(ny // 2), (ny - 1) // 2):
            for h in (0, nh - 1):
                s2 = (g[0, 0] * h * h + g[1, 1] * k * k + g[2, 2] * l * l
                      + 2.0 * (g[0, 1] * h * k + g[0, 2] * h * l + g[1, 2] * k * l))
                top = max(top, s2)
    return top


@njit(nogil=True, cache=True)
def _sphere_average_inplace(coeffs: np.ndarray, g: np.ndarray, radius: float, s2_top: float) -> None:
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


def sphere_average_inplace(coeffs: np.ndarray, grid: FourierGrid, radius: float) -> None:
    """Multiply rfft ``coeffs`` in place by the transform of a normalised uniform sphere.

    The factor is ``3(sin w − w cos w)/w³`` with ``w = 2πR|s|`` (1 at F000), i.e. the
    convolution of the map with the average over a sphere of ``radius`` Å.

    Parameters
    ----------
    coeffs : numpy.ndarray
        Complex rfft array of shape ``grid.rfft_shape`` (modified in place).
    grid : FourierGrid
        Geometry of the map the coefficients belong to.
    radius : float
        Sphere radius (Å).
    """
    if coeffs.shape != grid.rfft_shape:
        raise ValueError(f"coefficients of shape {coeffs.shape} do not match the grid {grid.rfft_shape}")
    g = grid.metric
    top = _s2_max(coeffs.shape, g)
    if top <= 0.0:
        return
    _sphere_average_inplace(coeffs, g, float(radius), top * (1.0 + 1e-9))
