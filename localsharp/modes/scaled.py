"""Shared steps of the two scale-factor modes (half maps, model): opening, spectrum, applying the factors."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..config import SharpenOptions
from ..kernels.masks import bounding_box
from ..maps.density import DensityMap
from ..report.result import SharpenResult
from ..sharpening.box import BoxChoice
from ..sharpening.shellscale import ShellScale, equivalent_b, equivalent_b_fit_range
from ..sharpening.solvent import SolventEstimate, estimate_solvent
from ..sharpening.spectrum import Spectrum
from .common import finish_sharpening, opening_checks, progress, resolve_options, warn


def start_mode(density: DensityMap, name: str, resolution: float, options: SharpenOptions | None,
               kwargs: dict[str, Any], timings: dict[str, float],
               t0: float) -> tuple[SharpenOptions, list[str], SolventEstimate, Spectrum]:
    """Opening of the scale-factor modes: options, the checks of every mode, solvent and the whole map's spectrum."""
    opts = resolve_options(resolution, options, kwargs)
    warnings = opening_checks(density, name, resolution, opts)
    timings["read"] = time.perf_counter() - t0
    solvent, whole = _prepare(density, resolution, opts, timings)
    return opts, warnings, solvent, whole


def _prepare(density: DensityMap, resolution: float, opts: SharpenOptions,
             timings: dict[str, float]) -> tuple[SolventEstimate, Spectrum]:
    """Whole-map solvent estimate (for scoring) and the whole map's spectrum (what gets scaled)."""
    t = time.perf_counter()
    solvent = estimate_solvent(density.data, density.voxel_size_zyx, resolution,
                               solvent_content=opts.solvent_content, molecular_mass=opts.molecular_mass,
                               sequence=opts.sequence, copies=opts.copies)
    timings["solvent"] = time.perf_counter() - t
    progress.info("solvent fraction %.3f (%.1f s)", solvent.solvent_fraction, timings["solvent"])
    t = time.perf_counter()
    whole = Spectrum.from_map(density.data, density.voxel_size_zyx, resolution, d_min_ratio=opts.d_min_ratio,
                              angles=density.cell_angles, remove_aniso=opts.remove_aniso)
    timings["fft_whole"] = time.perf_counter() - t
    return solvent, whole


def finish_scaled(density: DensityMap, whole: Spectrum, scale: ShellScale, opts: SharpenOptions, solvent: SolventEstimate,
            box: BoxChoice, warnings: list[str], timings: dict[str, float], mode: str,
            t0: float) -> SharpenResult:
    """Apply per-shell scale factors to the whole map (:func:`~.common.finish_sharpening`) and record them."""
    for note in scale.notes:
        warn(note)
    # b_sharpen of a shell table: the factors' equivalent B (reporting only; the factors are applied shell
    # by shell), as the local scale-factor modes record it
    sharpening = scale.to_sharpening().replace(b_sharpen=equivalent_b(scale, opts.resolution))
    result = finish_sharpening(density, whole, sharpening, opts, search=None, solvent=solvent,
                                   box=box, box_solvent=solvent, warnings=warnings + list(scale.notes),
                                   timings=timings, shells=scale.rows(), mode=mode)
    applicable = {"value": True, "reason": f"{scale.method} scale factors from {scale.stats.n_shells} shells"}
    if scale.method == "model_sharpening" and scale.notes:
        applicable = {"value": False, "reason": scale.notes[0]}
    result.applicable = applicable
    result.shell_scale = {**scale.summary(), "equivalent_b_sharpen": sharpening.b_sharpen,
                          "equivalent_b_fit_A": equivalent_b_fit_range(scale, opts.resolution)}
    result.timings_s["total"] = time.perf_counter() - t0
    return result


def mask_bounds(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Bounds of the mask's voxels above 0.5 (the whole map when none is)."""
    found = bounding_box(mask > 0.5)
    return tuple((0, n) for n in mask.shape) if found is None else tuple((a, b) for a, b in found)
