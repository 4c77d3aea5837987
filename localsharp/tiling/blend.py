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
    """Gaussian weight of ``box`` on ``bounds`` (default: its core), zero outside the core.

    The Gaussian is separable: the product of one exponential per axis (3 short vectors, not one
    exponential per voxel).
    """
    bounds = bounds or box.core
    factors, masks = [], []
    for (a, b), (c0, c1), c, v in zip(bounds, box.core, box.centre, voxel_size):
        idx = np.arange(a, b, dtype=np.float64)
        inside = (idx >= c0) & (idx < c1)
        factors.append(np.where(inside, np.exp(-((idx - c) * v) ** 2 / (2.0 * radius * radius)), 0.0))
        masks.append(inside)
    (fz, fy, fx), (iz, iy, ix) = factors, masks
    w = fz[:, None, None] * fy[None, :, None] * fx[None, None, :]
    if iz.all() and iy.all() and ix.all():
        return np.maximum(w, WEIGHT_FLOOR)
    inside = iz[:, None, None] & iy[None, :, None] & ix[None, None, :]
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
    contributions = list(contributions)
    weights = TileWeights(chunk, [box for box, _ in contributions], voxel_size, radius)
    return weights.blend(background, [values for _, values in contributions], background_weight)


def weighted_sums(chunk: Bounds, contributions: Iterable[tuple[Box, np.ndarray]],
                  voxel_size: tuple[float, float, float], radius: float) -> tuple[np.ndarray, np.ndarray]:
    """``Σ_b w_b·v_b`` and ``Σ_b w_b`` over ``chunk`` (float64), the two sums :func:`blend_into` divides,
    without a background: for a quantity averaged over the boxes alone."""
    contributions = list(contributions)
    weights = TileWeights(chunk, [box for box, _ in contributions], voxel_size, radius)
    return weights.sums([values for _, values in contributions])


class TileWeights:
    """The blending weights of a list of boxes on one output region, computed once per box for every
    image blended there (the map, the b_sharpen and the local resolution: :meth:`accumulate`).

    Parameters
    ----------
    chunk : Bounds
        The output region.
    boxes : list of Box
        The contributing boxes, in the order their values will be given.
    voxel_size : tuple of float
        (z, y, x) in Å.
    radius : float
        Smoothing radius R (Å).
    ball : float, optional
        A box's weight is also zero farther than this (Å) from its centre: a weight that depends
        only on the distance to the centre, for boxes placed symmetrically (the symmetric layout,
        :func:`~localsharp.tiling.symmetric.image_boxes`), whose cubic cores are not.
    """

    def __init__(self, chunk: Bounds, boxes: list[Box], voxel_size: tuple[float, float, float],
                 radius: float, ball: float | None = None) -> None:
        self.chunk = chunk
        self.shape = tuple(b - a for a, b in chunk)
        #: per box with a ball: its three axis distance² vectors (Å²)
        self.ball = ball
        self.distances: list[tuple[np.ndarray, ...] | None] = []
        #: per box: its slices in the chunk and in its core, and its weight's three axis factors
        self.parts: list[tuple[tuple[slice, ...], tuple[slice, ...], tuple[np.ndarray, ...]] | None] = []
        for box in boxes:
            part = intersect(chunk, box.core)
            if part is None:
                self.parts.append(None)
                self.distances.append(None)
                continue
            squared = tuple(((np.arange(a, b, dtype=np.float64) - c) * v) ** 2
                            for (a, b), c, v in zip(part, box.centre, voxel_size))
            factors = tuple(np.exp(-d / (2.0 * radius * radius)) for d in squared)
            self.distances.append(squared if ball is not None else None)
            in_chunk = tuple(slice(a - c0, b - c0) for (a, b), (c0, _) in zip(part, chunk))
            in_core = tuple(slice(a - c0, b - c0) for (a, b), (c0, _) in zip(part, box.core))
            self.parts.append((in_chunk, in_core, factors))

    def accumulate(self, images: list[list[np.ndarray | float | None]]) -> tuple[np.ndarray, list[np.ndarray],
                                                                                  list[np.ndarray | None]]:
        """For several images at once: ``Σ_b w_b`` over every box, and per image ``Σ_b w_b·v_b`` and the
        ``Σ_b w_b`` over the boxes with a value (None when every box has one: the first result).

        ``images`` holds one list of values per image, one value per box: its core array, one number
        for its whole core, or None (the box adds nothing to that image).  Each box's weight is made
        once (float64 sums).
        """
        total = np.zeros(self.shape)
        numerators = [np.zeros(self.shape) for _ in images]
        partial = [None if all(v is not None for v in values) else np.zeros(self.shape) for values in images]
        for b, part in enumerate(self.parts):
            if part is None:
                continue
            in_chunk, in_core, (fz, fy, fx) = part
            w = fz[:, None, None] * fy[None, :, None] * fx[None, None, :]
            if fz.min() * fy.min() * fx.min() < WEIGHT_FLOOR:  # else no weight is below the floor
                np.maximum(w, WEIGHT_FLOOR, out=w)
            squared = self.distances[b]
            if squared is not None:
                dz, dy, dx = squared
                # a voxel at the ball's radius counts whatever the rounding of its distance (symmetric
                # boxes put many voxels exactly there)
                w[dz[:, None, None] + dy[None, :, None] + dx[None, None, :] > self.ball * self.ball * (1 + 1e-9)] = 0.0
            total[in_chunk] += w
            for values, numerator, denominator in zip(images, numerators, partial):
                v = values[b]
                if v is None:
                    continue
                if isinstance(v, np.ndarray):
                    numerator[in_chunk] += w * v[in_core]
                else:
                    numerator[in_chunk] += w * float(v)
                if denominator is not None:
                    denominator[in_chunk] += w
        return total, numerators, partial

    def sums(self, values: list[np.ndarray | float | None]) -> tuple[np.ndarray, np.ndarray]:
        """``Σ_b w_b·v_b`` and ``Σ_b w_b`` (float64) over the boxes whose value is not None; a value is
        a box's core array or one number for its whole core."""
        total, (numerator,), (denominator,) = self.accumulate([values])
        return numerator, (total if denominator is None else denominator)

    def blend(self, background: np.ndarray, values: list[np.ndarray | float],
              background_weight: float = BACKGROUND_WEIGHT) -> np.ndarray:
        """``(a·background + Σ_b w_b·v_b) / (a + Σ_b w_b)`` as float32 (``a`` the background's weight)."""
        total, (numerator,), _ = self.accumulate([values])
        return blended(background, numerator, total, background_weight)


def blended(background: np.ndarray, numerator: np.ndarray, total: np.ndarray,
            background_weight: float = BACKGROUND_WEIGHT) -> np.ndarray:
    """``(a·background + Σ w·v) / (a + Σ w)`` as float32, from the sums of :meth:`TileWeights.accumulate`."""
    return ((background_weight * background.astype(np.float64) + numerator) / (background_weight + total)
            ).astype(np.float32)
