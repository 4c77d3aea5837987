"""The two units of work of local sharpening, as plain functions of a store path.

* :func:`score_box` (pass 1): read one box of the overall-sharpened map, search
  its sharpening, write the sharpened core into the box's own chunk of
  ``boxes``; returns a small JSON-friendly outcome.
* :func:`render_chunk` (pass 2): blend the cores of every box touching one
  output chunk and write the chunk.

Every zarr chunk has exactly one writer, so no locks are needed, and a rerun of
a task is idempotent.

Both run the same way on a Dask worker or in the driver (``client=None``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..maps.store import RunStore
from ..sharpening.local_box import analyse_box, render_box
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
    """Search and render ``box``; its core goes to ``boxes[box.index]``. Returns ``(index, outcome dict)``."""
    store = RunStore(job.store)
    data = store.read("overall", box.outer)
    outcome = analyse_box(data, job.voxel_zyx, job.resolution, solvent_fraction, job.search,
                          soft_edge=job.soft_edge, d_min_ratio=job.d_min_ratio)
    if outcome.status != "skipped":
        values = render_box(data, job.voxel_zyx, job.resolution, outcome, soft_edge=job.soft_edge,
                            d_min_ratio=job.d_min_ratio)
        store.write("boxes", ((box.index, box.index + 1), *((0, b - a) for a, b in box.core)),
                    values[box.core_in_outer()][None])
    return box.index, outcome.to_dict()


def render_chunk(job: BoxJob, chunk: Bounds, boxes: list[Box], outcomes: list[dict[str, Any]]) -> Bounds:
    """Blend the cores of the boxes touching ``chunk`` over the overall map and write the chunk of ``output``."""
    store = RunStore(job.store)
    background = store.read("overall", chunk)
    contributions = []
    for box, outcome in zip(boxes, outcomes):
        if outcome["status"] == "skipped":
            continue
        core = store.read("boxes", ((box.index, box.index + 1), *((0, b - a) for a, b in box.core)))[0]
        contributions.append((box, core))
    store.write("output", chunk, blend_into(chunk, background, contributions, job.voxel_zyx, job.radius))
    return chunk
