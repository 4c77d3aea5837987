"""The two units of work of local sharpening, as plain functions of a store path.

* :func:`overall_task` (one task): the overall sharpening of the whole map and
  its molecule mask, written to the store.
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

import numpy as np

from .. import api
from ..config import SharpenOptions
from ..maps.density import DensityMap
from ..maps.store import RunStore
from ..sharpening.local_box import BoxOutcome, sharpen_box
from ..sharpening.search import SearchConfig, SearchResult
from ..sharpening.solvent import RADIUS_FACTOR, local_variance
from ..tiling.blend import blend_into
from ..tiling.boxes import Bounds, Box, chunk_grid


@dataclass(frozen=True)
class BoxJob:
    """Everything a task needs besides its box (small; pickled once per task).

    The boxes are cut from the overall-sharpened map, whose data beyond d_cut
    already carry the overall ``b_blur_hires``; the box search therefore runs
    with ``b_blur_hires = 0`` (as the spec's ``iterate`` option does when it
    searches a sharpened map again, §3 item 6).  The reference applies the
    high-resolution blur again in every box; on B-gradient phantoms that cost
    0.005–0.015 in CC (``benchmarks/quality_local.py``).
    """

    store: str
    resolution: float
    voxel_zyx: tuple[float, float, float]
    search: SearchConfig
    soft_edge: bool
    d_min_ratio: float
    radius: float
    keep_if_better: bool = True

    def __post_init__(self) -> None:
        # one thread per task: the parallelism is across boxes; numba region kernels, whose
        # start-up (~0.5 s per worker) the many boxes of a worker repay (ScoreParams.jit)
        score = dataclasses.replace(self.search.score, jit=True) if self.search.score.jit is None else self.search.score
        object.__setattr__(self, "search", dataclasses.replace(self.search, n_threads=1, b_blur_hires=0.0, score=score))


def overall_task(store_path: str, source: DensityMap | str, options: SharpenOptions) -> dict[str, Any]:
    """Sharpen the whole map into ``overall`` and mark its molecule in ``molecule`` (§8 item 1).

    ``source`` is the map or its path (a worker then reads the file itself).
    Returns the overall sharpening's summary and the molecule's bounding box.
    """
    store = RunStore(store_path)
    density, _ = api.load_map(source)
    result = api.global_sharpen(density, options.resolution, options=options)
    f_sol = result.solvent.solvent_fraction
    molecule = molecule_mask(density, options.resolution, f_sol)
    chunks = tuple(store.array("overall").chunks)
    for bounds in chunk_grid(density.shape, chunks):  # type: ignore[arg-type]
        region = tuple(slice(a, b) for a, b in bounds)
        store.write("overall", bounds, result.map.data[region])
        store.write("molecule", bounds, molecule[region].astype(np.uint8))
    summary = result.summary()
    overall = {k: summary[k] for k in ("method", "b_sharpen", "b_iso_input", "b_iso_output", "solvent_fraction",
                                       "signal_to_noise", "applicable", "warnings")}
    overall["molecule_bounds_zyx"] = bounding_box(molecule)
    return overall


def molecule_mask(density: DensityMap, resolution: float, solvent_fraction: float) -> np.ndarray:
    """Voxels whose local variance (radius 1.5 × resolution) is among the top (1 − solvent fraction)."""
    variance = local_variance(density.data, density.voxel_size_zyx, RADIUS_FACTOR * resolution)
    threshold = float(np.quantile(variance, min(max(solvent_fraction, 0.0), 1.0)))
    return variance > threshold


def bounding_box(mask: np.ndarray) -> list[list[int]] | None:
    """Half-open bounds (z, y, x) of the true voxels, or None."""
    if not mask.any():
        return None
    bounds = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds.append([int(hit[0]), int(hit[-1]) + 1])
    return bounds


def run_box(job: BoxJob, store: RunStore, box: Box) -> tuple[BoxOutcome, np.ndarray | None, SearchResult | None]:
    """Search and render ``box`` from the store (one Fourier transform of the box).

    The box's solvent fraction is the share of its voxels outside the stored molecule mask.
    """
    data = store.read("overall", box.outer)
    solvent_fraction = 1.0 - float(store.read("molecule", box.outer).mean())
    return sharpen_box(data, job.voxel_zyx, job.resolution, solvent_fraction, job.search, soft_edge=job.soft_edge,
                       d_min_ratio=job.d_min_ratio, keep_if_better=job.keep_if_better)


def score_box(job: BoxJob, box: Box) -> tuple[int, dict[str, Any]]:
    """Search and render ``box``; its core goes to ``boxes[box.index]``. Returns ``(index, outcome dict)``."""
    store = RunStore(job.store)
    outcome, values, _ = run_box(job, store, box)
    if values is not None:
        store.write("boxes", _box_slot(box), values[box.core_in_outer()][None])
    return box.index, outcome.to_dict()


def _box_slot(box: Box) -> tuple[tuple[int, int], ...]:
    """Bounds of ``box``'s core in the ``boxes`` array (its own chunk)."""
    return ((box.index, box.index + 1), *((0, b - a) for a, b in box.core))


def render_chunk(job: BoxJob, chunk: Bounds, boxes: list[Box], outcomes: list[dict[str, Any]]) -> Bounds:
    """Blend the cores of the boxes touching ``chunk`` over the overall map and write the chunk of ``output``."""
    store = RunStore(job.store)
    background = store.read("overall", chunk)
    contributions = []
    for box, outcome in zip(boxes, outcomes):
        if outcome["status"] == "skipped":
            continue
        core = store.read("boxes", _box_slot(box))[0]
        contributions.append((box, core))
    store.write("output", chunk, blend_into(chunk, background, contributions, job.voxel_zyx, job.radius))
    return chunk
