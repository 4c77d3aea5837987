"""Geometry of the local-sharpening boxes and of the output chunks (pure, index arithmetic only).

Bounds are half-open index ranges ``((z0, z1), (y0, y1), (x0, x1))`` on the
map's ``[z, y, x]`` array.  A :class:`Box` has a *core* of ``box_size``
voxels, where its result is used and its blending weight is non-zero, and an
*outer* region (core plus ``buffer`` voxels each side, clipped to the map) that
its search sees, so that the soft edge falls outside the core.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

Bounds = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Box:
    """One analysis box.

    Attributes
    ----------
    index : int
        Position in the grid's list (stable between runs with the same grid).
    centre : tuple of float
        Centre (z, y, x) in voxel coordinates; the blending weight peaks here.
    core : Bounds
        Region whose sharpened values are blended.
    outer : Bounds
        Core plus buffer, clipped to the map: the region that is sharpened.
    """

    index: int
    centre: tuple[float, float, float]
    core: Bounds
    outer: Bounds

    def slices(self, which: str = "outer") -> tuple[slice, slice, slice]:
        """Slices of the ``"outer"`` or ``"core"`` region."""
        bounds = self.outer if which == "outer" else self.core
        return tuple(slice(a, b) for a, b in bounds)  # type: ignore[return-value]

    def core_in_outer(self) -> tuple[slice, slice, slice]:
        """Slices of the core within the outer region's array."""
        return tuple(slice(c0 - o0, c1 - o0) for (c0, c1), (o0, _) in zip(self.core, self.outer))  # type: ignore[return-value]


def axis_centres(start: int, stop: int, box: int, stride: int) -> list[float]:
    """Box centres along one axis: evenly spread over ``[start, stop)``, at most ``stride`` apart.

    >>> axis_centres(0, 100, 40, 20)
    [20.0, 40.0, 60.0, 80.0]
    >>> axis_centres(0, 30, 40, 20)
    [15.0]
    """
    length = stop - start
    if length <= box:
        return [start + length / 2.0]
    n = math.ceil((length - box) / stride) + 1
    first, last = start + box / 2.0, stop - box / 2.0
    return [first + i * (last - first) / (n - 1) for i in range(n)]


def _span(centre: float, size: int, n: int) -> tuple[int, int]:
    """``size`` voxels around ``centre``, shifted to lie inside ``[0, n)``."""
    size = min(size, n)
    start = int(math.floor(centre - size / 2.0 + 0.5))
    start = min(max(0, start), n - size)
    return start, start + size


@dataclass(frozen=True, eq=False)
class BoxGrid:
    """The regular grid of overlapping boxes, by arithmetic: no list of boxes is ever built.

    Box ``i`` sits at grid position ``(iz, iy, ix) = unravel(i, counts)`` (x fastest), so
    indices are those of :func:`box_grid`'s list.  Along each axis the cores start
    and end in increasing order, which makes the boxes touching a region a product of
    three index ranges (:meth:`touching`).

    Attributes
    ----------
    shape : tuple of int
        Map shape (z, y, x).
    centres : tuple of tuple of float
        Box centres along each axis (voxel coordinates).
    spans : tuple of numpy.ndarray
        Per axis, ``(n, 2)`` core bounds of the boxes along that axis.
    buffer : int
        Voxels of the outer region beyond the core on each side (clipped to the map).
    """

    shape: tuple[int, int, int]
    centres: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]
    spans: tuple[np.ndarray, np.ndarray, np.ndarray]
    buffer: int

    @classmethod
    def build(cls, shape: tuple[int, int, int], box_size: int | tuple[int, int, int] = 40,
              stride: int | tuple[int, int, int] = 20, buffer: int = 0, region: Bounds | None = None) -> "BoxGrid":
        """The grid covering ``region`` (default: the whole map); see :func:`box_grid` for the arguments."""
        sizes = _per_axis(box_size, "box_size")
        strides = _per_axis(stride, "stride")
        if buffer < 0:
            raise ValueError(f"buffer must be >= 0 voxels, got {buffer}")
        for s, t in zip(sizes, strides):
            if t > s:
                raise ValueError(f"stride {t} is larger than the box {s}: boxes would leave gaps; use a stride <= {s}")
        region = region or tuple((0, n) for n in shape)  # type: ignore[assignment]
        centres = tuple(tuple(float(c) for c in axis_centres(a, b, s, t))
                        for (a, b), s, t in zip(region, sizes, strides))  # type: ignore[union-attr]
        spans = tuple(np.array([_span(c, s, n) for c in cs], dtype=np.int64).reshape(-1, 2)
                      for cs, s, n in zip(centres, sizes, shape))
        return cls(tuple(int(n) for n in shape), centres, spans, int(buffer))  # type: ignore[arg-type]

    @property
    def counts(self) -> tuple[int, int, int]:
        """Number of boxes along z, y, x."""
        return tuple(len(c) for c in self.centres)  # type: ignore[return-value]

    @property
    def n_boxes(self) -> int:
        nz, ny, nx = self.counts
        return nz * ny * nx

    def outer_spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per axis, ``(n, 2)`` bounds of the outer regions (core plus buffer, clipped)."""
        return tuple(np.stack([np.maximum(0, s[:, 0] - self.buffer), np.minimum(n, s[:, 1] + self.buffer)], axis=1)
                     for s, n in zip(self.spans, self.shape))  # type: ignore[return-value]

    def box(self, index: int) -> Box:
        """Box ``index`` (its geometry is that of ``box_grid(...)[index]``)."""
        if not 0 <= index < self.n_boxes:
            raise IndexError(f"box {index} does not exist: the grid has boxes 0…{self.n_boxes - 1}")
        pos = np.unravel_index(int(index), self.counts)
        core = tuple((int(s[p, 0]), int(s[p, 1])) for s, p in zip(self.spans, pos))
        outer = tuple((max(0, a - self.buffer), min(n, b + self.buffer)) for (a, b), n in zip(core, self.shape))
        centre = tuple(c[p] for c, p in zip(self.centres, pos))
        return Box(int(index), centre, core, outer)  # type: ignore[arg-type]

    def touching(self, bounds: Bounds) -> np.ndarray:
        """Indices (ascending) of the boxes whose core overlaps ``bounds``."""
        ranges = []
        for (a, b), s in zip(bounds, self.spans):
            # cores overlap [a, b) when start < b and end > a; starts and ends are both sorted
            lo = int(np.searchsorted(s[:, 1], a, side="right"))
            hi = int(np.searchsorted(s[:, 0], b, side="left"))
            ranges.append(np.arange(lo, max(lo, hi)))
        iz, iy, ix = np.meshgrid(*ranges, indexing="ij")
        return np.ravel_multi_index((iz.ravel(), iy.ravel(), ix.ravel()), self.counts).astype(np.int64)

    def nearest_neighbour_distance(self, voxel_size: tuple[float, float, float]) -> float | None:
        """Mean distance (Å) from each box centre to its nearest neighbour (None for a single box).

        On a rectilinear grid the nearest neighbour of a centre lies along one axis (a
        neighbour that differs along several axes is at least as far as the nearest
        one along each of them), so the per-centre distance is the smallest axis gap.
        """
        gaps = []
        for cs, v in zip(self.centres, voxel_size):
            c = np.asarray(cs, dtype=np.float64) * v
            if c.size < 2:
                gaps.append(np.full(c.size, np.inf))
                continue
            d = np.diff(c)
            gaps.append(np.minimum(np.concatenate([[np.inf], d]), np.concatenate([d, [np.inf]])))
        gz, gy, gx = gaps
        nearest = np.minimum(np.minimum(gz[:, None, None], gy[None, :, None]), gx[None, None, :])
        return None if not np.isfinite(nearest).all() else float(nearest.mean())


def box_grid(shape: tuple[int, int, int], box_size: int | tuple[int, int, int] = 40,
             stride: int | tuple[int, int, int] = 20, buffer: int = 0, region: Bounds | None = None) -> list[Box]:
    """Overlapping boxes covering ``region`` (default: the whole map), as a list (small maps, tests).

    Parameters
    ----------
    shape : tuple of int
        Map shape (z, y, x).
    box_size, stride : int or tuple of int
        Core size and largest centre spacing (voxels), per axis or for all.
    buffer : int
        Voxels added on each side of the core for the outer region.
    region : Bounds, optional
        Part of the map to cover (e.g. the molecule's bounding box).

    Raises
    ------
    ValueError
        If a size, stride or buffer is not usable, naming the value.
    """
    grid = BoxGrid.build(shape, box_size, stride, buffer, region)
    return [grid.box(i) for i in range(grid.n_boxes)]


def chunk_grid(shape: tuple[int, int, int], chunks: tuple[int, int, int]) -> list[Bounds]:
    """The regular chunks of an array of ``shape`` (the last ones may be smaller).

    >>> chunk_grid((5, 4, 3), (2, 4, 3))
    [((0, 2), (0, 4), (0, 3)), ((2, 4), (0, 4), (0, 3)), ((4, 5), (0, 4), (0, 3))]
    """
    ranges = [[(a, min(a + c, n)) for a in range(0, n, c)] for n, c in zip(shape, chunks)]
    return [tuple(r) for r in itertools.product(*ranges)]  # type: ignore[misc]


def intersect(a: Bounds, b: Bounds) -> Bounds | None:
    """Overlap of two bounds, or None when they do not overlap."""
    out = tuple((max(a0, b0), min(a1, b1)) for (a0, a1), (b0, b1) in zip(a, b))
    return None if any(lo >= hi for lo, hi in out) else out  # type: ignore[return-value]


def _per_axis(value: int | tuple[int, int, int], name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(values) != 3 or any(int(v) < 1 for v in values):
        raise ValueError(f"{name} must be a positive number of voxels (or three), got {value!r}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]
