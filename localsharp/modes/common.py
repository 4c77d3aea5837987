"""What every global mode shares: options, the opening checks, applying the chosen sharpening, the verdict.

A mode (:mod:`.model_free`, :mod:`.half_map`, :mod:`.model`) decides a sharpening — by a search,
from fixed values, or from per-shell scale factors — and hands it to :func:`finish_sharpening`,
which applies it to the whole map, scores input and output, keeps the input when it scores
higher (``discard_if_worse``) and builds the :class:`~localsharp.report.result.SharpenResult`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..config import SharpenOptions
from ..errors import ConfigError
from ..maps.density import DensityMap, restore_duplicated_plane
from ..maps.loading import check_limitations, check_resolution, map_masked_warning
from ..report.result import SharpenResult
from ..sharpening.box import BoxChoice
from ..sharpening.functions import Sharpening
from ..sharpening.region import region_warnings, scored_region
from ..sharpening.score import MapMeasures, measure_map, pooled_measures
from ..sharpening.search import SearchConfig, SearchResult
from ..sharpening.solvent import SolventEstimate
from ..sharpening.spectrum import Spectrum

log = logging.getLogger("localsharp.api")
#: One line per finished stage, for a terminal (the CLI shows it unless ``-q``; ``-v`` shows all logs).
progress = logging.getLogger("localsharp.progress")
#: Resolutions at or above this (Å) get the "sharpening is rarely useful" warning.
LOW_RESOLUTION = 10.0
#: Set while a mode runs for a caller that reports ``result.warnings`` itself (a task on a Dask
#: worker, the overall pass of a local run): the warnings are then returned, not logged.
_WARNINGS_RETURNED = contextvars.ContextVar("localsharp_warnings_returned", default=False)


@contextlib.contextmanager
def warnings_returned() -> Iterator[None]:
    """For the block: a mode's warnings go to ``result.warnings`` only, not to the log.

    A caller that runs a mode where its log is not seen (a Dask worker) or that reports the
    warnings itself uses this, so that each warning reaches the user exactly once.
    """
    token = _WARNINGS_RETURNED.set(True)
    try:
        yield
    finally:
        _WARNINGS_RETURNED.reset(token)


def warn(message: str) -> None:
    """Log a warning of a mode as it arises, unless the caller reports them (:func:`warnings_returned`)."""
    if not _WARNINGS_RETURNED.get():
        log.warning(message)


def options_from_kwargs(resolution: float, options: dict[str, Any]) -> SharpenOptions:
    """Build :class:`SharpenOptions` from flat keyword options (fields of it or of SearchConfig)."""
    search_fields = {f.name for f in dataclasses.fields(SearchConfig)}
    search_kw = {k: options.pop(k) for k in list(options) if k in search_fields}
    if "methods" in search_kw and isinstance(search_kw["methods"], str):
        search_kw["methods"] = (search_kw["methods"],)
    if "methods" in search_kw:
        search_kw["methods"] = tuple(search_kw["methods"])
    unknown = set(options) - {f.name for f in dataclasses.fields(SharpenOptions)}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}")
    return SharpenOptions(resolution=resolution, search=SearchConfig(**search_kw), **options)


def resolve_options(resolution: float, options: SharpenOptions | None, kwargs: dict[str, Any]) -> SharpenOptions:
    """The options of a call: ``options`` or the keyword options (not both), at ``resolution``."""
    if options is not None and kwargs:
        raise ConfigError("give either options= or keyword options, not both")
    opts = options if options is not None else options_from_kwargs(resolution, dict(kwargs))
    return opts if opts.resolution == resolution else opts.replace(resolution=resolution)


def opening_checks(density: DensityMap, name: str, resolution: float, opts: SharpenOptions) -> list[str]:
    """The checks every mode runs before any work; returns the warnings (closely masked, low resolution).

    Raises :class:`~localsharp.errors.ConfigError` for a resolution the map cannot carry and
    :class:`~localsharp.errors.InputFileError` for a map whose header says it is already sharpened
    (unless ``opts.ignore_map_limitations``).
    """
    check_resolution(density, resolution, name)
    check_limitations(density, name, opts)
    warnings = [w for w in (map_masked_warning(density),) if w]
    if resolution >= LOW_RESOLUTION:
        warnings.append(f"resolution {resolution} Å is low (≥ {LOW_RESOLUTION:g} Å); sharpening is rarely useful")
    for w in warnings:
        warn(w)
    return warnings


def restore_input_grid(result: SharpenResult, original: DensityMap) -> SharpenResult:
    """Put ``result.map`` back on ``original``'s grid when a duplicated plane was dropped."""
    if result.map.shape != original.shape:
        result.map = restore_duplicated_plane(result.map, original)
        nx, ny, nz = original.cell_grid
        result.notes.append(f"the map repeats its first plane after the unit cell ({nx}x{ny}x{nz} grid + 1); "
                            "computed on the unit cell, the repeated plane is restored in the output")
    return result


def fixed_sharpening(opts: SharpenOptions, b_iso_original: float) -> Sharpening:
    """The sharpening the explicit values of ``opts`` ask for (``b_iso``, ``b_sharpen``, ``resolution_dependent_b``)."""
    cfg = opts.search
    if opts.resolution_dependent_b is not None:
        b = tuple(opts.resolution_dependent_b)
        if b == (0.0, 0.0, 0.0):
            b = (0.0, 0.0, 1e-10)
        return Sharpening(method="resolution_dependent", resolution_dependent_b=b)  # type: ignore[arg-type]
    method = "b_iso_to_d_cut" if (cfg.k_sharpen and cfg.k_sharpen > 0 and "b_iso_to_d_cut" in cfg.methods) else "b_iso"
    if opts.b_iso is not None:
        return Sharpening(method=method, b_sharpen=b_iso_original - opts.b_iso, k_sharpen=cfg.k_sharpen,
                          d_cut=cfg.d_cut, b_blur_hires=cfg.b_blur_hires, b_iso_target=opts.b_iso)
    return Sharpening(method=method, b_sharpen=float(opts.b_sharpen), k_sharpen=cfg.k_sharpen, d_cut=cfg.d_cut,
                      b_blur_hires=cfg.b_blur_hires)


def finish_sharpening(density: DensityMap, whole: Spectrum, sharpening: Sharpening, opts: SharpenOptions, *,
                      search: SearchResult | None, solvent: SolventEstimate, box: BoxChoice,
                      box_solvent: SolventEstimate, warnings: list[str], timings: dict[str, float],
                      shells: list[dict[str, Any]] | None = None, mode: str = "model_free",
                      box_fractions: list[float] | None = None) -> SharpenResult:
    """Apply a chosen sharpening to the whole map, score it and assemble the result.

    Shared by every global mode (model-free search, fixed values, half-map and
    model-based scale factors).  The input and the output are scored on the region
    :func:`~localsharp.sharpening.region.scored_region` names (``box_fractions``: each
    analysed box's solvent fraction; the whole map's when not given).
    """
    t = time.perf_counter()
    factors = sharpening.factors(whole)
    region_weight = search.region_weight if search else opts.search.region_weight
    boxes, fractions, _ = scored_region(box, box_fractions or [box_solvent.solvent_fraction] * len(box.all_boxes),
                                        solvent.solvent_fraction, density.shape)

    def measured(data: np.ndarray) -> MapMeasures:
        return pooled_measures([measure_map(np.ascontiguousarray(data[tuple(slice(a, b) for a, b in bounds)]),
                                            fraction, opts.search.score) for bounds, fraction in zip(boxes, fractions)])

    # The input is scored first, so that its region labels are freed before the output exists.
    score_in = measured(density.data)
    if sharpening.method == "no_sharpening":
        out_data, score_out = density.data.copy(), score_in
    else:
        out_data = whole.render(factors)
        score_out = measured(out_data)
    discarded = False
    target = search.target if search is not None else "adjusted_sa"

    def score(m: MapMeasures) -> float:
        return m.kurtosis if target == "kurtosis" else m.adjusted_sa(region_weight)

    if (opts.discard_if_worse and search is not None and sharpening.method != "no_sharpening"
            and score(score_in) > score(score_out)):
        discarded = True
        kept = (f"the input map scores higher ({target} {score(score_in):.3f}) than the best "
                f"sharpened map ({score(score_out):.3f}); the input map is kept "
                "(--no-discard-if-worse to keep the sharpened map)")
        warn(kept)
        warnings = warnings + [kept]
        sharpening = Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)
        factors = np.ones_like(factors)
        del out_data  # the sharpened map is not kept: free it before the copy
        out_data, score_out = density.data.copy(), score_in
    if mode == "model_free" and search is not None:
        warnings = warnings + region_warnings(box, box_solvent.solvent_fraction, search.region_weight,
                                              search.calibration is not None and not search.calibration.fallback)
    d_fit = sharpening.d_cut or opts.resolution
    b_in = whole.b_iso if whole.b_iso_fitted else None  # the fit's fallback is no measurement
    b_out = whole.measure_b_iso(factors, d_fit=d_fit) if sharpening.method != "no_sharpening" else b_in
    d_before, amp_before = whole.shell_mean_amplitude(20)
    _, amp_after = whole.shell_mean_amplitude(20, factors=factors)
    timings["apply"] = time.perf_counter() - t
    progress.info("applied to the whole map and scored (%.1f s)", timings["apply"])
    values = {"input": mean_sd(density.data), "output": mean_sd(out_data),
              "rescaled": sharpening.method != "no_sharpening"}
    return SharpenResult(
        values=values, map=density.with_data(out_data), sharpening=sharpening, search=search, options=opts,
        b_iso_input=b_in, b_iso_output=b_out, d_min=whole.d_min,
        solvent=solvent, box_solvent=box_solvent, box=box, region_weight=region_weight,
        score_output=score_out, score_input=score_in, b_cart_removed=whole.b_cart,
        amplitudes={"d": d_before.tolist(), "before": amp_before.tolist(), "after": amp_after.tolist()},
        applicable=applicability(search, opts, discarded), warnings=warnings, timings_s=timings,
        discarded=discarded, shells=shells, mode=mode)


def mean_sd(data: np.ndarray) -> dict[str, float]:
    """Mean and SD of a map's values (float64 sums)."""
    return {"mean": float(data.mean(dtype=np.float64)), "sd": float(data.std(dtype=np.float64))}


def applicability(search: SearchResult | None, opts: SharpenOptions, discarded: bool = False) -> dict[str, Any]:
    """Whether the sharpening is trusted, and why: ``{"value": bool, "reason": str}``."""
    if search is None:
        return {"value": True, "reason": "sharpening determined without a search (fixed values or scale factors)"}
    if discarded:
        return {"value": False, "reason": "no sharpening scored better than the input map; input kept"}
    sn = search.signal_to_noise
    chosen = search.sharpening
    if chosen.method == "no_sharpening" and search.curve_method is not None:  # the least-blur rule kept the input
        return {"value": True, "reason": search.notes[-1]}
    if chosen.method == "no_sharpening" and "no_sharpening" not in opts.search.methods:
        return {"value": False, "reason": "; ".join(search.notes) or "no sharpening method applied"}
    if chosen.method in ("b_iso", "b_iso_to_d_cut") and sn < opts.search.signal_min:
        return {"value": False, "reason": f"score curve signal-to-noise {sn:.2f} < {opts.search.signal_min}: "
                                          "the best B is not well determined"}
    if chosen.method not in ("b_iso", "b_iso_to_d_cut"):
        return {"value": True, "reason": f"best score with method {chosen.method}"}
    grid_ends = {t.sharpening.b_iso_target for t in search.trials if t.sharpening.method == chosen.method}
    if chosen.b_iso_target is not None and grid_ends and chosen.b_iso_target in (min(grid_ends), max(grid_ends)):
        return {"value": False, "reason": f"best target B {chosen.b_iso_target:.1f} lies at the end of the search range: "
                                          "applied, but it is a bound, not an optimum"}
    return {"value": True, "reason": f"score maximum inside the search range, S/N {sn:.1f}"}
