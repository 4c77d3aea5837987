"""The asymmetric unit of a point group, and the operator that takes a point into it.

The asymmetric unit (ASU) used here is the **Dirichlet domain of a seed direction**: the cone of
points (relative to the symmetry centre) whose nearest copy of the seed vector ``s`` among its
mates ``R_k s`` is ``s`` itself, i.e. ``p · s ≥ p · R_k s`` for every operator ``R_k``.  With a
seed that lies on no symmetry axis (:data:`SEED`, checked for every standard group) the mates of
``s`` are all distinct, the cones of the mates tile space and each holds exactly one mate of
every point that is not on a cone boundary: a fundamental domain for every group, with flat faces
(planes through the centre with normals ``s − R_k s``).  It is simple and exact, and it needs no
table of per-group domain shapes.

A point ``p`` nearest to the copy ``R_k s`` is taken into the ASU by ``R_k⁻¹``:
``(R_k⁻¹ p) · s = p · R_k s`` is then the largest of its dot products with the mates of ``s``.
Points on a symmetry axis (or the centre) are their own mates for part of the group: they are
given the identity (ties are broken towards the lowest operator index, the identity first).
"""

from __future__ import annotations

import numpy as np

from .groups import PointGroup

#: The seed direction of every group's ASU: on no symmetry axis of any standard group.
SEED = np.array([0.2634, 0.1072, 0.9587]) / np.linalg.norm([0.2634, 0.1072, 0.9587])
#: Relative tolerance for ties of dot products (points on an ASU face or a symmetry axis).
TIE = 1e-9
_CHUNK = 1 << 16


def seed_orbit(group: PointGroup, seed: np.ndarray = SEED) -> np.ndarray:
    """The mates ``R_k s`` of the seed direction, ``(order, 3)``."""
    return group.matrices @ np.asarray(seed, dtype=np.float64)


def _nearest_copy(group: PointGroup, points: np.ndarray, seed: np.ndarray) -> np.ndarray:
    orbit = seed_orbit(group, seed)
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), _CHUNK):
        p = points[start:start + _CHUNK]
        dots = p @ orbit.T
        best = dots.max(axis=1, keepdims=True)
        scale = np.linalg.norm(p, axis=1, keepdims=True)
        out[start:start + _CHUNK] = np.argmax(dots >= best - TIE * np.maximum(scale, 1.0), axis=1)
    return out


def asu_operators(group: PointGroup, points: np.ndarray, seed: np.ndarray = SEED) -> np.ndarray:
    """Per point, the index ``m`` of the operator with ``group.matrices[m] @ p`` in the ASU.

    Parameters
    ----------
    group : PointGroup
    points : numpy.ndarray
        ``(n, 3)`` or ``(3,)`` positions (Å, x y z) relative to the symmetry centre.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64 operator indices (a scalar array for one point); 0 (the identity) for
        points already in the ASU.
    """
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    nearest = _nearest_copy(group, p, seed)
    result = group.inverse_index()[nearest]
    return result[0] if single else result


def to_asu(group: PointGroup, points: np.ndarray, seed: np.ndarray = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The mates of ``points`` in the ASU and the operator indices that took them there.

    ``mapped[i] = group.matrices[index[i]] @ points[i]``; the original point is
    ``group.matrices[index[i]].T @ mapped[i]``.  Points are relative to the symmetry centre.
    """
    p = np.atleast_2d(np.asarray(points, dtype=np.float64))
    index = np.atleast_1d(asu_operators(group, p, seed))
    mapped = np.einsum("nij,nj->ni", group.matrices[index], p)
    return mapped, index


def in_asu(group: PointGroup, points: np.ndarray, margin: float = 0.0, seed: np.ndarray = SEED) -> np.ndarray:
    """Whether each point lies in the ASU, or within ``margin`` Å of each of its faces.

    The test is ``p · n_k ≥ −margin`` for the unit normal ``n_k ∝ s − R_k s`` of every face: with
    ``margin = 0`` exactly the ASU (a point on a face counts as inside); with a margin, the ASU
    grown by at least ``margin`` Å in every direction (near an edge of the cone a little more),
    which is what a search region "one box beyond the ASU" needs.
    """
    p = np.atleast_2d(np.asarray(points, dtype=np.float64))
    orbit = seed_orbit(group, seed)
    normals = np.asarray(seed, dtype=np.float64) - orbit[1:]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    inside = np.empty(len(p), dtype=bool)
    for start in range(0, len(p), _CHUNK):
        part = p[start:start + _CHUNK]
        slack = margin + TIE * np.maximum(np.linalg.norm(part, axis=1), 1.0)
        inside[start:start + _CHUNK] = np.all(part @ normals.T >= -slack[:, None], axis=1) if len(normals) else True
    return inside
