"""Model-free sharpening (``global_sharpen``): the search (docs/methods.md) on the analysis box, applied to the whole map."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from ..config import SharpenOptions
from ..kernels.masks import box_edge_mask
from ..maps.density import DensityMap
from ..maps.loading import load_map, unit_cell_view
from ..report.result import SharpenResult
from ..sharpening import solvent
from ..sharpening.box import BoxChoice, choose_box
from ..sharpening.search import search_sharpening
from ..sharpening.solvent import (SolventEstimate, estimate_from_variance, estimate_solvent, local_variance,
                                  solvent_from_volume)
from ..sharpening.spectrum import Spectrum
from .common import finish_sharpening, fixed_sharpening, log, opening_checks, progress, resolve_options, restore_input_grid


def global_sharpen(map_or_path: DensityMap | str | os.PathLike, resolution: float, *,
                   options: SharpenOptions | None = None, mtz_labels: tuple[str, str] | None = None,
                   name: str | None = None, **kwargs: Any) -> SharpenResult:
    """Sharpen a whole map with one overall sharpening function, in this process.

    :func:`localsharp.global_sharpen` (:mod:`localsharp.api`) is this function with a ``client``
    option added (the same work on a Dask cluster).

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

    Returns
    -------
    SharpenResult
        The sharpened map, chosen parameters and the score table.

    Notes
    -----
    The sharpening is determined on the density-selected box (or the whole
    map) by :func:`~localsharp.sharpening.search.search_sharpening` — the same
    function local sharpening runs on each box — then applied to the whole
    map, whose anisotropy is estimated and removed independently (docs/methods.md, search).
    The output is sigma-scaled (mean 0, rms 1), like the reference's.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    density, _ = load_map(map_or_path, mtz_labels=mtz_labels)
    opts = resolve_options(resolution, options, kwargs)
    source = name or (str(map_or_path) if not isinstance(map_or_path, DensityMap) else "map")
    original, density = density, unit_cell_view(density)
    warnings = opening_checks(original, source, resolution, opts)
    log.info("map %s: %s voxels of %s Å, resolution %.2f Å", source, "x".join(map(str, density.shape_xyz)),
             "/".join(f"{v:.3f}" for v in density.voxel_size), resolution)
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
    if box.soft_edge and not opts.soft_mask:  # --no-soft-mask: cut bare, and the summary says so
        box = dataclasses.replace(box, soft_edge=False)
    box_data = np.ascontiguousarray(density.data[box.slices()])
    if box.soft_edge:
        box_data = box_data * box_edge_mask(box_data.shape, density.voxel_size_zyx, resolution)
    box_solvent = analysis_box_solvent(box_data, density, whole_solvent, box,
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
        sharpening = fixed_sharpening(opts, whole.b_iso)
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


def analysis_box_solvent(box_data: np.ndarray, density: Any, whole: SolventEstimate, box: BoxChoice,
                 box_variance: np.ndarray | None) -> SolventEstimate:
    """Solvent fraction of the analysis box (docs/methods.md, solvent fraction).

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
