"""Per-shell sums of Fourier amplitudes that add up over parts of a map (pure numpy).

The mean amplitude in shells of equal reciprocal volume (``Spectrum.shell_mean_amplitude``)
is a ratio of two sums per shell.  The distributed overall pass computes the sums on each
pencil of coefficients and adds them; the in-memory spectrum uses the same functions on all
its coefficients at once.
"""

from __future__ import annotations

import numpy as np

from .fourier import shell_edges_equal_volume
from .shells import shell_of


def shell_edges(sthol2_min: float, sthol2_max: float, n_bins: int) -> np.ndarray:
    """Edges in |s| of ``n_bins`` equal-volume shells between the kept coefficients' extreme (sin θ/λ)²."""
    s_min = float(np.sqrt(4.0 * np.float64(sthol2_min)))
    s_max = float(np.sqrt(4.0 * np.float64(sthol2_max)))
    return shell_edges_equal_volume(s_min, s_max, n_bins)


def shell_sums(sthol2: np.ndarray, amplitudes: np.ndarray, weight: np.ndarray,
               edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ w·|F|, Σ w)`` per shell of ``edges`` (float64), for coefficients of (sin θ/λ)² ``sthol2``.

    A value beyond the last edge (or before the first) counts in the end shell.
    """
    n_bins = edges.size - 1
    which = shell_of(np.sqrt(4.0 * np.asarray(sthol2, dtype=np.float64)), edges)
    w = np.asarray(weight, dtype=np.float64)
    total = np.bincount(which, weights=np.asarray(amplitudes, dtype=np.float64) * w, minlength=n_bins)
    count = np.bincount(which, weights=w, minlength=n_bins)
    return total, count


def shell_means(edges: np.ndarray, total: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(d at shell centres, mean |F|)`` of the non-empty shells from summed :func:`shell_sums`."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    ok = count > 0
    return 1.0 / centres[ok], total[ok] / count[ok]
