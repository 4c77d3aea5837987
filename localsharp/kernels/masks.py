"""Soft masks (pure numpy/scipy): Gaussian softening of a binary mask without wrap-around."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import scipy.fft

from . import fourier, radial


def padded_convolve(data: np.ndarray, voxel_zyx: tuple[float, float, float], pad: int,
                    kernel_ft: Callable[[fourier.FourierGrid], np.ndarray]) -> np.ndarray:
    """Convolve ``data`` in Fourier space on a zero-padded grid (no wrap-around within ``pad`` voxels).

    ``kernel_ft(grid)`` returns the kernel's transform on the padded grid's rfft coefficients.
    """
    shape = tuple(scipy.fft.next_fast_len(n + pad, real=True) for n in data.shape)
    padded = np.zeros(shape, dtype=np.float32)
    padded[tuple(slice(0, n) for n in data.shape)] = data
    grid = fourier.FourierGrid(shape, tuple(voxel_zyx))  # type: ignore[arg-type]
    coeffs = fourier.to_coefficients(padded)
    coeffs *= kernel_ft(grid)
    out = fourier.to_map(coeffs, shape, overwrite=True)  # type: ignore[arg-type]
    return np.ascontiguousarray(out[tuple(slice(0, n) for n in data.shape)])


def soften_mask(mask: np.ndarray, voxel_zyx: tuple[float, float, float], radius: float) -> np.ndarray:
    """Soft-edged copy of a binary mask: Gaussian smoothing (σ = ``radius`` Å), rescaled to max 1.

    The Gaussian of σ = r is ``exp(-2π² r² |s|²)`` in Fourier space, i.e. a B
    factor of ``8π² r²``.  Smoothing is done on a zero-padded grid, so nothing
    wraps across the box faces.
    """
    binary = np.asarray(mask, dtype=np.float32)
    if radius <= 0 or not binary.any():
        return binary
    pad = int(math.ceil(3.0 * radius / min(voxel_zyx)))

    def gaussian(grid: fourier.FourierGrid) -> np.ndarray:
        return np.exp(np.float32(-2.0 * math.pi**2 * radius**2) * grid.s2)

    soft = padded_convolve(binary, voxel_zyx, pad, gaussian)
    top = float(soft.max())
    return np.clip(soft / top, 0.0, 1.0).astype(np.float32) if top > 0 else binary


def box_edge_mask(shape: tuple[int, int, int], voxel_zyx: tuple[float, float, float], resolution: float) -> np.ndarray:
    """Mask of a cut-out box that is ~1 inside and falls smoothly to 0 at its faces.

    A boundary layer of about ½·resolution is set to 0 and the rest to 1, then
    the mask is softened with σ = resolution (:func:`soften_mask`).
    """
    layer = [max(1, int(round(0.5 * resolution / v))) for v in voxel_zyx]
    binary = np.zeros(shape, dtype=np.float32)
    binary[tuple(slice(w, max(w, n - w)) for n, w in zip(shape, layer))] = 1.0
    if not binary.any():
        return np.ones(shape, dtype=np.float32)
    return soften_mask(binary, voxel_zyx, resolution)


def ball_edge_mask(shape: tuple[int, int, int], voxel_zyx: tuple[float, float, float], resolution: float,
                   centre: tuple[float, float, float], radius: float) -> np.ndarray:
    """The round counterpart of :func:`box_edge_mask`: ~1 inside a ball, falling smoothly to 0 at its surface.

    A ball of ``radius`` Å about ``centre`` (voxel coordinates z y x, between voxels allowed) less a
    boundary layer of ½·resolution, softened with σ = resolution: ``½·erfc((r − r₀)/(σ√2))``,
    rescaled to 1 at the centre.  It depends only on the distance to the centre, so a rotated
    copy of a box gets the rotated mask.  The profile is tabulated at σ/256 and read with linear
    interpolation (:mod:`.radial_profile_jit`; within 1e-6 of ``erfc`` at every voxel, ten times faster).
    """
    from .radial_profile_jit import radial_from_table

    sigma = max(resolution, 1e-6)
    step = sigma / 256.0
    reach = math.sqrt(sum((n * v) ** 2 for n, v in zip(shape, voxel_zyx))) + max(abs(c) * v for c, v in zip(centre, voxel_zyx))
    table = _ball_profile(float(radius), float(resolution), step, int(reach / step) + 2)
    return radial_from_table(*(int(n) for n in shape), *(float(c) for c in centre), *(float(v) for v in voxel_zyx),
                             table, step)


@lru_cache(maxsize=16)
def _ball_profile(radius: float, resolution: float, step: float, n: int) -> np.ndarray:
    """:func:`ball_edge_mask`'s profile at ``r = 0, step, …`` (``n`` values; read-only: it is shared)."""
    from scipy.special import erfc

    r0 = radius - 0.5 * resolution
    sigma = max(resolution, 1e-6)
    r = np.arange(n, dtype=np.float64) * step
    table = 0.5 * erfc((r - r0) / (sigma * math.sqrt(2.0))) / (0.5 * erfc(-r0 / (sigma * math.sqrt(2.0))))
    table.flags.writeable = False
    return table


def bounding_box(mask: np.ndarray) -> list[list[int]] | None:
    """Half-open bounds ``[[z0, z1], [y0, y1], [x0, x1]]`` of the true voxels of a 3-d mask, or None."""
    if not mask.any():
        return None
    bounds = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds.append([int(hit[0]), int(hit[-1]) + 1])
    return bounds


#: Smoothing radius of the automatic molecule mask, as a multiple of the resolution.
MOLECULE_MASK_RADIUS_FACTOR = 1.5


def signal_mask(half1: np.ndarray, half2: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float, *,
                radius_factor: float = MOLECULE_MASK_RADIUS_FACTOR, iterations: int = 3) -> np.ndarray:
    """Binary molecule mask from the local *signal* variance of two half maps.

    ``V(x) = [(h1 − h̄1)(h2 − h̄2)] ⊛ sphere(R)``, ``R = radius_factor ×
    resolution``: the local covariance of the halves, in which independent
    noise averages out, so the mask stays on the molecule even when the noise
    dominates the local variance of the map itself (the map-based estimate of
    :mod:`localsharp.sharpening.solvent` fails there).  The threshold starts
    at ``0.05 · max V`` and is then iterated ``iterations`` times as the
    midpoint of the median of ``V`` inside and outside the mask (the same
    two-class split as the solvent estimate).
    """
    grid = fourier.FourierGrid(tuple(half1.shape), tuple(voxel_zyx))  # type: ignore[arg-type]
    product = ((half1 - np.float32(half1.mean(dtype=np.float64)))
               * (half2 - np.float32(half2.mean(dtype=np.float64))))
    coeffs = fourier.to_coefficients(product)
    del product
    radial.sphere_average_inplace(coeffs, grid, radius_factor * resolution)
    v = fourier.to_map(coeffs, half1.shape, overwrite=True)
    tau = 0.05 * float(v.max())
    for _ in range(iterations):
        inside = v >= tau
        if inside.all() or not inside.any():
            break
        tau = 0.5 * (float(np.median(v[inside])) + float(np.median(v[~inside])))
    return v >= tau
