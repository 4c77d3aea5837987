"""Sharpening of one local box (docs/methods.md, local sharpening): the unit of work of local sharpening.

:func:`analyse_box` runs the very same :func:`~localsharp.sharpening.search.search_sharpening`
as the global mode, on the soft-edged box; :func:`render_box` applies the chosen
sharpening to the same box and puts it back on the box's own scale.  Both are
pure functions of the box's voxels, so a box can be run by hand in a notebook
and any worker recomputes exactly the same values.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..kernels.masks import ball_edge_mask, box_edge_mask
from .functions import SHELL_METHODS, Sharpening
from .score import measure_map
from .search import SearchConfig, SearchResult, search_keeping_map, search_sharpening
from .spectrum import Spectrum

#: Boxes whose solvent fraction is above this hold too little molecule to score.
MAX_BOX_SOLVENT = 0.99


@dataclass(frozen=True)
class BoxOutcome:
    """What the search chose for one box.

    Attributes
    ----------
    status : str
        ``"sharpened"``, ``"unsharpened"`` (the search kept the box as it is) or
        ``"skipped"`` (not analysed; the box does not contribute).
    reason : str
        Why, in words.
    sharpening : Sharpening or None
        Chosen sharpening (None when skipped).
    b_iso_start : float or None
        Overall B of the box before sharpening (Å²).
    solvent_fraction : float
        Solvent fraction used for the box's score.
    score, signal_to_noise : float
        Best score and the score curve's S/N.
    score_noise : float
        Noise of the chosen method's score curve (:func:`~.score.signal_to_noise`).
    b_sharpen_within_noise : tuple of float or None
        b_sharpen values (low, high) the score cannot tell from the chosen one
        (:attr:`~.search.SearchResult.plateau_b_sharpen`); None when unknown.
    local_resolution : float or None
        Half-map modes: resolution (Å) where the box's half-map FSC falls below 0.143.
    resolution_limited : bool or None
        True when that FSC stays above 0.143 up to Nyquist (``local_resolution`` is then Nyquist).
    b_sharpen_pick : float or None
        The search's pick before the least-blur rule moved it (None when the rule did not act):
        what the reports call the box's search pick.
    """

    status: str
    reason: str
    sharpening: Sharpening | None = None
    b_iso_start: float | None = None
    solvent_fraction: float = 1.0
    score: float = float("nan")
    signal_to_noise: float = float("nan")
    score_noise: float = float("nan")
    b_sharpen_within_noise: tuple[float, float] | None = None
    local_resolution: float | None = None
    resolution_limited: bool | None = None
    b_sharpen_pick: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason,
                "sharpening": None if self.sharpening is None else self.sharpening.to_dict(),
                "b_iso_start": self.b_iso_start, "solvent_fraction": self.solvent_fraction,
                "score": None if not np.isfinite(self.score) else self.score,
                "signal_to_noise": None if not np.isfinite(self.signal_to_noise) else self.signal_to_noise,
                "score_noise": None if not np.isfinite(self.score_noise) else self.score_noise,
                "b_sharpen_within_noise": None if self.b_sharpen_within_noise is None
                else list(self.b_sharpen_within_noise),
                "local_resolution": self.local_resolution, "resolution_limited": self.resolution_limited,
                "b_sharpen_pick": self.b_sharpen_pick}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BoxOutcome":
        s = d.get("sharpening")
        sharpening = None if s is None else Sharpening(**{k: (tuple(v) if isinstance(v, list) else v)
                                                          for k, v in s.items()})
        return cls(d["status"], d["reason"], sharpening, d.get("b_iso_start"), d.get("solvent_fraction", 1.0),
                   float("nan") if d.get("score") is None else d["score"],
                   float("nan") if d.get("signal_to_noise") is None else d["signal_to_noise"],
                   float("nan") if d.get("score_noise") is None else d["score_noise"],
                   None if d.get("b_sharpen_within_noise") is None else tuple(d["b_sharpen_within_noise"]),
                   d.get("local_resolution"), d.get("resolution_limited"), d.get("b_sharpen_pick"))


@lru_cache(maxsize=8)
def _edge_mask(shape: tuple[int, int, int], voxel_zyx: tuple[float, float, float], resolution: float) -> np.ndarray:
    """:func:`box_edge_mask`, cached: most boxes of a run share one shape (read-only result)."""
    mask = box_edge_mask(shape, voxel_zyx, resolution)
    mask.flags.writeable = False
    return mask


def _masked(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float,
            soft_edge: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The box times its soft-edge mask, and the mask (None without a soft edge)."""
    mask = _edge_mask(tuple(data.shape), tuple(voxel_zyx), float(resolution)) if soft_edge else None
    return (data if mask is None else data * mask), mask


def box_spectrum(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float,
                  soft_edge: bool, d_min_ratio: float, fit_b: bool = True) -> tuple[Spectrum, np.ndarray | None]:
    """The spectrum of the (soft-edged) box, without anisotropy removal, and its edge mask.

    ``fit_b`` False skips the overall-B fit (a spectrum that is only rendered: the same coefficients).
    """
    masked, mask = _masked(data, voxel_zyx, resolution, soft_edge)
    return _spectrum(masked, voxel_zyx, resolution, d_min_ratio, fit_b), mask


def _spectrum(masked: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float, d_min_ratio: float,
              fit_b: bool) -> Spectrum:
    """The spectrum of an edge-masked box, without anisotropy removal."""
    return Spectrum.from_map(masked, voxel_zyx, resolution, d_min_ratio=d_min_ratio, remove_aniso=False, fit_b=fit_b)


def search_box(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float,
               solvent_fraction: float, config: SearchConfig = SearchConfig(), *, soft_edge: bool = True,
               d_min_ratio: float = 0.833) -> tuple[Spectrum, np.ndarray | None, SearchResult]:
    """The soft-edged box's spectrum, its edge mask and the full search result (trial table included)."""
    spectrum, mask = box_spectrum(data, voxel_zyx, resolution, soft_edge, d_min_ratio)
    return spectrum, mask, search_sharpening(spectrum, solvent_fraction, config)


def analyse_box(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float,
                solvent_fraction: float, config: SearchConfig = SearchConfig(), *, soft_edge: bool = True,
                d_min_ratio: float = 0.833, discard_if_worse: bool = True) -> BoxOutcome:
    """Search the best sharpening of one box.

    Parameters
    ----------
    data : numpy.ndarray
        The box (z, y, x), including its buffer; not modified.
    voxel_zyx : tuple of float
        Voxel size (Å).
    resolution : float
        Nominal resolution (Å).
    solvent_fraction : float
        Solvent fraction of the box.
    config : SearchConfig
        Search settings (the same object the global search takes).
    soft_edge : bool
        Taper the box to zero at its faces before the Fourier transform.
    discard_if_worse : bool
        Keep the box as it is when it scores higher than its best sharpening
        (the per-box form of the global ``discard_if_worse``).
    """
    return _analyse(data, voxel_zyx, resolution, solvent_fraction, config, soft_edge, d_min_ratio,
                    discard_if_worse, keep_map=False)[0]


def sharpen_box(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float,
                solvent_fraction: float, config: SearchConfig = SearchConfig(), *, soft_edge: bool = True,
                d_min_ratio: float = 0.833,
                discard_if_worse: bool = True) -> tuple[BoxOutcome, np.ndarray | None, SearchResult | None]:
    """:func:`analyse_box` and :func:`render_box` on one Fourier transform of the box.

    Returns the outcome, the rendered box (None when skipped) and the search
    result with its trial table (None when no search ran).
    """
    outcome, spectrum, mask, result, kept = _analyse(data, voxel_zyx, resolution, solvent_fraction, config,
                                                     soft_edge, d_min_ratio, discard_if_worse, keep_map=True)
    if spectrum is None:
        return outcome, None, result
    values = np.asarray(data, dtype=np.float32)
    if outcome.sharpening is None or outcome.sharpening.method == "no_sharpening":
        return outcome, values.copy(), result
    return outcome, _apply(values, spectrum, mask, outcome.sharpening, kept), result


def render_box(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float, outcome: BoxOutcome,
               *, soft_edge: bool = True, d_min_ratio: float = 0.833,
               ball: tuple[tuple[float, float, float], float] | None = None) -> np.ndarray:
    """The box sharpened as ``outcome`` says, on the box's own scale (docs/methods.md, local sharpening).

    The sharpened map ``M`` is put on the scale of ``data`` (a searched sharpening: the box's SD
    times the share of the soft-edged box's amplitude within the band, :func:`band_scale`, and the
    soft-edged box's mean; per-shell factors: the mean and SD of ``data``) and
    blended with it through the soft-edge mask ``m``: ``M·m + data·(1 − m)``.
    An unsharpened or skipped box returns ``data`` unchanged (as float32).

    ``ball``: ``(centre, radius)`` (voxel coordinates z y x in ``data``, Å): the soft edge is a ball
    (:func:`~localsharp.kernels.masks.ball_edge_mask`) and the scale is measured inside it, so a
    box rendered about a rotated copy of its centre gives the rotated values (a symmetric layout of
    boxes, :func:`~localsharp.tiling.symmetric.image_boxes`) but for the periodic wrap of the box's
    Fourier transform.
    """
    values = np.asarray(data, dtype=np.float32)
    if outcome.sharpening is None or outcome.sharpening.method == "no_sharpening":
        return values.copy()
    if ball is None:
        spectrum, mask = box_spectrum(values, voxel_zyx, resolution, soft_edge, d_min_ratio, fit_b=False)
        return _apply(values, spectrum, mask, outcome.sharpening)
    centre, radius = ball
    mask = ball_edge_mask(values.shape, voxel_zyx, resolution, centre, radius)  # type: ignore[arg-type]
    spectrum = _spectrum(values * mask, voxel_zyx, resolution, d_min_ratio, fit_b=False)
    return _apply(values, spectrum, mask, outcome.sharpening, inside=mask >= 0.5)


def render_mixture(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float,
                   parts: list[tuple[float, Sharpening]], *, soft_edge: bool = True,
                   d_min_ratio: float = 0.833) -> np.ndarray:
    """The box sharpened by the weighted mean of several sharpenings' factors, ``Σ w_k·f_k(s)``
    (weights summing to 1), on the box's own scale like :func:`render_box`.

    A symmetric run renders a box between the outcomes of several searched boxes this way: the
    factors are isotropic functions of the resolution, so their mean is one too.  When every part
    is ``no_sharpening`` the box is returned unchanged (as :func:`render_box` does).
    """
    values = np.asarray(data, dtype=np.float32)
    parts = [(float(w), s) for w, s in parts if w > 0]
    if not parts or all(s.method == "no_sharpening" for _, s in parts):
        return values.copy()
    if len(parts) == 1:
        return render_box(values, voxel_zyx, resolution, BoxOutcome("sharpened", "", parts[0][1]),
                          soft_edge=soft_edge, d_min_ratio=d_min_ratio)
    spectrum, mask = box_spectrum(values, voxel_zyx, resolution, soft_edge, d_min_ratio, fit_b=False)
    total = sum(w for w, _ in parts)
    factors = np.zeros(spectrum.sthol2.shape, dtype=np.float32)
    for w, sharpening in parts:
        factors += np.float32(w / total) * _shared_factors(sharpening, spectrum)
    return _apply(values, spectrum, mask, None, factors=factors,
                  per_shell=any(s.method in SHELL_METHODS for _, s in parts))


#: Factors of the sharpenings boxes of one shape share (mixtures repeat their parts), most recent last.
_FACTOR_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_FACTOR_CACHE_SIZE = 64
_FACTOR_LOCK = threading.Lock()


def _shared_factors(sharpening: Sharpening, spectrum: Spectrum) -> np.ndarray:
    """``sharpening.factors(spectrum)``, cached for the sharpenings that depend on the terms' resolution
    only (not on the box's amplitudes), so a part shared by many mixtures is computed once."""
    if sharpening.method == "resolution_dependent":
        return sharpening.factors(spectrum)
    key = (sharpening, spectrum.shape, spectrum.voxel_size, spectrum.angles, spectrum.resolution, spectrum.d_min)
    with _FACTOR_LOCK:
        factors = _FACTOR_CACHE.get(key)
        if factors is not None:
            _FACTOR_CACHE.move_to_end(key)
            return factors
    factors = sharpening.factors(spectrum)
    factors.flags.writeable = False
    with _FACTOR_LOCK:
        _FACTOR_CACHE[key] = factors
        if len(_FACTOR_CACHE) > _FACTOR_CACHE_SIZE:
            _FACTOR_CACHE.popitem(last=False)
    return factors


def unanalysable(data: np.ndarray, solvent_fraction: float) -> BoxOutcome | None:
    """The ``skipped`` outcome of a box that cannot be analysed (solvent, constant), else None."""
    if solvent_fraction > MAX_BOX_SOLVENT:
        return BoxOutcome("skipped", f"box is solvent (fraction {solvent_fraction:.3f})",
                          solvent_fraction=solvent_fraction)
    if not np.ptp(data) > 0:
        return BoxOutcome("skipped", "box is constant", solvent_fraction=solvent_fraction)
    return None


def _analyse(data: np.ndarray, voxel_zyx: tuple[float, float, float], resolution: float, solvent_fraction: float,
             config: SearchConfig, soft_edge: bool, d_min_ratio: float, discard_if_worse: bool, *, keep_map: bool
             ) -> tuple[BoxOutcome, Spectrum | None, np.ndarray | None, SearchResult | None, np.ndarray | None]:
    """The outcome of one box, with the spectrum, edge mask and search result it came from.

    With ``keep_map`` also the chosen sharpening's unscaled map when the search's last
    trial rendered it (:func:`~.search.search_keeping_map`), else None.
    """
    skipped = unanalysable(data, solvent_fraction)
    if skipped is not None:
        return skipped, None, None, None, None
    masked, mask = _masked(data, voxel_zyx, resolution, soft_edge)
    kept = None
    try:
        spectrum = _spectrum(masked, voxel_zyx, resolution, d_min_ratio, fit_b=True)
        if keep_map:
            result, kept = search_keeping_map(spectrum, solvent_fraction, config)
        else:
            result = search_sharpening(spectrum, solvent_fraction, config)
    except ConfigError as exc:
        return BoxOutcome("skipped", str(exc), solvent_fraction=solvent_fraction), None, None, None, None
    chosen = result.sharpening
    b_start = spectrum.b_iso if spectrum.b_iso_fitted else None
    if discard_if_worse and chosen.method != "no_sharpening":
        as_is = masked
        measures = measure_map(np.ascontiguousarray(as_is, dtype=np.float32), solvent_fraction, config.score)
        score_as_is = measures.kurtosis if result.target == "kurtosis" else measures.adjusted_sa(result.region_weight)
        if score_as_is > result.score:
            kept_as_is = BoxOutcome("unsharpened", f"the box as it is scores higher ({score_as_is:.3f}) than the best "
                              f"sharpening ({chosen.method} b_sharpen {chosen.b_sharpen:.1f}, {result.score:.3f})",
                              Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0), b_start,
                              solvent_fraction, float(score_as_is), float(result.signal_to_noise))
            return kept_as_is, spectrum, mask, result, None
    status = "unsharpened" if chosen.method == "no_sharpening" else "sharpened"
    reason = "; ".join(result.notes) or f"{chosen.method} b_sharpen {chosen.b_sharpen:.1f}"
    decided = next((m for m in result.methods if m.method == result.decided_by), None)
    noise = float("nan") if decided is None else decided.noise
    pick = None if decided is None or decided.best.sharpening == chosen else float(decided.best.sharpening.b_sharpen)
    outcome = BoxOutcome(status, reason, chosen, b_start, solvent_fraction, float(result.score),
                         float(result.signal_to_noise), float(noise), result.plateau_b_sharpen, b_sharpen_pick=pick)
    return outcome, spectrum, mask, result, kept


def _apply(values: np.ndarray, spectrum: Spectrum, mask: np.ndarray | None, sharpening: Sharpening | None,
           unscaled: np.ndarray | None = None, factors: np.ndarray | None = None,
           inside: np.ndarray | None = None, per_shell: bool | None = None) -> np.ndarray:
    """Render ``sharpening`` (or the given ``factors``) of ``spectrum`` on the box's own scale (over the
    voxels of ``inside``, default all), blended through ``mask``.

    A searched sharpening (B-type: ``b_iso``, ``b_iso_to_d_cut``…) is put on the box's scale by
    :func:`band_scale`: the sharpened map gets the SD of the box times the share of the soft-edged
    box's amplitude that lies within the band, and the soft-edged box's mean.  The half-map and
    model modes' per-shell factors (:data:`~.functions.SHELL_METHODS`) are rescaled to the mean and
    SD of ``values``, as the reference does (``per_shell``; default: whether ``sharpening`` is one).

    ``unscaled``: the sharpening's map as the search rendered it (not sigma-scaled), if kept.
    """
    if per_shell is None:
        per_shell = sharpening is not None and sharpening.method in SHELL_METHODS
    if factors is None:
        factors = _shared_factors(sharpening, spectrum)  # type: ignore[arg-type]
    if unscaled is None:
        sharpened = spectrum.render(factors, sigma_scaled=False, workers=1)
    else:
        sharpened = unscaled
    sel = (slice(None),) if inside is None else inside
    centre = float(sharpened[sel].mean())
    if per_shell:
        mean, sd, rms = float(values[sel].mean()), float(values[sel].std()), float(sharpened[sel].std())
        scale = sd / rms if rms > 0 else 1.0
    else:
        edged = values if mask is None else values * mask
        mean = float(edged[sel].mean())
        scale = band_scale(values[sel], edged[sel], spectrum, factors)
    sharpened = (sharpened - np.float32(centre)) * np.float32(scale) + np.float32(mean)
    if mask is None:
        return sharpened.astype(np.float32, copy=False)
    return (sharpened * mask + values * (1.0 - mask)).astype(np.float32)


def band_scale(values: np.ndarray, edged: np.ndarray, spectrum: Spectrum, factors: np.ndarray) -> float:
    """The factor that puts a box's map sharpened by ``factors`` (rendered unscaled from ``spectrum``, the
    soft-edged box's spectrum) on the box's scale: ``√(Σ|F|² / Σ|F·f|²) · SD(values) / SD(edged)``.

    The first factor (:func:`band_power_ratio`) gives the sharpened map the power the soft-edged box
    has within the band; the second undoes the soft edge's loss of power.  Together: the box's SD
    times the share of its amplitude that lies within the band.  At ``f = 1`` and without a soft edge
    this is the box's in-band SD.

    The reference rescales to ``SD(values)`` instead, which also counts the power beyond the band —
    at and beyond the resolution mostly noise — and puts it back into the band: a noisy box was
    inflated by its own noise, the more so the more of the noise lies beyond the band (at 7 Å with
    2 Å voxels about two thirds of white noise does).  Rescaling to the soft-edged box's in-band
    power alone (no second factor) loses what the whole box's SD adds: the soft edge takes more of a
    box's power the more of its density lies near its faces, so a box whose core (the part the blend
    uses) is weaker than its surroundings is rendered stronger — local contrast is evened out between
    weak and strong parts of the map — and that is where local sharpening gains over global sharpening
    on the B-gradient phantoms.  The measurements behind this choice are in docs/methods.md (local
    sharpening: the render scale).

    Parameters
    ----------
    values, edged : numpy.ndarray
        The box's voxels, and the same voxels times the soft edge (the same array without one).
    spectrum : Spectrum
        The spectrum of ``edged``.
    factors : numpy.ndarray
        The sharpening's factors for the spectrum's kept terms.

    Returns
    -------
    float
    """
    total = float(edged.std())
    edge = float(values.std()) / total if total > 0 else 1.0
    return band_power_ratio(spectrum, factors) * edge


def band_power_ratio(spectrum: Spectrum, factors: np.ndarray) -> float:
    """``√(Σ|F|² / Σ|F·f|²)`` over the kept terms: the factor that gives a map sharpened by ``factors`` the
    power the unsharpened spectrum has in the same band (1 when the sharpening is flat or empty)."""
    power = np.abs(spectrum.coeffs).astype(np.float64) ** 2 * spectrum.weight
    after = float(np.dot(power, np.square(factors, dtype=np.float64)))
    before = float(power.sum())
    return float(np.sqrt(before / after)) if after > 0 and before > 0 else 1.0
