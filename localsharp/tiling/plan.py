"""The work plan of a local-sharpening run: box tasks and render tiles (pure index arithmetic).

Boxes are grouped into *blocks* of ``block³`` neighbouring grid positions; each
block that holds at least one active box (one that may contain molecule, see
:mod:`.occupancy`) is one search task, so a task reads one compact region of
the map.  The output is rendered by *tiles*: regions of whole output chunks,
each written by exactly one task.  Everything here is O(number of boxes) or
O(n log n); nothing loops over boxes × chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .boxes import Bounds, BoxGrid


@dataclass(frozen=True)
class LocalPlan:
    """Which boxes become tasks, grouped how, and how the output is rendered.

    Attributes
    ----------
    grid : BoxGrid
        All boxes of the run.
    block : int
        Boxes per search task along each axis (a task has up to ``block³`` boxes).
    active : numpy.ndarray
        Flat boolean array in box-index order: the box is searched (True) or is
        solvent for certain and skipped without a task (False).
    chunks : tuple of int
        Output chunk shape (z, y, x).
    tile : tuple of int
        Render tile shape (z, y, x), a multiple of ``chunks``.
    searched : numpy.ndarray or None
        A symmetric run: flat boolean array, the active boxes that are searched (one asymmetric
        unit); the other active boxes (the *mates*) take their outcome from searched ones.
        None: every active box is searched.
    """

    grid: BoxGrid
    block: int
    active: np.ndarray
    chunks: tuple[int, int, int]
    tile: tuple[int, int, int]
    searched: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ValueError(f"boxes per task edge must be >= 1, got {self.block}")
        if self.active.shape != (self.grid.n_boxes,):
            raise ValueError(f"active flags for {self.active.shape} boxes, the grid has {self.grid.n_boxes}")
        if self.searched is not None and (self.searched.shape != self.active.shape
                                          or np.any(self.searched & ~self.active)):
            raise ValueError("searched boxes must be active boxes of the grid")
        if any(t % c for t, c in zip(self.tile, self.chunks)):
            raise ValueError(f"render tile {self.tile} is not a multiple of the chunks {self.chunks}")

    # ----------------------------------------------------------------- boxes
    @property
    def block_counts(self) -> tuple[int, int, int]:
        """Number of blocks along z, y, x."""
        return tuple(math.ceil(n / self.block) for n in self.grid.counts)  # type: ignore[return-value]

    def block_of(self, indices: np.ndarray) -> np.ndarray:
        """Block id of each box index."""
        pos = np.unravel_index(np.asarray(indices, dtype=np.int64), self.grid.counts)
        return np.ravel_multi_index(tuple(p // self.block for p in pos), self.block_counts).astype(np.int64)

    @property
    def n_active(self) -> int:
        return int(np.count_nonzero(self.active))

    @property
    def search_flags(self) -> np.ndarray:
        """Flat boolean array: the boxes that are searched (all active ones unless symmetric)."""
        return self.active if self.searched is None else self.searched

    @property
    def n_searched(self) -> int:
        return int(np.count_nonzero(self.search_flags))

    @property
    def n_mates(self) -> int:
        """Active boxes that take a searched box's outcome (0 unless symmetric)."""
        return self.n_active - self.n_searched

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(block id, searched box indices)`` of every block with a searched box, in block order."""
        return self._grouped(self.search_flags)

    def mate_blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(block id, mate box indices)`` of every block with a mate box, in block order (symmetric runs)."""
        if self.searched is None:
            return iter(())
        return self._grouped(self.active & ~self.searched)

    def _grouped(self, flags: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        indices = np.flatnonzero(flags)
        if indices.size == 0:
            return
        ids = self.block_of(indices)
        order = np.argsort(ids, kind="stable")
        ids, indices = ids[order], indices[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], ids.size]
        for s, e in zip(starts, ends):
            yield int(ids[s]), indices[s:e]

    def n_blocks(self) -> int:
        """Number of search tasks."""
        indices = np.flatnonzero(self.search_flags)
        return int(np.unique(self.block_of(indices)).size) if indices.size else 0

    # ----------------------------------------------------------------- tiles
    @property
    def tile_counts(self) -> tuple[int, int, int]:
        return tuple(math.ceil(n / t) for n, t in zip(self.grid.shape, self.tile))  # type: ignore[return-value]

    @property
    def n_tiles(self) -> int:
        nz, ny, nx = self.tile_counts
        return nz * ny * nx

    def tile_bounds(self, tile_id: int) -> Bounds:
        """Voxel bounds of tile ``tile_id`` (raster order, x fastest; the last ones may be smaller)."""
        pos = np.unravel_index(int(tile_id), self.tile_counts)
        return tuple((int(p) * t, min(n, (int(p) + 1) * t))
                     for p, t, n in zip(pos, self.tile, self.grid.shape))  # type: ignore[return-value]

    def tile_rows(self) -> list[list[int]]:
        """The tiles grouped in rows along x (raster order): a blend task's work, so that a box whose
        core spans the face between two tiles of a row is rendered once for both."""
        nz, ny, nx = self.tile_counts
        return [[(z * ny + y) * nx + x for x in range(nx)] for z in range(nz) for y in range(ny)]

    def touching(self, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
        """Active boxes whose core overlaps ``bounds``, and their block ids."""
        indices = self.grid.touching(bounds)
        indices = indices[self.active[indices]]
        return indices, self.block_of(indices)


def union_bounds(bounds: list[Bounds]) -> Bounds:
    """Smallest bounds containing every one of ``bounds``."""
    return tuple((min(b[a][0] for b in bounds), max(b[a][1] for b in bounds)) for a in range(3))  # type: ignore[return-value]


def relative(inner: Bounds, outer: Bounds) -> tuple[slice, slice, slice]:
    """Slices of ``inner`` within an array holding ``outer``."""
    return tuple(slice(a - o, b - o) for (a, b), (o, _) in zip(inner, outer))  # type: ignore[return-value]
