"""The passes of a local run that are many small tasks: value checks, box searches, blending.

Each pass submits its tasks through :func:`~localsharp.engine.cluster.submit.run_bounded` (a bounded
number in flight) and counts them for the progress reporter; tasks already recorded in the
store (a resumed run) are not submitted again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ...maps.store import RunStore
from ...tiling.plan import LocalPlan
from .inputs import MemorySource, Source
from ..cluster.submit import run_bounded
from ...errors import is_disk_fault
from .tasks import (BoxJob, check_slab, failed_row, render_tiles, row_work, score_block, score_one,
                    symmetric_layout, tile_chunks)

log = logging.getLogger("localsharp.engine.local.run")

Progress = Callable[[str, int, int], None]
#: Bytes of input each value-check task reads.
CHECK_SLAB_BYTES = 64 * 2**20


def check_values(client: Any, source: Source, progress: Progress | None = None) -> str | None:
    """NaN/Inf and constant-map checks of a file's voxels, slab by slab in tasks; returns their checksum.

    An in-memory map was checked when it was made (None is returned).  Raises
    :class:`~localsharp.errors.InputFileError` naming the file.
    """
    if isinstance(source, MemorySource):
        return None
    from ...maps.checks import combine_reports

    nz, ny, nx = source.shape
    step = max(1, CHECK_SLAB_BYTES // max(1, ny * nx * 4))
    slabs = [((z, min(nz, z + step)), (0, ny), (0, nx)) for z in range(0, nz, step)]
    reports: dict[int, dict[str, Any]] = {}
    report(progress, "checks", 0, len(slabs))

    def done(result: tuple[int, dict[str, Any]]) -> None:
        reports[result[0]] = result[1]
        report(progress, "checks", len(reports), len(slabs))

    run_bounded(client, check_slab, [(source, i, slab) for i, slab in enumerate(slabs)], done)
    return combine_reports(source.path, [reports[i] for i in range(len(slabs))])


def box_pass(client: Any, job: BoxJob, store: RunStore, plan: LocalPlan, progress: Progress | None,
              resumed: dict[str, int], workers: WorkerLog | None = None) -> None:
    done = store.done_batches(job.block)
    boxes_done = sum(len(indices) for block, indices in plan.blocks() if block in done)
    resumed["boxes"] = boxes_done
    counter = Counter("boxes", boxes_done, plan.n_searched, progress, weight=lambda result: result["n"],
                       workers=workers)
    report(progress, "boxes", boxes_done, plan.n_searched)
    calls = ((job, block, indices) for block, indices in plan.blocks() if block not in done)
    run_bounded(client, score_block, calls, counter, on_error=lambda args, exc: isolate(client, store, args, exc))


def isolate(client: Any, store: RunStore, args: tuple, error: BaseException) -> dict[str, Any]:
    """A block task that failed (e.g. its worker died on it every time): search its boxes one by one,
    mark the boxes that fail on their own, and record the block from here."""
    job, block, indices = args
    if is_disk_fault(error):  # a disk or store fault is the run's, not the boxes': it stops the run
        raise error
    log.warning("local: search task %d failed (%s: %s); searching its %d boxes one by one", block,
                type(error).__name__, error, len(indices))
    rows = []
    for index in indices:
        try:
            row = score_one(job, int(index)) if client is None else \
                client.submit(score_one, job, int(index), pure=False, retries=0).result()
        except Exception as exc:  # noqa: BLE001 - this box alone fails: it is marked, the run goes on
            if is_disk_fault(exc):
                raise
            row = failed_row(int(index), exc)
        rows.append(row)
    store.write_batch(block, rows, job.block)
    return {"block": block, "n": len(rows), "by_status": {}, "host": None, "seconds": None}


def blend_pass(client: Any, job: BoxJob, store: RunStore, plan: LocalPlan, progress: Progress | None,
                resumed: dict[str, int], workers: WorkerLog | None = None) -> None:
    """Blend the output tile by tile, a row of tiles along x per task (a box spanning two tiles of a row is
    rendered once); tiles already written (a resumed run) are not written again.

    The rows go out busiest first (the most boxes to render: :func:`~.tasks.row_work`), so that no
    worker is left with a long row while the others have finished (a capsid's central rows hold
    most of its boxes; its corner rows hardly any)."""
    done = store.done_tiles(tile_chunks(job))
    resumed["tiles"] = len(done)
    counter = Counter("tiles", len(done), plan.n_tiles, progress, weight=len, workers=workers)
    report(progress, "tiles", len(done), plan.n_tiles)
    rows = [r for r in ([t for t in row if t not in done] for row in plan.tile_rows()) if r]
    layout = symmetric_layout(job, store, plan)
    work = [row_work(job, plan, row, layout) for row in rows]
    order = sorted(range(len(rows)), key=lambda i: -work[i])  # stable: ties keep the raster order
    run_bounded(client, render_tiles, ((job, rows[i]) for i in order), counter)


def report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def note(progress: Progress | None, message: str) -> None:
    """A one-off message for a progress reporter that takes them (``progress.note``), else the log."""
    note = getattr(progress, "note", None)
    if note is not None:
        note(message)
    else:
        log.info("local: %s", message)


def warn(progress: Progress | None, message: str) -> None:
    """A warning: on a progress reporter that takes notes (``progress.note``), else in the log as a warning."""
    note = getattr(progress, "note", None)
    if note is not None:
        note(f"warning: {message}")
    else:
        log.warning("local: %s", message)


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


class Counter:
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
