"""Blending of box results into the output (docs/methods.md, local sharpening; pure numpy).

Each box contributes on its core with a Gaussian weight centred on the box,
``w_b(x) = exp(-|x - c_b|² / (2 R²))`` (the paper's ``exp(-(d/d0)²)`` with
``d0 = √2·R``), floored at 1e-10.  The overall-sharpened map fills every voxel
with the small weight 0.01, so voxels no box reaches keep it:

``M(x) = (0.01·M0(x) + Σ_b w_b(x)·M_b(x)) / (0.01 + Σ_b w_b(x))``.

The formula is a weighted mean, so blending copies of one map returns that map.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .boxes import Box, Bounds, intersect

#: Weight of the overall-sharpened map in every voxel.
BACKGROUND_WEIGHT = 0.01
#: Weight of the background in the scale-factor modes, whose background is the map as given (not
#: sharpened): small enough that any box reaching a voxel sets its value.
SCALE_BACKGROUND_WEIGHT = 1e-6
#: Smallest weight of a box inside its core.
WEIGHT_FLOOR = 1e-10
#: Smoothing radius (Å) when there are fewer than two boxes.
DEFAULT_RADIUS = 10.0


def radius_from_spacing(nearest: float | None) -> float:
    """``round(⅔ · D_nn)`` Å (at least 1 Å) for a mean nearest-neighbour distance ``D_nn``, or the default."""
    if nearest is None:
        return DEFAULT_RADIUS
    return float(max(1.0, round(2.0 / 3.0 * float(nearest))))


def default_radius(nearest: float | None, stride: float) -> float:
    """The default smoothing radius (Å) of a run: :func:`radius_from_spacing` of the mean nearest-neighbour
    distance of the box centres, but at least that of the stride (Å).

    On a map smaller than a few strides the boxes are packed closer than the stride along some axis
    (the tour map: 5 voxels along z); ⅔ of that spacing (3 Å there) would split the map almost
    hard between boxes, so the stride sets a floor, in every mode.
    """
    return max(radius_from_spacing(nearest), radius_from_spacing(stride))


def smoothing_radius(centres: Iterable[tuple[float, float, float]], voxel_size: tuple[float, float, float]) -> float:
    """``round(⅔ · D_nn)`` Å, ``D_nn`` the mean nearest-neighbour distance between box centres.

    ``centres`` are voxel coordinates (z, y, x); ``voxel_size`` is (z, y, x) in Å.
    Any set of centres (a k-d tree, O(n log n)); a regular grid has
    :meth:`~localsharp.tiling.boxes.BoxGrid.nearest_neighbour_distance`.
    """
    points = np.asarray(list(centres), dtype=np.float64).reshape(-1, 3) * np.asarray(voxel_size, dtype=np.float64)
    if len(points) < 2:
        return DEFAULT_RADIUS
    from scipy.spatial import cKDTree

    distances, _ = cKDTree(points).query(points, k=2)
    return radius_from_spacing(float(np.mean(distances[:, 1])))


def box_weight(box: Box, voxel_size: tuple[float, float, float], radius: float,
               bounds: Bounds | None = None) -> np.ndarray:
    """Gaussian weight of ``box`` on ``bounds`` (default: its core), zero outside the core."""
    bounds = bounds or box.core
    axes = []
    for (a, b), (c0, c1), c, v in zip(bounds, box.core, box.centre, voxel_size):
        idx = np.arange(a, b, dtype=np.float64)
        inside = (idx >= c0) & (idx < c1)
        axes.append((np.where(inside, ((idx - c) * v) ** 2, np.inf), inside))
    (dz, iz), (dy, iy), (dx, ix) = axes
    r2 = dz[:, None, None] + dy[None, :, None] + dx[None, None, :]
    inside = iz[:, None, None] & iy[None, :, None] & ix[None, None, :]
    w = np.exp(-r2 / (2.0 * radius * radius))
    return np.where(inside, np.maximum(w, WEIGHT_FLOOR), 0.0)


def background_weight() -> float:
    """Weight of the overall-sharpened map (0.01)."""
    return BACKGROUND_WEIGHT


def blend_into(chunk: Bounds, background: np.ndarray, contributions: Iterable[tuple[Box, np.ndarray]],
               voxel_size: tuple[float, float, float], radius: float,
               background_weight: float = BACKGROUND_WEIGHT) -> np.ndarray:
    """Blend box results over one chunk of the output.

    Parameters
    ----------
    chunk : Bounds
        The output region.
    background : numpy.ndarray
        The overall-sharpened map on ``chunk``.
    contributions : iterable of (Box, numpy.ndarray)
        Each box with its sharpened values on its core.
    voxel_size : tuple of float
        (z, y, x) in Å.
    radius : float
        Smoothing radius R (Å).
    background_weight : float
        Weight of ``background`` (0.01, the reference's; :data:`SCALE_BACKGROUND_WEIGHT` when
        the background is the unsharpened map, so that the boxes decide wherever one reaches).

    Returns
    -------
    numpy.ndarray
        float32 values of the blended map on ``chunk``.
    """
    numerator = background_weight * background.astype(np.float64)
    denominator = np.full(background.shape, float(background_weight))
    _accumulate(chunk, contributions, voxel_size, radius, numerator, denominator)
    return (numerator / denominator).astype(np.float32)


def weighted_sums(chunk: Bounds, contributions: Iterable[tuple[Box, np.ndarray]],
                  voxel_size: tuple[float, float, float], radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``Σ_b w_b·v_b`` and ``Σ_b w_b`` over ``chunk`` (float64), the two sums :func:`blend_into` divides,
    without a background: for a quantity averaged over the boxes alone."""
    shape = tuple(b - a for a, b in chunk)
    numerator, denominator = np.zeros(shape), np.zeros(shape)
    _accumulate(chunk, contributions, voxel_size, radius, numerator, denominator)
    return numerator, denominator


def _accumulate(chunk: Bounds, contributions: Iterable[tuple[Box, np.ndarray]], voxel_size: tuple[float, float, float],
                radius: float, numerator: np.ndarray, denominator: np.ndarray) -> None:
    """Add every box's ``w·values`` to ``numerator`` and ``w`` to ``denominator`` (in place) on ``chunk``."""
    for box, values in contributions:
        part = intersect(chunk, box.core)
        if part is None:
            continue
        w = box_weight(box, voxel_size, radius, part)
        in_chunk = tuple(slice(a - c0, b - c0) for (a, b), (c0, _) in zip(part, chunk))
        in_core = tuple(slice(a - c0, b - c0) for (a, b), (c0, _) in zip(part, box.core))
        numerator[in_chunk] += w * values[in_core]
        denominator[in_chunk] += w
