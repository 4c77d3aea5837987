"""Masks around the atoms of a model: exact distances (:func:`atom_mask`) or a fast FFT dilation (:func:`atom_ball_mask`)."""

from __future__ import annotations

import gemmi
import numpy as np
import scipy.fft

from ..errors import ConfigError
from ..kernels import fourier
from ..kernels.masks import padded_convolve
from .density import DensityMap
from .model import _check_orthogonal, box_positions


def _sphere_offsets(radius: float, voxel: np.ndarray) -> np.ndarray:
    """Integer (x, y, z) voxel offsets that can reach within ``radius`` of a point."""
    reach = np.ceil(radius / voxel).astype(int) + 1
    axes = [np.arange(-r, r + 1) for r in reach]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def atom_mask(structure: gemmi.Structure, density: DensityMap, radius: float = 3.0) -> np.ndarray:
    """Voxels whose centre lies within ``radius`` Å of any atom of the first model.

    Distances are exact (no wrapping across the box faces); atoms outside the
    box still mark the voxels within reach of them.

    Parameters
    ----------
    structure : gemmi.Structure
        Model in the map's frame.
    density : DensityMap
        Map whose voxels are tested.
    radius : float
        Distance (Å) from an atom centre.

    Returns
    -------
    numpy.ndarray
        Boolean ``[z, y, x]`` array shaped like ``density.data``.
    """
    if not radius > 0:
        raise ConfigError(f"mask radius must be positive, got {radius}")
    _check_orthogonal(density)
    voxel = np.asarray(density.voxel_size)
    shape_xyz = np.asarray(density.shape_xyz)
    pos = box_positions(structure, density)
    pos = pos[np.all((pos > -radius) & (pos < shape_xyz * voxel + radius), axis=1)]
    offsets = _sphere_offsets(radius, voxel)
    mask = np.zeros(density.shape, dtype=bool)
    chunk = max(1, 2_000_000 // len(offsets))
    for start in range(0, len(pos), chunk):
        _mark_within(mask, pos[start : start + chunk], offsets, voxel, shape_xyz, radius)
    return mask


def _mark_within(
    mask: np.ndarray, pos: np.ndarray, offsets: np.ndarray, voxel: np.ndarray, shape_xyz: np.ndarray, radius: float
) -> None:
    base = np.rint(pos / voxel).astype(np.int64)
    idx = base[:, None, :] + offsets[None, :, :]
    delta = idx * voxel - pos[:, None, :]
    hit = np.einsum("ijk,ijk->ij", delta, delta) <= radius * radius
    hit &= np.all((idx >= 0) & (idx < shape_xyz), axis=2)
    x, y, z = idx[hit].T
    mask[z, y, x] = True


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
