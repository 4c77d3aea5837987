"""Choosing the sub-volume on which the sharpening is determined (ALGORITHM.md §5).

Two selections are offered:

* :func:`density_select_bounds` (default): per axis, the profile of slab
  maxima minus the mean of the six face maxima, smoothed, and the span around
  its main peak above 5 % of its range, padded by 3 Å.
* :func:`centred_box_bounds`: a box of given size around a given centre.

Bounds are half-open index ranges ``(start, stop)`` per array axis (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

Bounds = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class BoxChoice:
    """Where the search ran: ``bounds`` (z, y, x half-open) and why."""

    bounds: Bounds
    method: str
    used: bool
    reason: str

    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in self.bounds)  # type: ignore[return-value]

    @property
    def fraction(self) -> float:
        return 0.0 if not self.bounds else float(np.prod([b - a for a, b in self.bounds]))

    def to_dict(self) -> dict:
        return {"bounds_zyx": [list(b) for b in self.bounds], "method": self.method, "used": self.used,
                "reason": self.reason}


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
    """Bounds of the box enclosing the main density (§5 item 2).

    Parameters
    ----------
    data : numpy.ndarray
        Map ``[z, y, x]``.
    voxel_size : tuple of float
        Voxel size along z, y, x (Å).
    threshold_fraction : float
        Fraction of the profile's range above which a slab counts as density.
    cushion : float
        Padding (Å) added on each side.
    """
    faces = [data[0].max(), data[-1].max(), data[:, 0].max(), data[:, -1].max(), data[:, :, 0].max(),
             data[:, :, -1].max()]
    baseline = float(np.mean(faces))
    bounds = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        profile = data.max(axis=others).astype(np.float64) - baseline
        start, stop = _axis_span(profile, threshold_fraction)
        pad = int(np.ceil(cushion / voxel_size[axis]))
        bounds.append((max(0, start - pad), min(data.shape[axis], stop + pad)))
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


def choose_box(data: np.ndarray, voxel_size: tuple[float, float, float], *, density_select: bool = True,
               max_box_fraction: float = 0.5, threshold_fraction: float = 0.05,
               centre_index: tuple[float, float, float] | None = None,
               box_size: tuple[int, int, int] | None = None, min_edge: int = 16) -> BoxChoice:
    """Decide the analysis box; the whole map is used when a box would not help.

    A box larger than ``max_box_fraction`` of the map, or thinner than
    ``min_edge`` voxels on an axis, is rejected (the whole map is analysed).
    """
    whole = tuple((0, n) for n in data.shape)
    if centre_index is not None:
        size = box_size or (40, 40, 40)
        bounds = centred_box_bounds(data.shape, centre_index, size)
        return BoxChoice(bounds, "box_center", True, f"box of {size} voxels around the given centre")
    if not density_select:
        return BoxChoice(whole, "whole_map", False, "density selection off")
    bounds = density_select_bounds(data, voxel_size, threshold_fraction=threshold_fraction)
    n_box = int(np.prod([b - a for a, b in bounds]))
    fraction = n_box / data.size
    if min(b - a for a, b in bounds) < min_edge:
        return BoxChoice(whole, "whole_map", False, f"density-selected box too thin ({bounds}); whole map used")
    if fraction > max_box_fraction:
        return BoxChoice(whole, "whole_map", False,
                         f"density-selected box holds {fraction:.0%} of the map (> {max_box_fraction:.0%}); whole map used")
    return BoxChoice(fft_friendly(bounds, data.shape), "density_select", True,
                     f"density-selected box holds {fraction:.0%} of the map (grown to FFT-friendly sizes)")
