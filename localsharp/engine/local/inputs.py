"""The input map of a distributed run: a file read by region on the workers, or an in-memory map.

Both kinds answer the same questions (shape, geometry, ``read(bounds)``,
``like(data)``, ``identity()``), so the driver and the tasks never ask which
one they hold.  The client only ever reads a file's header.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from ...maps.density import DensityMap
from ...maps.source import MapSource

Bounds = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
#: Voxels hashed at a time when identifying an in-memory map (no whole-array copy).
HASH_SLAB_VOXELS = 1 << 22


@dataclass(frozen=True)
class MemorySource:
    """An in-memory :class:`DensityMap` seen as a source (small maps, the Python API)."""

    density: DensityMap
    path: str = "map"
    kind: str = "memory"

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.density.shape

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return self.density.voxel_size

    @property
    def voxel_size_zyx(self) -> tuple[float, float, float]:
        return self.density.voxel_size_zyx

    @property
    def nbytes(self) -> int:
        return int(self.density.data.size) * 4

    def read(self, bounds: Bounds | None = None) -> np.ndarray:
        if bounds is None:
            return np.ascontiguousarray(self.density.data, dtype=np.float32)
        return np.ascontiguousarray(self.density.data[tuple(slice(a, b) for a, b in bounds)], dtype=np.float32)

    def like(self, data: np.ndarray) -> DensityMap:
        return self.density.with_data(data)

    def identity(self) -> dict[str, Any]:
        """SHA-256 of the voxels (hashed slab by slab) and the geometry."""
        digest = hashlib.sha256()
        flat = self.density.data.reshape(-1) if self.density.data.flags.c_contiguous else None
        if flat is None:
            flat = np.ascontiguousarray(self.density.data).reshape(-1)
        for start in range(0, flat.size, HASH_SLAB_VOXELS):
            digest.update(memoryview(np.ascontiguousarray(flat[start:start + HASH_SLAB_VOXELS], dtype=np.float32)))
        return {"kind": self.kind, "data_sha256": digest.hexdigest(), "geometry": self.density.geometry()}


Source = Union[MapSource, MemorySource]


@dataclass(frozen=True)
class MapHeader:
    """The header facts the input checks need (no voxels): what ``check_resolution`` and
    ``check_limitations`` read from a :class:`DensityMap`."""

    voxel_size: tuple[float, float, float]
    box_lengths: tuple[float, float, float]
    header_extras: dict[str, Any]


def open_input(map_or_path: DensityMap | MapSource | str | os.PathLike) -> Source:
    """The run's input: a file's header is read (and checked); an in-memory map is wrapped."""
    if isinstance(map_or_path, DensityMap):
        return MemorySource(map_or_path)
    if isinstance(map_or_path, MapSource):
        return map_or_path
    return MapSource.open(Path(map_or_path).resolve())


def header_of(source: Source) -> MapHeader:
    """The header view of ``source``."""
    if isinstance(source, MemorySource):
        d = source.density
        return MapHeader(d.voxel_size, d.box_lengths, d.header_extras)
    voxel = source.voxel_size
    lengths = tuple(n * v for n, v in zip(source.shape[::-1], voxel))
    return MapHeader(voxel, lengths, source.geometry.get("header_extras", {}))  # type: ignore[arg-type]


def template_of(source: Source) -> DensityMap | MapSource:
    """What the map writers take as the header template."""
    return source.density if isinstance(source, MemorySource) else source


def geometry_of(source: Source) -> dict[str, Any]:
    """The header geometry as JSON (what ``DensityMap.geometry()`` gives), without reading voxels."""
    if isinstance(source, MemorySource):
        return source.density.geometry()
    fields = dict(source.geometry)
    shape_xyz = tuple(source.shape[::-1])
    if fields.get("cell_grid") is None:
        fields["cell_grid"] = shape_xyz
    probe = DensityMap(data=np.zeros((1, 1, 1), np.float32), **fields)  # one voxel: geometry only
    geometry = probe.geometry()
    geometry["shape_xyz"] = list(shape_xyz)
    return geometry
