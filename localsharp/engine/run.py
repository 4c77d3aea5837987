"""Driver of local sharpening (ALGORITHM.md §8): overall pass, box searches, chunk-wise blending.

``local_sharpen(map, client)`` runs

1. the overall (global) sharpening of the whole map → ``M0`` and its molecule mask, one task,
   stored in the run's zarr store;
2. pass 1: :func:`~localsharp.engine.tasks.score_box` on every box (search, then its sharpened core
   is stored in the box's own chunk);
3. pass 2: :func:`~localsharp.engine.tasks.render_chunk` blends the stored cores into every output chunk.

Tasks go to the Dask ``client`` when one is given, else run in this process —
the same functions either way, so the results are identical.  Progress of each
pass is recorded in the store as tasks complete (at most once a second, less often for large records)
and when the run stops, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import api
from ..config import LocalOptions, SharpenOptions
from ..maps.density import DensityMap
from ..maps.store import RunStore
from ..sharpening.solvent import RADIUS_FACTOR
from ..tiling.blend import smoothing_radius
from ..tiling.boxes import Bounds, Box, box_grid, chunk_grid, intersect
from ..errors import ConfigError
from .tasks import BoxJob, overall_task, render_chunk, run_box, score_box

log = logging.getLogger(__name__)

#: Seconds between two writes of a progress record.
RECORD_INTERVAL = 1.0
Progress = Callable[[str, int, int], None]


@dataclass
class LocalResult:
    """Outcome of :func:`local_sharpen`.

    Attributes
    ----------
    map : DensityMap
        The locally sharpened map (input geometry).
    overall : dict
        Summary of the overall sharpening the local work started from.
    boxes : list of dict
        One row per box: index, centre (Å), core bounds, outcome.
    radius : float
        Smoothing radius of the blending weights (Å).
    store : pathlib.Path or None
        The run store (None when a temporary one was used).
    """

    map: DensityMap
    overall: dict[str, Any]
    boxes: list[dict[str, Any]]
    radius: float
    store: Path | None
    options: LocalOptions
    timings_s: dict[str, float] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary: counts, mean B applied, per-box table, timings."""
        by_status: dict[str, int] = {}
        b_values = []
        for row in self.boxes:
            by_status[row["status"]] = by_status.get(row["status"], 0) + 1
            if row["status"] == "sharpened":
                b_values.append(row["sharpening"]["b_sharpen"])
        return {
            "mode": "local", "n_boxes": len(self.boxes), "boxes_by_status": by_status,
            "mean_b_sharpen_sharpened_boxes": float(np.mean(b_values)) if b_values else None,
            "smoothing_radius": self.radius, "local_options": self.options.to_dict(),
            "overall": self.overall, "boxes": self.boxes, "timings_s": self.timings_s,
            "resumed": self.resumed, "store": None if self.store is None else str(self.store),
        }


def local_sharpen(map_or_path: DensityMap | str | Path, client: Any = None, *, resolution: float,
                  store: str | Path | None = None, local: LocalOptions | None = None,
                  options: SharpenOptions | None = None, resume: bool = False, overwrite: bool = False,
                  progress: Progress | None = None) -> LocalResult:
    """Sharpen a map locally: overlapping boxes each get their own sharpening, blended smoothly.

    Parameters
    ----------
    map_or_path : DensityMap, str or path-like
        The map (MRC/CCP4, gzipped too) or an in-memory :class:`DensityMap`.
    client : distributed.Client, optional
        Where the box and chunk tasks run; ``None`` runs them in this process.
    resolution : float
        Nominal resolution (Å).
    store : path, optional
        Directory of the run's zarr store (kept, so the run can be resumed; made absolute, since
        workers may run in another directory);
        default a temporary directory removed at the end.
    local : LocalOptions, optional
        Box size, stride, smoothing radius, chunking.
    options : SharpenOptions, optional
        Options of the overall sharpening and of every box's search.
    resume : bool
        Continue the run recorded in ``store`` (it must be the same input and options).
    overwrite : bool
        Replace an existing store.
    progress : callable, optional
        ``progress(stage, done, total)`` after every completed task.

    Returns
    -------
    LocalResult
    """
    local = local or LocalOptions()
    density, opts, task_source = _prepare(map_or_path, resolution, options)
    if store is None:
        with tempfile.TemporaryDirectory(prefix="localsharp-") as tmp:
            result = _run(density, task_source, client, Path(tmp) / "run.zarr", local, opts, False, True, progress)
            result.store = None
            return result
    return _run(density, task_source, client, Path(store).resolve(), local, opts, resume, overwrite, progress)


def inspect_box(map_or_path: DensityMap | str | Path, index: int, *, resolution: float, store: str | Path,
                local: LocalOptions | None = None, options: SharpenOptions | None = None) -> dict[str, Any]:
    """Run one box by hand, in this process, and return its geometry, outcome and trial table.

    Uses (or makes) the run store at ``store`` for the overall map, exactly as
    :func:`local_sharpen` with the same arguments would, so the box is the one
    that run analyses.  Nothing else is written.
    """
    local = local or LocalOptions()
    density, opts, source = _prepare(map_or_path, resolution, options)
    path = Path(store).resolve()
    run = _run_description(density, local, opts)
    store_ = RunStore.open(path, run) if path.exists() else RunStore.create(path, run, density.shape,
                                                                              (local.chunk,) * 3)
    overall = store_.record("overall") or _overall_pass(None, source, store_, opts)
    boxes, job = _plan(density, store_, overall, local, opts)
    if not 0 <= index < len(boxes):
        raise ConfigError(f"box {index} does not exist: this run has boxes 0…{len(boxes) - 1}")
    box = boxes[index]
    outcome, _, result = run_box(job, store_, box)
    row = _box_row(box, outcome.to_dict(), density)
    row["outer_zyx"] = [list(b) for b in box.outer]
    row["trials"] = result.table() if result is not None else []
    return row


def _prepare(map_or_path: DensityMap | str | Path, resolution: float,
             options: SharpenOptions | None) -> tuple[DensityMap, SharpenOptions, DensityMap | str]:
    """Load and check the map and options; also what the overall task reads the map from.

    Checks run before a store is made, so a refusal leaves nothing behind.  The
    overall pass runs as one task: a worker reads a file itself (shared file
    system) or is sent the in-memory map.
    """
    density, _ = api.load_map(map_or_path)
    name = str(map_or_path) if not isinstance(map_or_path, DensityMap) else "map"
    api.check_resolution(density, resolution, name)
    opts = options or SharpenOptions(resolution=resolution)
    if opts.resolution != resolution:
        opts = opts.replace(resolution=resolution)
    api.check_limitations(density, name, opts)
    source = density if isinstance(map_or_path, DensityMap) else str(Path(map_or_path).resolve())
    return density, opts, source


def _plan(density: DensityMap, store: RunStore, overall: dict[str, Any], local: LocalOptions,
          opts: SharpenOptions) -> tuple[list[Box], BoxJob]:
    """The box grid over the molecule and the job every box task shares."""
    voxel = density.voxel_size_zyx
    buffer = int(round(RADIUS_FACTOR * opts.resolution / min(density.voxel_size))) if local.soft_mask else 0
    region = overall.get("molecule_bounds_zyx")
    region = tuple(tuple(b) for b in region) if region else None
    boxes = box_grid(density.shape, local.box_size, local.stride, buffer, region)  # type: ignore[arg-type]
    radius = local.smoothing_radius or smoothing_radius([b.centre for b in boxes], voxel)
    job = BoxJob(str(store.path), opts.resolution, voxel, opts.search, local.soft_mask, opts.d_min_ratio, radius,
                 keep_if_better=opts.discard_if_worse)
    store.ensure_boxes(len(boxes), tuple(b - a for a, b in boxes[0].core))  # type: ignore[arg-type]
    log.info("local: %d boxes of %d voxels (stride %d, buffer %d), smoothing radius %.1f Å",
             len(boxes), local.box_size, local.stride, buffer, radius)
    return boxes, job


def _run(density: DensityMap, source: DensityMap | str, client: Any, path: Path, local: LocalOptions,
         opts: SharpenOptions, resume: bool, overwrite: bool, progress: Progress | None) -> LocalResult:
    timings: dict[str, float] = {}
    run = _run_description(density, local, opts)
    chunks = (local.chunk,) * 3
    if resume and path.exists():
        store = RunStore.open(path, run)
    else:
        store = RunStore.create(path, run, density.shape, chunks, overwrite=overwrite)

    t = time.perf_counter()
    overall = store.record("overall")
    resumed = {"overall": int(overall is not None)}
    if overall is None:
        overall = _overall_pass(client, source, store, opts)
    timings["overall"] = time.perf_counter() - t

    boxes, job = _plan(density, store, overall, local, opts)
    radius = job.radius

    t = time.perf_counter()
    outcomes = _score_pass(client, job, store, boxes, progress, resumed)
    timings["boxes"] = time.perf_counter() - t
    t = time.perf_counter()
    _render_pass(client, job, store, boxes, outcomes, density.shape, chunks, progress, resumed)
    timings["blend"] = time.perf_counter() - t

    out = density.with_data(np.asarray(store.array("output")[...], dtype=np.float32))
    rows = [_box_row(b, outcomes[b.index], density) for b in boxes]
    return LocalResult(out, overall, rows, radius, path, local, timings, resumed)


# ---------------------------------------------------------------- passes
def _overall_pass(client: Any, source: DensityMap | str, store: RunStore, opts: SharpenOptions) -> dict[str, Any]:
    """Overall sharpening of the whole map (§8 item 1), as one task; recorded in the store."""
    if client is None:
        overall = overall_task(str(store.path), source, opts)
    else:
        overall = client.submit(overall_task, str(store.path), source, opts, pure=False).result()
    store.write_record("overall", overall)
    return overall


def _score_pass(client: Any, job: BoxJob, store: RunStore, boxes: list[Box], progress: Progress | None,
                resumed: dict[str, int]) -> dict[int, dict[str, Any]]:
    outcomes = {int(k): v for k, v in (store.record("boxes") or {}).items()}
    resumed["boxes"] = len(outcomes)
    todo = [(job, box) for box in boxes if box.index not in outcomes]
    recorder = _Recorder(store, "boxes", outcomes, len(boxes), progress)

    def done(result: tuple[int, dict[str, Any]]) -> None:
        index, outcome = result
        recorder.add(index, outcome)

    try:
        _run_tasks(client, score_box, todo, done)
    finally:
        recorder.flush()
    return outcomes


def _render_pass(client: Any, job: BoxJob, store: RunStore, boxes: list[Box], outcomes: dict[int, dict[str, Any]],
                 shape: tuple[int, int, int], chunks: tuple[int, int, int], progress: Progress | None,
                 resumed: dict[str, int]) -> None:
    written = {tuple(map(tuple, c)) for c in (store.record("chunks") or [])}
    resumed["chunks"] = len(written)
    all_chunks = chunk_grid(shape, chunks)
    todo = []
    for chunk in all_chunks:
        if chunk in written:
            continue
        touching = [b for b in boxes if intersect(chunk, b.core) is not None]
        todo.append((job, chunk, touching, [outcomes[b.index] for b in touching]))
    total = len(all_chunks)
    done_list = [list(map(list, c)) for c in written]
    recorder = _Recorder(store, "chunks", done_list, total, progress)

    def done(chunk: Bounds) -> None:
        recorder.add(None, [list(c) for c in chunk])

    try:
        _run_tasks(client, render_chunk, todo, done)
    finally:
        recorder.flush()


def _run_tasks(client: Any, fn: Callable[..., Any], calls: Iterable[tuple], on_result: Callable[[Any], None]) -> None:
    """Run ``fn(*args)`` for every ``args`` on ``client`` (or here), calling ``on_result`` as each finishes."""
    calls = list(calls)
    if client is None:
        for args in calls:
            on_result(fn(*args))
        return
    from distributed import as_completed

    futures = [client.submit(fn, *args, pure=False) for args in calls]
    try:
        for future in as_completed(futures):
            on_result(future.result())
    finally:
        client.cancel([f for f in futures if not f.done()])


class _Recorder:
    """Collects task results and writes them to a store record, at most once a second.

    The interval grows to 20 × the last write's duration, so that rewriting a
    large record (many thousands of boxes) never takes more than ~5 % of the run.
    """

    def __init__(self, store: RunStore, name: str, container: Any, total: int, progress: Progress | None) -> None:
        self.store, self.name, self.container, self.total, self.progress = store, name, container, total, progress
        self.last = time.monotonic()
        self.interval = RECORD_INTERVAL
        self.dirty = False

    def add(self, key: Any, value: Any) -> None:
        if isinstance(self.container, dict):
            self.container[key] = value
        else:
            self.container.append(value)
        self.dirty = True
        if time.monotonic() - self.last >= self.interval:
            self.flush()
        if self.progress is not None:
            self.progress(self.name, len(self.container), self.total)

    def flush(self) -> None:
        if not self.dirty:
            return
        start = time.monotonic()
        value = ({str(k): v for k, v in self.container.items()} if isinstance(self.container, dict)
                 else self.container)
        self.store.write_record(self.name, value)
        self.last = time.monotonic()
        self.interval = max(RECORD_INTERVAL, 20.0 * (self.last - start))
        self.dirty = False


# --------------------------------------------------------------- helpers
def _run_description(density: DensityMap, local: LocalOptions, opts: SharpenOptions) -> dict[str, Any]:
    """What identifies a run: the data, its geometry and every option."""
    digest = hashlib.sha256(np.ascontiguousarray(density.data).tobytes()).hexdigest()
    return {"data_sha256": digest, "geometry": density.geometry(), "local": local.to_dict(),
            "options": _jsonable(opts)}


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _box_row(box: Box, outcome: dict[str, Any], density: DensityMap) -> dict[str, Any]:
    first = density.first_voxel_position  # x, y, z
    centre_xyz = [first[i] + box.centre[2 - i] * density.voxel_size[i] for i in range(3)]
    row = {"index": box.index, "centre_A": [round(c, 3) for c in centre_xyz],
           "core_zyx": [list(b) for b in box.core]}
    row.update(outcome)
    return row
