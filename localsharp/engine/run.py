"""Driver of local sharpening (ALGORITHM.md §8): overall pass, box searches, tile-wise blending.

``local_sharpen(map, resolution, client=client)`` runs

0. the input checks: the header in the client; the voxel values (NaN/Inf, constant) and the
   input's checksum chunk by chunk in tasks, before anything is written;
1. the overall (global) sharpening → ``M0``, its molecule mask and the coarse molecule counts,
   stored in the run's zarr store;
2. the plan: the box grid over the molecule, arithmetic on the regular grid; boxes the coarse
   counts prove to be solvent never become tasks;
3. the box pass: :func:`~localsharp.engine.tasks.score_block` on every block of boxes (each
   task records its boxes' outcomes itself);
4. the blend pass: :func:`~localsharp.engine.tasks.render_tile` re-renders and blends the boxes
   touching each output tile.

Tasks go to the Dask ``client`` when one is given, else run in this process — the same
functions either way, so the results are identical, bit for bit, whatever the number of
workers, ``task_block`` or ``tile_chunks``.  A bounded number of tasks is in flight and each
result is released when it arrives, so the client holds no more than a few small records per
worker, and never the map.  Everything a task finishes is on disk, so an interrupted run
(Ctrl-C, or the client or a worker killed) resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import api
from ..config import LocalOptions, SharpenOptions
from ..errors import ConfigError, OutputError
from ..maps.density import DensityMap
from ..maps.store import RunStore
from ..report.summary import jsonable
from ..sharpening.local_box import MAX_BOX_SOLVENT, BoxOutcome
from ..sharpening.shrinkage import annotated
from ..sharpening.solvent import RADIUS_FACTOR
from ..tiling.blend import radius_from_spacing
from ..tiling.boxes import Box, BoxGrid
from ..tiling.occupancy import possibly_molecule
from ..tiling.plan import LocalPlan
from .inputs import MemorySource, Source, geometry_of, header_of, open_input, template_of
from . import worker_setup
from .submit import run_bounded
from .overall import overall_pass
from .tasks import BoxJob, check_slab, failed_row, render_tile, run_box, save_plan, score_block, score_one

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
#: The output image inside the store, unless the caller names another place.
OUTPUT_IMAGE = "output.ome.zarr"
#: The blended b_sharpen applied by the boxes (relative to the overall sharpening), inside the store.
B_SHARPEN_IMAGE = "b_sharpen.ome.zarr"
#: Bytes of input each value-check task reads.
CHECK_SLAB_BYTES = 64 * 2**20


@dataclass
class LocalMap:
    """The locally sharpened map, kept on disk as a zarr array (lazy: nothing is read until asked).

    Attributes
    ----------
    path : pathlib.Path
        The zarr array.
    shape : tuple of int
        (z, y, x).
    """

    path: Path
    shape: tuple[int, int, int]
    _source: Source = field(repr=False)

    @property
    def array(self) -> Any:
        """The zarr array (read-only)."""
        import zarr

        return zarr.open_array(str(self.path), mode="r")

    def to_dask(self) -> Any:
        """A dask array over the zarr chunks."""
        import dask.array as da

        return da.from_zarr(self.array)

    def compute(self) -> DensityMap:
        """The whole map in memory, with the input's header geometry (for maps that fit in memory)."""
        return self._source.like(np.asarray(self.array[...], dtype=np.float32))

    def geometry(self) -> dict[str, Any]:
        """The input's header geometry (JSON-friendly), read from no voxel."""
        return geometry_of(self._source)


@dataclass
class LocalResult:
    """Outcome of :func:`local_sharpen`.

    Attributes
    ----------
    map : LocalMap
        The locally sharpened map (input geometry), lazily on disk.
    overall : dict
        Summary of the overall sharpening the local work started from.
    radius : float
        Smoothing radius of the blending weights (Å).
    store : pathlib.Path or None
        The run store (None when a temporary one was used; it lives as long as ``map``).
    counts : dict
        Boxes in the grid, searched (tasks) and skipped by the coarse mask; boxes by outcome.
    """

    map: LocalMap
    overall: dict[str, Any]
    radius: float
    store: Path | None
    options: LocalOptions
    counts: dict[str, Any]
    mean_b_sharpen: float | None
    timings_s: dict[str, float] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)
    _rows: Callable[[], Iterator[dict[str, Any]]] | None = field(default=None, repr=False)
    #: b_sharpen applied by the boxes (Å², relative to the overall sharpening), blended like ``map``
    b_sharpen_map: LocalMap | None = None

    def iter_boxes(self) -> Iterator[dict[str, Any]]:
        """One row per box (index, centre in Å, core bounds, outcome), read from the store's records."""
        return self._rows() if self._rows is not None else iter(())

    @property
    def boxes(self) -> list[dict[str, Any]]:
        """All rows of :meth:`iter_boxes`, sorted by box index (small runs; large ones iterate)."""
        return sorted(self.iter_boxes(), key=lambda row: row["index"])

    def summary(self, *, with_boxes: bool = True) -> dict[str, Any]:
        """JSON-friendly summary: counts, mean B applied, timings and (optionally) the per-box table."""
        out = {"mode": "local", "n_boxes": self.counts["grid"], "boxes_by_status": self.counts["by_status"],
               "boxes_searched": self.counts["searched"], "boxes_skipped_by_mask": self.counts["skipped_by_mask"],
               "failed_boxes": self.counts.get("failed", []),
               "workers_over_time_s_n": self.counts.get("workers_over_time", []),
               "mean_b_sharpen_sharpened_boxes": self.mean_b_sharpen, "smoothing_radius": self.radius,
               "local_options": self.options.to_dict(), "overall": self.overall, "timings_s": self.timings_s,
               "resumed": self.resumed, "store": None if self.store is None else str(self.store)}
        if with_boxes:
            out["boxes"] = self.boxes
        return out


def local_sharpen(map_or_path: DensityMap | str | Path, resolution: float, *, client: Any = None,
                  store: str | Path | None = None, local: LocalOptions | None = None,
                  options: SharpenOptions | None = None, resume: bool = False, overwrite: bool = False,
                  progress: Progress | None = None, output: str | Path | None = None) -> LocalResult:
    """Sharpen a map locally: overlapping boxes each get their own sharpening, blended smoothly.

    Parameters
    ----------
    map_or_path : DensityMap, str or path-like
        The map (MRC/CCP4, zarr v3 array or OME-Zarr image) or an in-memory :class:`DensityMap`.
        A file is read by region in the tasks; the client reads only its header.
    resolution : float
        Nominal resolution (Å); positional or keyword, as in every sharpening function.
    client : distributed.Client, optional
        Where the tasks run; ``None`` runs them in this process (keyword only).
    store : path, optional
        Directory of the run's zarr store (kept, so the run can be resumed; made absolute, since
        workers may run in another directory); default a temporary directory that lives as long
        as the returned map.
    local : LocalOptions, optional
        Box size, stride, smoothing radius, chunking, task grouping.
    options : SharpenOptions, optional
        Options of the overall sharpening and of every box's search.
    resume : bool
        Continue the run recorded in ``store`` (it must be the same input and options).
    overwrite : bool
        Replace an existing store.
    progress : callable, optional
        ``progress(stage, done, total)`` after every completed task (stages ``"boxes"``, ``"tiles"``).
    output : path, optional
        The OME-Zarr image (OME-NGFF 0.5, zarr v3) the blend tasks write the map into;
        default ``output.ome.zarr`` inside the store.

    Returns
    -------
    LocalResult
        Its ``map`` is on disk (``.array``, ``.to_dask()``, ``.compute()``).
    """
    local = local or LocalOptions()
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float, np.number)):
        raise ConfigError(f"resolution must be a number of Å, got {type(resolution).__name__}: "
                          "call local_sharpen(map, resolution, client=client)")
    source, opts = prepare_input(map_or_path, resolution, options)
    if client is not None:
        worker_setup.register(client)
    if store is None:
        tmp = Path(tempfile.mkdtemp(prefix="localsharp-"))
        try:
            result = _run(source, client, tmp / "run.zarr", local, opts, False, True, progress, None)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        weakref.finalize(result.map, shutil.rmtree, str(tmp), True)
        result.store = None
        return result
    output = None if output is None else Path(output).resolve()
    return _run(source, client, Path(store).resolve(), local, opts, resume, overwrite, progress, output)


def inspect_box(map_or_path: DensityMap | str | Path, index: int, *, resolution: float, store: str | Path,
                local: LocalOptions | None = None, options: SharpenOptions | None = None) -> dict[str, Any]:
    """Run one box by hand, in this process, and return its geometry, outcome and trial table.

    Uses (or makes) the run store at ``store`` for the overall map, exactly as
    :func:`local_sharpen` with the same arguments would, so the box is the one
    that run analyses.  Nothing else is written.
    """
    local = local or LocalOptions()
    source, opts = prepare_input(map_or_path, resolution, options)
    path = Path(store).resolve()
    run = _run_description(source, local, opts)
    if path.exists():
        store_ = RunStore.open(path, run)
    else:
        _check_values(None, source)
        store_ = RunStore.create(path, run, source.shape, (local.chunk,) * 3)
    overall = store_.record("overall") or _overall_pass(None, source, store_, opts)
    plan, job = _plan(source, store_, overall, local, opts)
    if not 0 <= index < plan.grid.n_boxes:
        raise ConfigError(f"box {index} does not exist: this run has boxes 0…{plan.grid.n_boxes - 1}")
    box = plan.grid.box(index)
    outcome, _, result = run_box(job, store_, box)
    row = _box_row(box, outcome.to_dict(), geometry_of(source))
    row["outer_zyx"] = [list(b) for b in box.outer]
    row["trials"] = result.table() if result is not None else []
    return row


def prepare_input(map_or_path: DensityMap | str | Path, resolution: float,
             options: SharpenOptions | None) -> tuple[Source, SharpenOptions]:
    """Open the input (header only) and check it and the options, before anything is written or started.

    Returns the source (pass it on to :func:`local_sharpen`) and the options.
    Raises :class:`~localsharp.errors.InputFileError` / :class:`~localsharp.errors.ConfigError`.
    """
    source = open_input(map_or_path)
    name = str(map_or_path) if not isinstance(map_or_path, DensityMap) else "map"
    header = header_of(source)
    api.check_resolution(header, resolution, name)  # type: ignore[arg-type]
    opts = options or SharpenOptions(resolution=resolution)
    if opts.resolution != resolution:
        opts = opts.replace(resolution=resolution)
    api.check_limitations(header, name, opts)  # type: ignore[arg-type]
    return source, opts


def _open_store(source: Source, client: Any, path: Path, local: LocalOptions, opts: SharpenOptions,
                resume: bool, overwrite: bool, progress: Progress | None = None) -> RunStore:
    """The run's store: the recorded run (``resume``), or a new one after the value checks pass."""
    run = _run_description(source, local, opts)
    if resume:
        if not path.exists():
            raise OutputError(f"{path}: there is no run to resume here; run without --resume to start one")
        return RunStore.open(path, run)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: a run store already exists; resume it with --resume, "
                          "or replace it with --overwrite")
    checksum = _check_values(client, source, progress)
    store = RunStore.create(path, run, source.shape, (local.chunk,) * 3, overwrite=overwrite)
    if checksum is not None:
        store.write_record("input", {"voxels_sha256": checksum})
    return store


def _run(source: Source, client: Any, path: Path, local: LocalOptions, opts: SharpenOptions, resume: bool,
         overwrite: bool, progress: Progress | None, output: Path | None) -> LocalResult:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    store = _open_store(source, client, path, local, opts, resume, overwrite, progress)
    output = output or store.path / OUTPUT_IMAGE
    _ensure_output(store, source, output, local)
    timings["checks"] = time.perf_counter() - t

    t = time.perf_counter()
    overall = store.record("overall")
    resumed = {"overall": int(overall is not None)}
    if overall is None:
        _report(progress, "overall", 0, 1)
        overall = _overall_pass(client, source, store, opts)
        _report(progress, "overall", 1, 1)
        for warning in overall.get("warnings", []):  # said on a worker: repeated here, where the user looks
            _note(progress, f"warning: {warning}")
    timings["overall"] = time.perf_counter() - t

    t = time.perf_counter()
    plan, job = _plan(source, store, overall, local, opts)
    _note(progress, f"{plan.grid.n_boxes} boxes in the grid, {plan.n_active} may hold molecule "
                    f"({plan.grid.n_boxes - plan.n_active} skipped by the coarse mask), smoothing radius "
                    f"{job.radius:.0f} Å; overall sharpening {overall['method']} b_sharpen "
                    f"{overall['b_sharpen']:.1f} Å² ({overall.get('path', 'one_task').replace('_', ' ')})")
    job = dataclasses.replace(job, output=str(output / "0"), b_output=str(store.path / B_SHARPEN_IMAGE / "0"))
    timings["plan"] = time.perf_counter() - t

    workers = WorkerLog(client)
    workers.sample(force=True)
    t = time.perf_counter()
    _box_pass(client, job, store, plan, progress, resumed, workers)
    timings["boxes"] = time.perf_counter() - t
    t = time.perf_counter()
    _blend_pass(client, job, store, plan, progress, resumed, workers)
    timings["blend"] = time.perf_counter() - t
    workers.sample(force=True)

    t = time.perf_counter()
    geometry = geometry_of(source)
    failed: list[dict[str, Any]] = []
    by_status, mean_b = _tally(_rows(store, plan, geometry, local.shrink), failed)
    counts = {"grid": plan.grid.n_boxes, "searched": plan.n_active,
              "skipped_by_mask": plan.grid.n_boxes - plan.n_active, "by_status": by_status, "failed": failed}
    for row in failed:
        log.warning("local: box %d (centre %s Å) failed: %s", row["index"], row["centre_A"], row["reason"])
    timings["tally"] = time.perf_counter() - t
    result_map = LocalMap(output / "0", source.shape, source)
    counts["workers_over_time"] = workers.samples
    return LocalResult(result_map, overall, job.radius, store.path, local, counts, mean_b, timings, resumed,
                       lambda: _rows(store, plan, geometry, local.shrink),
                       LocalMap(store.path / B_SHARPEN_IMAGE / "0", source.shape, source))


def _ensure_output(store: RunStore, source: Source, output: Path, local: LocalOptions) -> None:
    """Create the output image unless the recorded tiles are in it; an image that is gone is made
    again and its tiles rendered again."""
    b_image = store.path / B_SHARPEN_IMAGE
    if (output / "0").exists() and (b_image / "0").exists() and store.done_tiles():
        return
    from ..maps.omezarr import create_image

    store.forget_tiles()
    create_image(output, template_of(source), (local.chunk,) * 3, overwrite=True)
    create_image(b_image, template_of(source), (local.chunk,) * 3, overwrite=True)


# ---------------------------------------------------------------- passes
def _check_values(client: Any, source: Source, progress: Progress | None = None) -> str | None:
    """NaN/Inf and constant-map checks of a file's voxels, slab by slab in tasks; returns their checksum.

    An in-memory map was checked when it was made (None is returned).  Raises
    :class:`~localsharp.errors.InputFileError` naming the file.
    """
    if isinstance(source, MemorySource):
        return None
    from ..maps.checks import combine_reports

    nz, ny, nx = source.shape
    step = max(1, CHECK_SLAB_BYTES // max(1, ny * nx * 4))
    slabs = [((z, min(nz, z + step)), (0, ny), (0, nx)) for z in range(0, nz, step)]
    reports: dict[int, dict[str, Any]] = {}
    _report(progress, "checks", 0, len(slabs))

    def done(result: tuple[int, dict[str, Any]]) -> None:
        reports[result[0]] = result[1]
        _report(progress, "checks", len(reports), len(slabs))

    run_bounded(client, check_slab, [(source, i, slab) for i, slab in enumerate(slabs)], done)
    return combine_reports(source.path, [reports[i] for i in range(len(slabs))])


def _overall_pass(client: Any, source: Source, store: RunStore, opts: SharpenOptions) -> dict[str, Any]:
    """Overall sharpening of the whole map (§8 item 1), its molecule mask and coarse counts; recorded in the store.

    One task when the map fits a worker, else distributed over slabs and pencils
    (:func:`~localsharp.engine.overall.overall_pass`).
    """
    argument = source.density if isinstance(source, MemorySource) else source.path
    overall = overall_pass(client, argument, str(store.path), opts)
    store.write_record("overall", overall)
    return overall


def _plan(source: Source, store: RunStore, overall: dict[str, Any], local: LocalOptions,
          opts: SharpenOptions) -> tuple[LocalPlan, BoxJob]:
    """The box grid over the molecule, the boxes that may hold molecule, and the job every task shares."""
    voxel = source.voxel_size_zyx
    buffer = int(round(RADIUS_FACTOR * opts.resolution / min(source.voxel_size))) if local.soft_mask else 0
    region = overall.get("molecule_bounds_zyx")
    region = tuple(tuple(b) for b in region) if region else None
    grid = BoxGrid.build(source.shape, local.box_size, local.stride, buffer, region)  # type: ignore[arg-type]
    active = possibly_molecule(grid, store.counts(), MAX_BOX_SOLVENT)
    chunks = (local.chunk,) * 3
    plan = LocalPlan(grid, local.task_block, active, chunks, (local.chunk * local.tile_chunks,) * 3)  # type: ignore[arg-type]
    save_plan(store, plan)
    radius = local.smoothing_radius or radius_from_spacing(grid.nearest_neighbour_distance(voxel))
    job = BoxJob(str(store.path), opts.resolution, voxel, opts.search, local.soft_mask, opts.d_min_ratio, radius,
                 discard_if_worse=opts.discard_if_worse, grid=grid, block=plan.block, chunks=plan.chunks,
                 tile=plan.tile, shrink=local.shrink)
    log.info("local: %d boxes of %d voxels (stride %d, buffer %d), %d may hold molecule; smoothing radius %.1f Å",
             grid.n_boxes, local.box_size, local.stride, buffer, plan.n_active, radius)
    return plan, job


def _box_pass(client: Any, job: BoxJob, store: RunStore, plan: LocalPlan, progress: Progress | None,
              resumed: dict[str, int], workers: WorkerLog | None = None) -> None:
    done = store.done_batches()
    boxes_done = sum(len(indices) for block, indices in plan.blocks() if block in done)
    resumed["boxes"] = boxes_done
    counter = _Counter("boxes", boxes_done, plan.n_active, progress, weight=lambda result: result["n"],
                       workers=workers)
    _report(progress, "boxes", boxes_done, plan.n_active)
    calls = ((job, block, indices) for block, indices in plan.blocks() if block not in done)
    run_bounded(client, score_block, calls, counter, on_error=lambda args, exc: _isolate(client, store, args, exc))


def _isolate(client: Any, store: RunStore, args: tuple, error: BaseException) -> dict[str, Any]:
    """A block task that failed (e.g. its worker died on it every time): search its boxes one by one,
    mark the boxes that fail on their own, and record the block from here."""
    job, block, indices = args
    log.warning("local: search task %d failed (%s: %s); searching its %d boxes one by one", block,
                type(error).__name__, error, len(indices))
    rows = []
    for index in indices:
        try:
            row = score_one(job, int(index)) if client is None else \
                client.submit(score_one, job, int(index), pure=False, retries=0).result()
        except Exception as exc:  # noqa: BLE001 - this box alone fails: it is marked, the run goes on
            row = failed_row(int(index), exc)
        rows.append(row)
    store.write_batch(block, rows)
    return {"block": block, "n": len(rows), "by_status": {}, "host": None, "seconds": None}


def _blend_pass(client: Any, job: BoxJob, store: RunStore, plan: LocalPlan, progress: Progress | None,
                resumed: dict[str, int], workers: WorkerLog | None = None) -> None:
    done = store.done_tiles()
    resumed["tiles"] = len(done)
    counter = _Counter("tiles", len(done), plan.n_tiles, progress, workers=workers)
    _report(progress, "tiles", len(done), plan.n_tiles)
    run_bounded(client, render_tile, ((job, t) for t in range(plan.n_tiles) if t not in done), counter)


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _note(progress: Progress | None, message: str) -> None:
    """A one-off message for a progress reporter that takes them (``progress.note``), else the log."""
    note = getattr(progress, "note", None)
    if note is not None:
        note(message)
    else:
        log.info("local: %s", message)


class WorkerLog:
    """The number of workers over the run, sampled at most every ``interval`` seconds as tasks finish."""

    def __init__(self, client: Any, interval: float = 10.0) -> None:
        self.client, self.interval = client, interval
        self.t0 = time.monotonic()
        self.samples: list[list[float]] = []
        self.last = -float("inf")

    def sample(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.client is None or (not force and now - self.last < self.interval):
            return
        self.last = now
        try:
            n = len(self.client.scheduler_info()["workers"])
        except Exception:  # noqa: BLE001 - a scheduler going away is reported elsewhere
            return
        if not self.samples or self.samples[-1][1] != n or force:
            self.samples.append([round(now - self.t0, 1), n])


class _Counter:
    """Counts the work (tasks, or what ``weight`` says a result stands for) of one pass for ``progress``."""

    def __init__(self, stage: str, done: int, total: int, progress: Progress | None,
                 weight: Callable[[Any], int] | None = None, workers: WorkerLog | None = None) -> None:
        self.stage, self.done, self.total, self.progress = stage, done, total, progress
        self.weight, self.workers = weight, workers

    def __call__(self, result: Any) -> None:
        self.done += 1 if self.weight is None else self.weight(result)
        if self.workers is not None:
            self.workers.sample()
        if self.progress is not None:
            self.progress(self.stage, self.done, self.total)


# --------------------------------------------------------------- helpers
def _run_description(source: Source, local: LocalOptions, opts: SharpenOptions) -> dict[str, Any]:
    """What identifies a run: the input (file identity, or an in-memory map's checksum), its geometry
    and every option."""
    return {"input": source.identity(), "geometry": geometry_of(source), "local": local.to_dict(),
            "options": jsonable(opts)}


def _rows(store: RunStore, plan: LocalPlan, geometry: dict[str, Any],
          shrunk: bool = False) -> Iterator[dict[str, Any]]:
    """Every box's row: the recorded outcomes block by block (with the ``b_sharpen_applied`` of the
    shrinkage when ``shrunk``), then the boxes skipped by the coarse mask."""
    for block, _ in plan.blocks():
        for row in store.read_batch(block) or []:
            yield _box_row(plan.grid.box(row["index"]), annotated(row) if shrunk else row, geometry)
    skipped = BoxOutcome("skipped", "solvent: the coarse molecule mask leaves less than 1 % molecule in the box "
                         "(no task)").to_dict()
    for index in np.flatnonzero(~plan.active):
        yield _box_row(plan.grid.box(int(index)), skipped, geometry)


def _tally(rows: Iterator[dict[str, Any]], failed: list[dict[str, Any]] | None = None
           ) -> tuple[dict[str, int], float | None]:
    """Boxes by status and the mean b_sharpen of the sharpened ones (streamed); failed boxes go to ``failed``."""
    by_status: dict[str, int] = {}
    total, n = 0.0, 0
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        if row["status"] == "failed" and failed is not None:
            failed.append({"index": row["index"], "centre_A": row["centre_A"], "reason": row["reason"]})
        if row["status"] == "sharpened":
            total += row["sharpening"]["b_sharpen"]
            n += 1
    return by_status, (total / n if n else None)


def _box_row(box: Box, outcome: dict[str, Any], geometry: dict[str, Any]) -> dict[str, Any]:
    first, voxel = geometry["first_voxel_position"], geometry["voxel_size"]  # x, y, z
    centre_xyz = [first[i] + box.centre[2 - i] * voxel[i] for i in range(3)]
    row = {"index": box.index, "centre_A": [round(c, 3) for c in centre_xyz],
           "core_zyx": [list(b) for b in box.core]}
    row.update({k: v for k, v in outcome.items() if k != "index"})
    return row
