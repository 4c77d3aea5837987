"""The distributed overall pass: slab and pencil tasks only (see :mod:`.driver` for what is exact)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import zarr

from ...maps.loading import check_limitations, check_resolution, masked_warning
from ...modes.common import applicability, fixed_sharpening
from ...config import SharpenOptions
from ...errors import ConfigError, InputFileError
from ...kernels import fourier, order_stats, shell_sums, wilson
from ...maps.density import DensityMap
from ...maps.store import RunStore
from ...sharpening import solvent
from ...sharpening.box import BoxChoice
from ...sharpening.region import choose_region, region_warnings, scored_region
from ...sharpening.functions import Sharpening
from ...sharpening.spectrum import FALLBACK_B_ISO
from ...tiling.symmetric import BoxSymmetry
from . import tasks
from .dfft import Runner, SpectrumArray, forward_slabs, inverse_slabs, pencil_pass, scratch_dir
from .driver import SCORE_WHOLE_MAX_VOXELS, MapHeader, create_molecule_counts, slab_thickness

#: Bins per histogram pass of the exact quantile, and the most values gathered to the driver at the end.
HIST_BINS = 1 << 16
GATHER_MAX = 1 << 20


@dataclass(frozen=True)
class _Run:
    runner: Runner
    source: Any
    store_path: str
    header: MapHeader
    t: int
    scratch: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.header.shape

    def spans(self) -> list[tuple[int, int]]:
        return [(a, min(a + self.t, self.shape[0])) for a in range(0, self.shape[0], self.t)]


def distributed_overall(runner: Runner, source: DensityMap | str, store_path: str, opts: SharpenOptions,
                        header: MapHeader, symmetry: BoxSymmetry | None = None) -> dict[str, Any]:
    """The overall pass with no task holding the map (``symmetry``: molecule boxes in one asymmetric unit,
    as :func:`~localsharp.engine.overall.driver.overall_pass` says).

    Returns ``{"summary": the overall_pass summary (without "path"), "details": the fields of a
    SharpenResult except the map}``.
    """
    name = source if isinstance(source, str) else "map"
    check_resolution(header, opts.resolution, name)  # type: ignore[arg-type]
    check_limitations(header, name, opts)  # type: ignore[arg-type]
    if (opts.box_in_auto_sharpen or opts.use_weak_density) and not opts.fixed_sharpening:
        raise ConfigError("the segmentation box (box_in_auto_sharpen / use_weak_density) needs the whole map in "
                          "one worker; it is not available on the distributed overall pass")
    store = RunStore(store_path)
    chunks = tuple(store.array("overall").chunks)
    scratch = scratch_dir(store_path)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        src = source if isinstance(source, str) else _stage(source, str(scratch / "input"), chunks)
        run = _Run(runner, src, str(store_path), header, slab_thickness(chunks), str(scratch))
        create_molecule_counts(store_path, header.shape, run.t)
        return _overall(run, opts, chunks, symmetry)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stage(density: DensityMap, path: str, chunks: tuple[int, ...]) -> tasks.ZarrInput:
    """Write an in-memory map to a scratch zarr array so that workers read regions of it."""
    array = zarr.create_array(store=path, shape=density.shape, chunks=chunks, dtype="float32", compressors=None)
    array[...] = density.data
    return tasks.ZarrInput(path)


def _overall(run: _Run, opts: SharpenOptions, chunks: tuple[int, ...],
             symmetry: BoxSymmetry | None = None) -> dict[str, Any]:
    header, n = run.header, run.header.n_voxels
    rho_2d = SpectrumArray(f"{run.scratch}/rho_2d", run.shape, run.t).create()
    slab_stats = forward_slabs(run.runner, rho_2d, partial(tasks.rho_slab, run.source, run.shape))
    _check_values(run, slab_stats)
    mean = sum(s["sum"] for s in slab_stats) / n
    warnings = [w for w in (masked_warning(sum(s["zeros"] for s in slab_stats), n),) if w]
    if opts.resolution >= 10.0:
        warnings.append(f"resolution {opts.resolution} Å is low (≥ 10 Å); sharpening is rarely useful")
    grid = fourier.FourierGrid(run.shape, header.voxel_size_zyx, header.cell_angles)
    d_min = max(opts.d_min_ratio * opts.resolution, grid.nyquist)
    pjob = tasks.PencilJob(run.shape, header.voxel_size_zyx, header.cell_angles, float(opts.resolution), float(d_min))
    rho = rho_2d.like(f"{run.scratch}/rho")
    fits = pencil_pass(run.runner, rho_2d, partial(tasks.fit_pencil, pjob), forward=True, out=rho)
    rho_2d.delete()
    n_kept = sum(f["n_kept"] for f in fits)
    if n_kept < 20:
        raise ConfigError(f"only {n_kept} Fourier terms lie between the box size and d_min = {d_min:.2f} Å; "
                          f"the resolution {opts.resolution} Å is too coarse for a box of shape {run.shape}")
    fit = wilson.fit_from_normal_equations(sum(f["n"] for f in fits), sum(f["ata"] for f in fits),
                                           sum(f["aty"] for f in fits), True)
    b_iso = fit.b_iso if fit is not None else FALLBACK_B_ISO
    edges = shell_sums.shell_edges(min(f["lo"] for f in fits if f["lo"] is not None),
                                   max(f["hi"] for f in fits if f["hi"] is not None), 20)

    variance_path, variance_stats = _local_variance(run, grid, mean, opts.resolution, chunks)
    whole_solvent, composition = _solvent(run, variance_path, variance_stats, opts)
    molecule_bounds = _molecule(run, variance_path, variance_stats, whole_solvent.solvent_fraction)
    box = _box(run, opts, slab_stats, symmetry)
    by_variance = not composition or box.method == "molecule_boxes"
    search, box_solvent, box_fractions = run.runner.call(tasks.search_box, run.source,
                                                         variance_path if by_variance else None, header, box,
                                                         whole_solvent, opts)
    sharpening = search.sharpening if search is not None else fixed_sharpening(opts, b_iso)
    if search is not None:
        warnings += region_warnings(box, box_solvent.solvent_fraction, search.region_weight,
                                    search.calibration is not None and not search.calibration.fallback)

    b_out: float | None = b_iso
    if sharpening.method == "no_sharpening":
        run.runner.map(partial(tasks.copy_input, run.source, run.store_path, run.shape), run.spans())
        amplitudes = _amplitudes(run, rho, pjob, fit if opts.remove_aniso else None, edges, opts)
    else:
        b_out, amplitudes = _apply(run, rho, pjob, fit if opts.remove_aniso else None, sharpening, edges, opts)
    rho.delete()
    boxes, fractions, whole = scored_region(box, box_fractions, whole_solvent.solvent_fraction, run.shape,
                                            n <= SCORE_WHOLE_MAX_VOXELS)
    score_in, score_out = run.runner.call(tasks.score_pair, run.source, run.store_path, boxes, fractions,
                                          opts.search.score)
    if sharpening.method == "no_sharpening":
        score_out = score_in
    discarded = False
    target = search.target if search is not None else "adjusted_sa"
    region_weight = search.region_weight if search is not None else opts.search.region_weight

    def score(m: Any) -> float:
        return m.kurtosis if target == "kurtosis" else m.adjusted_sa(region_weight)

    if (search is not None and opts.discard_if_worse and sharpening.method != "no_sharpening"
            and score(score_in) > score(score_out)):
        discarded = True
        where = "" if whole else " (both scored on the analysis box)"
        warnings.append(
            f"the input map scores higher ({target} {score(score_in):.3f}) than the best "
            f"sharpened map ({score(score_out):.3f}){where}; the input map is kept "
            "(--no-discard-if-worse to keep the sharpened map)")
        sharpening = Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)
        b_out, score_out = b_iso, score_in
        amplitudes["after"] = list(amplitudes["before"])
        run.runner.map(partial(tasks.copy_input, run.source, run.store_path, run.shape), run.spans())
    summary = {"method": sharpening.method, "b_sharpen": sharpening.b_sharpen,
               "b_iso_input": fit.b_iso if fit is not None else None, "b_iso_output": b_out,
               "solvent_fraction": whole_solvent.solvent_fraction,
               "signal_to_noise": None if search is None else search.signal_to_noise,
               "applicable": applicability(search, opts, discarded), "warnings": warnings,
               "molecule_bounds_zyx": molecule_bounds, "box": box.to_dict()}
    details = {"sharpening": sharpening, "search": search, "b_iso_input": summary["b_iso_input"],
               "b_iso_output": b_out, "d_min": float(d_min), "solvent": whole_solvent, "box_solvent": box_solvent,
               "box": box, "region_weight": region_weight, "score_output": score_out, "score_input": score_in,
               "b_cart_removed": fit.b_cart if (fit is not None and opts.remove_aniso) else None,
               "amplitudes": amplitudes, "applicable": summary["applicable"], "warnings": warnings,
               "discarded": discarded, "scored_whole_map": whole}
    return {"summary": summary, "details": details}


def _check_values(run: _Run, slab_stats: list[dict]) -> None:
    """The checks ``read_map`` makes on the voxels (no NaN/Inf, not constant), from the slab reductions."""
    name = run.source if isinstance(run.source, str) else "map"
    bad = sum(s["bad"] for s in slab_stats)
    if bad:
        raise InputFileError(name, f"map holds {bad} NaN or infinite values")
    low, high = min(s["min"] for s in slab_stats), max(s["max"] for s in slab_stats)
    if low == high:
        raise InputFileError(name, f"map is constant (every voxel is {low}); nothing to sharpen")


def _local_variance(run: _Run, grid: fourier.FourierGrid, mean: float, resolution: float,
                    chunks: tuple[int, ...]) -> tuple[str, list[dict]]:
    """The local variance (radius 1.5 × resolution) into a scratch float32 array: its path and slab stats."""
    var_2d = SpectrumArray(f"{run.scratch}/var_2d", run.shape, run.t).create()
    forward_slabs(run.runner, var_2d, partial(tasks.squared_slab, run.source, run.shape, mean))
    var = var_2d.like(f"{run.scratch}/var")
    pencil_pass(run.runner, var_2d, partial(tasks.sphere_pencil, grid, solvent.RADIUS_FACTOR * resolution),
                forward=True, inverse=True, out=var)
    var_2d.delete()
    path = f"{run.scratch}/variance"
    zarr.create_array(store=path, shape=run.shape, chunks=chunks, dtype="float32", compressors=None)
    step = solvent.sample_step(run.header.n_voxels)
    parts = inverse_slabs(run.runner, var, partial(tasks.store_variance, path, step))
    var.delete()
    return path, parts


def _solvent(run: _Run, path: str, parts: list[dict], opts: SharpenOptions) -> tuple[solvent.SolventEstimate, bool]:
    """The whole map's solvent estimate (docs/methods.md, solvent fraction) and whether a composition gave it."""
    voxel, n = run.header.voxel_size_zyx, run.header.n_voxels
    given = solvent.estimate_from_composition(n, voxel, solvent_content=opts.solvent_content,
                                              molecular_mass=opts.molecular_mass, sequence=opts.sequence,
                                              copies=opts.copies)
    if given is not None:
        return given, True
    ordered = np.sort(np.concatenate([p["sample"] for p in parts]))
    tau, history = solvent.iterate_threshold(ordered, min(p["min"] for p in parts), max(p["max"] for p in parts))
    n_ge = sum(run.runner.map(partial(tasks.count_at_or_above, path, tau), run.spans()))
    return solvent.finish_estimate(history, n_ge, n, tau, voxel), False


def _molecule(run: _Run, path: str, parts: list[dict], solvent_fraction: float) -> list[list[int]] | None:
    """Write ``molecule`` and ``molecule_counts`` (local variance above its solvent-fraction quantile)."""
    n = run.header.n_voxels
    q = min(max(solvent_fraction, 0.0), 1.0)
    below, above, gamma = order_stats.quantile_ranks(n, q)
    values = _order_statistics(run, path, [below, above], min(p["min"] for p in parts), max(p["max"] for p in parts))
    threshold = order_stats.linear_quantile(values[below], values[above], gamma)
    found = run.runner.map(partial(tasks.molecule_slab, path, run.store_path, threshold), run.spans())
    z_any = np.concatenate([f["z"] for f in found])
    if not z_any.any():
        return None
    anys = [z_any, np.logical_or.reduce([f["y"] for f in found]), np.logical_or.reduce([f["x"] for f in found])]
    return [[int(np.flatnonzero(a)[0]), int(np.flatnonzero(a)[-1]) + 1] for a in anys]


def _order_statistics(run: _Run, path: str, ranks: list[int], lo: float, top: float) -> dict[int, np.float32]:
    """Exact values of the given 0-based ranks of the local variance (histogram refinement, then a gather)."""
    state = {r: (float(lo), float(np.nextafter(top, np.inf))) for r in set(ranks)}
    offset = {r: 0 for r in state}
    out: dict[int, np.float32] = {}
    while state:
        active = sorted(state)
        intervals = [(state[r][0], state[r][1], HIST_BINS) for r in active]
        parts = run.runner.map(partial(tasks.histograms, path, intervals), run.spans())
        gather = []
        for i, r in enumerate(active):
            below = sum(p[i][0] for p in parts)
            counts = np.sum([p[i][1] for p in parts], axis=0)
            cum = below + np.cumsum(counts)
            j = int(np.searchsorted(cum, r, side="right"))
            a, b = order_stats.bin_bounds(*state[r], HIST_BINS, j)
            offset[r] = r - int(cum[j] - counts[j])
            state[r] = (a, b)
            if counts[j] <= GATHER_MAX:
                gather.append(r)
            elif np.float32(b) <= np.float32(a) or np.nextafter(np.float32(a), np.float32(np.inf)) >= b:
                value = np.float32(a)
                out[r] = value if float(value) >= a else np.nextafter(value, np.float32(np.inf))
                del state[r]
        if gather:
            values = run.runner.map(partial(tasks.gather_values, path, [state[r] for r in gather]), run.spans())
            for i, r in enumerate(gather):
                pool = np.concatenate([v[i] for v in values])
                out[r] = np.partition(pool, offset[r])[offset[r]]
                del state[r]
    return out


def _box(run: _Run, opts: SharpenOptions, slab_stats: list[dict], symmetry: BoxSymmetry | None = None) -> BoxChoice:
    """The analysis region (:func:`~localsharp.sharpening.region.choose_region`) from the slab maxima and the
    molecule's block counts in the store."""
    header, shape = run.header, run.shape
    centre_index = None
    if opts.box_center is not None:
        pos = header.first_voxel_position
        centre_index = tuple((c - p) / v for c, p, v in zip(opts.box_center, pos, header.voxel_size))[::-1]
    density_select = opts.density_select and not opts.fixed_sharpening
    select = None
    if density_select:
        faces = [next(s["faces"]["z0"] for s in slab_stats if "z0" in s["faces"]),
                 next(s["faces"]["z1"] for s in slab_stats if "z1" in s["faces"])]
        faces += [max(s["faces"][k] for s in slab_stats) for k in ("y0", "y1", "x0", "x1")]
        profiles = [np.concatenate([s["profiles"][0] for s in slab_stats]),
                    np.maximum.reduce([s["profiles"][1] for s in slab_stats]),
                    np.maximum.reduce([s["profiles"][2] for s in slab_stats])]
        select = (faces, profiles)

    def counts() -> np.ndarray:
        return RunStore(run.store_path).array("molecule_counts")[...].astype(np.int64)

    buffer = int(round(1.5 * opts.resolution / min(header.voxel_size))) if opts.soft_mask else 0
    return choose_region(shape, header.voxel_size_zyx, select=select, counts=counts, block=tasks.COUNT_BLOCK,
                         centre_index=centre_index, box_size=tuple(opts.box_size)[::-1], buffer=buffer,
                         density_select=density_select, max_box_fraction=opts.max_box_fraction,
                         n_boxes=opts.molecule_boxes, symmetry=symmetry,
                         read=lambda bounds: run.runner.call(tasks.read_region, run.source, bounds))


def _apply(run: _Run, rho: SpectrumArray, pjob: tasks.PencilJob, fit: wilson.WilsonFit | None,
           sharpening: Sharpening, edges: np.ndarray, opts: SharpenOptions) -> tuple[float | None, dict]:
    """Correct and sharpen the whole spectrum, write the sigma-scaled ``overall``; the output's B and the
    shell mean amplitudes before and after."""
    d_fit = sharpening.d_cut or opts.resolution
    table = None
    if sharpening.method == "resolution_dependent":
        plain = tasks.ApplyJob(pjob, fit, Sharpening(method="no_sharpening"), edges, d_fit)
        parts = pencil_pass(run.runner, rho, partial(tasks.apply_pencil, plain))
        table = shell_sums.shell_means(edges, sum(p["before"][0] for p in parts), sum(p["before"][1] for p in parts))
    job = tasks.ApplyJob(pjob, fit, sharpening, edges, d_fit, table)
    out = rho.like(f"{run.scratch}/out")
    parts = pencil_pass(run.runner, rho, partial(tasks.apply_pencil, job), inverse=True, out=out)
    n = run.header.n_voxels
    rms = float(np.sqrt(sum(p["power"] for p in parts))) / n
    inverse_slabs(run.runner, out, partial(tasks.write_overall, run.store_path, rms))
    out.delete()
    out_fit = wilson.fit_from_normal_equations(sum(p["n"] for p in parts), sum(p["ata"] for p in parts),
                                               sum(p["aty"] for p in parts), True)
    return None if out_fit is None else out_fit.b_iso, _shell_table(edges, parts)


def _amplitudes(run: _Run, rho: SpectrumArray, pjob: tasks.PencilJob, fit: wilson.WilsonFit | None,
                edges: np.ndarray, opts: SharpenOptions) -> dict:
    """Shell mean amplitudes of the unsharpened spectrum (before = after), by a read-only pencil pass."""
    job = tasks.ApplyJob(pjob, fit, Sharpening(method="no_sharpening"), edges, opts.resolution)
    return _shell_table(edges, pencil_pass(run.runner, rho, partial(tasks.apply_pencil, job)))


def _shell_table(edges: np.ndarray, parts: list[dict]) -> dict:
    """``{"d", "before", "after"}`` of ``finish_sharpening`` from the pencils' shell sums."""
    d, before = shell_sums.shell_means(edges, sum(p["before"][0] for p in parts), sum(p["before"][1] for p in parts))
    _, after = shell_sums.shell_means(edges, sum(p["after"][0] for p in parts), sum(p["after"][1] for p in parts))
    return {"d": d.tolist(), "before": before.tolist(), "after": after.tolist()}
