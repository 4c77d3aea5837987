"""The in-memory density map: voxel values plus the geometry needed to place them.

Conventions (fixed here, trusted everywhere else):

* ``data`` is a C-ordered ``float32`` array indexed ``[z, y, x]`` whatever the
  axis order of the file it came from (the transpose lives in :mod:`.mrc`).
* Every per-axis tuple (``voxel_size``, ``origin``, ``nstart``, ``cell_grid``)
  is given in ``(x, y, z)`` order.
* ``axis_order`` is the file's ``(MAPC, MAPR, MAPS)``, kept so that a written
  map uses the same layout as the one read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Vec3 = tuple[float, float, float]
Int3 = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class DensityMap:
    """A 3-D density map and its header geometry.

    Parameters
    ----------
    data : numpy.ndarray
        Voxel values, shape ``(nz, ny, nx)``, converted to C-ordered float32.
    voxel_size : tuple of float
        Voxel edge lengths in Å along x, y, z.
    origin : tuple of float
        MRC2014 ``ORIGIN`` field (Å, x, y, z).
    nstart : tuple of int
        Grid index of the first voxel along x, y, z (MRC ``NXSTART`` etc.,
        already mapped from column/row/section order to x, y, z).
    cell_grid : tuple of int
        Number of grid intervals of the unit cell along x, y, z (``MX, MY, MZ``).
    cell_angles : tuple of float
        Unit-cell angles alpha, beta, gamma in degrees.
    axis_order : tuple of int
        ``(MAPC, MAPR, MAPS)`` of the source file; 1 = x, 2 = y, 3 = z.
    space_group : int
        ``ISPG`` of the source (0 or 1 for cryo-EM maps).
    header_extras : dict
        Non-geometry header content preserved on writing (labels, ``EXTTYP``,
        ``NVERSION``, extended header bytes).
    """

    data: np.ndarray
    voxel_size: Vec3
    origin: Vec3 = (0.0, 0.0, 0.0)
    nstart: Int3 = (0, 0, 0)
    cell_grid: Int3 | None = None
    cell_angles: Vec3 = (90.0, 90.0, 90.0)
    axis_order: Int3 = (1, 2, 3)
    space_group: int = 1
    header_extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.ascontiguousarray(self.data, dtype=np.float32)
        if data.ndim != 3:
            raise ValueError(f"a density map needs a 3-D array, got shape {data.shape}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "nstart", tuple(int(v) for v in self.nstart))
        if self.cell_grid is None:
            object.__setattr__(self, "cell_grid", self.shape_xyz)
        else:
            object.__setattr__(self, "cell_grid", tuple(int(v) for v in self.cell_grid))
        object.__setattr__(self, "axis_order", tuple(int(v) for v in self.axis_order))
        if any(v <= 0 for v in self.voxel_size):
            raise ValueError(f"voxel sizes must be positive, got {self.voxel_size}")

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> Int3:
        """Array shape ``(nz, ny, nx)``."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def shape_xyz(self) -> Int3:
        """Number of voxels along x, y, z."""
        nz, ny, nx = self.data.shape
        return (nx, ny, nz)

    @property
    def voxel_size_zyx(self) -> Vec3:
        """Voxel size in array-axis order ``(z, y, x)``."""
        vx, vy, vz = self.voxel_size
        return (vz, vy, vx)

    @property
    def box_lengths(self) -> Vec3:
        """Edge lengths of the box (Å, x, y, z): voxel count times voxel size."""
        return tuple(n * v for n, v in zip(self.shape_xyz, self.voxel_size))  # type: ignore[return-value]

    @property
    def cell_lengths(self) -> Vec3:
        """Unit-cell edge lengths (Å, x, y, z) = cell grid times voxel size."""
        return tuple(n * v for n, v in zip(self.cell_grid, self.voxel_size))  # type: ignore[return-value]

    @property
    def first_voxel_position(self) -> Vec3:
        """Position (Å, x, y, z) of voxel ``data[0, 0, 0]``.

        Follows ChimeraX and EMDB practice: a non-zero MRC2014 ``ORIGIN`` wins;
        otherwise the position is ``NSTART * voxel_size``.
        """
        if any(o != 0.0 for o in self.origin):
            return self.origin
        return tuple(s * v for s, v in zip(self.nstart, self.voxel_size))  # type: ignore[return-value]

    # --------------------------------------------------------------- derived
    def with_data(self, data: np.ndarray) -> "DensityMap":
        """Return a map with the same geometry and new voxel values."""
        data = np.asarray(data)
        if data.shape != self.data.shape:
            raise ValueError(f"new data shape {data.shape} differs from map shape {self.data.shape}")
        return dataclasses.replace(self, data=data)

    def origin_shifted(self) -> "DensityMap":
        """Return the same voxels with the first voxel at grid point (0, 0, 0)."""
        return dataclasses.replace(self, origin=(0.0, 0.0, 0.0), nstart=(0, 0, 0))

    def geometry(self) -> dict[str, Any]:
        """Header geometry as a JSON-friendly dict (for ``info`` and summaries)."""
        return {
            "shape_xyz": list(self.shape_xyz),
            "voxel_size": list(self.voxel_size),
            "origin": list(self.origin),
            "nstart": list(self.nstart),
            "cell_grid": list(self.cell_grid),
            "cell_lengths": [round(v, 6) for v in self.cell_lengths],
            "cell_angles": list(self.cell_angles),
            "axis_order": list(self.axis_order),
            "space_group": self.space_group,
            "first_voxel_position": [round(v, 6) for v in self.first_voxel_position],
        }


# ------------------------------------------------------- duplicated last plane
def has_duplicated_last_plane(density: DensityMap) -> bool:
    """True when the map covers one unit cell plus a repeated last plane on every axis.

    Some crystallographic programs write grid points ``0…N`` inclusive for a
    cell of ``N`` intervals, so plane ``N`` repeats plane ``0``.  As in the
    reference (docs/methods.md, input checks) this is only recognised when the map
    starts at grid point 0 (ORIGIN and NSTART zero).
    """
    at_zero = all(v == 0 for v in density.nstart) and all(v == 0.0 for v in density.origin)
    return at_zero and all(n == c + 1 for n, c in zip(density.shape_xyz, density.cell_grid))


def drop_duplicated_plane(density: DensityMap) -> DensityMap:
    """The periodic unit cell: the map without its last plane on each axis."""
    return dataclasses.replace(density, data=np.ascontiguousarray(density.data[:-1, :-1, :-1]))


def restore_duplicated_plane(cell: DensityMap, original: DensityMap) -> DensityMap:
    """Values of ``cell`` on ``original``'s grid: the last plane repeats the first (periodic wrap)."""
    return original.with_data(np.pad(cell.data, ((0, 1), (0, 1), (0, 1)), mode="wrap"))
