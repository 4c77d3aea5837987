"""Public entry points: :func:`global_sharpen` (and the map loader it uses)."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import SharpenOptions
from .errors import ConfigError, InputFileError
from .maps.density import DensityMap, drop_duplicated_plane, has_duplicated_last_plane, restore_duplicated_plane
from .maps.mrc import read_map
from .maps.mtz import read_mtz_map
from .kernels.masks import box_edge_mask
from .sharpening.box import BoxChoice, choose_box
from .sharpening.functions import Sharpening
from .sharpening.score import MapMeasures, measure_map
from .sharpening.search import SearchConfig, SearchResult, search_sharpening
from .sharpening import solvent
from .sharpening.solvent import (SolventEstimate, estimate_from_variance, estimate_solvent, local_variance,
                                 solvent_from_volume)
from .sharpening.spectrum import Spectrum

log = logging.getLogger(__name__)
#: One line per finished stage, for a terminal (the CLI shows it unless ``-q``; ``-v`` shows all logs).
progress = logging.getLogger("localsharp.progress")

#: Fraction of exactly-zero voxels above which a map is reported as closely masked.
MASKED_ZERO_FRACTION = 0.30


@dataclass
class SharpenResult:
    """Outcome of :func:`global_sharpen`.

    Attributes
    ----------
    map : DensityMap
        The sharpened map on the input grid, header geometry of the input.
    sharpening : Sharpening
        The sharpening applied.
    search : SearchResult or None
        Trial table and search diagnostics (None when the sharpening was fixed).
    b_iso_input, b_iso_output : float or None
        Overall B of the input map and re-measured B of the output (Å²).
    d_min : float
        Fourier cut-off used (Å).
    """

    map: DensityMap
    sharpening: Sharpening
    search: SearchResult | None
    options: SharpenOptions
    b_iso_input: float | None
    b_iso_output: float | None
    d_min: float
    solvent: SolventEstimate
    box_solvent: SolventEstimate
    box: BoxChoice
    region_weight: float
    score_output: MapMeasures
    score_input: MapMeasures
    b_cart_removed: tuple[float, ...] | None
    amplitudes: dict[str, list[float]]
    applicable: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    discarded: bool = False
    shells: list[dict[str, Any]] | None = None
    mode: str = "model_free"
    shell_scale: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def signal_to_noise(self) -> float | None:
        return None if self.search is None else self.search.signal_to_noise

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (see ``summary.json``)."""
        s = self.sharpening
        target_b = _target_b(s, self.b_iso_input)
        w = self.region_weight
        return {
            "mode": self.mode,
            "method": s.method,
            "b_iso_input": self.b_iso_input,
            "b_iso_analysis_box": self.search.b_iso_original if self.search else None,
            "b_iso_output": self.b_iso_output,
            "b_sharpen": s.b_sharpen,
            "target_b_iso": target_b,
            "k_sharpen": s.k_sharpen,
            "d_cut": s.d_cut if s.d_cut is not None else self.options.resolution,
            "b_blur_hires": s.b_blur_hires,
            "resolution_dependent_b": list(s.resolution_dependent_b) if s.resolution_dependent_b else None,
            "resolution": self.options.resolution,
            "d_min": self.d_min,
            "region_weight": w,
            "region_weight_calibration": (self.search.calibration.to_dict()
                                          if self.search and self.search.calibration else None),
            "solvent_fraction": self.solvent.solvent_fraction,
            "solvent": self.solvent.to_dict(),
            "box_solvent_fraction": self.box_solvent.solvent_fraction,
            "box": self.box.to_dict(),
            "b_cart_removed": list(self.b_cart_removed) if self.b_cart_removed else None,
            "signal_to_noise": self.signal_to_noise,
            "b_sharpen_within_noise": (list(self.search.plateau_b_sharpen)
                                       if self.search and self.search.plateau_b_sharpen else None),
            "target": self.search.target if self.search else None,
            "search_choice": self._search_choice(),
            "score": {
                "output": {"adjusted_sa": _finite(self.score_output.adjusted_sa(w)), "kurtosis": self.score_output.kurtosis,
                           "surface_area": self.score_output.surface_area, "n_regions": self.score_output.n_regions},
                "input": {"adjusted_sa": _finite(self.score_input.adjusted_sa(w)), "kurtosis": self.score_input.kurtosis,
                          "surface_area": self.score_input.surface_area, "n_regions": self.score_input.n_regions},
            },
            "discarded_as_worse": self.discarded,
            "applicable": self.applicable,
            "warnings": list(self.warnings),
            "notes": (list(self.search.notes) if self.search else []) + list(self.notes),
            "trials": [{k: _finite(v) for k, v in row.items()} for row in self.search.table()] if self.search else [],
            "shells": self.shells,
            "shell_scale": self.shell_scale,
            "amplitudes": self.amplitudes,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "options": _jsonable(self.options.to_dict()),
        }

    def _search_choice(self) -> dict[str, Any] | None:
        """What the search picked (before the input may have been kept instead), or None."""
        if self.search is None:
            return None
        s = self.search.sharpening
        return {"method": s.method, "b_sharpen": s.b_sharpen,
                "target_b_iso": _target_b(s, self.search.b_iso_original), "score": _finite(self.search.score)}


def _target_b(s: Sharpening, b_original: float | None) -> float | None:
    """Target map B of a sharpening: its own, or ``b_original − b_sharpen`` for the B-type methods."""
    if s.b_iso_target is None and b_original is not None and s.method in ("b_iso", "b_iso_to_d_cut"):
        return b_original - s.b_sharpen
    return s.b_iso_target


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj):
        return _jsonable(dataclasses.asdict(obj))
    return obj


def load_map(source: DensityMap | str | os.PathLike, *, mtz_labels: tuple[str, str] | None = None) -> tuple[DensityMap, float | None]:
    """Coerce a map argument: a :class:`DensityMap`, an MRC/CCP4 path, or an MTZ path.

    Returns the map and, for MTZ input, the coefficients' d_min (else None).
    """
    if isinstance(source, DensityMap):
        return source, None
    path = Path(source)
    if path.suffix.lower() == ".mtz":
        return read_mtz_map(path, mtz_labels)
    return read_map(path), None


def check_resolution(density: DensityMap, resolution: float, source: str = "map") -> None:
    """Refuse a resolution ≤ 0 or finer than Nyquist (2 × the largest voxel edge)."""
    nyquist = 2.0 * max(density.voxel_size)
    if not (resolution > 0 and np.isfinite(resolution)):
        raise ConfigError(f"resolution must be a positive number of Å, got {resolution}")
    longest = max(density.box_lengths)
    if resolution > longest / 2.0:
        raise ConfigError(f"resolution {resolution} Å is too coarse for {source}: its box is only "
                          f"{longest:.1f} Å long, so it holds no Fourier terms at that resolution")
    if resolution < nyquist - 1e-6:
        raise ConfigError(f"resolution {resolution} Å is finer than the Nyquist limit {nyquist:.3f} Å "
                          f"(2 x voxel size {max(density.voxel_size):.3f} Å) of {source}")


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


def _box_solvent(box_data: np.ndarray, density: Any, whole: SolventEstimate, box: BoxChoice,
                 box_variance: np.ndarray | None) -> SolventEstimate:
    """Solvent fraction of the analysis box (§3 item 5).

    With a given composition the molecular volume is assumed to lie in the box;
    otherwise the whole map's local variance, cropped to the box, is re-thresholded.
    ``density`` needs only ``voxel_size`` and ``voxel_size_zyx`` (a map or its header).
    """
    if not box.used:
        return whole
    if box_variance is None and whole.molecular_volume:
        box_volume = float(np.prod(density.voxel_size)) * box_data.size
        return SolventEstimate(solvent_from_volume(whole.molecular_volume, box_volume), f"{whole.method} (box)",
                               whole.molecular_volume)
    estimate = estimate_from_variance(np.ascontiguousarray(box_variance), density.voxel_size_zyx)
    return dataclasses.replace(estimate, method=estimate.method + " (box)")


def _fixed_sharpening(opts: SharpenOptions, b_iso_original: float) -> Sharpening:
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


#: Header label words the reference treats as "map limitations" (ALGORITHM.md §1.1 item 1).
LIMITATION_WORDS = ("map_is_sharpened", "extract_unique")


def map_limitations(density: DensityMap) -> list[str]:
    """Reasons, read from the header labels, not to auto-sharpen this map (empty if none).

    Recognises the reference's limitation words and localsharp's own output
    label (``localsharp <mode>: <method> b_sharpen <B>``).
    """
    labels = [bytes(lbl).decode("ascii", "replace") for lbl in density.header_extras.get("labels", [])]
    found = [f"its header carries the limitation '{word}'" for word in LIMITATION_WORDS
             if any(word in lbl for lbl in labels)]
    own = [lbl.strip() for lbl in labels if lbl.startswith("localsharp") and "b_sharpen" in lbl]
    if own:
        found.append(f"its header says it is a localsharp output ('{own[-1]}')")
    return found


def check_limitations(density: DensityMap, source: str, opts: SharpenOptions) -> None:
    """Refuse an already-sharpened map unless ``opts.ignore_map_limitations``."""
    found = map_limitations(density)
    if found and not opts.ignore_map_limitations:
        raise InputFileError(source, f"{'; '.join(found)}: it looks already sharpened, and sharpening it again "
                                     "compounds the B-factor (--ignore-map-limitations to sharpen it anyway)")


def unit_cell_view(density: DensityMap) -> DensityMap:
    """The map to compute on: without a duplicated last plane (§1.1 item 2), else itself."""
    return drop_duplicated_plane(density) if has_duplicated_last_plane(density) else density


def restore_input_grid(result: "SharpenResult", original: DensityMap) -> "SharpenResult":
    """Put ``result.map`` back on ``original``'s grid when a duplicated plane was dropped."""
    if result.map.shape != original.shape:
        result.map = restore_duplicated_plane(result.map, original)
        nx, ny, nz = original.cell_grid
        result.notes.append(f"the map repeats its first plane after the unit cell ({nx}x{ny}x{nz} grid + 1); "
                            "computed on the unit cell, the repeated plane is restored in the output")
    return result


def _masked_warning(density: DensityMap) -> str | None:
    return masked_warning(int(np.count_nonzero(density.data == 0.0)), density.data.size)


def masked_warning(n_zeros: int, n_voxels: int) -> str | None:
    """The closely-masked warning for a map with ``n_zeros`` exactly-zero voxels of ``n_voxels``, or None."""
    zeros = float(n_zeros) / n_voxels
    if zeros > MASKED_ZERO_FRACTION:
        return (f"map looks closely masked ({zeros:.0%} of voxels are exactly 0); automatic sharpening is "
                "less reliable on masked maps (the paper recommends unmasked maps)")
    return None


def global_sharpen(map_or_path: DensityMap | str | os.PathLike, resolution: float, *,
                   options: SharpenOptions | None = None, mtz_labels: tuple[str, str] | None = None,
                   name: str | None = None, client: Any = None, **kwargs: Any) -> SharpenResult:
    """Sharpen a whole map with one overall sharpening function.

    Parameters
    ----------
    map_or_path : DensityMap, str or path-like
        The map, or an MRC/CCP4 (``.gz`` too) or MTZ file.
    resolution : float
        Nominal resolution (Å).
    options : SharpenOptions, optional
        Full option set; otherwise built from ``kwargs``, which may name any
        field of :class:`SharpenOptions` or :class:`SearchConfig` (e.g.
        ``methods=("b_iso",)``, ``target="kurtosis"``, ``b_sharpen=50``).
    mtz_labels : tuple of str, optional
        Amplitude/phase labels for MTZ input.
    name : str, optional
        Name of the map used in messages (default: the path, or "map").
    client : distributed.Client, optional
        Run on a Dask cluster: as one task when the map fits the smallest worker (the same result as
        without a client), otherwise by the distributed overall pass
        (:mod:`localsharp.engine.overall`, whose notes say what is then approximate).

    Returns
    -------
    SharpenResult
        The sharpened map, chosen parameters and the score table.

    Notes
    -----
    The sharpening is determined on the density-selected box (or the whole
    map) by :func:`~localsharp.sharpening.search.search_sharpening` — the same
    function local sharpening runs on each box — then applied to the whole
    map, whose anisotropy is estimated and removed independently (§6 step 11).
    The output is sigma-scaled (mean 0, rms 1), like the reference's.
    """
    if client is not None:
        from .engine import overall_api
        return overall_api.sharpen_on_cluster(client, map_or_path, resolution, options=options,
                                              mtz_labels=mtz_labels, name=name, **kwargs)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    density, _ = load_map(map_or_path, mtz_labels=mtz_labels)
    opts = options if options is not None else options_from_kwargs(resolution, dict(kwargs))
    if options is not None and kwargs:
        raise ConfigError("give either options= or keyword options, not both")
    if opts.resolution != resolution:
        opts = opts.replace(resolution=resolution)
    source = name or (str(map_or_path) if not isinstance(map_or_path, DensityMap) else "map")
    check_resolution(density, resolution, source)
    check_limitations(density, source, opts)
    original, density = density, unit_cell_view(density)
    warnings = [w for w in (_masked_warning(density),) if w]
    for w in warnings:
        log.warning(w)
    log.info("map %s: %s voxels of %s Å, resolution %.2f Å", source, "x".join(map(str, density.shape_xyz)),
             "/".join(f"{v:.3f}" for v in density.voxel_size), resolution)
    if resolution >= 10.0:
        warnings.append(f"resolution {resolution} Å is low (≥ 10 Å); sharpening is rarely useful")
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    composition_given = any(v is not None for v in (opts.solvent_content, opts.molecular_mass, opts.sequence))
    variance = None if composition_given else local_variance(density.data, density.voxel_size_zyx,
                                                             solvent.RADIUS_FACTOR * resolution)
    whole_solvent = estimate_solvent(density.data, density.voxel_size_zyx, resolution,
                                     solvent_content=opts.solvent_content, molecular_mass=opts.molecular_mass,
                                     sequence=opts.sequence, copies=opts.copies, variance=variance)
    timings["solvent"] = time.perf_counter() - t
    log.info("solvent fraction %.3f (%s)", whole_solvent.solvent_fraction, whole_solvent.method)
    progress.info("solvent fraction %.3f (%.1f s)", whole_solvent.solvent_fraction, timings["solvent"])

    t = time.perf_counter()
    centre_index = None
    if opts.box_center is not None:
        pos = density.first_voxel_position
        centre_index = tuple((c - p) / v for c, p, v in zip(opts.box_center, pos, density.voxel_size))[::-1]
    buffer = int(round(1.5 * resolution / min(density.voxel_size))) if opts.soft_mask else 0
    box = choose_box(density.data, density.voxel_size_zyx,
                     density_select=opts.density_select and not opts.fixed_sharpening,
                     max_box_fraction=opts.max_box_fraction, centre_index=centre_index,
                     box_size=tuple(opts.box_size)[::-1],
                     box_in_auto_sharpen=(opts.box_in_auto_sharpen or opts.use_weak_density)
                     and not opts.fixed_sharpening,
                     solvent_fraction=whole_solvent.solvent_fraction, use_weak_density=opts.use_weak_density,
                     buffer=buffer)
    box_data = np.ascontiguousarray(density.data[box.slices()])
    if box.soft_edge and opts.soft_mask:
        box_data = box_data * box_edge_mask(box_data.shape, density.voxel_size_zyx, resolution)
    box_solvent = _box_solvent(box_data, density, whole_solvent, box,
                               None if variance is None else variance[box.slices()])
    del variance  # a map-sized array: not kept through the search and the final application
    timings["box"] = time.perf_counter() - t
    log.info("analysis box %s: %s; box solvent fraction %.3f", box.bounds, box.reason, box_solvent.solvent_fraction)
    progress.info("analysis box %s voxels (%s)", "x".join(str(n) for n in box_data.shape[::-1]),
                  "whole map" if not box.used else box.method)

    t = time.perf_counter()
    angles = density.cell_angles
    whole = Spectrum.from_map(density.data, density.voxel_size_zyx, resolution, d_min_ratio=opts.d_min_ratio,
                              angles=angles, remove_aniso=opts.remove_aniso)
    timings["fft_whole"] = time.perf_counter() - t

    search = None
    t = time.perf_counter()
    if opts.fixed_sharpening:
        sharpening = _fixed_sharpening(opts, whole.b_iso)
    else:
        box_spectrum = whole if not box.used else Spectrum.from_map(
            box_data, density.voxel_size_zyx, resolution, d_min_ratio=opts.d_min_ratio, angles=angles,
            remove_aniso=opts.remove_aniso)
        log.info("search: original B %.1f Å², methods %s, target %s", box_spectrum.b_iso,
                 ",".join(opts.search.methods), opts.search.effective_target)
        search = search_sharpening(box_spectrum, box_solvent.solvent_fraction, opts.search)
        sharpening = search.sharpening
        log.info("search: %d trials, region weight %.2f, best %s b_sharpen %.1f (score %.3f, S/N %.1f)",
                 len(search.trials), search.region_weight, sharpening.method, sharpening.b_sharpen, search.score,
                 search.signal_to_noise)
    timings["search"] = time.perf_counter() - t
    if search is not None:
        progress.info("searched %d trials: %s b_sharpen %.1f Å² (%.1f s)", len(search.trials), sharpening.method,
                      sharpening.b_sharpen, timings["search"])

    result = finish_sharpening(density, whole, sharpening, opts, search=search, solvent=whole_solvent,
                               box=box, box_solvent=box_solvent, warnings=warnings, timings=timings)
    result = restore_input_grid(result, original)
    result.timings_s["total"] = time.perf_counter() - t0
    return result


def finish_sharpening(density: DensityMap, whole: Spectrum, sharpening: Sharpening, opts: SharpenOptions, *,
                      search: SearchResult | None, solvent: SolventEstimate, box: BoxChoice,
                      box_solvent: SolventEstimate, warnings: list[str], timings: dict[str, float],
                      shells: list[dict[str, Any]] | None = None, mode: str = "model_free") -> SharpenResult:
    """Apply a chosen sharpening to the whole map, score it and assemble the result.

    Shared by every global mode (model-free search, fixed values, half-map and
    model-based scale factors).
    """
    t = time.perf_counter()
    factors = sharpening.factors(whole)
    region_weight = search.region_weight if search else opts.search.region_weight
    # The input is scored first, so that its region labels are freed before the output exists.
    score_in = measure_map(density.data, solvent.solvent_fraction, opts.search.score)
    if sharpening.method == "no_sharpening":
        out_data, score_out = density.data.copy(), score_in
    else:
        out_data = whole.render(factors)
        score_out = measure_map(out_data, solvent.solvent_fraction, opts.search.score)
    discarded = False
    target = search.target if search is not None else "adjusted_sa"

    def score(m: MapMeasures) -> float:
        return m.kurtosis if target == "kurtosis" else m.adjusted_sa(region_weight)

    if (opts.discard_if_worse and search is not None and sharpening.method != "no_sharpening"
            and score(score_in) > score(score_out)):
        discarded = True
        warnings = warnings + [
            f"the input map scores higher ({target} {score(score_in):.3f}) than the best "
            f"sharpened map ({score(score_out):.3f}); the input map is kept "
            "(--keep-if-worse to keep the sharpened map)"]
        sharpening = Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)
        factors = np.ones_like(factors)
        del out_data  # the sharpened map is not kept: free it before the copy
        out_data, score_out = density.data.copy(), score_in
    d_fit = sharpening.d_cut or opts.resolution
    b_out = whole.measure_b_iso(factors, d_fit=d_fit) if sharpening.method != "no_sharpening" else whole.b_iso
    d_before, amp_before = whole.shell_mean_amplitude(20)
    _, amp_after = whole.shell_mean_amplitude(20, factors=factors)
    timings["apply"] = time.perf_counter() - t
    progress.info("applied to the whole map and scored (%.1f s)", timings["apply"])
    return SharpenResult(
        map=density.with_data(out_data), sharpening=sharpening, search=search, options=opts,
        b_iso_input=whole.b_iso if whole.b_iso_fitted else None, b_iso_output=b_out, d_min=whole.d_min,
        solvent=solvent, box_solvent=box_solvent, box=box, region_weight=region_weight,
        score_output=score_out, score_input=score_in, b_cart_removed=whole.b_cart,
        amplitudes={"d": d_before.tolist(), "before": amp_before.tolist(), "after": amp_after.tolist()},
        applicable=_applicability(search, opts, discarded), warnings=warnings, timings_s=timings,
        discarded=discarded, shells=shells, mode=mode)


def _applicability(search: SearchResult | None, opts: SharpenOptions, discarded: bool = False) -> dict[str, Any]:
    if search is None:
        return {"value": True, "reason": "sharpening determined without a search (fixed values or scale factors)"}
    if discarded:
        return {"value": False, "reason": "no sharpening scored better than the input map; input kept"}
    sn = search.signal_to_noise
    chosen = search.sharpening
    if chosen.method == "no_sharpening" and "no_sharpening" not in opts.search.methods:
        return {"value": False, "reason": "; ".join(search.notes) or "no sharpening method applied"}
    if chosen.method in ("b_iso", "b_iso_to_d_cut") and sn < opts.search.signal_min:
        return {"value": False, "reason": f"score curve signal-to-noise {sn:.2f} < {opts.search.signal_min}: "
                                          "the best B is not well determined"}
    if chosen.method not in ("b_iso", "b_iso_to_d_cut"):
        return {"value": True, "reason": f"best score with method {chosen.method}"}
    grid_ends = {t.sharpening.b_iso_target for t in search.trials if t.sharpening.method == chosen.method}
    if chosen.b_iso_target is not None and grid_ends and chosen.b_iso_target in (min(grid_ends), max(grid_ends)):
        return {"value": False, "reason": f"best target B {chosen.b_iso_target:.1f} lies at the end of the search range"}
    return {"value": True, "reason": f"score maximum inside the search range, S/N {sn:.1f}"}
