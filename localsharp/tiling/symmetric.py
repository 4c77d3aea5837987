"""The boxes of a symmetric map: which are searched (one asymmetric unit), where every other box takes its outcome.

A point group placed on a map (:class:`BoxSymmetry`: its operators act about ``centre``, Å in the
map's frame) makes every box the mate of a position in one asymmetric unit (ASU).  A symmetric
run searches only the boxes whose centres lie in the ASU (:func:`localsharp.symmetry.asu.in_asu`,
optionally grown by a margin); every other box takes the outcome of the searched boxes at its
mate position.  The mate of a grid point is rarely a grid point, so the searched box centres are
copied by every operator of the group (their *images*, ``R_k p_j``), and a box at ``p`` takes

* ``"nearest"``: the outcome of the searched box whose image lies nearest to ``p``;
* ``"interpolate"``: a weighted mean over the searched boxes whose images lie within ``reach``
  of ``p`` (Gaussian weights in the distance, σ = ``reach / (2√3)``), the nearest always among them.

Images under every operator, not only the one that takes ``p`` into the ASU, make the mapping
exact for any ASU shape: a box just outside a face of the ASU finds the searched box on the
other side of the face that is nearest to it.  Pure index and vector arithmetic (numpy, scipy's
k-d tree), no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..symmetry.asu import in_asu
from ..symmetry.groups import PointGroup
from .boxes import Bounds, Box, BoxGrid

#: How mate boxes take their outcome: ``"images"`` renders the searched boxes at every symmetry image
#: of their centres (:func:`image_boxes`; a mate box's row then names the nearest image), the other two
#: render the grid's boxes, each mate with the outcome :func:`map_mates` gives it.
MATE_METHODS = ("images", "nearest", "interpolate")
#: Most searched boxes one mate box interpolates between.
MAX_SOURCES = 8


@dataclass(frozen=True, eq=False)
class BoxSymmetry:
    """A point group placed on a map.

    Attributes
    ----------
    group : PointGroup
    centre : tuple of float
        Symmetry centre (Å, x y z, in the map's frame).
    first_voxel : tuple of float
        Position (Å, x y z) of voxel ``[0, 0, 0]``.
    voxel_size : tuple of float
        Voxel edges (Å, x y z).
    """

    group: PointGroup
    centre: tuple[float, float, float]
    first_voxel: tuple[float, float, float]
    voxel_size: tuple[float, float, float]

    def positions(self, grid: BoxGrid, indices: np.ndarray) -> np.ndarray:
        """Box centres ``(n, 3)`` (Å, x y z) relative to the symmetry centre."""
        indices = np.asarray(indices, dtype=np.int64)
        pos = np.unravel_index(indices, grid.counts)
        zyx = np.stack([np.asarray(c, dtype=np.float64)[p] for c, p in zip(grid.centres, pos)], axis=1)
        xyz = zyx[:, ::-1].reshape(-1, 3)
        return (np.asarray(self.first_voxel, dtype=np.float64) + xyz * np.asarray(self.voxel_size, dtype=np.float64)
                - np.asarray(self.centre, dtype=np.float64))

    def voxels_in_asu(self, zyx: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether voxel positions (``(n, 3)``, z y x, fractional allowed) lie in the ASU grown by ``margin`` Å."""
        zyx = np.atleast_2d(np.asarray(zyx, dtype=np.float64))
        xyz = (np.asarray(self.first_voxel, dtype=np.float64) + zyx[:, ::-1] * np.asarray(self.voxel_size, dtype=np.float64)
               - np.asarray(self.centre, dtype=np.float64))
        return in_asu(self.group, xyz, margin)


    def exact_operator(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The first operator besides the identity that carries the voxel grid onto itself, as ``(M, t)``
        in voxel indices z, y, x (``j = M·i + t``, M a signed permutation, t whole numbers); None when
        there is none (e.g. a C3 about z, or a centre neither on a voxel nor halfway between two)."""
        voxel = np.asarray(self.voxel_size, dtype=np.float64)
        centre = (np.asarray(self.centre, dtype=np.float64) - np.asarray(self.first_voxel, dtype=np.float64)) / voxel
        for matrix in self.group.matrices[1:]:
            m = (np.asarray(matrix, dtype=np.float64) * voxel[None, :]) / voxel[:, None]  # index space, x y z
            rounded = np.round(m)
            if not np.allclose(m, rounded, atol=1e-6) or not np.all(np.abs(rounded).sum(axis=1) == 1) \
                    or not np.all(np.abs(rounded).sum(axis=0) == 1):
                continue
            t = centre - rounded @ centre
            if not np.allclose(t, np.round(t), atol=1e-6):
                continue
            return rounded[::-1, ::-1].astype(np.int64), np.round(t[::-1]).astype(np.int64)
        return None

    def exact_mate(self, bounds: Bounds, shape: tuple[int, int, int]
                   ) -> tuple[Bounds, Callable[[np.ndarray], np.ndarray]] | None:
        """The copy of the box ``bounds`` (z y x, half-open) under :meth:`exact_operator`, when it lies in a map of
        ``shape``: ``(mate_bounds, align)``, where ``align(values)`` turns the mate's voxels into the box's
        frame (voxel ``i`` of the box beside voxel ``M·i + t`` of the map); None without an exact operator or
        when the copy leaves the map."""
        exact = self.exact_operator()
        if exact is None:
            return None
        m, t = exact
        lo = np.array([a for a, _ in bounds], dtype=np.int64)
        hi = np.array([b - 1 for _, b in bounds], dtype=np.int64)
        ends = np.stack([m @ lo + t, m @ hi + t])
        mate = tuple((int(ends[:, k].min()), int(ends[:, k].max()) + 1) for k in range(3))
        if any(a < 0 or b > n for (a, b), n in zip(mate, shape)):
            return None
        source_axis = [int(np.flatnonzero(m[:, a])[0]) for a in range(3)]  # the mate's axis holding box axis a
        signs = [int(m[source_axis[a], a]) for a in range(3)]

        def align(values: np.ndarray) -> np.ndarray:
            out = np.transpose(values, source_axis)
            return out[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in signs)]

        return mate, align


def searched_flags(grid: BoxGrid, active: np.ndarray, symmetry: BoxSymmetry, margin: float = 0.0) -> np.ndarray:
    """Flat boolean array (box index order): the active boxes whose centres lie in the ASU grown by ``margin`` Å."""
    active = np.asarray(active, dtype=bool)
    flags = np.zeros(grid.n_boxes, dtype=bool)
    indices = np.flatnonzero(active)
    if indices.size:
        flags[indices] = in_asu(symmetry.group, symmetry.positions(grid, indices), margin)
    return flags


@dataclass(frozen=True)
class MateMap:
    """Where each mate box takes its outcome.

    Attributes
    ----------
    index : numpy.ndarray
        ``(n,)`` the mate boxes.
    operator : numpy.ndarray
        ``(n,)`` index ``m`` of the operator with ``R_m p`` nearest to the first source's centre
        (``p`` the mate box's centre, relative to the symmetry centre).
    mate_position : numpy.ndarray
        ``(n, 3)`` that position ``R_m p`` (Å, x y z, relative to the centre).
    sources : numpy.ndarray
        ``(n, MAX_SOURCES)`` searched box indices, the nearest first, ``-1`` where unused.
    weights : numpy.ndarray
        ``(n, MAX_SOURCES)`` their weights (sum 1 per row; 0 where unused).
    distance : numpy.ndarray
        ``(n,)`` Å from ``R_m p`` to the nearest source's centre.
    """

    index: np.ndarray
    operator: np.ndarray
    mate_position: np.ndarray
    sources: np.ndarray
    weights: np.ndarray
    distance: np.ndarray


def map_mates(grid: BoxGrid, symmetry: BoxSymmetry, searched: np.ndarray, mates: np.ndarray,
              method: str = "nearest", reach: float | None = None) -> MateMap:
    """The searched boxes each mate box takes its outcome from (see the module notes).

    Parameters
    ----------
    grid : BoxGrid
    symmetry : BoxSymmetry
    searched : numpy.ndarray
        Indices of the boxes that may serve as sources (searched, with a usable outcome).
    mates : numpy.ndarray
        Indices of the boxes to map.
    method : str
        ``"nearest"`` or ``"interpolate"``.
    reach : float, optional
        Interpolation: sources whose images lie within this distance (Å) of the mate box count
        (default: √3 × the grid's mean nearest-neighbour spacing, a grid cell's diagonal).

    Raises
    ------
    ValueError
        For an unknown method, or mates without any searched box.
    """
    if method not in MATE_METHODS[1:]:
        raise ValueError(f"unknown mate method {method!r}: use one of {', '.join(MATE_METHODS[1:])}")
    searched = np.asarray(searched, dtype=np.int64)
    mates = np.asarray(mates, dtype=np.int64)
    n = mates.size
    sources = np.full((n, MAX_SOURCES), -1, dtype=np.int64)
    weights = np.zeros((n, MAX_SOURCES))
    if n == 0:
        return MateMap(mates, np.zeros(0, np.int64), np.zeros((0, 3)), sources, weights, np.zeros(0))
    if searched.size == 0:
        raise ValueError("no searched box to take mate outcomes from")
    from scipy.spatial import cKDTree

    group = symmetry.group
    p_searched = symmetry.positions(grid, searched)
    images = np.einsum("kij,nj->kni", group.matrices, p_searched).reshape(-1, 3)  # image (k, j) at k * n + j
    tree = cKDTree(images)
    p_mates = symmetry.positions(grid, mates)
    k = 1 if method == "nearest" else min(len(images), MAX_SOURCES * 2)
    distances, hits = tree.query(p_mates, k=k)
    distances, hits = distances.reshape(n, -1), hits.reshape(n, -1)
    operator_of_image = hits // searched.size
    inverse = group.inverse_index()
    operator = inverse[operator_of_image[:, 0]]
    mate_position = np.einsum("nij,nj->ni", group.matrices[operator], p_mates)
    if method == "nearest":
        sources[:, 0] = searched[hits[:, 0] % searched.size]
        weights[:, 0] = 1.0
        return MateMap(mates, operator, mate_position, sources, weights, distances[:, 0])
    if reach is None:
        spacing = grid.nearest_neighbour_distance(tuple(symmetry.voxel_size[::-1]))  # type: ignore[arg-type]
        reach = math.sqrt(3.0) * (spacing if spacing is not None else 1.0)
    sigma = reach / (2.0 * math.sqrt(3.0))
    for i in range(n):
        seen: dict[int, float] = {}
        for rank, (d, hit) in enumerate(zip(distances[i], hits[i])):
            if rank > 0 and d > reach:
                break
            box = int(searched[hit % searched.size])
            seen[box] = seen.get(box, 0.0) + math.exp(-0.5 * (d / sigma) ** 2)  # several images of one box add up
            if len(seen) == MAX_SOURCES:
                break
        total = sum(seen.values())
        for slot, (box, w) in enumerate(seen.items()):
            sources[i, slot] = box
            weights[i, slot] = w / total if total > 0 else (1.0 if slot == 0 else 0.0)
    return MateMap(mates, operator, mate_position, sources, weights, distances[:, 0])


@dataclass(frozen=True)
class ImageBoxes:
    """The searched boxes and every symmetry image of them: the boxes a symmetric layout blends.

    Image ``i`` is searched box ``source[i]`` moved by operator ``operator[i]`` (the identity keeps it
    where it was searched).  Its centre is the exact image of the searched box's centre, generally
    between voxels; its core is the box's size of voxels around that centre (moved inside the map
    at an edge), its outer region the core plus the grid's buffer.  The set of centres is closed
    under the group, so a map blended from these boxes with weights that depend only on the
    distance to each centre is as symmetric as the map it was cut from.

    Attributes
    ----------
    centre : numpy.ndarray
        ``(n, 3)`` centres, voxel coordinates (z, y, x).
    source : numpy.ndarray
        ``(n,)`` the searched box each image copies.
    operator : numpy.ndarray
        ``(n,)`` the operator taking the searched box's centre to the image's.
    core : numpy.ndarray
        ``(n, 3, 2)`` core bounds (half-open, z y x).
    buffer : int
        Voxels of the outer region beyond the core on each side (clipped to the map).
    shape : tuple of int
        Map shape (z, y, x).
    """

    centre: np.ndarray
    source: np.ndarray
    operator: np.ndarray
    core: np.ndarray
    buffer: int
    shape: tuple[int, int, int]

    @property
    def n(self) -> int:
        return int(self.source.size)

    def box(self, i: int) -> Box:
        """Image ``i`` as a :class:`~localsharp.tiling.boxes.Box` (its index is the image's number)."""
        core = tuple((int(a), int(b)) for a, b in self.core[i])
        outer = tuple((max(0, a - self.buffer), min(n, b + self.buffer)) for (a, b), n in zip(core, self.shape))
        return Box(int(i), tuple(float(c) for c in self.centre[i]), core, outer)  # type: ignore[arg-type]

    def touching(self, bounds: Bounds) -> np.ndarray:
        """Images (ascending) whose core overlaps ``bounds``."""
        lo = np.array([a for a, _ in bounds])
        hi = np.array([b for _, b in bounds])
        hit = np.all((self.core[:, :, 0] < hi) & (self.core[:, :, 1] > lo), axis=1)
        return np.flatnonzero(hit)


def window_margin(resolution: float, voxel_zyx: tuple[float, float, float]) -> int:
    """Voxels by which an image's cube grows beyond the grid's (:func:`image_boxes`' ``margin``): the cube
    holds the round window's soft edge (σ = the resolution) one resolution beyond its half-value radius;
    cut any nearer, a copy's values would depend on where its centre falls between voxels."""
    return int(math.ceil(resolution / min(voxel_zyx)))


def image_boxes(grid: BoxGrid, symmetry: BoxSymmetry, searched: np.ndarray, margin: int = 0) -> ImageBoxes:
    """Every image of the searched boxes under the group that can reach the map (see :class:`ImageBoxes`).

    Images of one box that coincide (a box centred on a symmetry axis) are kept once.  The core
    size is the grid's (along each axis, that of its first box); the outer region is the core plus
    the grid's buffer plus ``margin`` voxels (room for a round window's soft edge inside the cube).
    """
    searched = np.asarray(searched, dtype=np.int64)
    group = symmetry.group
    shape = np.asarray(grid.shape)
    sizes = np.array([int(s[0, 1] - s[0, 0]) for s in grid.spans])
    if searched.size == 0:
        return ImageBoxes(np.zeros((0, 3)), searched, searched.copy(), np.zeros((0, 3, 2), np.int64), grid.buffer,
                          grid.shape)
    p = symmetry.positions(grid, searched)  # Å, x y z, about the centre
    images = np.einsum("kij,nj->kni", group.matrices, p)  # (order, n, 3)
    xyz = (images + np.asarray(symmetry.centre) - np.asarray(symmetry.first_voxel)) / np.asarray(symmetry.voxel_size)
    # snapped to 1e-6 voxel, so that images on the same lattice get the same cores whatever the rounding
    zyx = np.round(xyz[..., ::-1].reshape(-1, 3) * 1e6) / 1e6
    source = np.tile(searched, group.order)
    operator = np.repeat(np.arange(group.order), searched.size)
    keep = np.all((zyx > -sizes / 2.0) & (zyx < shape - 1 + sizes / 2.0), axis=1)  # its core can reach the map
    zyx, source, operator = zyx[keep], source[keep], operator[keep]
    # one image per (source, position): a box on a symmetry axis is its own image under that axis
    key = np.round(zyx * 100).astype(np.int64)
    _, first = np.unique(np.column_stack([source, key]), axis=0, return_index=True)
    first = np.sort(first)
    zyx, source, operator = zyx[first], source[first], operator[first]
    start = np.floor(zyx - sizes / 2.0 + 0.5).astype(np.int64)
    start = np.clip(start, 0, np.maximum(shape - sizes, 0))
    core = np.stack([start, np.minimum(start + sizes, shape)], axis=2)
    return ImageBoxes(zyx, source, operator, core, grid.buffer + int(margin), grid.shape)  # type: ignore[arg-type]
