"""Model-free sharpening (``global_sharpen``): the search (docs/methods.md) on the analysis box, applied to the whole map."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

from ..config import SharpenOptions
from ..maps.density import DensityMap
from ..maps.loading import load_map, unit_cell_view
from ..report.result import SharpenResult
from ..sharpening import solvent
from ..sharpening.box import Bounds, BoxChoice, choose_box, select_profiles
from ..sharpening.region import choose_region, region_parts
from ..sharpening.search import search_sharpening
from ..sharpening.solvent import (SolventEstimate, estimate_solvent, local_variance,
                                  molecule_from_variance, pooled_solvent)
from ..tiling.occupancy import BLOCK as COUNT_BLOCK, block_counts
from ..tiling.symmetric import BoxSymmetry
from ..sharpening.spectrum import Spectrum
from .common import finish_sharpening, fixed_sharpening, log, opening_checks, progress, resolve_options, restore_input_grid


def global_sharpen(map_or_path: DensityMap | str | os.PathLike, resolution: float, *,
                   options: SharpenOptions | None = None, mtz_labels: tuple[str, str] | None = None,
                   name: str | None = None, symmetry: BoxSymmetry | None = None,
                   variance: np.ndarray | None = None, **kwargs: Any) -> SharpenResult:
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
    symmetry : BoxSymmetry, optional
        The map's point group placed on it: when the analysis region is made of molecule boxes (a hollow
        or sparse map) and the map's copies are the same (a map reconstructed with the symmetry imposed),
        they are taken in one asymmetric unit only (:func:`~localsharp.sharpening.region.asu_region`).
    variance : numpy.ndarray, optional
        The map's local variance (:func:`~localsharp.sharpening.solvent.local_variance`, radius 1.5 ×
        resolution), when the caller has it (the overall pass of local sharpening makes it for the molecule
        mask too); computed here when needed otherwise.

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
    given = variance if variance is not None and variance.shape == density.shape else None
    if composition_given:
        variance = None
    elif given is not None:
        variance = given
    else:
        variance = local_variance(density.data, density.voxel_size_zyx, solvent.RADIUS_FACTOR * resolution)
    whole_solvent = estimate_solvent(density.data, density.voxel_size_zyx, resolution,
                                     solvent_content=opts.solvent_content, molecular_mass=opts.molecular_mass,
                                     sequence=opts.sequence, copies=opts.copies, variance=variance)
    timings["solvent"] = time.perf_counter() - t
    log.info("solvent fraction %.3f (%s)", whole_solvent.solvent_fraction, whole_solvent.method)
    progress.info("solvent fraction %.3f (%.1f s)", whole_solvent.solvent_fraction, timings["solvent"])

    t = time.perf_counter()
    buffer = int(round(1.5 * resolution / min(density.voxel_size))) if opts.soft_mask else 0
    if variance is None and _may_need_molecule(opts):
        variance = given if given is not None else local_variance(density.data, density.voxel_size_zyx,
                                                                  solvent.RADIUS_FACTOR * resolution)
    box = _region(density, opts, whole_solvent, variance, buffer, symmetry)
    if box.soft_edge and not opts.soft_mask:  # --no-soft-mask: cut bare, and the summary says so
        box = dataclasses.replace(box, soft_edge=False)
    parts = _box_parts(density, opts, whole_solvent, variance, box)
    box_solvents = [solvent_ for _, solvent_ in parts]
    box_solvent = pooled_solvent(box_solvents, [data.size for data, _ in parts])
    del variance  # a map-sized array: not kept here through the search and the final application
    timings["box"] = time.perf_counter() - t
    log.info("analysis box %s: %s; box solvent fraction %.3f", box.bounds, box.reason, box_solvent.solvent_fraction)
    progress.info("analysis box %s voxels (%s)", " + ".join("x".join(str(n) for n in data.shape[::-1])
                                                            for data, _ in parts),
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
        spectra = [whole] if not box.used else [
            Spectrum.from_map(data, density.voxel_size_zyx, resolution, d_min_ratio=opts.d_min_ratio, angles=angles,
                              remove_aniso=opts.remove_aniso) for data, _ in parts]
        del parts
        log.info("search: original B %s Å², methods %s, target %s", "/".join(f"{sp.b_iso:.1f}" for sp in spectra),
                 ",".join(opts.search.methods), opts.search.effective_target)
        search = search_sharpening(spectra, [solvent_.solvent_fraction for solvent_ in box_solvents], opts.search)
        sharpening = search.sharpening
        log.info("search: %d trials, region weight %.2f, best %s b_sharpen %.1f (score %.3f, S/N %.1f)",
                 len(search.trials), search.region_weight, sharpening.method, sharpening.b_sharpen, search.score,
                 search.signal_to_noise)
    timings["search"] = time.perf_counter() - t
    if search is not None:
        progress.info("searched %d trials: %s b_sharpen %.1f Å² (%.1f s)", len(search.trials), sharpening.method,
                      sharpening.b_sharpen, timings["search"])

    result = finish_sharpening(density, whole, sharpening, opts, search=search, solvent=whole_solvent,
                               box=box, box_solvent=box_solvent, warnings=warnings, timings=timings,
                               box_fractions=[s.solvent_fraction for s in box_solvents])
    result = restore_input_grid(result, original)
    result.timings_s["total"] = time.perf_counter() - t0
    return result


def _may_need_molecule(opts: SharpenOptions) -> bool:
    """Whether the analysis region may need the molecule mask (density selection by the region rule)."""
    return (opts.density_select and not opts.fixed_sharpening and opts.box_center is None
            and not (opts.box_in_auto_sharpen or opts.use_weak_density))


def _region(density: DensityMap, opts: SharpenOptions, whole_solvent: SolventEstimate,
            variance: np.ndarray | None, buffer: int, symmetry: BoxSymmetry | None = None) -> BoxChoice:
    """The analysis region of :func:`~localsharp.sharpening.region.choose_region` for a map in memory."""
    centre_index = None
    if opts.box_center is not None:
        pos = density.first_voxel_position
        centre_index = tuple((c - p) / v for c, p, v in zip(opts.box_center, pos, density.voxel_size))[::-1]
    box_size = tuple(opts.box_size)[::-1]
    segmentation = None
    if (opts.box_in_auto_sharpen or opts.use_weak_density) and not opts.fixed_sharpening and centre_index is None:
        def segmentation() -> BoxChoice:
            return choose_box(density.data, density.voxel_size_zyx, box_size=box_size, box_in_auto_sharpen=True,
                              solvent_fraction=whole_solvent.solvent_fraction,
                              use_weak_density=opts.use_weak_density, buffer=buffer)

    def counts() -> np.ndarray | None:
        if variance is None:
            return None
        return block_counts(molecule_from_variance(variance, whole_solvent.solvent_fraction), COUNT_BLOCK)

    density_select = opts.density_select and not opts.fixed_sharpening
    return choose_region(density.shape, density.voxel_size_zyx,
                         select=select_profiles(density.data) if density_select else None, counts=counts,
                         block=COUNT_BLOCK, centre_index=centre_index, box_size=box_size, buffer=buffer,
                         density_select=density_select, max_box_fraction=opts.max_box_fraction,
                         n_boxes=opts.molecule_boxes,
                         segmentation=segmentation, symmetry=symmetry,
                         read=lambda bounds: density.data[tuple(slice(a, b) for a, b in bounds)])


def _box_parts(density: DensityMap, opts: SharpenOptions, whole_solvent: SolventEstimate,
               variance: np.ndarray | None, box: BoxChoice) -> list[tuple[np.ndarray, SolventEstimate]]:
    """Each analysed box's voxels (soft-edged when the region says so) and its solvent estimate."""
    def read(bounds: Bounds) -> np.ndarray:
        return density.data[tuple(slice(a, b) for a, b in bounds)]

    def read_variance(bounds: Bounds) -> np.ndarray | None:
        return None if variance is None else variance[tuple(slice(a, b) for a, b in bounds)]

    return region_parts(box, read, read_variance, density.voxel_size_zyx, opts.resolution,
                        opts.soft_mask, whole_solvent)
