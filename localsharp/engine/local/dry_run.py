"""What a local run would do, measured without doing it (``localsharp local --dry-run``).

:func:`plan_run` reads the map's header, takes the coarse molecule counts from the run store when
an earlier run of the same directory has them, or else from a pass over the map: its local variance
thresholded at its solvent fraction, as the overall pass marks the molecule — at full resolution
for maps up to :data:`COARSE_EDGE` voxels an edge (the run's own counts), block-averaged to that
edge for larger maps (a quick low-resolution pass; the counts are then approximate) — and makes
the run's plan with the same functions the run uses: the box grid, the boxes the coarse counts skip, the search tasks and
blend tiles.  It then times a few boxes of the map on one thread each, as a worker runs them — for a
LocalCluster of several workers in as many processes at once, so that the timing sees the workers
share this machine's cores (and whatever else runs on it) — and estimates

* **memory per worker**: this process's own anonymous memory once it has imported what a worker
  imports and searched the timed boxes (a worker's base), plus the largest task's arrays: the
  overall pass (one task holding the whole map, or its slab and pencil tasks), a search task, or a
  blend tile (the cores of every box touching it);
* **disk**: the run store (overall map, molecule mask, records, the output images) and the
  outputs, the float32 arrays at the compression the map's own chunks get with the store's codec,
  and the scratch space of the distributed overall pass;
* **time**: the overall pass (the overall work timed on a small block-averaged copy of the map,
  scaled by voxels), the box pass (boxes × the time of a timed box ÷ workers) and the blend
  (box renders of every tile, timed, ÷ workers, and the streaming of the CCP4 outputs).

With a given symmetry group (``--symmetry GROUP``) the boxes to be searched are those of one
asymmetric unit, as the run takes them (:func:`~localsharp.tiling.symmetric.searched_flags`); the
others take their mates' outcomes (:data:`MATE_S` each); with the default layout of copies the
blend renders every image of the searched boxes (:func:`~localsharp.tiling.symmetric.image_boxes`,
in cubes grown by the round window's margin).  ``--symmetry auto`` finds its group only when the
run starts: the plan then counts every box.

The factors of the task arrays were measured with ``tracemalloc`` on a 256³ capsid phantom (the
task peaks of its overall pass, search tasks and blend tiles; 2026-12-07); the estimates are
checked against real runs by ``benchmarks/bench_scale.py --dry-run``.  Nothing is written.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...config import LocalOptions, SharpenOptions
from ...errors import InputFileError
from ...maps.density import DensityMap
from ...maps.store import RunStore
from ...sharpening.local_box import MAX_BOX_SOLVENT
from ...sharpening.solvent import RADIUS_FACTOR
from ...tiling.blend import default_radius
from ...tiling.boxes import BoxGrid
from ...tiling.occupancy import BLOCK, block_counts, possibly_molecule
from ...tiling.plan import LocalPlan
from ...tiling.symmetric import BoxSymmetry, image_boxes, searched_flags, window_margin
from ..overall.dfft import PENCIL_BYTES
from ..overall.driver import ONE_TASK_FACTOR, slab_thickness
from .inputs import Source, geometry_of

#: Maps up to this edge (voxels) get the molecule mask at full resolution, as the run computes it, so that
#: the box counts are the run's; larger maps are block-averaged to at most this edge (approximate counts).
COARSE_EDGE = 512
#: Largest edge of the copy the overall work is timed on.
TIMING_EDGE = 96
#: Boxes timed by each timing process (a seeded random sample of the boxes to be searched).
N_TIMED = 8
#: Task memory in units of the arrays they hold (tracemalloc peaks on a 256³ capsid, 2026-12-07):
#: the one-task overall pass (whole map float32 bytes), a distributed pencil task (its complex64 pencil),
#: a distributed z-slab task (its float32 slab) and the analysis-box search of the distributed pass.
ONE_TASK_BYTES_FACTOR = 8.0
PENCIL_FACTOR = 9.5
SLAB_FACTOR = 7.0
ANALYSIS_BOX_MIB = 150.0
#: A blend tile holds the cores of its boxes (float32), and its region in about five arrays.
TILE_REGION_ARRAYS = 5
#: A search task holds its region in about five float32-sized arrays (data, molecule, copies).
TASK_REGION_ARRAYS = 5
#: The distributed overall pass did the one-task work of a 256³ capsid in 0.51 of the time, in one
#: process (its analysis box capped at 160³): 55 s against 107 s (2026-12-07).
DISTRIBUTED_WORK_RATIO = 0.51
#: Map-sized zarr arrays the distributed overall pass writes and reads (its FFT intermediates,
#: the local variance, the overall map and the mask): counted as I/O.
DISTRIBUTED_IO_MAPS = 12
#: Bytes per analysed box of the records and of the summary, and per box of the centres PDB.
RECORD_BYTES, SUMMARY_BYTES, PDB_BYTES = 650, 700, 81
#: The b_sharpen image compressed to this fraction of its float32 bytes (model-free, 256³ capsid: 0.59).
B_IMAGE_RATIO = 0.6
REPORT_BYTES = 400_000
#: Seconds a LocalCluster of a few workers takes to start (2–4 s measured here; SLURM jobs wait in the queue).
CLUSTER_START_S = 4.0
#: Worker seconds per box that takes its mate's outcome (the mate pass: 1.6 s for 1,452 mates on 2
#: workers at 288³, idle; 16.4 s for 4,144 at 1024³ on a loaded machine; 2026-12-08: 2.2–7.9 ms).
MATE_S = 0.005


@dataclass
class Workers:
    """The workers a run would have: how many (None: not known here) and each one's memory limit (bytes)."""

    n: int | None
    memory_limit: int | None
    where: str


def plan_run(source: Source, resolution: float, *, local: LocalOptions, options: SharpenOptions,
             opened: dict[str, Any] | None, store: Path, workers: Workers,
             halves: tuple[Source, Source] | None = None, symmetry: BoxSymmetry | None = None,
             symmetry_auto: bool = False) -> dict[str, Any]:
    """Everything ``localsharp local --dry-run`` prints, as a JSON-friendly dict (see the module notes).

    ``source`` is the map (or half map 1 when the run sharpens the mean of ``halves``); ``opened``
    the scale-factor inputs (:func:`~.scale_setup.open_scale_inputs`), ``store`` the run store the
    run would use (its coarse counts are used when it has them); ``symmetry`` the group the run is
    given, placed on the map (``symmetry_auto``: ``--symmetry auto``, found only by the run).
    """
    t_start = time.perf_counter()
    scale_mode = opened is not None
    voxel = source.voxel_size_zyx
    shape = tuple(int(n) for n in source.shape)
    n_voxels = int(np.prod(shape, dtype=np.int64))
    map_bytes = 4 * n_voxels
    coarse = _counts(source, halves, resolution, options, store)
    buffer = int(round(RADIUS_FACTOR * resolution / min(source.voxel_size))) if local.soft_mask else 0
    region = coarse["bounds"] if not scale_mode else None
    grid = BoxGrid.build(shape, local.box_size, local.stride, buffer, region)  # type: ignore[arg-type]
    active = possibly_molecule(grid, coarse["counts"], MAX_BOX_SOLVENT)
    chunks = (local.chunk,) * 3
    plan = LocalPlan(grid, local.task_block, active, chunks, (local.chunk * local.tile_chunks,) * 3)  # type: ignore[arg-type]
    radius = local.smoothing_radius or default_radius(grid.nearest_neighbour_distance(voxel), local.stride * min(voxel))
    searched = plan.active if symmetry is None else searched_flags(grid, plan.active, symmetry, local.symmetry_margin)
    tiles, render_factor = _tile_renders(plan, grid, symmetry, searched, local, resolution, voxel)
    active = np.flatnonzero(searched)
    n_processes = workers.n if workers.n and workers.n > 1 and workers.where.startswith("a LocalCluster") else 1
    # a random sample of the boxes to be searched (seeded: the same dry run times the same boxes)
    picked = np.random.default_rng(0).choice(active, min(N_TIMED * n_processes, active.size), replace=False) \
        if active.size else np.array([], dtype=np.int64)
    chosen = [int(i) for i in picked]
    molecules = {i: _molecule(coarse, grid.box(i).outer) for i in chosen}
    small = _small_copy(coarse.pop("coarse"))
    coarse.pop("mask")  # the map-sized arrays go before a worker's base memory is measured
    gc.collect()
    overall_rate = _overall_rate(small)
    if n_processes > 1:  # the workers will share this machine's cores: time as many processes at once
        shares = [chosen[k::n_processes] for k in range(n_processes)]
        timed = _time_in_processes([(source, halves, opened, grid, share, {i: molecules[i] for i in share}, resolution,
                                     options, local, voxel, radius) for share in shares])
    else:
        timed = _time_boxes(source, halves, opened, grid, chosen, molecules, resolution, options, local, voxel, radius)
    one_task = workers.memory_limit is None or ONE_TASK_FACTOR * map_bytes <= workers.memory_limit
    memory = _memory(shape, map_bytes, one_task, grid, plan, tiles, local, timed, buffer)
    disk = _disk(map_bytes, coarse["ratio"], plan, one_task, scale_mode, opened, halves)
    n_searched = int(active.size)
    n_tasks = int(np.unique(plan.block_of(active)).size) if symmetry is not None else plan.n_blocks()
    timing = _time(n_voxels, map_bytes, one_task, plan, tiles, timed, coarse, workers, opened, halves, overall_rate,
                   n_searched, n_tasks, render_factor)
    return {
        "shape_zyx": list(shape), "voxel_size_zyx": list(voxel), "map_bytes": map_bytes,
        "mode": "model_free" if not scale_mode else opened["mode"],  # type: ignore[index]
        "counts_from": coarse["from"], "coarse_factor": coarse["factor"], "solvent_fraction": coarse["solvent"],
        "boxes": {"grid": grid.n_boxes, "searched": n_searched, "skipped_by_mask": grid.n_boxes - plan.n_active,
                  "from_mates": int(plan.n_active) - n_searched},
        "symmetry": None if symmetry is None and not symmetry_auto else
        {"group": "auto" if symmetry is None else symmetry.group.name, "mates": local.symmetry_mates,
         "margin_A": local.symmetry_margin, "renders": int(sum(t.size for t in tiles))},
        "tasks": n_tasks, "tiles": plan.n_tiles, "smoothing_radius": radius,
        "overall_path": "one_task" if one_task else "distributed",
        "workers": {"n": workers.n, "memory_limit": workers.memory_limit, "where": workers.where},
        "memory": memory, "disk": disk, "time": timing, "timed_boxes": timed["n"],
        "dry_run_s": time.perf_counter() - t_start,
    }


def _tile_renders(plan: LocalPlan, grid: BoxGrid, symmetry: BoxSymmetry | None, searched: np.ndarray,
                  local: LocalOptions, resolution: float, voxel: tuple[float, float, float]
                  ) -> tuple[list[np.ndarray], float]:
    """The boxes each blend tile renders (the grid's active boxes touching it, or with the default layout of
    a symmetric run the images of the searched boxes touching it), and the cost of one render relative
    to a grid box's (an image's cube is grown by the round window's margin on each side)."""
    if symmetry is None or local.symmetry_mates != "images":
        return [plan.touching(plan.tile_bounds(t))[0] for t in range(plan.n_tiles)], 1.0
    margin = window_margin(resolution, voxel)
    images = image_boxes(grid, symmetry, np.flatnonzero(searched), margin)
    tiles = [images.touching(plan.tile_bounds(t)) for t in range(plan.n_tiles)]
    edge = local.box_size + 2 * grid.buffer
    return tiles, ((edge + 2 * margin) / edge) ** 3


# ------------------------------------------------------------------ the coarse counts
def _counts(source: Source, halves: tuple[Source, Source] | None, resolution: float, options: SharpenOptions,
            store: Path) -> dict[str, Any]:
    """Coarse molecule counts and bounds: from the run store when it has them, else a low-resolution pass.

    Also measures the read throughput (bytes/s) and the compression of the map's chunks.
    """
    rs = RunStore(store)
    overall = rs.record("overall") if (store / "run.json").exists() else None
    if overall is not None and (store / "molecule_counts").exists():
        bounds = overall.get("molecule_bounds_zyx")
        sample, _ = _sample_chunk(source, halves)
        factor = next(f for f in (1, 2, 4, 8, 16, 32) if max(source.shape) <= TIMING_EDGE * f or f == 32)
        t = time.perf_counter()
        small = _block_mean(source, halves, factor)  # what the overall work is timed on
        read_rate = 4 * float(np.prod(source.shape)) * (2 if halves else 1) / max(1e-6, time.perf_counter() - t)
        return {"from": "the run store", "factor": 1, "counts": rs.counts(), "solvent": overall.get("solvent_fraction"),
                "bounds": tuple(tuple(b) for b in bounds) if bounds else None, "mask": None, "store": rs,
                "read_rate": read_rate, "ratio": _compression(sample), "coarse": small}
    from ...kernels.masks import bounding_box
    from ...sharpening.solvent import estimate_solvent, local_variance

    shape = source.shape
    factor = next(f for f in (1, 2, 4, 8, 16) if max(shape) <= COARSE_EDGE * f or f == 16)
    t = time.perf_counter()
    coarse = _block_mean(source, halves, factor)
    read_rate = 4 * float(np.prod(shape)) * (2 if halves else 1) / max(1e-6, time.perf_counter() - t)
    voxel = tuple(v * factor for v in source.voxel_size_zyx)
    variance = local_variance(coarse, voxel, RADIUS_FACTOR * resolution)
    solvent = estimate_solvent(coarse, voxel, resolution, solvent_content=options.solvent_content,
                               molecular_mass=options.molecular_mass, sequence=options.sequence,
                               copies=options.copies, variance=variance)
    threshold = float(np.quantile(variance, min(max(solvent.solvent_fraction, 0.0), 1.0)))
    mask = variance > threshold
    counts = _fine_counts(mask, factor, shape)
    found = bounding_box(mask)
    bounds = None if found is None else tuple((a * factor, min(n, b * factor)) for (a, b), n in zip(found, shape))
    sample, _ = _sample_chunk(source, halves)
    return {"from": f"a low-resolution pass (the map averaged in {factor}³ blocks)" if factor > 1
            else "the molecule mask at full resolution, as the run makes it", "factor": factor, "counts": counts,
            "solvent": solvent.solvent_fraction, "bounds": bounds, "mask": mask, "read_rate": read_rate,
            "ratio": _compression(sample), "coarse": coarse}


def _read(source: Source, halves: tuple[Source, Source] | None, bounds: Any) -> np.ndarray:
    """The map's voxels of ``bounds`` (the mean of the half maps when the run sharpens it)."""
    if halves is None:
        return source.read(bounds)
    return (halves[0].read(bounds) + halves[1].read(bounds)) * np.float32(0.5)


def _block_mean(source: Source, halves: tuple[Source, Source] | None, factor: int) -> np.ndarray:
    """The map averaged over ``factor³`` blocks (edge blocks padded by repeating the last plane), read in slabs."""
    nz, ny, nx = source.shape
    step = factor * max(1, (64 * 2**20) // max(1, ny * nx * 4 * factor))
    out = []
    bad = 0
    for z in range(0, nz, step):
        slab = _read(source, halves, ((z, min(nz, z + step)), (0, ny), (0, nx)))
        bad += int(np.count_nonzero(~np.isfinite(slab)))
        pad = [(0, (-n) % factor) for n in slab.shape]
        if any(p for _, p in pad):
            slab = np.pad(slab, pad, mode="edge")
        a, b, c = (n // factor for n in slab.shape)
        out.append(slab.reshape(a, factor, b, factor, c, factor).mean(axis=(1, 3, 5), dtype=np.float32))
    if bad:
        raise InputFileError(getattr(source, "path", "map"), f"map holds {bad} NaN or infinite values")
    return np.ascontiguousarray(np.concatenate(out, axis=0))


def _fine_counts(mask: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """Molecule voxels per ``BLOCK³`` block of the full map, from a mask of ``factor³`` blocks."""
    if factor <= BLOCK:
        counts = block_counts(mask, BLOCK // factor).astype(np.int64) * factor**3
    else:  # each coarse voxel spans several count blocks
        per = factor // BLOCK
        counts = np.repeat(np.repeat(np.repeat(mask.astype(np.int64), per, 0), per, 1), per, 2) * BLOCK**3
    wanted = tuple(math.ceil(n / BLOCK) for n in shape)
    counts = counts[tuple(slice(0, w) for w in wanted)]
    return np.minimum(counts, BLOCK**3).astype(np.uint16)


def _sample_chunk(source: Source, halves: tuple[Source, Source] | None) -> tuple[np.ndarray, float]:
    """A 64³ region from the middle of the map (for the codec's compression), and its read rate."""
    bounds = tuple((max(0, n // 2 - 32), min(n, n // 2 + 32)) for n in source.shape)
    t = time.perf_counter()
    values = _read(source, halves, bounds)
    return values, values.nbytes / max(1e-6, time.perf_counter() - t)


def _compression(sample: np.ndarray) -> float:
    """Compressed / raw bytes of ``sample`` with the run store's codec (zstd level 0, zarr's default)."""
    from numcodecs import Zstd

    raw = np.ascontiguousarray(sample, dtype=np.float32).tobytes()
    return min(1.0, len(Zstd(level=0).encode(raw)) / max(1, len(raw)))


# --------------------------------------------------------------------- timed boxes
def _time_boxes(source: Source, halves: tuple[Source, Source] | None, opened: dict[str, Any] | None, grid: BoxGrid,
                chosen: list[int], molecules: dict[int, np.ndarray], resolution: float, options: SharpenOptions,
                local: LocalOptions, voxel: tuple[float, float, float], radius: float,
                barrier: Any = None) -> dict[str, Any]:
    """Search (and render) the ``chosen`` boxes the run would search, in this process on one thread.

    The first box is not timed (it compiles the numba kernels, as on a fresh worker); ``barrier``
    (a multiprocessing barrier) holds the timed boxes back until every timing process is ready.
    """
    from ...sharpening.local_box import BoxOutcome, render_box
    from ...sharpening.shrinkage import applied_row
    from ...tiling.blend import blend_into
    from .box_inputs import ScaleInputs, read_region
    from .tasks import BoxJob, _atoms, _search

    import distributed  # noqa: F401  (a worker's base memory includes it)
    import zarr  # noqa: F401

    scale = None
    if opened is not None:
        frame = geometry_of(source)
        if opened["mode"] == "half_map":
            reader = _MeanReader(halves) if halves is not None else source
            scale = ScaleInputs("half_map", reader, halves=opened["halves"], frame=frame)
        else:
            scale = ScaleInputs("model", source, model=opened["model"] if isinstance(opened["model"], str) else None,
                                frame=frame, mask_radius=opened["mask_radius"], model_rms=opened["model_rms"])
            if scale.model is None:  # an in-memory structure: not timed (the box count is still exact)
                scale = None
    job = BoxJob("", resolution, voxel, options.search, local.soft_mask, options.d_min_ratio, radius,
                 discard_if_worse=options.discard_if_worse, grid=grid, shrink=local.shrink, scale=scale)
    searches, renders, blends, peaks = [], [], [], []
    warm = None
    with _one_thread():
        for k, index in enumerate([chosen[0]] + list(chosen) if len(chosen) else []):
            box = grid.box(int(index))
            arrays = read_region(None, scale, box.outer) if scale is not None else {
                "data": _read(source, halves, box.outer)}  # type: ignore[arg-type]
            molecule = molecules[int(index)]
            if scale is None and k > 0:  # the run searches the overall-sharpened map: time the box sharpened so
                arrays = {"data": _sharpened_like_the_overall(job, box, arrays["data"], molecule)}
            if k == 0:  # the memory of a box's work, measured on the untimed first box
                tracemalloc.start()
            t = time.perf_counter()
            outcome_row = {"index": box.index, **_search(job, box, arrays, molecule, _atoms(job, box.outer)).to_dict()}
            t_search = time.perf_counter() - t
            row = applied_row(outcome_row, local.shrink and scale is None)
            outcome = BoxOutcome.from_dict(row)
            t = time.perf_counter()
            values = render_box(arrays["data"], voxel, resolution, outcome, soft_edge=local.soft_mask,
                                d_min_ratio=options.d_min_ratio)
            t_render = time.perf_counter() - t
            t = time.perf_counter()
            blend_into(box.core, np.zeros(tuple(b - a for a, b in box.core), np.float32),
                       [(box, values[box.core_in_outer()])], voxel, radius)
            t_blend = time.perf_counter() - t
            if k == 0:  # the first box compiles the numba kernels (once per worker)
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
                warm = t_search
                if barrier is not None:  # the timed boxes of every worker process run at the same time
                    barrier.wait(timeout=600)
                continue
            searches.append(t_search)  # the mean is what the box pass adds up
            renders.append(t_render if outcome.sharpening is not None and outcome.sharpening.method != "no_sharpening"
                           else 0.0)
            blends.append(t_blend)
    return {"n": len(searches), "search_s": float(np.mean(searches)) if searches else 0.0,
            "render_s": float(np.mean(renders)) if renders else 0.0, "blend_s": float(np.mean(blends)) if blends else 0.0,
            "first_s": warm or 0.0, "peak_bytes": max(peaks) if peaks else 0, "base_bytes": _anonymous_bytes()}


def _sharpened_like_the_overall(job: Any, box: Any, data: np.ndarray, molecule: np.ndarray) -> np.ndarray:
    """The box as the overall-sharpened map holds it, approximately: sharpened by its own search's pick
    (the run's boxes are cut from that map, whose extra detail makes their searches slower)."""
    from ...sharpening.local_box import BoxOutcome, render_box
    from .tasks import _search

    outcome = _search(job, box, {"data": data}, molecule)
    if outcome.sharpening is None or outcome.sharpening.method == "no_sharpening":
        return data
    sharpening = outcome.sharpening.replace(b_blur_hires=200.0)  # the overall pass blurs beyond the resolution
    return render_box(data, job.voxel_zyx, job.resolution, BoxOutcome.from_dict({**outcome.to_dict(),
                      "sharpening": sharpening.to_dict()}), soft_edge=job.soft_edge, d_min_ratio=job.d_min_ratio)


def _time_boxes_in_process(arguments: tuple, barrier: Any) -> dict[str, Any]:
    return _time_boxes(*arguments, barrier=barrier)


def _time_in_processes(arguments: list[tuple]) -> dict[str, Any]:
    """:func:`_time_boxes` of each ``arguments`` in fresh single-threaded processes at once, as the run's
    LocalCluster workers will search boxes side by side on this machine's cores (and beside whatever
    else runs on it)."""
    n = len(arguments)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ..cluster.worker_setup import THREAD_VARIABLES

    context = multiprocessing.get_context("spawn")
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})  # inherited by the processes, as by the workers
    try:
        with context.Manager() as manager, ProcessPoolExecutor(n, mp_context=context) as pool:
            barrier = manager.Barrier(n)
            results = list(pool.map(_time_boxes_in_process, arguments, [barrier] * n))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    weights = [max(1, r["n"]) for r in results]
    return {"n": sum(r["n"] for r in results),
            "search_s": float(np.average([r["search_s"] for r in results], weights=weights)),
            "render_s": float(np.average([r["render_s"] for r in results], weights=weights)),
            "blend_s": float(np.average([r["blend_s"] for r in results], weights=weights)),
            "first_s": max(r["first_s"] for r in results), "peak_bytes": max(r["peak_bytes"] for r in results),
            "base_bytes": max(r["base_bytes"] for r in results), "processes": n}


class _MeanReader:
    """Reads the mean of two half maps by region (what the run's map is when it is given none)."""

    def __init__(self, halves: tuple[Source, Source]) -> None:
        self.halves = halves

    def read(self, bounds: Any) -> np.ndarray:
        return _read(self.halves[0], self.halves, bounds)


def _molecule(coarse: dict[str, Any], bounds: Any) -> np.ndarray:
    """The molecule mask on ``bounds`` from the coarse mask (all molecule when there is none)."""
    shape = tuple(b - a for a, b in bounds)
    mask, f = coarse.get("mask"), coarse.get("factor", 1)
    if coarse.get("store") is not None:
        return np.asarray(coarse["store"].read("molecule", bounds), dtype=np.uint8)
    if mask is None:
        return np.ones(shape, dtype=np.uint8)
    idx = [np.minimum(np.arange(a, b) // f, n - 1) for (a, b), n in zip(bounds, mask.shape)]
    return mask[np.ix_(*idx)].astype(np.uint8)


def _anonymous_bytes() -> int:
    """This process's anonymous resident memory (``RssAnon`` of /proc/self/status), else its peak RSS."""
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(r"RssAnon:\s+(\d+)\s+kB", text).group(1)) * 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ---------------------------------------------------------------------- estimates
def _memory(shape: tuple[int, ...], map_bytes: int, one_task: bool, grid: BoxGrid, plan: LocalPlan,
            tiles: list[np.ndarray], local: LocalOptions, timed: dict[str, Any], buffer: int) -> dict[str, Any]:
    """Peak memory of a worker: its base plus the largest task (see the module notes)."""
    nz, ny, nx = shape
    if one_task:
        overall = ("the overall pass in one task (the whole map)", ONE_TASK_BYTES_FACTOR * map_bytes)
    else:
        t = slab_thickness((local.chunk,) * 3)
        nh = nx // 2 + 1
        rows = max(1, min(t, PENCIL_BYTES // (nz * nh * 8)))
        pencil, slab = PENCIL_FACTOR * nz * rows * nh * 8, SLAB_FACTOR * min(t, nz) * ny * nx * 4
        overall = max((f"the overall pass's y-pencils ({rows} rows)", pencil),
                      (f"the overall pass's z-slabs ({min(t, nz)} planes)", slab),
                      ("the overall pass's analysis-box search", ANALYSIS_BOX_MIB * 2**20), key=lambda x: x[1])
    span = [min(n, (local.task_block - 1) * local.stride + local.box_size + 2 * buffer) for n in shape]
    search = ("a search task", TASK_REGION_ARRAYS * 4 * float(np.prod(span)) + timed["peak_bytes"])
    core = 4 * local.box_size**3
    most = max((t.size for t in tiles), default=0)
    tile = [min(n, local.chunk * local.tile_chunks + 2 * (local.box_size + buffer)) for n in shape]
    blend = ("a blend tile", most * core + TILE_REGION_ARRAYS * 4 * float(np.prod(tile)))
    largest = max((overall, search, blend), key=lambda x: x[1])
    base = timed["base_bytes"]
    return {"worker_bytes": int(base + largest[1]), "base_bytes": int(base), "largest_task": largest[0],
            "largest_task_bytes": int(largest[1]), "tasks_bytes": {"overall": int(overall[1]), "search": int(search[1]),
                                                                   "blend": int(blend[1])}}


def _disk(map_bytes: int, ratio: float, plan: LocalPlan, one_task: bool, scale_mode: bool,
          opened: dict[str, Any] | None, halves: tuple[Source, Source] | None) -> dict[str, Any]:
    """Bytes of the run store and the outputs (see the module notes)."""
    n_boxes, n_active = plan.grid.n_boxes, int(plan.n_active)
    half_map = opened is not None and opened.get("mode") == "half_map"
    float_maps = 2 + (1 if half_map else 0) + (1 if halves is not None else 0)  # overall, output (+ resolution, mean)
    store = (ratio * map_bytes * float_maps + B_IMAGE_RATIO * map_bytes + 0.04 * map_bytes / 4
             + RECORD_BYTES * n_active)
    outputs = map_bytes * (2 + (1 if half_map else 0)) + SUMMARY_BYTES * n_boxes + PDB_BYTES * n_active + REPORT_BYTES
    scratch = 0 if one_task else 4 * map_bytes
    return {"store_bytes": int(store), "outputs_bytes": int(outputs), "total_bytes": int(store + outputs),
            "scratch_bytes": int(scratch), "compression": ratio}


def _time(n_voxels: int, map_bytes: int, one_task: bool, plan: LocalPlan, tiles: list[np.ndarray],
          timed: dict[str, Any], coarse: dict[str, Any], workers: Workers, opened: dict[str, Any] | None,
          halves: tuple[Source, Source] | None, overall_rate: float, n_searched: int, n_tasks: int,
          render_factor: float = 1.0) -> dict[str, Any]:
    """Seconds of each pass on ``workers`` (see the module notes); ``n_searched`` boxes are searched in
    ``n_tasks`` tasks, the other active boxes take their mates' outcomes."""
    w = workers.n or 1
    io = max(coarse["read_rate"], 50e6)
    overall_work = overall_rate * n_voxels
    if one_task:
        overall = overall_work
    else:
        overall = (DISTRIBUTED_WORK_RATIO * overall_work + DISTRIBUTED_IO_MAPS * map_bytes / io) / w
    checks = map_bytes * (2 if halves is not None else 1) / io / w
    n_tasks = max(1, n_tasks)
    boxes = n_searched * timed["search_s"] / min(w, n_tasks) + timed["first_s"]  # no more busy workers than tasks
    boxes += MATE_S * (int(plan.n_active) - n_searched) / w
    renders = sum(t.size for t in tiles)
    blend = (renders * (render_factor * timed["render_s"] + timed["blend_s"]) + 3 * map_bytes / io) \
        / min(w, max(1, plan.n_tiles))
    n_maps = 2 + (1 if opened is not None and opened.get("mode") == "half_map" else 0)
    write = n_maps * 2 * map_bytes / io
    start = CLUSTER_START_S if workers.where.startswith("a LocalCluster") else 0.0
    total = start + checks + overall + boxes + blend + write
    return {"checks_s": checks, "overall_s": overall, "boxes_s": boxes, "blend_s": blend, "write_s": write,
            "total_s": total, "box_s": timed["search_s"], "workers": workers.n, "read_rate": io,
            "load_average": os.getloadavg()[0], "cores": os.cpu_count()}


def _small_copy(data: np.ndarray | None) -> np.ndarray | None:
    """``data`` block-averaged to at most :data:`TIMING_EDGE` voxels an edge (what the overall work is timed on)."""
    if data is None:
        return None
    factor = 1
    while max(data.shape) / factor > TIMING_EDGE:
        factor *= 2
    if factor == 1:
        return np.ascontiguousarray(data)
    padded = np.pad(data, [(0, (-n) % factor) for n in data.shape], mode="edge")
    a, b, c = (n // factor for n in padded.shape)
    return padded.reshape(a, factor, b, factor, c, factor).mean(axis=(1, 3, 5), dtype=np.float32)


def _overall_rate(small: np.ndarray | None) -> float:
    """Seconds per voxel of the one-task overall work (the sharpening search and the molecule mask), timed on
    ``small`` (1 Å voxels, resolution 3 Å: the work per voxel, not the map's own Å); 0 without a copy."""
    from ...modes.common import warnings_returned
    from ...modes.model_free import global_sharpen
    from ..overall.driver import molecule_mask

    if small is None:
        return 0.0
    density = DensityMap(np.ascontiguousarray(small), (1.0, 1.0, 1.0))
    t = time.perf_counter()
    try:
        with warnings_returned():
            result = global_sharpen(density, 3.0)
        molecule_mask(density, 3.0, result.solvent.solvent_fraction)
    except Exception:  # noqa: BLE001 - a copy too small to sharpen: no estimate rather than no dry run
        return 0.0
    return (time.perf_counter() - t) / small.size


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """For the block: FFTs, numba and BLAS on one thread, as on a worker (restored after)."""
    from threadpoolctl import threadpool_limits

    from ...kernels import fourier

    fft_workers = fourier.FFT_WORKERS
    try:
        import numba

        threads = numba.get_num_threads()
    except ImportError:  # pragma: no cover - numba is a dependency
        numba, threads = None, 0
    fourier.FFT_WORKERS = 1
    if numba is not None:
        numba.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        fourier.FFT_WORKERS = fft_workers
        if numba is not None:
            numba.set_num_threads(threads)


__all__ = ["Workers", "plan_run"]
