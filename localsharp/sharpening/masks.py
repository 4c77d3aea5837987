"""Analysis masks of the half-map and model modes: the molecule from two half maps, the balls around a model's atoms.

The masks serve the statistics only (FSC, map–model correlation); the whole, unmasked map is
what gets sharpened.
"""

from __future__ import annotations

import gemmi
import numpy as np
import scipy.fft

from ..kernels import fourier, radial
from ..kernels.masks import padded_convolve
from ..maps.density import DensityMap
from ..maps.model import box_positions

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


def atom_ball_mask(structure: gemmi.Structure, density: DensityMap, radius: float = 3.0) -> np.ndarray:
    """Voxels within ``radius`` Å of an atom, atoms taken at their nearest voxel (FFT dilation).

    A fast stand-in for :func:`localsharp.maps.model.atom_mask` (which uses
    exact atom positions): positions are rounded to the nearest voxel (error
    ≤ half a voxel diagonal), which is immaterial for a soft analysis mask.
    Atoms up to ``radius`` outside the box mark the voxels they reach; no
    wrapping across the faces.
    """
    voxel = np.asarray(density.voxel_size, dtype=np.float64)  # x, y, z
    shape_xyz = np.asarray(density.shape_xyz)
    pos = box_positions(structure, density)
    pos = pos[np.all((pos > -radius) & (pos < shape_xyz * voxel + radius), axis=1)]
    mask_shape = density.shape
    if pos.size == 0:
        return np.zeros(mask_shape, dtype=bool)
    reach = np.ceil(radius / voxel).astype(int)
    # grid extended by `reach` on every side so that atoms just outside the box still count
    idx = np.rint(pos / voxel).astype(np.int64) + reach
    ext_xyz = shape_xyz + 2 * reach
    idx = np.clip(idx, 0, ext_xyz - 1)
    occupancy = np.zeros(tuple(ext_xyz[::-1]), dtype=np.float32)
    occupancy[idx[:, 2], idx[:, 1], idx[:, 0]] = 1.0
    offsets = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.sum((offsets * voxel) ** 2, axis=1) <= radius * radius]
    pad = int(reach.max())
    shape = tuple(scipy.fft.next_fast_len(n + pad, real=True) for n in occupancy.shape)
    kernel = np.zeros(shape, dtype=np.float32)
    kernel[offsets[:, 2] % shape[0], offsets[:, 1] % shape[1], offsets[:, 0] % shape[2]] = 1.0
    kernel_ft = fourier.to_coefficients(kernel)
    vz, vy, vx = density.voxel_size_zyx
    dilated = padded_convolve(occupancy, (vz, vy, vx), pad, lambda grid: kernel_ft)
    rz, ry, rx = reach[2], reach[1], reach[0]
    core = dilated[rz:rz + mask_shape[0], ry:ry + mask_shape[1], rx:rx + mask_shape[2]]
    return core > 0.5
