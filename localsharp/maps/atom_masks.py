"""Masks around the atoms of a model, with exact distances from the atom centres."""

from __future__ import annotations

import gemmi
import numpy as np

from ..errors import ConfigError
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
