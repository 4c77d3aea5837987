"""Exact order statistics of values spread over many parts (pure numpy).

:func:`range_histogram` is computed on each part and the counts are added; a driver
narrows the interval holding a wanted rank until few enough values remain to gather
them (:func:`values_in`), then picks the rank exactly.  :func:`linear_quantile` then
interpolates two neighbouring order statistics as ``numpy.quantile`` (method ``linear``)
does.
"""

from __future__ import annotations

import numpy as np


#: Values binned at a time by :func:`range_histogram` (bounded float64/int64 temporaries).
CHUNK = 1 << 22


def range_histogram(values: np.ndarray, lo: float, hi: float, n_bins: int) -> tuple[int, np.ndarray]:
    """``(count of values < lo, counts in n_bins equal bins of [lo, hi))``."""
    flat = np.asarray(values).reshape(-1)
    edges = np.linspace(lo, hi, n_bins + 1)
    below = 0
    counts = np.zeros(n_bins, dtype=np.int64)
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        below += int(np.count_nonzero(part < lo))
        inside = part[(part >= lo) & (part < hi)].astype(np.float64)
        which = np.clip(np.searchsorted(edges, inside, side="right") - 1, 0, n_bins - 1)
        counts += np.bincount(which, minlength=n_bins)
    return below, counts


def bin_bounds(lo: float, hi: float, n_bins: int, index: int) -> tuple[float, float]:
    """Edges ``[a, b)`` of bin ``index`` of :func:`range_histogram` (the same float64 edges)."""
    edges = np.linspace(lo, hi, n_bins + 1)
    return float(edges[index]), float(edges[index + 1])


def values_in(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The values in ``[lo, hi)`` (any order)."""
    flat = np.asarray(values).reshape(-1)
    return flat[(flat >= lo) & (flat < hi)]


def quantile_ranks(n: int, q: float) -> tuple[int, int, float]:
    """The two order statistics (0-based ranks) and the weight ``numpy.quantile`` uses for ``q``."""
    virtual = (n - 1) * q
    below = int(np.floor(virtual))
    above = min(below + 1, n - 1)
    return below, above, float(virtual - below)


def linear_quantile(a: np.floating, b: np.floating, gamma: float) -> float:
    """``numpy.quantile``'s interpolation between order statistics ``a <= b`` (their dtype's arithmetic)."""
    diff = b - a
    if gamma >= 0.5:
        return float(b - diff * (1 - gamma))
    return float(a + diff * gamma)
