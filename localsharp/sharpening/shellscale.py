"""Per-shell scale factors from half maps or an atomic model (docs/methods.md, half maps and model, Engine A).

Pure numerics on :class:`~localsharp.sharpening.spectrum.Spectrum` objects (numpy
only, no I/O).  The coefficients inside the resolution sphere are binned into
shells of equal reciprocal-space volume (docs/methods.md, half maps and model); per shell we measure the
complex correlation of two sets of coefficients, the rms amplitude of the map
being sharpened and (for a model) of the reference (docs/methods.md, half maps and model), correct the
correlation curve (docs/methods.md, half maps and model) and turn everything into one factor per shell (docs/methods.md, half maps and model):

* half maps: ``k_i = CC*_i · rmsFc_i / rmsFo_i`` — scale the map towards a
  reference spectrum and weight each shell by the expected correlation of the
  full map with the truth, CC*.  The reference is Engine A's constant
  (``flat``: whitening, ``k_i ∝ CC*_i · rmsFo_1/rmsFo_i``) or the half maps'
  own signal with its overall B removed (``signal``: ``k_i ∝ CC*_i² ·
  exp(B·sthol2_i)``, the Wiener filter towards a B = 0 map);
* model: ``k_i = (rmsFc_i / rmsFo_i) · min(1, CC_i / max_possible_cc ·
  exp(b_eff · sthol2_i))`` — match the model's amplitude spectrum, weighted by
  the map–model correlation corrected for the expected model error
  (``b_eff = 8π·rmsd²``, docs/methods.md, half maps and model) and the model's completeness.

Factors are normalised to a maximum of 1 and kept as ``(|s|, k)`` pairs at the
shell centres, so they can be applied to any spectrum by interpolating in
resolution (docs/methods.md, half maps and model; the reference re-applies them by shell index — a quirk not
reproduced here).
"""

from __future__ import annotations

# The shell statistics and formulas live in shell_stats; the names are kept here for callers.

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernels.wilson import D_FIT_MAX, D_FIT_MIN, expected_protein_intensity
from .functions import Sharpening
from .shell_stats import (  # noqa: F401 (bin_shells and the formulas are imported from here too)
    CC_CUT, CORRECTED_FLOOR, HALF_MAP_RMS_FC, MAX_CC_FOR_RESCALE, MAX_EXPONENT, MIN_FRACTION_COMPLETE, N_BINS,
    REFERENCES, RMS_FLOOR, SCALE_USING_LAST, SIGNAL_FIT_MIN_FSC, SIGNAL_FIT_MIN_SHELLS, ShellStats, bin_shells,
    cc_star, correct_cc, default_rmsd, effective_b, guard_outliers)
from .spectrum import Spectrum

#: Factors below this are left out of the equivalent-B fit (ln of ~0 is noise).
MIN_FACTOR_FOR_FIT = 1e-3


# ------------------------------------------------------------- scale factors
@dataclass(frozen=True)
class ShellScale:
    """Per-shell scale factors and the statistics they came from.

    Attributes
    ----------
    method : str
        ``half_map_sharpening`` or ``model_sharpening``.
    stats : ShellStats
        Raw statistics.
    cc_corrected : numpy.ndarray
        Correlation after baseline removal and tail fit (docs/methods.md, half maps and model).
    cc_star : numpy.ndarray or None
        CC* of the corrected half-map FSC (half maps only).
    rms_fc : numpy.ndarray
        Reference rms (model, constant, or de-blurred signal), normalised to
        ``rmsFo`` of shell 1.
    ratio : numpy.ndarray
        ``rmsFc / rmsFo``.
    scale : numpy.ndarray
        Factor ``k`` per shell, maximum 1.
    reference : str
        ``model`` or, for half maps, ``flat`` / ``signal`` (see :func:`half_map_scale`).
    b_signal : float or None
        Overall B (Å²) of the half maps' signal removed by the ``signal`` reference.
    b_eff, max_possible_cc, fraction_complete, rmsd : float or None
        Model-error terms (model only).
    notes : tuple of str
        Anything unusual (an incomplete model giving unit factors, a fallback).
    """

    method: str
    stats: ShellStats
    cc_corrected: np.ndarray
    rms_fc: np.ndarray
    ratio: np.ndarray
    scale: np.ndarray
    reference: str = "model"
    cc_star: np.ndarray | None = None
    b_signal: float | None = None
    b_eff: float | None = None
    max_possible_cc: float | None = None
    fraction_complete: float | None = None
    rmsd: float | None = None
    notes: tuple[str, ...] = field(default=())

    def to_sharpening(self) -> Sharpening:
        """The :class:`Sharpening` applying these factors, interpolated in |s| between shell centres.

        The factors travel as ``(|s|, k)`` pairs, so a map with other
        dimensions (the whole map after a box) gets the factor of its own
        resolution — the intended behaviour; the reference stores them by
        shell index and re-applies them on a different binning (docs/methods.md, half maps and model).
        """
        return Sharpening(method=self.method, b_sharpen=0.0, k_sharpen=None, b_blur_hires=None,
                          shell_s=tuple(float(v) for v in self.stats.s),
                          shell_k=tuple(float(v) for v in self.scale))

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-friendly dict per shell (plain floats/ints), lowest resolution first.

        Half maps: ``d, s, d_avg, fsc, fsc_corrected, cc_star, rms_fo, rms_fc, scale, n``.
        Model: ``d, s, d_avg, cc, cc_corrected, rms_fo, rms_fc, scale, n``.
        ``d``/``s`` are the shell centre (where ``scale`` applies); ``n`` the
        number of Fourier coefficients in the shell.
        """
        st = self.stats
        half = self.method == "half_map_sharpening"
        out = []
        for i in range(st.n_shells):
            row: dict[str, Any] = {"d": float(st.d[i]), "s": float(st.s[i]), "d_avg": float(st.d_avg[i])}
            if half:
                row.update(fsc=float(st.cc[i]), fsc_corrected=float(self.cc_corrected[i]),
                           cc_star=float(self.cc_star[i]) if self.cc_star is not None else None)
            else:
                row.update(cc=float(st.cc[i]), cc_corrected=float(self.cc_corrected[i]))
            row.update(rms_fo=float(st.rms_fo[i]), rms_fc=float(self.rms_fc[i]), scale=float(self.scale[i]),
                       n=int(round(st.n[i])))
            out.append(row)
        return out

    def summary(self) -> dict[str, Any]:
        """Scalars describing the scaling (JSON-friendly)."""
        return {"method": self.method, "reference": self.reference, "n_shells": self.stats.n_shells,
                "b_signal": self.b_signal, "b_eff": self.b_eff, "rmsd": self.rmsd,
                "max_possible_cc": self.max_possible_cc, "fraction_complete": self.fraction_complete,
                "notes": list(self.notes)}


def _ratio(rms_fo: np.ndarray, rms_fc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise the reference rms to shell 1 and form ``rmsFc/rmsFo`` with the reference's floors and guards (docs/methods.md, half maps and model)."""
    fo = guard_outliers(np.maximum(rms_fo, RMS_FLOOR))
    fc = guard_outliers(np.maximum(rms_fc, RMS_FLOOR))
    fc = fc * (fo[0] / fc[0])
    ratio = guard_outliers(np.maximum(fc, RMS_FLOOR) / np.maximum(fo, RMS_FLOOR))
    return fc, ratio


def _normalised(k: np.ndarray) -> np.ndarray:
    k = np.where(np.isfinite(k), np.maximum(k, 0.0), 0.0)
    top = float(k.max()) if k.size else 0.0
    return k / top if top > 0 else np.ones_like(k)


def signal_b_iso(stats: ShellStats, resolution: float, *, min_fsc: float = SIGNAL_FIT_MIN_FSC,
                 min_shells: int = SIGNAL_FIT_MIN_SHELLS) -> float | None:
    """Overall B (Å²) of the signal common to two half maps, or None if too few shells qualify.

    Least-squares fit of ``ln(S_i² / E(s_i)) = c − 2B·sthol2_i`` where
    ``S_i²`` is the half-map cross power (:attr:`ShellStats.cross_power`,
    unbiased by the noise) and ``E`` the expected intensity of a protein with
    B = 0 (:func:`localsharp.kernels.wilson.expected_protein_intensity`).
    Shells used: ``max(resolution, 1.204 Å) ≤ d_avg ≤ 11.18 Å`` (the Wilson
    range of docs/methods.md, overall B and anisotropy), FSC ≥ ``min_fsc`` and positive cross power; each shell
    weighted by its number of coefficients.
    """
    d = stats.d_avg
    use = ((d >= max(resolution, D_FIT_MIN)) & (d <= D_FIT_MAX) & (stats.cc >= min_fsc)
           & (stats.cross_power > 0))
    if np.count_nonzero(use) < min_shells:
        return None
    x = stats.sthol2[use]
    y = np.log(stats.cross_power[use] / expected_protein_intensity(x))
    w = np.sqrt(stats.n[use])
    design = np.column_stack([np.ones_like(x), -2.0 * x])
    coef, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
    b = float(coef[1])
    return b if np.isfinite(b) else None


def half_map_scale(map_spec: Spectrum, half1: Spectrum, half2: Spectrum, n_bins: int = N_BINS, *,
                   reference: str = "flat", cc_cut: float = CC_CUT, max_cc_for_rescale: float = MAX_CC_FOR_RESCALE,
                   scale_using_last: int = SCALE_USING_LAST) -> ShellScale:
    """Half-map scale factors ``k_i ∝ CC*_i · rmsFc_i / rmsFo_i`` (docs/methods.md, half maps and model).

    Parameters
    ----------
    map_spec : Spectrum
        The map whose amplitudes set ``rmsFo`` (the one to be sharpened, or its
        masked copy used for the analysis).
    half1, half2 : Spectrum
        Half maps on the same grid with the same coefficients (same ``d_min``)
        and the same anisotropy correction as ``map_spec``.  The FSC is
        symmetric in them.
    n_bins : int
        Requested shells; reduced until no shell is empty.
    reference : {"flat", "signal"}
        The amplitude spectrum the map is scaled towards (``rmsFc``).

        * ``flat`` — Engine A: a constant (1.4, normalised to shell 1), so
          ``k_i = CC*_i · rmsFo_1/rmsFo_i``: whitening weighted by CC*.
          Identical halves (FSC = 1) give pure whitening.
        * ``signal`` — the map's own signal with its overall B removed:
          ``rmsFc_i = CC*_i · rmsFo_i · exp(B·sthol2_i)`` with ``B`` from
          :func:`signal_b_iso`, so ``k_i ∝ CC*_i² · exp(B·sthol2_i)`` — the
          Wiener filter towards a B = 0 map (the role of Engine B's expected
          "spectral scaling" curve, taken from the data).  Falls back to
          ``flat`` (with a note) when the B cannot be fitted.  No outlier
          guard is applied to this derived, smooth curve.

    Returns
    -------
    ShellScale
        With ``cc_star`` and the FSC before/after correction.
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown half-map reference {reference!r}; expected one of {', '.join(REFERENCES)}")
    stats = ShellStats.measure(map_spec, half1, half2, n_bins=n_bins)
    corrected = correct_cc(stats.cc, stats.s, cc_cut=cc_cut, max_cc_for_rescale=max_cc_for_rescale,
                           scale_using_last=scale_using_last)
    star = np.asarray(cc_star(corrected))
    weight = np.clip(star, CORRECTED_FLOOR, 1.0)  # max_possible_cc = 1 for half maps
    notes: tuple[str, ...] = ()
    b_signal = signal_b_iso(stats, map_spec.resolution) if reference == "signal" else None
    if reference == "signal" and b_signal is None:
        notes = (f"too few shells with half-map FSC ≥ {SIGNAL_FIT_MIN_FSC} between {map_spec.resolution:g} and "
                 f"{D_FIT_MAX} Å to fit the signal's B; flat reference spectrum used",)
        reference = "flat"
    if reference == "flat":
        rms_fc, ratio = _ratio(stats.rms_fo, np.full(stats.n_shells, HALF_MAP_RMS_FC))
    else:
        boost = np.exp(np.minimum(MAX_EXPONENT, b_signal * stats.sthol2))  # type: ignore[operator]
        fo = np.maximum(stats.rms_fo, RMS_FLOOR)
        ratio = weight * boost / (weight[0] * boost[0])  # rmsFc_1 = rmsFo_1
        rms_fc = ratio * fo
    return ShellScale(method="half_map_sharpening", stats=stats, cc_corrected=corrected, rms_fc=rms_fc,
                      ratio=ratio, scale=_normalised(ratio * weight), reference=reference, cc_star=star,
                      b_signal=b_signal, notes=notes)


def model_scale(map_spec: Spectrum, model_spec: Spectrum, resolution: float, *, rmsd: float | None = None,
                fraction_complete: float | None = None, n_bins: int = N_BINS, cc_cut: float = CC_CUT,
                max_cc_for_rescale: float = MAX_CC_FOR_RESCALE,
                scale_using_last: int = SCALE_USING_LAST) -> ShellScale:
    """Model-based scale factors (docs/methods.md, half maps and model).

    ``k_i ∝ (rmsFc_i/rmsFo_i) · min(1, clamp(CC_i/max_possible_cc, 1e-5, 1) ·
    exp(min(20, sthol2_i·b_eff)))`` with ``CC_i`` the corrected map–model
    correlation, ``b_eff = 8π·rmsd²`` and ``max_possible_cc = max_i clamp(raw
    CC_i·exp(min(20, sthol2_i·b_eff)), 0, 1)`` (at least 0.01).

    Parameters
    ----------
    map_spec : Spectrum
        The map (or its copy masked around the model) — sets ``rmsFo``.
    model_spec : Spectrum
        Model-map coefficients on the same grid and resolution sphere.
    resolution : float
        Nominal resolution (Å); default ``rmsd = 0.25 × resolution``.
    rmsd : float, optional
        Expected model error (Å).
    fraction_complete : float, optional
        Model completeness; otherwise ``max_possible_cc²``.  Given, it sets
        ``max_possible_cc = sqrt(fraction_complete)``.  Below 0.05 every
        factor is 1 (no scaling).
    n_bins : int
        Requested shells.
    """
    stats = ShellStats.measure(map_spec, map_spec, model_spec, reference_rms=True, n_bins=n_bins)
    rmsd = default_rmsd(resolution) if rmsd is None else float(rmsd)
    if rmsd < 0:
        raise ValueError(f"rmsd must be zero or positive, got {rmsd}")
    b_eff = effective_b(rmsd)
    boost = np.exp(np.minimum(MAX_EXPONENT, stats.sthol2 * b_eff))
    if fraction_complete is None:
        max_cc = max(0.01, float(np.max(np.clip(stats.cc * boost, 0.0, 1.0))))
        fraction_complete = max_cc**2
    else:
        if not 0.0 <= fraction_complete <= 1.0:
            raise ValueError(f"fraction_complete must lie in [0, 1], got {fraction_complete}")
        max_cc = max(0.01, math.sqrt(fraction_complete))
    corrected = correct_cc(stats.cc, stats.s, cc_cut=cc_cut, max_cc_for_rescale=max_cc_for_rescale,
                           scale_using_last=scale_using_last)
    rms_fc, ratio = _ratio(stats.rms_fo, stats.rms_fc)  # type: ignore[arg-type]
    notes: tuple[str, ...] = ()
    if fraction_complete < MIN_FRACTION_COMPLETE:
        scale = np.ones(stats.n_shells)
        notes = (f"estimated model completeness {fraction_complete:.3f} < {MIN_FRACTION_COMPLETE}: "
                 "unit scale factors (no sharpening)",)
    else:
        weight = np.minimum(1.0, np.clip(corrected / max_cc, CORRECTED_FLOOR, 1.0) * boost)
        scale = _normalised(ratio * weight)
    return ShellScale(method="model_sharpening", stats=stats, cc_corrected=corrected, rms_fc=rms_fc,
                      ratio=ratio, scale=scale, reference="model", b_eff=b_eff, max_possible_cc=max_cc,
                      fraction_complete=float(fraction_complete), rmsd=rmsd, notes=notes)


def equivalent_b(scale: ShellScale, resolution: float) -> float:
    """B (Å²) of the ``exp(B·sthol2)`` that best fits the factors' logarithm at ``d ≥ resolution``.

    A weighted least-squares line through ``ln k_i`` against ``sthol2_i`` (weights: the
    shells' coefficient counts); shells with ``k < 1e-3`` are left out.  0 when fewer
    than two shells qualify.
    """
    stats = scale.stats
    k = np.asarray(scale.scale, dtype=np.float64)
    use = (stats.d_avg >= resolution) & (k > MIN_FACTOR_FOR_FIT)
    if np.count_nonzero(use) < 2:
        return 0.0
    x = stats.sthol2[use]
    y = np.log(k[use])
    w = np.sqrt(stats.n[use])
    design = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)
    b = float(coef[1])
    return b if np.isfinite(b) else 0.0


def equivalent_b_fit_range(scale: ShellScale, resolution: float) -> tuple[float, float] | None:
    """The resolution range (Å, low → high) of the shells :func:`equivalent_b` fits; None when it fits none."""
    stats = scale.stats
    use = (stats.d_avg >= resolution) & (np.asarray(scale.scale) > MIN_FACTOR_FOR_FIT)
    if np.count_nonzero(use) < 2:
        return None
    return float(stats.d_avg[use].max()), float(stats.d_avg[use].min())
