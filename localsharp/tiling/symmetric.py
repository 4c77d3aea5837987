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
from dataclasses import dataclass

import numpy as np

from ..symmetry.asu import in_asu
from ..symmetry.groups import PointGroup
from .boxes import BoxGrid

#: How mate boxes take their outcome.
MATE_METHODS = ("nearest", "interpolate")
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
    if method not in MATE_METHODS:
        raise ValueError(f"unknown mate method {method!r}: use one of {', '.join(MATE_METHODS)}")
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
