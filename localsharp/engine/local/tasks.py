"""The units of work of local sharpening, as plain functions of a store path.

* :func:`score_block` (the box pass): search the boxes of one block of the box
  grid, read from one region of the overall map (model-free), or measure their
  scale factors from one region of the map and its half maps or model
  (:mod:`.box_inputs`); their outcomes (small JSON rows) are recorded by the
  task itself.
* :func:`render_tile` (the blend pass): re-render every sharpened box touching
  one output tile from the map it was cut from and its recorded outcome, blend
  them and write the tile's chunks (and those of the b_sharpen and local
  resolution images).

Every zarr chunk and every record has exactly one writer, so no locks are
needed, and a rerun of a task is idempotent.  The functions run the same way
on a Dask worker or in the driver (``client=None``).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...kernels.masks import soften_mask
from ...maps import checksums
from ...maps.store import RunStore
from ...sharpening.local_box import BoxOutcome, analyse_box, render_box, sharpen_box
from ...sharpening.local_scale import analyse_half_map_box, analyse_model_box
from ...sharpening.search import SearchConfig, SearchResult
from ...sharpening.shrinkage import applied_row
from ...tiling.blend import BACKGROUND_WEIGHT, SCALE_BACKGROUND_WEIGHT, blend_into, weighted_sums
from ...tiling.boxes import Bounds, Box, BoxGrid
from ...tiling.plan import LocalPlan, relative, union_bounds
from .box_inputs import ScaleInputs, model_atoms, model_box, read_region, render_source


@dataclass(frozen=True)
class BoxJob:
    """Everything a task needs besides its box (small; pickled once per task).

    The boxes are cut from the overall-sharpened map, whose data beyond d_cut
    already carry the overall ``b_blur_hires``; the box search therefore runs
    with ``b_blur_hires = 0`` (as the spec's ``iterate`` option does when it
    searches a sharpened map again).  The reference applies the
    high-resolution blur again in every box; on B-gradient phantoms that cost
    0.005–0.015 in CC (``benchmarks/quality_local.py``).

    With ``scale`` (half maps or a model), boxes are cut from the map being
    sharpened and get per-shell scale factors instead of a search
    (:mod:`localsharp.sharpening.local_scale`).
    """

    store: str
    resolution: float
    voxel_zyx: tuple[float, float, float]
    search: SearchConfig
    soft_edge: bool
    d_min_ratio: float
    radius: float
    discard_if_worse: bool = True
    grid: BoxGrid | None = None
    block: int = 3
    chunks: tuple[int, int, int] = (64, 64, 64)
    tile: tuple[int, int, int] = (128, 128, 128)
    output: str = ""
    shrink: bool = True
    b_output: str = ""
    scale: ScaleInputs | None = None
    resolution_output: str = ""

    def __post_init__(self) -> None:
        # one thread per task: the parallelism is across boxes; numba region kernels, whose
        # start-up (~0.5 s per worker) the many boxes of a worker repay (ScoreParams.jit)
        score = dataclasses.replace(self.search.score, jit=True) if self.search.score.jit is None else self.search.score
        object.__setattr__(self, "search", dataclasses.replace(self.search, n_threads=1, b_blur_hires=0.0, score=score))


def score_block(job: BoxJob, block: int, indices: np.ndarray) -> dict[str, Any]:
    """Search every box of one task block and record their outcomes in the store.

    The block's boxes are cut from one read of the overall map (and of the
    molecule mask) over the union of their outer regions.  Returns a small
    summary for the driver: counts by status and where the task ran.
    """
    start = time.perf_counter()
    store = RunStore(job.store)
    boxes = [job.grid.box(int(i)) for i in indices]  # type: ignore[union-attr]
    region = union_bounds([b.outer for b in boxes])
    arrays = read_region(store, job.scale, region)
    atoms = _atoms(job, region)
    molecule = store.read("molecule", region)
    rows, by_status = [], {}
    host = socket.gethostname()
    for box in boxes:
        inside = relative(box.outer, region)
        cut = {k: np.ascontiguousarray(v[inside]) for k, v in arrays.items()}
        row = _search_row(job, box, cut, molecule[inside], atoms)
        row["host"] = host
        rows.append(row)
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
    store.write_batch(block, rows, job.block)
    return {"block": block, "n": len(rows), "by_status": by_status, "host": host,
            "seconds": time.perf_counter() - start}


def score_one(job: BoxJob, index: int) -> dict[str, Any]:
    """The outcome row of one box, searched on its own (the driver's fallback for a block that keeps failing)."""
    store = RunStore(job.store)
    box = job.grid.box(int(index))  # type: ignore[union-attr]
    arrays = read_region(store, job.scale, box.outer)
    row = _search_row(job, box, arrays, store.read("molecule", box.outer), _atoms(job, box.outer))
    row["host"] = socket.gethostname()
    return row


def failed_row(index: int, error: BaseException) -> dict[str, Any]:
    """The row of a box whose search failed: it is kept at the overall sharpening (rendered as it is)."""
    reason = f"search failed ({type(error).__name__}: {error}); the box is kept at the overall sharpening"
    return {"index": int(index), **BoxOutcome("failed", reason[:500]).to_dict()}


def _atoms(job: BoxJob, region: Bounds) -> Any:
    """The model's atoms near ``region`` (model mode), else None."""
    if job.scale is None or job.scale.mode != "model":
        return None
    return model_atoms(job.scale, region, job.resolution)


def _search_row(job: BoxJob, box: Box, arrays: dict[str, Any], molecule: np.ndarray,
                atoms: Any = None) -> dict[str, Any]:
    """The box's outcome row; an error in its search (bad data) marks it failed instead of stopping the run."""
    try:
        outcome = _search(job, box, arrays, molecule, atoms)
    except Exception as exc:  # noqa: BLE001 - one box's bad data must not stop a run of thousands
        return failed_row(box.index, exc)
    return {"index": box.index, **outcome.to_dict()}


def _search(job: BoxJob, box: Box, arrays: dict[str, Any], molecule: np.ndarray, atoms: Any = None) -> BoxOutcome:
    """The outcome of one box (by the job's mode); its solvent fraction is the share of its voxels outside
    the molecule mask."""
    solvent_fraction = 1.0 - float(molecule.mean())
    common = {"soft_edge": job.soft_edge, "d_min_ratio": job.d_min_ratio}
    data = arrays["data"]
    if job.scale is None:
        return analyse_box(data, job.voxel_zyx, job.resolution, solvent_fraction, job.search,
                           discard_if_worse=job.discard_if_worse, **common)
    if job.scale.mode == "half_map":
        # softened box by box (not over the task's region), so the map does not depend on the task grouping
        soft = soften_mask(molecule, job.voxel_zyx, job.resolution) if molecule.any() else None
        return analyse_half_map_box(data, arrays["half1"], arrays["half2"], job.voxel_zyx, job.resolution,
                                    solvent_fraction, molecule=soft, **common)
    model, model_mask = model_box(job.scale, atoms, box.outer, job.resolution, job.d_min_ratio * job.resolution)
    return analyse_model_box(data, model, model_mask, job.voxel_zyx, job.resolution, solvent_fraction,
                             model_rms=job.scale.model_rms, **common)


def run_box(job: BoxJob, store: RunStore, box: Box) -> tuple[BoxOutcome, np.ndarray | None, SearchResult | None]:
    """Search and render ``box`` from the store (one Fourier transform of the box), for inspection.

    The box's solvent fraction is the share of its voxels outside the stored molecule mask.
    In the scale-factor modes the box's factors are computed and rendered; no trial table.
    """
    if job.scale is not None:
        arrays = read_region(store, job.scale, box.outer)
        outcome = _search(job, box, arrays, store.read("molecule", box.outer), _atoms(job, box.outer))
        if outcome.status == "skipped":
            return outcome, None, None
        return outcome, render_box(arrays["data"], job.voxel_zyx, job.resolution, outcome, soft_edge=job.soft_edge,
                                   d_min_ratio=job.d_min_ratio), None
    data = store.read("overall", box.outer)
    solvent_fraction = 1.0 - float(store.read("molecule", box.outer).mean())
    return sharpen_box(data, job.voxel_zyx, job.resolution, solvent_fraction, job.search, soft_edge=job.soft_edge,
                       d_min_ratio=job.d_min_ratio, discard_if_worse=job.discard_if_worse)


def render_tile(job: BoxJob, tile: int) -> int:
    """Blend every box touching output tile ``tile`` over the overall map and write the tile.

    Each sharpened box is rendered again from the overall map and its recorded
    outcome (:func:`~localsharp.sharpening.local_box.render_box`, the same values
    its search produced), so no box's voxels are ever stored.
    """
    store = RunStore(job.store)
    plan = load_plan(job)
    bounds = plan.tile_bounds(tile)
    indices, blocks = plan.touching(bounds)
    outcomes = _outcomes(job, store, indices, blocks)
    boxes = [job.grid.box(int(i)) for i in indices if outcomes[int(i)]["status"] != "skipped"]  # type: ignore[union-attr]
    region = union_bounds([bounds] + [b.outer for b in boxes])
    overall = render_source(store, job.scale, region)
    contributions, applied, resolutions = [], [], []
    for box in boxes:
        data = np.ascontiguousarray(overall[relative(box.outer, region)])
        row = _rendered_row(job, outcomes[box.index])
        outcome = BoxOutcome.from_dict(row)
        values = render_box(data, job.voxel_zyx, job.resolution, outcome,
                            soft_edge=job.soft_edge, d_min_ratio=job.d_min_ratio)
        contributions.append((box, values[box.core_in_outer()]))
        applied.append(0.0 if outcome.sharpening is None or outcome.sharpening.method == "no_sharpening"
                       else float(outcome.sharpening.b_sharpen))
        resolutions.append(outcome.local_resolution)
    background = overall[relative(bounds, region)]
    weight = BACKGROUND_WEIGHT if job.scale is None else SCALE_BACKGROUND_WEIGHT
    blended = blend_into(bounds, background, contributions, job.voxel_zyx, job.radius, weight)
    _output_array(job.output)[tuple(slice(a, b) for a, b in bounds)] = blended
    if job.b_output:
        _output_array(job.b_output)[tuple(slice(a, b) for a, b in bounds)] = _b_sharpen_tile(job, bounds, contributions,
                                                                                           applied)
    if job.resolution_output:
        _output_array(job.resolution_output)[tuple(slice(a, b) for a, b in bounds)] = _resolution_tile(
            job, bounds, contributions, resolutions)
    store.mark_tile(tile, tile_chunks(job))
    return tile


def _b_sharpen_tile(job: BoxJob, bounds: Bounds, contributions: list, applied: list[float]) -> np.ndarray:
    """The b_sharpen each box applied (relative to the overall sharpening), blended like the map (0 elsewhere)."""
    shape = tuple(b - a for a, b in bounds)
    constant = [(box, np.full(values.shape, b, dtype=np.float32)) for (box, values), b in zip(contributions, applied)]
    return blend_into(bounds, np.zeros(shape, dtype=np.float32), constant, job.voxel_zyx, job.radius)


def _rendered_row(job: BoxJob, row: dict[str, Any]) -> dict[str, Any]:
    """The row a box is rendered with: model-free boxes shrunk toward the overall sharpening (unless
    shrinkage is off); the scale-factor modes' boxes as recorded."""
    return applied_row(row, job.shrink and job.scale is None)


def _resolution_tile(job: BoxJob, bounds: Bounds, contributions: list, resolutions: list[float | None]) -> np.ndarray:
    """The boxes' local resolutions blended with the map's weights, normalised by the weights alone
    (``Σ w·d / Σ w``: no pull toward the background); 0 where no box with a resolution reaches."""
    known = [(box, np.full(values.shape, d, np.float32)) for (box, values), d in zip(contributions, resolutions)
             if d is not None]
    weighted, weight = weighted_sums(bounds, known, job.voxel_zyx, job.radius)
    reached = weight / (BACKGROUND_WEIGHT + weight) > 1e-6  # the boxes' share of the map's blend
    out = np.zeros(weight.shape, dtype=np.float32)
    out[reached] = weighted[reached] / weight[reached]
    return out


def _output_array(path: str) -> Any:
    """The output image's level-0 array, opened once per process (again when the image was made anew:
    an in-process rerun with ``overwrite`` may give the same path another shape)."""
    return _open_output(path, os.stat(os.path.join(path, "zarr.json")).st_mtime_ns)


@lru_cache(maxsize=8)
def _open_output(path: str, _stamp: int) -> Any:
    return checksums.open_for_writing(path)


def tile_chunks(job: BoxJob) -> int:
    """Output chunks per render tile along each axis (``--tile-chunks``)."""
    return int(job.tile[0]) // int(job.chunks[0])


def _outcomes(job: BoxJob, store: RunStore, indices: np.ndarray, blocks: np.ndarray) -> dict[int, dict[str, Any]]:
    """The recorded outcome of each box in ``indices`` (read from the records of their blocks)."""
    wanted = {int(i) for i in indices}
    found: dict[int, dict[str, Any]] = {}
    for block in np.unique(blocks):
        rows = store.read_batch(int(block), job.block)
        if rows is None:
            raise RuntimeError(f"{store.path}: search task {int(block)} has no record; the box pass is incomplete")
        found.update({row["index"]: row for row in rows if row["index"] in wanted})
    missing = wanted - set(found)
    if missing:
        raise RuntimeError(f"{store.path}: no recorded outcome for boxes {sorted(missing)[:5]}")
    return found


PLAN_FILE = "plan.npz"


def save_plan(store: RunStore, plan: LocalPlan) -> None:
    """Write the plan's active-box flags next to the store's records (read by the render tasks)."""
    path = store.path / PLAN_FILE
    tmp = path.with_name(f".plan.{os.getpid()}.tmp.npz")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, active=np.packbits(plan.active), n=plan.active.size)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_plan(job: BoxJob) -> LocalPlan:
    """The run's plan, rebuilt from ``job`` and the saved active flags (read once per process)."""
    path = os.path.join(job.store, PLAN_FILE)
    active = _active_flags(path, os.stat(path).st_mtime_ns)
    return LocalPlan(job.grid, job.block, active, job.chunks, job.tile)  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _active_flags(path: str, mtime_ns: int) -> np.ndarray:
    with np.load(path) as saved:
        active = np.unpackbits(saved["active"], count=int(saved["n"])).astype(bool)
    active.flags.writeable = False
    return active


def check_slab(source: Any, index: int, bounds: Bounds) -> tuple[int, dict[str, Any]]:
    """Value report (non-finite count, range, checksum) of one slab of the input, read by the task."""
    from ...maps.checks import chunk_report

    return index, chunk_report(source.read(bounds))
