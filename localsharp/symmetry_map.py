"""The point group of a map given as a file or a :class:`~localsharp.maps.density.DensityMap`.

The I/O side of :mod:`localsharp.symmetry` (which is pure numerics): read the map (a large MRC
file is memory-mapped and read a slab at a time, so a 1024³ map costs its small binned copy), pass
its voxels, voxel size and frame to :func:`localsharp.symmetry.detect.detect_symmetry` or
:func:`~localsharp.symmetry.detect.check_group`.  ``localsharp symmetry`` and
``local --symmetry`` call these.
"""

from __future__ import annotations

import os
from typing import Sequence

from .maps.density import DensityMap
from .maps.loading import load_named
from .symmetry.detect import GroupScore, SymmetryReport, check_group, detect_symmetry
from .symmetry.groups import PointGroup, parse_symmetry


def find_symmetry(map_or_path: DensityMap | str | os.PathLike, resolution: float, *,
                  centre: Sequence[float] | None = None, max_order: int = 12,
                  groups: Sequence[PointGroup] | None = None, name: str | None = None) -> SymmetryReport:
    """Find a map's point group and orientation (C2..C<max_order>, D2..D<max_order>, T, O, I in all
    their standard orientations).

    Parameters
    ----------
    map_or_path : DensityMap or path
        The map.
    resolution : float
        The map's resolution (Å); it is compared at twice this.
    centre : sequence of float, optional
        Symmetry centre (Å, x y z, in the map's frame); default voxel N/2 along each axis.
    max_order : int
        Largest n of C<n> and D<n> tried.
    groups : sequence of PointGroup, optional
        Try only these.
    name : str, optional
        The map's name in messages (default: its path, or "map").

    Returns
    -------
    SymmetryReport
        ``group_name`` (``"C1"`` when none), ``chosen``, ``sure``, ``verdict()``, ``to_dict()``.

    Raises
    ------
    ConfigError
        For a centre outside the map or a bad resolution; InputFileError for an unreadable map.
    """
    density, label = load_named(map_or_path, "map")
    return detect_symmetry(density.data, density.voxel_size, resolution, first_voxel=density.first_voxel_position,
                           centre=centre, groups=groups, max_order=max_order, source=name or label)


def check_symmetry(map_or_path: DensityMap | str | os.PathLike, symmetry: str | PointGroup, resolution: float, *,
                   orientation: str | None = None, centre: Sequence[float] | None = None,
                   name: str | None = None) -> GroupScore:
    """Do a given group's mates correlate in the map?  ``passed`` False: the group, its orientation
    or the centre is wrong for this map (warn before using it).

    Parameters
    ----------
    map_or_path : DensityMap or path
    symmetry : str or PointGroup
        ``"I"``, ``"I2"``, ``"D7"``... (:func:`~localsharp.symmetry.groups.parse_symmetry`).
    resolution : float
        The map's resolution (Å).
    orientation : str, optional
        The orientation of ``symmetry`` when given by name (``"2n5"``...).
    centre : sequence of float, optional
        Symmetry centre (Å, x y z, in the map's frame); default voxel N/2 along each axis.
    name : str, optional
        The map's name in messages (default: its path, or "map").
    """
    group = symmetry if isinstance(symmetry, PointGroup) else parse_symmetry(symmetry, orientation)
    density, label = load_named(map_or_path, "map")
    return check_group(density.data, density.voxel_size, group, resolution, first_voxel=density.first_voxel_position,
                       centre=centre, source=name or label)
