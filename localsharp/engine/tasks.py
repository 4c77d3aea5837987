"""The two units of work of local sharpening, as plain functions of a store path.

* :func:`score_box` (pass 1): read one box of the overall-sharpened map, search
  its sharpening; returns a small JSON-friendly outcome.
* :func:`render_chunk` (pass 2): render every box touching one output chunk
  with its chosen sharpening, blend them and write the chunk — each chunk has
  exactly one writer, so no locks are needed and a rerun is idempotent.

Both run the same way on a Dask worker or in the driver (``client=None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..maps.store import RunStore
from ..sharpening.local_box import BoxOutcome, analyse_box, render_box
from ..sharpening.search import SearchConfig
from ..tiling.blend import blend_into
from ..tiling.boxes import Bounds, Box


@dataclass(frozen=True)
class BoxJob:
    """Everything a task needs besides its box (small; pickled once per task)."""

    store: str
    resolution: float
    voxel_zyx: tuple[float, float, float]
    search: SearchConfig
    soft_edge: bool
    d_min_ratio: float
    radius: float

    def __post_init__(self) -> None:
        # one thread per task: the parallelism is across boxes
        object.__setattr__(self, "search", dataclasses.replace(self.search, n_threads=1))


def score_box(job: BoxJob, box: Box, solvent_fraction: float) -> tuple[int, dict[str, Any]]:
    """Search the sharpening of ``box``; returns ``(box.index, outcome as a dict)``."""
    data = RunStore(job.store).read("overall", box.outer)
    outcome = analyse_box(data, job.voxel_zyx, job.resolution, solvent_fraction, job.search,
                          soft_edge=job.soft_edge, d_min_ratio=job.d_min_ratio)
    return box.index, outcome.to_dict()


def box_values(job: BoxJob, store: RunStore, box: Box, outcome: BoxOutcome):
    """Sharpened values of ``box`` on its core."""
    data = store.read("overall", box.outer)
    values = render_box(data, job.voxel_zyx, job.resolution, outcome, soft_edge=job.soft_edge,
                        d_min_ratio=job.d_min_ratio)
    return values[box.core_in_outer()]


def render_chunk(job: BoxJob, chunk: Bounds, boxes: list[Box], outcomes: list[dict[str, Any]]) -> Bounds:
    """Blend the boxes touching ``chunk`` over the overall map and write the chunk of ``output``."""
    store = RunStore(job.store)
    background = store.read("overall", chunk)
    contributions = []
    for box, raw in zip(boxes, outcomes):
        outcome = BoxOutcome.from_dict(raw)
        if outcome.status == "skipped":
            continue
        contributions.append((box, box_values(job, store, box, outcome)))
    store.write("output", chunk, blend_into(chunk, background, contributions, job.voxel_zyx, job.radius))
    return chunk
