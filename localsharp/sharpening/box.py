"""Choosing the sub-volume on which the sharpening is determined (docs/methods.md, analysis box).

Three selections are offered:

* :func:`density_select_bounds` (default): per axis, the profile of slab
  maxima minus the mean of the six face maxima, smoothed, and the span around
  its main peak above 5 % of its range, padded by 3 Å.
* :func:`centred_box_bounds`: a box of given size around a given centre.
* :func:`segmented_region_bounds`: the bounding box of the largest (or, with
  ``use_weak_density``, a weaker) connected region at the contour where the
  regions have about the size expected for 50-residue pieces (docs/methods.md, analysis box);
  a box of given size is then centred on it.

Boxes cut around a centre get a buffer of 1.5 × resolution for a soft edge
(:func:`localsharp.kernels.masks.box_edge_mask`, applied by the caller).

Bounds are half-open index ranges ``(start, stop)`` per array axis (z, y, x).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.fft

from ..kernels import regions

Bounds = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class BoxChoice:
    """Where the search ran: ``bounds`` (z, y, x half-open) and why.

    ``boxes`` lists every box when several are analysed together (method ``molecule_boxes``,
    :mod:`.region`); ``bounds`` is then the first of them.
    """

    bounds: Bounds
    method: str
    used: bool
    reason: str
    soft_edge: bool = False
    boxes: tuple[Bounds, ...] = ()

    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in self.bounds)  # type: ignore[return-value]

    @property
    def fraction(self) -> float:
        """Voxels of ``bounds`` (the first box)."""
        return 0.0 if not self.bounds else float(np.prod([b - a for a, b in self.bounds]))

    @property
    def all_boxes(self) -> tuple[Bounds, ...]:
        """Every analysed box (``bounds`` alone unless several)."""
        return self.boxes or (self.bounds,)

    def to_dict(self) -> dict:
        out = {"bounds_zyx": [list(b) for b in self.bounds], "method": self.method, "used": self.used,
               "reason": self.reason, "soft_edge": self.soft_edge}
        if self.boxes:
            out["boxes_zyx"] = [[list(b) for b in box] for box in self.boxes]
        return out


def _smooth(profile: np.ndarray, window: int) -> np.ndarray:
    if window <= 1:
        return profile
    kernel = np.ones(window) / window
    padded = np.pad(profile, window // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")[: profile.size]


def _axis_span(profile: np.ndarray, threshold_fraction: float) -> tuple[int, int]:
    smooth = _smooth(profile, max(1, int(round(profile.size / 20))))
    lo, hi = float(smooth.min()), float(smooth.max())
    if hi <= lo:
        return 0, profile.size
    cutoff = lo + threshold_fraction * (hi - lo)
    peak = int(np.argmax(smooth))
    start = peak
    while start > 0 and smooth[start - 1] > cutoff:
        start -= 1
    stop = peak + 1
    while stop < profile.size and smooth[stop] > cutoff:
        stop += 1
    edge = max(1, int(0.02 * profile.size))
    if start <= edge:
        start = 0
    if stop >= profile.size - edge:
        stop = profile.size
    return start, stop


def density_select_bounds(data: np.ndarray, voxel_size: tuple[float, float, float], *,
                          threshold_fraction: float = 0.05, cushion: float = 3.0) -> Bounds:
    """Bounds of the box enclosing the main density (docs/methods.md, analysis box) of ``data`` (indexed ``[z, y, x]``,
    voxel edges ``voxel_size`` in Å, also z, y, x): along each axis, the slabs whose density profile
    rises above ``threshold_fraction`` of its range, padded by ``cushion`` Å on each side."""
    faces, profiles = select_profiles(data)
    return bounds_from_profiles(faces, profiles, tuple(data.shape), voxel_size, threshold_fraction=threshold_fraction,
                                cushion=cushion)


def select_profiles(data: np.ndarray) -> tuple[list, list[np.ndarray]]:
    """The six face maxima and, per axis, the maximum of every slab across it (float32).

    Maxima over parts of a map combine by ``max`` into those of the whole, so the
    distributed overall pass finds the same box from its z-slabs.
    """
    faces = [data[0].max(), data[-1].max(), data[:, 0].max(), data[:, -1].max(), data[:, :, 0].max(),
             data[:, :, -1].max()]
    profiles = [data.max(axis=tuple(a for a in range(3) if a != axis)) for axis in range(3)]
    return faces, profiles


def bounds_from_profiles(faces: list, profiles: list[np.ndarray], shape: tuple[int, int, int],
                         voxel_size: tuple[float, float, float], *, threshold_fraction: float = 0.05,
                         cushion: float = 3.0) -> Bounds:
    """:func:`density_select_bounds` from :func:`select_profiles`."""
    baseline = float(np.mean(faces))
    bounds = []
    for axis in range(3):
        profile = profiles[axis].astype(np.float64) - baseline
        start, stop = _axis_span(profile, threshold_fraction)
        pad = int(np.ceil(cushion / voxel_size[axis]))
        bounds.append((max(0, start - pad), min(shape[axis], stop + pad)))
    return tuple(bounds)  # type: ignore[return-value]


def fft_friendly(bounds: Bounds, shape: tuple[int, int, int]) -> Bounds:
    """Grow each extent to the next FFT-friendly length (factors 2, 3, 5), staying inside the map.

    Prime extents make every trial FFT several times slower (Bluestein); a few
    extra voxels of margin cost nothing in the analysis.
    """
    out = []
    for (start, stop), n in zip(bounds, shape):
        length = scipy.fft.next_fast_len(stop - start, real=True)
        if length > n:
            out.append((start, stop))
            continue
        grow = length - (stop - start)
        start = max(0, start - grow // 2)
        start = min(start, n - length)
        out.append((start, start + length))
    return tuple(out)  # type: ignore[return-value]


def centred_box_bounds(shape: tuple[int, int, int], centre_index: tuple[float, float, float],
                       size: tuple[int, int, int]) -> Bounds:
    """Box of ``size`` voxels around ``centre_index`` (z, y, x), shifted to lie inside the map."""
    bounds = []
    for n, c, s in zip(shape, centre_index, size):
        s = min(int(s), n)
        start = int(round(c - s / 2.0))
        start = min(max(0, start), n - s)
        bounds.append((start, start + s))
    return tuple(bounds)  # type: ignore[return-value]


#: Residues per expected region of the segmentation (docs/methods.md, analysis box).
RESIDUES_PER_REGION = 50
#: Å³ of protein per residue (110 Da × 1.23 Å³/Da).
VOLUME_PER_RESIDUE = 110.0 * 1.23
#: Exponent range and coarse step of the contour scan ``t0 · 0.95ⁿ``.
SEGMENT_SCAN = (-64, 80, 4)


def _segment_score(sizes: np.ndarray, target: float, expected: int) -> float:
    """Distance of the largest region, and of the median of the ``expected`` largest, from ``target`` voxels.

    Sum of absolute log ratios (0 is perfect).  Using the largest regions for
    the median keeps the many noise specks of an unmasked map out of it.
    """
    if sizes.size == 0:
        return float("inf")
    top = np.sort(sizes)[::-1][:expected]
    return float(abs(np.log(top[0] / target)) + abs(np.log(np.median(top) / target)))


def segmentation_threshold(data: np.ndarray, solvent_fraction: float, voxel_volume: float) -> tuple[float, int]:
    """Contour level whose regions best match the size expected for 50-residue pieces.

    Levels are measured from the solvent level (the map's median) and scanned
    as ``t0 · 0.95ⁿ``, where ``t0`` encloses the molecular volume (at most half
    of the voxels above the median), for n in −64…80: every 4th n, then the
    neighbours of the best.  Returns the level (in the map's units) and the
    expected number of regions.

    The reference scans n in −16…4 and widens the range only while the best n
    lies at an end; with several local minima (common on noisy maps) that
    stops at the first one, so the whole range is scanned here, coarse to fine.
    """
    base = float(np.median(data))
    centred = data - np.float32(base)
    n_above = int(np.count_nonzero(centred > 0))
    n_molecule = max(1, int(data.size * (1.0 - solvent_fraction)))
    t0 = regions.threshold_for_count(centred, max(1, min(n_molecule, n_above // 2)))
    residues = n_molecule * voxel_volume / VOLUME_PER_RESIDUE
    expected = max(1, int(round(residues / RESIDUES_PER_REGION)))
    target = n_molecule / expected
    if not t0 > 0:
        return float(t0) + base, expected
    cache: dict[int, float] = {}

    def _scan_score(n: int) -> float:
        sizes = regions.label_members(centred, t0 * 0.95**n)[2]
        return _segment_score(sizes[1:], target, expected)

    def score(n: int) -> float:
        if n not in cache:
            cache[n] = _scan_score(n)
        return cache[n]

    lo, hi, step = SEGMENT_SCAN
    coarse = list(range(lo, hi + 1, step))
    with ThreadPoolExecutor(max_workers=min(len(coarse), os.cpu_count() or 1)) as pool:  # labelling releases the GIL
        for n, value in zip(coarse, pool.map(_scan_score, coarse)):
            cache[n] = value
    best = min(coarse, key=lambda n: (score(n), abs(n)))
    best = min(range(max(lo, best - step + 1), min(hi, best + step - 1) + 1), key=lambda n: (score(n), abs(n)))
    return float(t0 * 0.95**best) + base, expected


def segmented_region_bounds(data: np.ndarray, solvent_fraction: float, voxel_size: tuple[float, float, float], *,
                            use_weak_density: bool = False) -> tuple[Bounds, str]:
    """Bounding box (z, y, x half-open) of the region the segmentation box is centred on (docs/methods.md, analysis box).

    The largest region at :func:`segmentation_threshold`; with
    ``use_weak_density`` the last region, in decreasing volume within the first
    75 % of the list, whose volume is at least 25 % of the largest.
    """
    threshold, expected = segmentation_threshold(data, solvent_fraction, float(np.prod(voxel_size)))
    members, member_labels, sizes = regions.label_members(data, threshold)
    if sizes.size <= 1:
        whole = tuple((0, n) for n in data.shape)
        return whole, "segmentation found no region"  # type: ignore[return-value]
    order = np.argsort(-sizes[1:], kind="stable") + 1
    pick = order[0]
    if use_weak_density:
        head = order[:max(1, int(0.75 * order.size))]
        strong_enough = head[sizes[head] >= 0.25 * sizes[order[0]]]
        pick = strong_enough[-1]
    where = np.unravel_index(members[member_labels == pick], data.shape)
    bounds = tuple((int(w.min()), int(w.max()) + 1) for w in where)
    kind = "weaker" if use_weak_density else "largest"
    return bounds, (f"{kind} of {order.size} regions at contour {threshold:.3g} "  # type: ignore[return-value]
                    f"({int(sizes[pick])} voxels; {expected} expected regions)")


def buffered_box_bounds(shape: tuple[int, int, int], centre_index: tuple[float, float, float],
                        size: tuple[int, int, int], buffer: int) -> Bounds:
    """:func:`centred_box_bounds` of ``size + 2·buffer`` voxels (the buffer holds the soft edge)."""
    return centred_box_bounds(shape, centre_index, tuple(int(s) + 2 * buffer for s in size))  # type: ignore[arg-type]


def choose_box(data: np.ndarray, voxel_size: tuple[float, float, float], *, density_select: bool = True,
               max_box_fraction: float = 0.5, threshold_fraction: float = 0.05,
               centre_index: tuple[float, float, float] | None = None,
               box_size: tuple[int, int, int] | None = None, min_edge: int = 16,
               box_in_auto_sharpen: bool = False, solvent_fraction: float | None = None,
               use_weak_density: bool = False, buffer: int = 0) -> BoxChoice:
    """Decide the analysis box; the whole map is used when a box would not help.

    With ``centre_index`` or ``box_in_auto_sharpen`` a box of ``box_size``
    voxels plus ``buffer`` on each side is cut around the given centre or the
    segmented region (docs/methods.md, analysis box; ``solvent_fraction`` is then required) and
    flagged for a soft edge.  Otherwise the density-selected box is used; one
    larger than ``max_box_fraction`` of the map, or thinner than ``min_edge``
    voxels on an axis, is rejected (the whole map is analysed).
    """
    whole = tuple((0, n) for n in data.shape)
    size = tuple(int(v) for v in (box_size or (40, 40, 40)))
    if centre_index is not None:
        bounds = buffered_box_bounds(data.shape, centre_index, size, buffer)  # type: ignore[arg-type]
        return BoxChoice(bounds, "box_center", True,
                         f"box of {size} voxels (+{buffer} buffer) around the given centre", soft_edge=True)
    if box_in_auto_sharpen:
        if solvent_fraction is None:
            raise ValueError("the segmentation box needs the solvent fraction")
        region, why = segmented_region_bounds(data, solvent_fraction, voxel_size, use_weak_density=use_weak_density)
        centre = tuple((a + b - 1) / 2.0 for a, b in region)
        extent = tuple(max(s, b - a) for s, (a, b) in zip(size, region))
        bounds = buffered_box_bounds(data.shape, centre, extent, buffer)  # type: ignore[arg-type]
        return BoxChoice(bounds, "segmentation", True, f"box of {extent} voxels (+{buffer} buffer) around the {why}",
                         soft_edge=True)
    if not density_select:
        return BoxChoice(whole, "whole_map", False, "density selection off")
    bounds = density_select_bounds(data, voxel_size, threshold_fraction=threshold_fraction)
    return selected_box(bounds, tuple(data.shape), max_box_fraction=max_box_fraction, min_edge=min_edge)


def selected_box(bounds: Bounds, shape: tuple[int, int, int], *, max_box_fraction: float = 0.5,
                 min_edge: int = 16) -> BoxChoice:
    """The density-selected box, or the whole map when it is too thin or too large (see :func:`choose_box`)."""
    whole = tuple((0, n) for n in shape)
    n_box = int(np.prod([b - a for a, b in bounds]))
    fraction = n_box / int(np.prod(shape))
    if min(b - a for a, b in bounds) < min_edge:
        return BoxChoice(whole, "whole_map", False, f"density-selected box too thin ({bounds}); whole map used")
    if fraction > max_box_fraction:
        return BoxChoice(whole, "whole_map", False,
                         f"density-selected box holds {fraction:.0%} of the map (> {max_box_fraction:.0%}); whole map used")
    return BoxChoice(fft_friendly(bounds, shape), "density_select", True,
                     f"density-selected box holds {fraction:.0%} of the map (grown to FFT-friendly sizes)")
