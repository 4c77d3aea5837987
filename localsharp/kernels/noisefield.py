"""Gaussian-filtered white noise, computed a slab of z planes at a time (reproducible per plane)."""

from __future__ import annotations

import math

import numpy as np


def blur_kernel(b_blur: float, voxel: float) -> np.ndarray:
    """The 1-D Gaussian (sum 1) that blurs by ``b_blur`` Å² on a grid of ``voxel`` Å, radius 4 sigma.

    The same kernel as ``scipy.ndimage.gaussian_filter1d`` with ``truncate=4``.
    """
    sigma = math.sqrt(b_blur / (8.0 * math.pi**2)) / voxel
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * x * x / sigma**2) if sigma > 0 else np.ones(1)
    return kernel / kernel.sum()


def noise_block(seed: int, z0: int, planes: int, size: int, sigma: float, kernel: np.ndarray) -> np.ndarray:
    """Planes ``z0 .. z0 + planes - 1`` of the noise: white (sd ``sigma``), then filtered by ``kernel``.

    Plane ``p`` is drawn from ``default_rng([seed, p])``; the filter wraps around the box (periodic
    noise), so any slab of planes is the same part of one noise volume.
    """
    from scipy.ndimage import correlate1d

    half = len(kernel) // 2
    block = np.empty((planes + 2 * half, size, size), dtype=np.float32)
    for n in range(planes + 2 * half):
        rng = np.random.default_rng([seed, (z0 - half + n) % size])
        block[n] = rng.standard_normal((size, size), dtype=np.float32)
    block *= np.float32(sigma)
    if half == 0:
        return block
    weights = kernel.astype(np.float32)
    spare = np.empty_like(block)
    correlate1d(block, weights, axis=2, output=spare, mode="wrap")
    correlate1d(spare, weights, axis=1, output=block, mode="wrap")
    out = np.empty((planes, size, size), dtype=np.float32)
    correlate1d(block, weights, axis=0, output=spare, mode="wrap")
    out[:] = spare[half:half + planes]
    return out
