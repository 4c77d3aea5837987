"""Radial filters applied in place to rfft coefficients.

Multiplying a whole-map transform by a function of |s| with numpy needs the
|s|² grid and several same-sized temporaries (≈ 2–3 extra map-sized arrays for
``3(sin w − w cos w)/w³``).  On maps of :data:`JIT_MIN_COEFFS` coefficients or
more the numba loop of :mod:`.radial_jit` computes |s|² from the reciprocal
metric per coefficient and scales it where it lies, so a 1000³ map needs no
memory beyond its coefficients; smaller maps use the same table and
interpolation in numpy (no numba import: about 0.5 s per process).
"""

from __future__ import annotations

import numpy as np

from .fourier import FourierGrid


#: Points of the lookup table of the radial factor (linear interpolation in |s|²; the factor
#: oscillates a few times over the sphere, so the interpolation error is ~1e-8).
TABLE_POINTS = 1 << 16
#: rfft arrays with at least this many coefficients use the numba loop (a 160³ map).
JIT_MIN_COEFFS = 1 << 21


def sphere_factor_table(radius: float, s2_top: float) -> tuple[np.ndarray, float]:
    """``3(sin w − w cos w)/w³`` at ``w = 2πR·sqrt(i·step)``, i = 0…TABLE_POINTS, and the step in |s|²."""
    step = s2_top / (TABLE_POINTS - 1)
    w = 2.0 * np.pi * radius * np.sqrt(np.arange(TABLE_POINTS + 1) * step)
    safe = np.where(w < 1e-4, 1.0, w)
    table = np.where(w < 1e-4, 1.0 - w * w / 10.0, 3.0 * (np.sin(safe) - safe * np.cos(safe)) / safe**3)
    return table, step


def _s2_max(shape: tuple[int, int, int], g: np.ndarray) -> float:
    """Largest |s|² over the corners of the rfft index box (|s|² is convex in the indices)."""
    nz, ny, nh = shape
    g00, g11, g22, g01, g02, g12 = (float(g[i, j]) for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)))
    top = 0.0
    for l in (-(nz // 2), (nz - 1) // 2):
        for k in (-(ny // 2), (ny - 1) // 2):
            for h in (0, nh - 1):
                s2 = g00 * h * h + g11 * k * k + g22 * l * l + 2.0 * (g01 * h * k + g02 * h * l + g12 * k * l)
                top = max(top, s2)
    return top


def _sphere_average_numpy(coeffs: np.ndarray, grid: FourierGrid, table: np.ndarray, step: float) -> None:
    l_idx, k_idx, h_idx = grid.miller
    g = grid.metric
    s2 = (g[0, 0] * h_idx * h_idx + g[1, 1] * k_idx * k_idx + g[2, 2] * l_idx * l_idx
          + 2.0 * (g[0, 1] * h_idx * k_idx + g[0, 2] * h_idx * l_idx + g[1, 2] * k_idx * l_idx))
    x = s2 / step
    i = np.minimum(x.astype(np.int64), TABLE_POINTS - 1)
    coeffs *= table[i] + (x - i) * (table[i + 1] - table[i])


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
    table, step = sphere_factor_table(float(radius), top * (1.0 + 1e-9))
    if coeffs.size < JIT_MIN_COEFFS:
        _sphere_average_numpy(coeffs, grid, table, step)
        return
    from . import radial_jit
    radial_jit.sphere_average_inplace(coeffs, g, table, step)
