"""The symmetry centre of a map: voxel N/2 along each axis by default (RELION), or a position in Å.

Positions in Å are in the map's own frame, the frame of its atomic models: voxel ``(i, j, k)``
(x, y, z indices) sits at ``first_voxel + (i, j, k) × voxel_size``, where ``first_voxel`` is the
position of ``data[0, 0, 0]`` (``DensityMap.first_voxel_position``: the MRC ORIGIN, or NSTART ×
voxel size).  This is the frame ChimeraX shows, so a centre read there can be given as it is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError

Vec3 = tuple[float, float, float]


def default_centre(shape_xyz: Sequence[int], voxel_size: Sequence[float],
                   first_voxel: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The position (Å, x y z) of voxel ``N // 2`` along each axis: RELION's symmetry centre."""
    n = np.asarray(shape_xyz, dtype=np.int64)
    return np.asarray(first_voxel, dtype=np.float64) + (n // 2) * np.asarray(voxel_size, dtype=np.float64)


def centre_index(centre: Sequence[float], voxel_size: Sequence[float],
                 first_voxel: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The fractional voxel index (x, y, z) of a position in Å."""
    return (np.asarray(centre, dtype=np.float64) - np.asarray(first_voxel, dtype=np.float64)) / np.asarray(
        voxel_size, dtype=np.float64)


def check_centre(centre: Sequence[float], shape_xyz: Sequence[int], voxel_size: Sequence[float],
                 first_voxel: Sequence[float] = (0.0, 0.0, 0.0), source: str = "map") -> np.ndarray:
    """The centre as a float64 array, after checking that it lies inside the map.

    Raises
    ------
    ConfigError
        If it is not three finite numbers, or lies outside the voxels' span along an axis.
    """
    c = np.asarray(centre, dtype=np.float64)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise ConfigError(f"the symmetry centre must be three finite numbers (x y z in Å), got {[float(v) for v in np.ravel(c)]}")
    low = np.asarray(first_voxel, dtype=np.float64)
    high = low + (np.asarray(shape_xyz, dtype=np.float64) - 1) * np.asarray(voxel_size, dtype=np.float64)
    outside = [f"{name} {v:g} not in [{lo:g}, {hi:g}]" for name, v, lo, hi in zip("xyz", c, low, high)
               if not lo <= v <= hi]
    if outside:
        raise ConfigError(f"{source}: the symmetry centre ({c[0]:g}, {c[1]:g}, {c[2]:g}) Å is outside the map "
                          f"({'; '.join(outside)} Å)")
    return c
