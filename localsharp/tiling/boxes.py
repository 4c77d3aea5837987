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


def box_grid(shape: tuple[int, int, int], box_size: int | tuple[int, int, int] = 40,
             stride: int | tuple[int, int, int] = 20, buffer: int = 0, region: Bounds | None = None) -> list[Box]:
    """Overlapping boxes covering ``region`` (default: the whole map).

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
    sizes = _per_axis(box_size, "box_size")
    strides = _per_axis(stride, "stride")
    if buffer < 0:
        raise ValueError(f"buffer must be >= 0 voxels, got {buffer}")
    for s, t in zip(sizes, strides):
        if t > s:
            raise ValueError(f"stride {t} is larger than the box {s}: boxes would leave gaps; use a stride <= {s}")
    region = region or tuple((0, n) for n in shape)  # type: ignore[assignment]
    per_axis = [axis_centres(a, b, s, t) for (a, b), s, t in zip(region, sizes, strides)]  # type: ignore[union-attr]
    boxes = []
    for i, centre in enumerate(itertools.product(*per_axis)):
        core = tuple(_span(c, s, n) for c, s, n in zip(centre, sizes, shape))
        outer = tuple((max(0, a - buffer), min(n, b + buffer)) for (a, b), n in zip(core, shape))
        boxes.append(Box(i, tuple(float(c) for c in centre), core, outer))  # type: ignore[arg-type]
    return boxes


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
