"""The sharpening search (docs/methods.md, search): one function for a whole map or one box.

:func:`search_sharpening` takes a :class:`Spectrum` and a solvent fraction and
returns a :class:`SearchResult` (the best :class:`Sharpening`, every trial's
measures, the region-weight calibration and the signal-to-noise).  It has no
global state and no I/O; trials run in a thread pool (the kernels release the
GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from .curve import plateau, smoothed_curve, smoothed_peak  # noqa: F401 (part of this module's interface)
from .functions import SHELL_METHODS, Sharpening
from .score import MapMeasures, ScoreParams, calibrate_region_weight, measure_map, pooled_measures, signal_to_noise
from .search_types import (B_TYPE_METHODS, PEAK_BANDWIDTH_STEPS, TARGETS, MethodResult,  # noqa: F401 (interface)
                           SearchConfig, SearchResult, Trial)
from .spectrum import Spectrum
from .trials import TrialRenderer


class _Scorer:
    """Renders and measures sharpenings of one spectrum (or of several boxes pooled), caching by parameters.

    With several spectra every trial applies the same sharpening to each and pools their
    measures (:func:`~.score.pooled_measures`); the original B is the mean of theirs.
    """

    def __init__(self, spectra: Spectrum | Sequence[Spectrum], solvent_fractions: float | Sequence[float],
                 params: ScoreParams, n_threads: int, keep_last: bool = False) -> None:
        self.spectra = [spectra] if isinstance(spectra, Spectrum) else list(spectra)
        fractions = [solvent_fractions] if np.isscalar(solvent_fractions) else list(solvent_fractions)  # type: ignore[arg-type]
        if not self.spectra or len(fractions) != len(self.spectra):
            raise ConfigError("a search needs one solvent fraction per spectrum")
        self.solvent_fractions = [float(f) for f in fractions]
        self.params = params
        self.n_threads = n_threads or min(4, os.cpu_count() or 1)
        self.cache: dict[Sharpening, MapMeasures] = {}
        workers = 1 if self.n_threads > 1 else None
        self.renderers = [TrialRenderer(sp, workers) for sp in self.spectra]
        self.keep_last = keep_last and len(self.spectra) == 1
        #: (sharpening, its unscaled map) of the last trial, when ``keep_last``
        self.last: tuple[Sharpening, np.ndarray] | None = None

    @property
    def spectrum(self) -> Spectrum:
        """The (first) spectrum: its resolution and d_min are those of every box."""
        return self.spectra[0]

    @property
    def b_iso(self) -> float:
        """The original B the trial grid is built on (the mean over the boxes)."""
        return float(np.mean([sp.b_iso for sp in self.spectra]))

    @property
    def solvent_fraction(self) -> float:
        """The solvent fraction reported for the search (voxel-weighted mean over the boxes)."""
        sizes = [float(np.prod(sp.shape)) for sp in self.spectra]
        return float(np.dot(sizes, self.solvent_fractions) / sum(sizes))

    def _one(self, sharpening: Sharpening) -> MapMeasures:
        parts = []
        for renderer, fraction in zip(self.renderers, self.solvent_fractions):
            data = renderer.render(sharpening)
            if self.keep_last:
                self.last = (sharpening, data)
            parts.append(measure_map(data, fraction, self.params))
        return pooled_measures(parts)

    def measure(self, sharpenings: Iterable[Sharpening]) -> list[Trial]:
        todo = [s for s in dict.fromkeys(sharpenings) if s not in self.cache]
        if len(todo) > 1 and self.n_threads > 1:
            with ThreadPoolExecutor(self.n_threads) as pool:
                for s, m in zip(todo, pool.map(self._one, todo)):
                    self.cache[s] = m
        else:
            for s in todo:
                self.cache[s] = self._one(s)
        return [Trial(s, self.cache[s]) for s in sharpenings]


def target_range(b_iso_original: float, resolution: float, config: SearchConfig) -> tuple[float, float]:
    """Lowest and highest target B of the grid and of the region-weight calibration (docs/methods.md, search).

    The reference's ``[min(B₀, search_b_min), max(B₀, search_b_max)]``, or at low resolution the
    targets ``B₀ ∓ bound`` of :meth:`SearchConfig.b_sharpen_bound`.
    """
    bound = config.b_sharpen_bound(resolution)
    if bound is not None:
        return b_iso_original - bound, b_iso_original + bound
    return min(b_iso_original, config.search_b_min), max(b_iso_original, config.search_b_max)


def b_grid(b_iso_original: float, config: SearchConfig, resolution: float = 0.0) -> np.ndarray:
    """Target B values of the grid search (docs/methods.md, search)."""
    if config.search_b_n == 1:
        return np.array([config.search_b_min])
    return np.linspace(*target_range(b_iso_original, resolution, config), config.search_b_n)


def _b_type(method: str, b_target: float, b_orig: float, config: SearchConfig) -> Sharpening:
    k = 0.0 if method == "b_iso" else config.k_sharpen
    return Sharpening(method=method, b_sharpen=float(b_orig - b_target), k_sharpen=k, d_cut=config.d_cut,
                      b_blur_hires=config.b_blur_hires, b_iso_target=float(b_target))


def _calibration_points(b_orig: float, resolution: float,
                        config: SearchConfig) -> tuple[Sharpening, Sharpening, Sharpening]:
    b_low, b_high = target_range(b_orig, resolution, config)
    b_mid = b_low + 0.375 * (b_high - b_low)
    return tuple(_b_type("b_iso_to_d_cut", b, b_orig, config) for b in (b_low, b_high, b_mid))  # type: ignore


def _needs_calibration(config: SearchConfig) -> bool:
    if not config.adjust_region_weight or config.effective_target != "adjusted_sa":
        return False
    return any(m in B_TYPE_METHODS + ("resolution_dependent", "no_sharpening") for m in config.methods)


def _method_trials(method: str, b_orig: float, resolution: float, config: SearchConfig) -> list[Sharpening]:
    if method in B_TYPE_METHODS:
        return [_b_type(method, b, b_orig, config) for b in b_grid(b_orig, config, resolution)]
    if method == "no_sharpening":
        return [Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)]
    if method == "target_b_iso_to_d_cut":
        target = config.target_b_iso_ratio * resolution**2
        k = 0.0 if config.reference_quirks else config.k_sharpen
        return [Sharpening(method="target_b_iso_to_d_cut", b_sharpen=b_orig - target, k_sharpen=k,
                           d_cut=config.d_cut, b_blur_hires=config.b_blur_hires, b_iso_target=target)]
    if method == "resolution_dependent":
        return [Sharpening(method="resolution_dependent", resolution_dependent_b=(0.0, 0.0, 0.0))]
    raise ConfigError(f"method {method} needs half maps or a model and cannot be searched here")


def _best(trials: list[Trial], target: str, weight: float) -> tuple[Trial, float]:
    scores = [t.score(target, weight) for t in trials]
    i = int(np.argmax(scores))  # ties: first in order
    return trials[i], scores[i]


def _refine_parameter(scorer: _Scorer, best: Trial, get: Callable[[Sharpening], float],
                      set_: Callable[[Sharpening, float], Sharpening], step: float, floor: float | None,
                      target: str, weight: float) -> Trial:
    """Coordinate refinement of one parameter (docs/methods.md, search): ≤ 5 rounds of 11 values, halving the step."""
    best_score = best.score(target, weight)
    for _ in range(5):
        x0 = get(best.sharpening)
        values = [x0 + j * step for j in range(-5, 6)]
        if floor is not None:
            values = [max(floor, v) for v in values]
        trials = scorer.measure([set_(best.sharpening, v) for v in values])
        cand, cand_score = _best(trials, target, weight)
        if cand_score > best_score:
            best, best_score = cand, cand_score
            step /= 2.0
        else:
            break
    return best


def _score_curve(trials: list[Trial], b_orig: float, target: str,
                 weight: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Target B and score of the trials with a defined score, and the smoothing bandwidth.

    None with fewer than three defined scores.  The bandwidth is
    :data:`PEAK_BANDWIDTH_STEPS` grid steps.
    """
    b = np.array([b_orig - t.sharpening.b_sharpen for t in trials])
    y = np.array([t.score(target, weight) for t in trials])
    ok = np.isfinite(y)
    if np.count_nonzero(ok) < 3:
        return None
    step = float(np.median(np.abs(np.diff(b))))
    return b[ok], y[ok], PEAK_BANDWIDTH_STEPS * step


def _plateau(trials: list[Trial], b_orig: float, target: str, weight: float,
             noise: float) -> tuple[float, float] | None:
    """:func:`plateau` of a grid's trials in target B (None with fewer than three scores)."""
    curve = _score_curve(trials, b_orig, target, weight)
    return None if curve is None else plateau(*curve, noise)


def _fit_peak(scorer: _Scorer, trials: list[Trial], best: Trial, b_orig: float, target: str,
              weight: float) -> tuple[Trial, float]:
    """Target B at the maximum of the smoothed score curve (:func:`smoothed_peak`).

    The score curve is noisy at the grid spacing (a region merging or splitting
    moves one grid point), and near its optimum it is often a broad plateau on
    which the best single grid point is a matter of chance.  Returns the trial
    at the smoothed maximum and the smoothed peak height (used to compare
    methods).  Grid points with undefined scores are left out; with fewer than
    three the grid best is kept.
    """
    curve = _score_curve(trials, b_orig, target, weight)
    if curve is None:
        return best, float(np.max([t.score(target, weight) for t in trials]))
    vertex, height = smoothed_peak(*curve)
    sharpening = best.sharpening.replace(b_sharpen=float(b_orig - vertex), b_iso_target=float(vertex))
    return scorer.measure([sharpening])[0], height


def _refine_b_type(scorer: _Scorer, best: Trial, b_orig: float, delta_b: float, config: SearchConfig,
                   weight: float) -> Trial:
    target = config.effective_target
    options: list[tuple[Callable, Callable, float, float | None]] = []
    if config.optimize_b_blur_hires and best.sharpening.method == "b_iso_to_d_cut":
        options.append((lambda s: s.b_blur_hires or 0.0, lambda s, v: s.replace(b_blur_hires=v), 100.0, 0.0))
    if config.optimize_d_cut and best.sharpening.method == "b_iso_to_d_cut":
        res = scorer.spectrum.resolution
        options.append((lambda s: s.d_cut or res, lambda s, v: s.replace(d_cut=v), 0.25, scorer.spectrum.d_min))
    if config.optimize_k_sharpen and best.sharpening.method == "b_iso_to_d_cut":
        options.append((lambda s: s.k_sharpen or 0.0, lambda s, v: s.replace(k_sharpen=v), 2.5, 0.5))
    n_cycles = max(1, len(options)) if (options or config.refine_b_iso) else 0
    b_option = (lambda s: b_orig - s.b_sharpen,
                lambda s, v: s.replace(b_sharpen=b_orig - v, b_iso_target=v), delta_b, None)
    for _ in range(n_cycles):
        for get, set_, step, floor in options + [b_option]:
            best = _refine_parameter(scorer, best, get, set_, step, floor, target, weight)
    return best


def _refine_resolution_dependent(scorer: _Scorer, start: Trial, config: SearchConfig, weight: float) -> Trial:
    """Refine (b0, b1, b2) by L-BFGS on −score + restraints (docs/methods.md, search)."""
    target = config.effective_target
    eps = config.resolution_dependent_eps or (0.01 if target == "kurtosis" else 0.5)

    def residual(b: np.ndarray) -> float:
        trial = scorer.measure([start.sharpening.replace(resolution_dependent_b=tuple(float(v) for v in b))])[0]
        score = trial.score(target, weight)
        if not np.isfinite(score):
            return 1e6
        penalty = 100.0 * max(0.0, b[1] - b[0]) + 100.0 * max(0.0, b[2])
        return -score + penalty

    def gradient(b: np.ndarray) -> np.ndarray:
        g = np.zeros(3)
        for i in range(3):
            step = np.zeros(3)
            step[i] = eps
            g[i] = (residual(b + step) - residual(b - step)) / (2 * eps)
        return g

    from scipy import optimize  # imported here: only this refinement needs it (0.3 s import)

    x0 = np.asarray(start.sharpening.resolution_dependent_b or (0.0, 0.0, 0.0), dtype=float)
    out = optimize.minimize(residual, x0, jac=gradient, method="L-BFGS-B", options={"maxiter": 20, "ftol": 0.01})
    refined = scorer.measure([start.sharpening.replace(resolution_dependent_b=tuple(float(v) for v in out.x))])[0]
    return refined if refined.score(target, weight) > start.score(target, weight) else start


def _least_blur(scorer: _Scorer, chosen: MethodResult, b_orig: float, blur_bound: float = np.inf) -> Trial | None:
    """The trial at the least blur within the score's noise of a blurring B-type pick, or None.

    ``chosen``'s plateau (target B values whose score is within the curve's noise of the
    optimum) gives b_sharpen values ``b_orig − target``; a pick below 0 moves to the
    plateau's end nearest 0, or, when the plateau reaches 0, to no sharpening at all (the
    input map: ``b_iso_to_d_cut`` at b_sharpen 0 still rolls off beyond d_cut).  The result
    blurs by at most ``blur_bound`` (Å²; :meth:`SearchConfig.blur_bound`).  Picks ≥ 0 and other
    methods are left alone (None).
    """
    b = chosen.best.sharpening.b_sharpen
    if chosen.method not in B_TYPE_METHODS or not b < 0:
        return None
    least = b if chosen.plateau_b_iso is None else min(0.0, b_orig - chosen.plateau_b_iso[0])  # its least blur
    least = max(least, -blur_bound)
    if least <= b:
        return None
    if least == 0.0:  # the score cannot tell the pick from no sharpening: the input is left alone
        return scorer.measure([Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)])[0]
    sharpening = chosen.best.sharpening.replace(b_sharpen=float(least), b_iso_target=float(b_orig - least))
    return scorer.measure([sharpening])[0]


def _least_blur_note(b: float, applied: Sharpening, plateau_b_iso: tuple[float, float] | None, b_orig: float,
                     bound: float) -> str:
    """What the least-blur rule did, in one sentence (the search's notes, the summary's reason)."""
    what = ("no sharpening: the input map is kept" if applied.method == "no_sharpening"
            else f"b_sharpen {applied.b_sharpen:.1f} is applied")
    text = f"the pick b_sharpen {b:.1f} blurs"
    if plateau_b_iso is not None:
        text += f" and the score cannot tell it from {b_orig - plateau_b_iso[1]:.1f} ... {b_orig - plateau_b_iso[0]:.1f}"
    if applied.method != "no_sharpening" and abs(applied.b_sharpen + bound) < 1e-6:
        return text + f"; blurs are bounded by {bound:.1f} at the resolution: {what} (--keep-blur applies the pick)"
    return text + f": the least blur in that range, {what} (--keep-blur applies the pick)"


def _choose_method(candidates: list[MethodResult]) -> MethodResult:
    """The method whose score curve peaks highest (ties: first in the list), docs/methods.md, search."""
    return max(candidates, key=lambda r: r.peak_score)


def search_sharpening(spectrum: Spectrum | Sequence[Spectrum], solvent_fraction: float | Sequence[float],
                      config: SearchConfig = SearchConfig()) -> SearchResult:
    """Find the sharpening that maximises the target score of ``spectrum``'s map.

    Parameters
    ----------
    spectrum : Spectrum or sequence of Spectrum
        Coefficients of the map or box to analyse; several boxes are scored together, every
        trial's measures pooled over them (:func:`~.score.pooled_measures`).
    solvent_fraction : float or sequence of float
        Solvent fraction of that map or box (one per box).
    config : SearchConfig
        Methods, grid, target and calibration settings.

    Returns
    -------
    SearchResult
        The best sharpening and the full trial table.

    Notes
    -----
    Trial target B values ``b_i`` map to ``b_sharpen_i = b_iso_original − b_i``.
    The region weight is calibrated once from maps sharpened to the lowest,
    highest and an intermediate B (docs/methods.md, search), then applied to every trial.
    """
    return _search(_Scorer(spectrum, solvent_fraction, config.score, config.n_threads), config)


def search_keeping_map(spectrum: Spectrum, solvent_fraction: float,
                       config: SearchConfig = SearchConfig()) -> tuple[SearchResult, np.ndarray | None]:
    """:func:`search_sharpening`, and the unscaled map of the chosen sharpening when it was the last trial.

    That map is ``spectrum.render(result.sharpening.factors(spectrum), sigma_scaled=False)``
    (the same values), so a caller rendering the pick need not transform again; None when
    the last trial was another sharpening.  Single-threaded scoring only (``n_threads`` 1).
    """
    scorer = _Scorer(spectrum, solvent_fraction, config.score, config.n_threads, keep_last=config.n_threads == 1)
    result = _search(scorer, config)
    if scorer.last is not None and scorer.last[0] == result.sharpening:
        return result, scorer.last[1]
    return result, None


def _search(scorer: _Scorer, config: SearchConfig) -> SearchResult:
    """The body of :func:`search_sharpening` on a given scorer."""
    spectrum, solvent_fraction = scorer.spectrum, scorer.solvent_fraction
    b_orig = scorer.b_iso
    target = config.effective_target
    plans = {m: _method_trials(m, b_orig, spectrum.resolution, config) for m in config.methods
             if m not in SHELL_METHODS}
    calib_points = _calibration_points(b_orig, spectrum.resolution, config) if _needs_calibration(config) else ()
    scorer.measure(list(calib_points) + [s for trials in plans.values() for s in trials])
    notes: list[str] = []
    calibration = None
    weight = config.region_weight
    if calib_points:
        low, high, mid = (scorer.cache[s] for s in calib_points)
        calibration = calibrate_region_weight(
            low, high, mid, method=config.region_weight_method, factor=config.region_weight_factor,
            buffer=config.region_weight_buffer, default=config.region_weight_default)
        weight = calibration.region_weight
        if calibration.fallback:
            notes.append(f"region weight: {calibration.reason}")
    results = []
    grid = b_grid(b_orig, config, spectrum.resolution)
    delta_b = float(grid[1] - grid[0]) if grid.size > 1 else 20.0
    for method, sharpenings in plans.items():
        trials = scorer.measure(sharpenings)
        best, score = _best(trials, target, weight)
        peak = score
        if method in B_TYPE_METHODS:
            if config.peak_fit and len(trials) >= 3:
                best, peak = _fit_peak(scorer, trials, best, b_orig, target, weight)
            refined = _refine_b_type(scorer, best, b_orig, delta_b, config, weight)
            if refined is not best:
                best, peak = refined, refined.score(target, weight)
        elif method == "resolution_dependent":
            best = _refine_resolution_dependent(scorer, best, config, weight)
        score = best.score(target, weight)
        if method not in B_TYPE_METHODS:
            peak = score
        signal = noise = sn = 0.0
        discarded = False
        span = None
        if len(trials) >= 2:
            signal, noise, sn = signal_to_noise([t.score(target, weight) for t in trials])
            if method in B_TYPE_METHODS and len(trials) >= 3:
                span = _plateau(trials, b_orig, target, weight, noise)
            if sn < config.signal_min and (config.reference_quirks is False or "target_b_iso_to_d_cut" in config.methods):
                discarded = True
                notes.append(f"{method}: signal-to-noise {sn:.2f} of the score curve < {config.signal_min}; "
                             "its optimum is not determined and its result is discarded")
        results.append(MethodResult(method, best, score, tuple(trials), peak, signal, noise, sn, discarded, span))
    if not results:
        raise ConfigError("no searchable sharpening method was given")
    candidates = [r for r in results if not r.discarded]
    decided = _choose_method(candidates) if candidates else None
    if decided is not None:
        chosen_sharpening, chosen_score = decided.best.sharpening, decided.score
    elif config.reference_quirks:
        best_result = max(results, key=lambda r: r.peak_score)
        chosen_sharpening, chosen_score = best_result.best.sharpening, best_result.score
    else:
        fallback = scorer.measure([Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)])[0]
        chosen_sharpening, chosen_score = fallback.sharpening, fallback.score(target, weight)
        notes.append("no method has a determined optimum; the map is left unsharpened")
    curve_method = None
    if config.least_blur and not config.reference_quirks and decided is not None:
        bound = config.blur_bound(spectrum.resolution)
        moved = _least_blur(scorer, decided, b_orig, bound)
        if moved is not None:
            notes.append(_least_blur_note(chosen_sharpening.b_sharpen, moved.sharpening, decided.plateau_b_iso,
                                          b_orig, bound))
            chosen_sharpening, chosen_score = moved.sharpening, moved.score(target, weight)
            if moved.sharpening.method == "no_sharpening":
                curve_method = decided.method
    all_trials = tuple(Trial(s, m) for s, m in scorer.cache.items())
    return SearchResult(
        sharpening=chosen_sharpening, score=chosen_score, target=target, b_iso_original=b_orig,
        solvent_fraction=solvent_fraction, region_weight=weight, calibration=calibration,
        methods=tuple(results), trials=all_trials, notes=tuple(notes), curve_method=curve_method)
