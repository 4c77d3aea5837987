"""Resolution shells on an rfft grid and per-shell statistics (pure numpy).

Shells have equal reciprocal-space volume (edges at equal steps of |s|³)
between the lowest-resolution coefficient and ``1/d_min``, as in the
half-map/model sharpening of the reference (docs/methods.md, half maps and model).  Sums over
shells count each rfft coefficient with its multiplicity
(:attr:`FourierGrid.multiplicity`), so they equal sums over the full sphere.
"""

from __future__ import annotations

import numpy as np

from .fourier import FourierGrid, shell_edges_equal_volume


def shell_of(s: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shell of each |s| value for increasing ``edges`` (int32, 0 = lowest resolution); values
    before the first edge or beyond the last count in the end shell."""
    n_bins = len(edges) - 1
    return np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1).astype(np.int32)


def equal_volume_shells(s: np.ndarray, s_low: float, s_high: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Shells of equal reciprocal volume between ``s_low`` and ``s_high`` for the values ``s``.

    The count starts at ``n_bins`` and is reduced one at a time until no shell is empty.

    Returns
    -------
    index : numpy.ndarray
        Shell of each value (int32, 0 = lowest resolution).
    edges : numpy.ndarray
        ``n + 1`` increasing edges in |s|, ``n <= n_bins``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    for n in range(int(n_bins), 0, -1):
        edges = shell_edges_equal_volume(s_low, s_high, n)
        index = shell_of(s, edges)
        if np.all(np.bincount(index, minlength=n) > 0):
            return index, edges
    raise AssertionError("unreachable: a single shell holding every value cannot be empty")


def assign_shells(grid: FourierGrid, d_min: float, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Assign every rfft coefficient to one of ``n_bins`` equal-volume resolution shells.

    Parameters
    ----------
    grid : FourierGrid
        Geometry of the transform.
    d_min : float
        High-resolution limit (Å); coefficients with d < d_min get ``-1``.
    n_bins : int
        Requested number of shells; reduced one at a time until no shell is
        empty.

    Returns
    -------
    shell_index : numpy.ndarray
        int32 array of shape ``grid.rfft_shape``: shell number (0 = lowest
        resolution), ``-1`` for F000 and coefficients beyond ``d_min``.
    edges_s : numpy.ndarray
        ``n + 1`` shell edges in |s| (Å⁻¹), increasing; ``n <= n_bins``.

    Raises
    ------
    ValueError
        If ``d_min`` or ``n_bins`` is not positive, or no coefficient other
        than F000 lies within ``d_min``.
    """
    if not d_min > 0:
        raise ValueError(f"d_min must be positive, got {d_min}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    s2 = grid.s2
    inside = s2 <= np.float32(1.0 / d_min**2)
    inside[0, 0, 0] = False
    if not inside.any():
        raise ValueError(f"no Fourier coefficient lies within d_min = {d_min} Å apart from F000")
    s = np.sqrt(s2.astype(np.float64))
    inside_s = s[inside]
    index_inside, edges = equal_volume_shells(inside_s, float(inside_s.min()), max(1.0 / d_min, float(inside_s.max())),
                                              n_bins)
    index = np.full(s.shape, -1, dtype=np.int32)
    index[inside] = index_inside
    return index, edges


def shell_centres(edges_s: np.ndarray) -> np.ndarray:
    """Centre of each shell in |s| (midpoint of its edges)."""
    edges_s = np.asarray(edges_s, dtype=np.float64)
    return 0.5 * (edges_s[:-1] + edges_s[1:])


def shell_sum(values: np.ndarray, shell_index: np.ndarray, n_shells: int, multiplicity: np.ndarray) -> np.ndarray:
    """Sum of real ``values`` per shell, each coefficient counted ``multiplicity`` times (float64)."""
    inside = shell_index >= 0
    weights = np.asarray(values, dtype=np.float64)[inside] * np.asarray(multiplicity)[inside]
    return np.bincount(shell_index[inside], weights=weights, minlength=n_shells)[:n_shells]


def shell_fsc(
    coeffs1: np.ndarray, coeffs2: np.ndarray, shell_index: np.ndarray, n_shells: int, multiplicity: np.ndarray
) -> np.ndarray:
    """Complex correlation of two sets of coefficients in every shell (Fourier shell correlation).

    Parameters
    ----------
    coeffs1, coeffs2 : numpy.ndarray
        rfft coefficients of two maps on the same grid.
    shell_index : numpy.ndarray
        Shell of every coefficient, ``-1`` to leave it out (from :func:`assign_shells`).
    n_shells : int
        Number of shells.
    multiplicity : numpy.ndarray
        Weight of each rfft coefficient, :attr:`FourierGrid.multiplicity`
        (needed because the rfft stores half of the sphere; it cannot be
        inferred from the rfft shape alone).

    Returns
    -------
    numpy.ndarray
        ``n_shells`` float64 values ``Σ Re(F1 F2*) / sqrt(Σ|F1|² Σ|F2|²)``;
        0 in a shell where either map has no power.
    """
    if coeffs1.shape != coeffs2.shape or coeffs1.shape != shell_index.shape:
        raise ValueError(
            f"coefficient shapes {coeffs1.shape} and {coeffs2.shape} must equal "
            f"the shell index shape {shell_index.shape}"
        )
    inside = shell_index >= 0
    f1 = coeffs1[inside].astype(np.complex128)
    f2 = coeffs2[inside].astype(np.complex128)
    weight = np.asarray(np.broadcast_to(multiplicity, shell_index.shape))[inside].astype(np.float64)
    index = shell_index[inside]
    cross = np.bincount(index, weights=weight * (f1.real * f2.real + f1.imag * f2.imag), minlength=n_shells)
    power1 = np.bincount(index, weights=weight * (f1.real**2 + f1.imag**2), minlength=n_shells)
    power2 = np.bincount(index, weights=weight * (f2.real**2 + f2.imag**2), minlength=n_shells)
    denominator = np.sqrt(power1 * power2)[:n_shells]
    fsc = np.zeros(n_shells, dtype=np.float64)
    positive = denominator > 0
    fsc[positive] = cross[:n_shells][positive] / denominator[positive]
    return fsc


def fsc_crossing(s_centres: np.ndarray, fsc: np.ndarray, threshold: float = 0.143) -> float | None:
    """Resolution (Å) where the FSC first falls below ``threshold``, interpolated linearly in |s|.

    Returns ``None`` if the curve never falls below the threshold; if the
    first shell is already below it, the resolution of that shell is returned.
    """
    s_centres = np.asarray(s_centres, dtype=np.float64)
    fsc = np.asarray(fsc, dtype=np.float64)
    below = np.flatnonzero(fsc < threshold)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(1.0 / s_centres[0])
    s0, s1, f0, f1 = s_centres[i - 1], s_centres[i], fsc[i - 1], fsc[i]
    s_cross = s0 + (f0 - threshold) / (f0 - f1) * (s1 - s0)
    return float(1.0 / s_cross)
