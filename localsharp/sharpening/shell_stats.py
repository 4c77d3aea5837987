"""Resolution shells of a spectrum and the statistics in them (docs/methods.md, half maps and model).

The formulas of the half-map and model modes on per-shell values (CC*, the model-error B, the
corrected correlation curve, the outlier guard), the binning of coefficients into shells of
equal reciprocal volume, and :class:`ShellStats`, the per-shell correlation and rms amplitudes
of two sets of coefficients.  :mod:`localsharp.sharpening.shellscale` turns them into factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels.shells import equal_volume_shells
from .spectrum import Spectrum

#: Default number of shells (docs/methods.md, half maps and model).
N_BINS = 20
#: Defaults of the correlation correction: shells averaged for the baseline, rescale limit, tail-fit cut.
SCALE_USING_LAST = 3
MAX_CC_FOR_RESCALE = 0.2
CC_CUT = 0.2
#: Constant reference rms used for half maps before normalisation to shell 1 (docs/methods.md, half maps and model).
HALF_MAP_RMS_FC = 1.4
#: Model error rmsd as a fraction of the resolution (docs/methods.md, half maps and model).
RMSD_RESOLUTION_FACTOR = 0.25
#: Below this estimated completeness a model gives unit factors (docs/methods.md, half maps and model).
MIN_FRACTION_COMPLETE = 0.05
#: Largest exponent used in ``exp(sthol2 · b_eff)`` (docs/methods.md, half maps and model).
MAX_EXPONENT = 20.0
#: Outlier guard: values beyond these multiples of the mean of the first three shells are replaced (docs/methods.md, half maps and model).
OUTLIER_HIGH = 100.0
OUTLIER_LOW = 0.01
#: Floors of the rms ratios and of the factors.
RMS_FLOOR = 1e-10
CORRECTED_FLOOR = 1e-5
#: Tail-fit decay constants a (Å): 200 values 10 + 490·k/200 (docs/methods.md, half maps and model).
TAIL_DECAYS = 10.0 + 490.0 * np.arange(200) / 200.0
#: Reference spectra for half-map scaling: Engine A's constant, or the de-blurred signal.
REFERENCES = ("flat", "signal")
#: Shells used to fit the signal's B need a half-map FSC at least this high.
SIGNAL_FIT_MIN_FSC = 0.143
#: ... and there must be at least this many of them.
SIGNAL_FIT_MIN_SHELLS = 3



# ------------------------------------------------------------------ formulas
def cc_star(fsc: Any) -> Any:
    """Expected correlation of the full map with the truth from the half-map FSC.

    ``CC* = sqrt(2·FSC / (1 + FSC))`` with FSC ≤ 0 giving 0 (docs/methods.md, half maps and model).

    Parameters
    ----------
    fsc : float or array_like
        Half-map Fourier shell correlation(s).

    Returns
    -------
    float or numpy.ndarray
        Same shape as ``fsc``; a float for scalar input.

    Examples
    --------
    >>> round(cc_star(1 / 3) ** 2, 12)
    0.5
    >>> cc_star(-0.2)
    0.0
    """
    f = np.clip(np.asarray(fsc, dtype=np.float64), 0.0, None)
    out = np.sqrt(2.0 * f / (1.0 + f))
    return float(out) if out.ndim == 0 else out


def effective_b(rmsd: float) -> float:
    """B (Å²) describing the expected model error: ``b_eff = 8π·rmsd²`` (docs/methods.md, half maps and model).

    This is the reference's (and the paper's) form, not the Debye–Waller
    ``8π²·rmsd²``; e.g. rmsd 1 Å gives 25.13 Å².
    """
    return 8.0 * math.pi * float(rmsd) ** 2


def default_rmsd(resolution: float) -> float:
    """Default model error: ``0.25 × resolution`` (Å)."""
    return RMSD_RESOLUTION_FACTOR * float(resolution)


def correct_cc(cc: np.ndarray, s: np.ndarray, *, cc_cut: float = CC_CUT,
               max_cc_for_rescale: float = MAX_CC_FOR_RESCALE,
               scale_using_last: int = SCALE_USING_LAST) -> np.ndarray:
    """Baseline removal and exponential tail fit of a per-shell correlation curve (docs/methods.md, half maps and model).

    1. ``base = clamp(mean(last scale_using_last CC), 0, 0.99)``; when
       ``base ≤ max_cc_for_rescale`` the curve becomes ``(CC − base)/(1 − base)``,
       otherwise it is left unchanged.
    2. With ``c_hi = min(2·cc_cut, 1 − cc_cut/2)``: if the curve rises above
       ``c_hi``, the first later shell ``i_cut`` with ``CC < cc_cut`` starts a
       tail ``CC_{i_cut}·exp(−a·(s − s_{i_cut}))`` (``a`` from 200 values in
       10…500 Å minimising the rms misfit) that replaces shells ``≥ i_cut``;
       if step 1 rescaled the curve, the tail's last value is subtracted so it
       ends at 0.

    Parameters
    ----------
    cc : array_like
        Correlation per shell, lowest resolution first.
    s : array_like
        |s| (Å⁻¹) of each shell.

    Returns
    -------
    numpy.ndarray
        The corrected curve (float64); the input is not modified.
    """
    cc = np.array(cc, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    if cc.size == 0:
        return cc
    base = float(np.clip(np.mean(cc[-scale_using_last:]), 0.0, 0.99))
    rescaled = base <= max_cc_for_rescale
    if rescaled:
        cc = (cc - base) / (1.0 - base)
    c_hi = min(2.0 * cc_cut, 1.0 - cc_cut / 2.0)
    if cc.max() < c_hi:
        return cc
    i_cut = None
    seen_high = False
    for i, value in enumerate(cc):
        if value > c_hi:
            seen_high = True
        elif seen_high and value < cc_cut:
            i_cut = i
            break
    if not i_cut:  # None, or shell 0
        return cc
    ds = s[i_cut:] - s[i_cut]
    trials = cc[i_cut] * np.exp(-TAIL_DECAYS[:, None] * ds[None, :])
    misfit = np.sqrt(np.mean((trials - cc[None, i_cut:]) ** 2, axis=1))
    tail = trials[int(np.argmin(misfit))]
    if rescaled:
        tail = tail - tail[-1]
    cc[i_cut:] = tail
    return cc


def guard_outliers(values: np.ndarray, *, n_reference: int = 3) -> np.ndarray:
    """Replace values > 100× or < 0.01× the mean of the first ``n_reference`` shells by the previous kept value (docs/methods.md, half maps and model)."""
    values = np.array(values, dtype=np.float64)
    reference = float(np.mean(values[:n_reference])) if values.size else 0.0
    if not reference > 0:
        return values
    for i in range(1, values.size):
        if values[i] > OUTLIER_HIGH * reference or values[i] < OUTLIER_LOW * reference or not np.isfinite(values[i]):
            values[i] = values[i - 1]
    return values


# ------------------------------------------------------------------- binning
def bin_shells(s: np.ndarray, d_min: float, n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Assign |s| values to shells of equal reciprocal volume, reducing the count until none is empty (docs/methods.md, half maps and model).

    Shells run from the smallest |s| to ``max(1/d_min, max |s|)``.  The
    reference's Engine A stops with an error on an empty shell (its automatic
    reduction does not take effect); the intended reduction (Engine B's) is
    implemented here.  Returns ``(index, edges)`` as
    :func:`~localsharp.kernels.shells.equal_volume_shells` does.
    """
    s = np.asarray(s, dtype=np.float64)
    if s.size == 0:
        raise ValueError("no Fourier coefficient to bin")
    return equal_volume_shells(s, float(s.min()), max(1.0 / float(d_min), float(s.max())), n_bins)


def _same_grid(*spectra: Spectrum) -> None:
    first = spectra[0]
    for other in spectra[1:]:
        if other.shape != first.shape or not np.allclose(other.voxel_size, first.voxel_size, rtol=1e-5):
            raise ValueError(f"spectra differ in grid: {first.shape} {first.voxel_size} vs "
                             f"{other.shape} {other.voxel_size}")
        if other.index is not first.index and not np.array_equal(other.index, first.index):
            raise ValueError("spectra hold different sets of coefficients (different d_min?)")


# --------------------------------------------------------------- statistics
@dataclass(frozen=True)
class ShellStats:
    """Raw per-shell statistics of two coefficient sets on one grid (docs/methods.md, half maps and model).

    Attributes
    ----------
    edges_s : numpy.ndarray
        ``n + 1`` shell edges in |s| (Å⁻¹).
    n : numpy.ndarray
        Number of Fourier coefficients per shell (full sphere).
    d_avg : numpy.ndarray
        Mean resolution (Å) of each shell's coefficients.
    cc : numpy.ndarray
        Complex correlation ``Σ Re(F1 F2*) / sqrt(Σ|F1|² Σ|F2|²)`` (0 if undefined).
    rms_fo : numpy.ndarray
        rms amplitude of the map being sharpened.
    cross_power : numpy.ndarray
        Mean ``Re(F1 F2*)`` per coefficient; for two half maps an unbiased
        estimate of the signal power (independent noise averages out).
    rms_fc : numpy.ndarray or None
        rms amplitude of the reference (model), None for half maps.
    """

    edges_s: np.ndarray
    n: np.ndarray
    d_avg: np.ndarray
    cc: np.ndarray
    rms_fo: np.ndarray
    cross_power: np.ndarray
    rms_fc: np.ndarray | None = None

    @property
    def n_shells(self) -> int:
        return int(self.n.size)

    @property
    def s(self) -> np.ndarray:
        """|s| at the shell centres (midpoint of the edges)."""
        return 0.5 * (self.edges_s[:-1] + self.edges_s[1:])

    @property
    def d(self) -> np.ndarray:
        """Resolution (Å) at the shell centres."""
        return 1.0 / self.s

    @property
    def sthol2(self) -> np.ndarray:
        """(sin θ/λ)² at each shell's mean resolution, ``1/(4·d_avg²)``."""
        return 0.25 / self.d_avg**2

    @classmethod
    def measure(cls, observed: Spectrum, first: Spectrum, second: Spectrum, *, reference_rms: bool = False,
                n_bins: int = N_BINS) -> "ShellStats":
        """Statistics of ``observed`` and the correlation of ``first`` with ``second``.

        ``reference_rms`` also records the rms amplitude of ``second`` (the
        model) as :attr:`rms_fc`.
        """
        _same_grid(observed, first, second)
        s = np.sqrt(4.0 * observed.sthol2.astype(np.float64))
        index, edges = bin_shells(s, observed.d_min, n_bins)
        n = len(edges) - 1
        w = observed.weight.astype(np.float64)

        def total(values: np.ndarray) -> np.ndarray:
            return np.bincount(index, weights=w * values, minlength=n)

        count = total(np.ones_like(s))
        f1 = first.coeffs.astype(np.complex128)
        f2 = second.coeffs.astype(np.complex128)
        p1 = total(f1.real**2 + f1.imag**2)
        p2 = total(f2.real**2 + f2.imag**2)
        cross = total(f1.real * f2.real + f1.imag * f2.imag)
        denominator = np.sqrt(p1 * p2)
        cc = np.divide(cross, denominator, out=np.zeros(n), where=denominator > 0)
        fo = observed.coeffs.astype(np.complex128)
        rms_fo = np.sqrt(total(fo.real**2 + fo.imag**2) / count)
        rms_fc = np.sqrt(p2 / count) if reference_rms else None
        d_avg = total(1.0 / s) / count
        return cls(edges_s=edges, n=count, d_avg=d_avg, cc=cc, rms_fo=rms_fo, cross_power=cross / count,
                   rms_fc=rms_fc)
