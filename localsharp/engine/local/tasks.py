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
from ...sharpening.functions import Sharpening
from ...sharpening.local_box import BoxOutcome, analyse_box, render_box, render_mixture, sharpen_box
from ...sharpening.local_scale import analyse_half_map_box, analyse_model_box
from ...sharpening.search import SearchConfig, SearchResult
from ...sharpening.shrinkage import applied_row
from ...tiling.blend import BACKGROUND_WEIGHT, SCALE_BACKGROUND_WEIGHT, TileWeights, blended
from ...tiling.boxes import Bounds, Box, BoxGrid
from ...tiling.plan import LocalPlan, relative, union_bounds
from ...tiling.symmetric import BoxSymmetry, ImageBoxes, image_boxes, window_margin
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

    ``overall_blurs``: the overall sharpening blurs the map (model-free, b_sharpen < 0); every box
    row records it, and the shrinkage then keeps every box at the overall sharpening
    (:mod:`localsharp.sharpening.shrinkage`).
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
    symmetry: BoxSymmetry | None = None
    mates: str = "images"
    overall_blurs: bool = False

    def __post_init__(self) -> None:
        # one thread per task: the parallelism is across boxes; numba region kernels, whose
        # start-up (~0.5 s per worker) the many boxes of a worker repay (ScoreParams.jit)
        score = dataclasses.replace(self.search.score, jit=True) if self.search.score.jit is None else self.search.score
        # a box's pick is recorded as found: the shrinkage toward the overall sharpening
        # (localsharp.sharpening.shrinkage, off with --no-shrink) is the local rule for picks the box's
        # score cannot tell apart; the least-blur rule belongs to the overall pass
        object.__setattr__(self, "search", dataclasses.replace(self.search, n_threads=1, b_blur_hires=0.0, score=score,
                                                               least_blur=False))


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
    return outcome_row(job, box.index, outcome)


def outcome_row(job: BoxJob, index: int, outcome: BoxOutcome) -> dict[str, Any]:
    """The recorded row of box ``index``: its outcome, and whether the map it was cut from was blurred by
    the overall sharpening (model-free mode; what the shrinkage needs besides the outcome)."""
    row = {"index": index, **outcome.to_dict()}
    if job.overall_blurs and job.scale is None:
        row["overall_blurs"] = True
    return row


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
    """Blend every box touching output tile ``tile`` over the overall map and write the tile (see
    :func:`render_tiles`)."""
    return render_tiles(job, [tile])[0]


def render_tiles(job: BoxJob, tiles: list[int], layout: SymmetricLayout | None = None) -> list[int]:
    """Blend every box touching each output tile of ``tiles`` over the overall map and write the tiles.

    Each sharpened box is rendered again from the overall map and its recorded
    outcome (:func:`~localsharp.sharpening.local_box.render_box`, the same values
    its search produced), so no box's voxels are ever stored.  A box whose core
    touches several of ``tiles`` (a row of tiles along x) is rendered once for all
    of them: its core is kept until the last of them is written.  ``layout``: the
    symmetric layout to blend instead of the run's (:func:`symmetric_layout`; for
    benchmarks that render other searched boxes' images).  Returns the tiles written.
    """
    store = RunStore(job.store)
    plan = load_plan(job)
    if layout is None:
        layout = symmetric_layout(job, store, plan)
    records: dict[tuple[str, int], list[dict[str, Any]]] = {}
    contributors = [_contributors(job, store, plan, plan.tile_bounds(t), layout, records) for t in tiles]
    last_use: dict[int, int] = {}
    for k, boxes in enumerate(contributors):
        for box, _ in boxes:
            last_use[box.index] = k
    rendered: dict[int, tuple[Box, np.ndarray, float, float | None]] = {}
    for k, tile in enumerate(tiles):
        bounds = plan.tile_bounds(tile)
        boxes = [box for box, _ in contributors[k]]
        new = [(box, row) for box, row in contributors[k] if box.index not in rendered]
        region = union_bounds([bounds] + [b.outer for b, _ in new])
        overall = render_source(store, job.scale, region)
        for box, row in new:
            data = np.ascontiguousarray(overall[relative(box.outer, region)])
            ball = None if layout is None else (tuple(c - o for c, (o, _) in zip(box.centre, box.outer)), layout.window)
            values, applied, resolution = _render(job, data, row, ball)  # type: ignore[arg-type]
            rendered[box.index] = (box, np.ascontiguousarray(values[box.core_in_outer()]), applied, resolution)
        parts = [rendered[box.index] for box in boxes]
        weights = TileWeights(bounds, [p[0] for p in parts], job.voxel_zyx, job.radius,
                              ball=None if layout is None else layout.ball)
        images = [[p[1] for p in parts]]
        if job.b_output:  # the b_sharpen each box applied, blended like the map (0 where no box reaches)
            images.append([p[2] for p in parts])
        if job.resolution_output:
            images.append([p[3] for p in parts])
        total, numerators, partial = weights.accumulate(images)
        background = overall[relative(bounds, region)]
        weight = BACKGROUND_WEIGHT if job.scale is None else SCALE_BACKGROUND_WEIGHT
        where = tuple(slice(a, b) for a, b in bounds)
        _output_array(job.output)[where] = blended(background, numerators[0], total, weight)
        if job.b_output:
            _output_array(job.b_output)[where] = blended(np.zeros(background.shape, np.float32), numerators[1], total)
        if job.resolution_output:
            _output_array(job.resolution_output)[where] = _resolution_tile(numerators[-1], partial[-1], total)
        store.mark_tile(tile, tile_chunks(job))
        for i in [i for i in rendered if last_use[i] <= k]:
            del rendered[i]
    return list(tiles)


def row_work(job: BoxJob, plan: LocalPlan, tiles: list[int], layout: SymmetricLayout | None = None) -> int:
    """How many boxes a blend task of ``tiles`` renders (the grid's active boxes, or the layout's images,
    whose cores touch the tiles): the measure by which the blend pass orders its tasks."""
    region = union_bounds([plan.tile_bounds(t) for t in tiles])
    if layout is None:
        return int(plan.touching(region)[0].size)
    return int(layout.images.touching(region).size)


@dataclass(frozen=True)
class SymmetricLayout:
    """The boxes a symmetric run blends when its mates are ``"images"``: every searched box at its own
    centre and at each symmetry image of it, with the searched box's recorded outcome.

    Attributes
    ----------
    images : ImageBoxes
    rows : dict
        The recorded row of each searched box, by box index.
    ball : float
        Å: a box's weight is zero beyond this distance from its centre (half its core's shortest
        edge less half a voxel: the ball lies inside the core wherever the centre falls between
        voxels), so the weights depend only on the distance and the blend keeps the map's symmetry.
    window : float
        Å: the radius of each box's round soft edge (half the edge of its outer region), through
        which it is rendered: the values depend on the distance to the centre, not on the cube's faces.
    """

    images: ImageBoxes
    rows: dict[int, dict[str, Any]]
    ball: float
    window: float


def symmetric_layout(job: BoxJob, store: RunStore, plan: LocalPlan) -> SymmetricLayout | None:
    """The run's symmetric layout, or None when the grid's boxes are blended (no symmetry, or mates
    ``"nearest"``/``"interpolate"``)."""
    if job.symmetry is None or job.mates != "images" or plan.searched is None:
        return None
    return layout_of(job, searched_rows(store, plan))


def layout_of(job: BoxJob, rows: dict[int, dict[str, Any]]) -> SymmetricLayout:
    """The symmetric layout of a symmetric job's ``rows`` (recorded rows of the boxes taken as searched, by
    box index): each at its own centre and at every symmetry image of it."""
    margin = window_margin(job.resolution, job.voxel_zyx)
    images = image_boxes(job.grid, job.symmetry, np.array(sorted(rows), dtype=np.int64), margin)  # type: ignore[arg-type]
    sizes = [int(s[0, 1] - s[0, 0]) for s in job.grid.spans]  # type: ignore[union-attr]
    ball = min((n / 2.0 - 0.5) * v for n, v in zip(sizes, job.voxel_zyx))  # inside the core, wherever its centre
    window = min((n / 2.0 + job.grid.buffer) * v for n, v in zip(sizes, job.voxel_zyx))  # type: ignore[union-attr]
    return SymmetricLayout(images, rows, ball, window)


def searched_rows(store: RunStore, plan: LocalPlan) -> dict[int, dict[str, Any]]:
    """The recorded rows of every searched box, by box index (a symmetric run searches few)."""
    rows: dict[int, dict[str, Any]] = {}
    for block, _ in plan.blocks():
        for row in store.read_batch(block, plan.block) or []:
            rows[int(row["index"])] = row
    return rows


def _contributors(job: BoxJob, store: RunStore, plan: LocalPlan, bounds: Bounds, layout: SymmetricLayout | None,
                  records: dict[tuple[str, int], list[dict[str, Any]]]) -> list[tuple[Box, dict[str, Any]]]:
    """The boxes blended over ``bounds`` with the rows they are rendered from (solvent boxes left out):
    the grid's boxes touching it, or, in a symmetric layout, the images touching it (each box's index
    is then its image number); ``records`` keeps the records read."""
    if layout is None:
        indices, blocks = plan.touching(bounds)
        outcomes = _outcomes(job, store, indices, blocks, records)
        return [(job.grid.box(int(i)), outcomes[int(i)]) for i in indices  # type: ignore[union-attr]
                if outcomes[int(i)]["status"] != "skipped"]
    images = layout.images
    out = []
    for i in images.touching(bounds).tolist():
        row = layout.rows[int(images.source[i])]
        if row["status"] != "skipped":
            out.append((images.box(i), row))
    return out


def _render(job: BoxJob, data: np.ndarray, row: dict[str, Any],
            ball: tuple[tuple[float, float, float], float] | None = None) -> tuple[np.ndarray, float, float | None]:
    """One box rendered as its row says: its values, the b_sharpen it applied and its local resolution.

    ``ball`` (a symmetric layout's box: its centre in ``data`` and the window's radius, Å): the box is
    rendered through a round window (:func:`~localsharp.sharpening.local_box.render_box`).

    A mate box of a symmetric run that takes several searched boxes' outcomes carries them as
    ``mix`` (weights and sharpenings): it is rendered with the weighted mean of their factors."""
    row = _rendered_row(job, row)
    common = {"soft_edge": job.soft_edge, "d_min_ratio": job.d_min_ratio}
    if row.get("mix"):
        parts = [(float(w), Sharpening(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items()}))
                 for w, s in row["mix"]]
        values = render_mixture(data, job.voxel_zyx, job.resolution, parts, **common)
        return values, float(row.get("b_sharpen_applied") or 0.0), row.get("local_resolution")
    outcome = BoxOutcome.from_dict(row)
    values = render_box(data, job.voxel_zyx, job.resolution, outcome, ball=ball, **common)
    applied = (0.0 if outcome.sharpening is None or outcome.sharpening.method == "no_sharpening"
               else float(outcome.sharpening.b_sharpen))
    return values, applied, outcome.local_resolution


def _rendered_row(job: BoxJob, row: dict[str, Any]) -> dict[str, Any]:
    """The row a box is rendered with: model-free boxes shrunk toward the overall sharpening (unless
    shrinkage is off); the scale-factor modes' boxes as recorded; a symmetric run's mate boxes as
    recorded (they took their sources' rendered outcomes)."""
    if row.get("symmetry", {}).get("role") == "mate":
        return row
    return applied_row(row, job.shrink and job.scale is None)


def _resolution_tile(weighted: np.ndarray, weight: np.ndarray | None, total: np.ndarray) -> np.ndarray:
    """The boxes' local resolutions blended with the map's weights, normalised by the weights alone
    (``Σ w·d / Σ w`` over the boxes with a resolution: no pull toward the background); 0 where no box with
    a resolution reaches."""
    weight = total if weight is None else weight
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


def _outcomes(job: BoxJob, store: RunStore, indices: np.ndarray, blocks: np.ndarray,
              cache: dict[tuple[str, int], list[dict[str, Any]]] | None = None) -> dict[int, dict[str, Any]]:
    """The recorded outcome of each box in ``indices`` (read from the records of their blocks: the
    searched boxes' and, in a symmetric run, the mate boxes'); ``cache`` keeps the records read."""
    cache = {} if cache is None else cache
    wanted = {int(i) for i in indices}
    found: dict[int, dict[str, Any]] = {}
    for block in np.unique(blocks).tolist():
        for kind, read in (("boxes", store.read_batch), ("mates", store.read_mates)):
            if (kind, block) not in cache:
                cache[(kind, block)] = read(int(block), job.block) or []
            found.update({row["index"]: row for row in cache[(kind, block)] if row["index"] in wanted})
    missing = wanted - set(found)
    if missing:
        raise RuntimeError(f"{store.path}: no recorded outcome for boxes {sorted(missing)[:5]}; the box pass "
                           "is incomplete")
    return found


PLAN_FILE = "plan.npz"


def save_plan(store: RunStore, plan: LocalPlan) -> None:
    """Write the plan's active-box (and searched-box) flags next to the store's records (read by the render
    tasks)."""
    path = store.path / PLAN_FILE
    tmp = path.with_name(f".plan.{os.getpid()}.tmp.npz")
    searched = {} if plan.searched is None else {"searched": np.packbits(plan.searched)}
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, active=np.packbits(plan.active), n=plan.active.size, **searched)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_plan(job: BoxJob) -> LocalPlan:
    """The run's plan, rebuilt from ``job`` and the saved flags (read once per process)."""
    path = os.path.join(job.store, PLAN_FILE)
    active, searched = _saved_flags(path, os.stat(path).st_mtime_ns)
    return LocalPlan(job.grid, job.block, active, job.chunks, job.tile, searched)  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _saved_flags(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path) as saved:
        n = int(saved["n"])
        flags = [np.unpackbits(saved[k], count=n).astype(bool) if k in saved else None
                 for k in ("active", "searched")]
    for f in flags:
        if f is not None:
            f.flags.writeable = False
    return flags[0], flags[1]  # type: ignore[return-value]


def check_slab(source: Any, index: int, bounds: Bounds) -> tuple[int, dict[str, Any]]:
    """Value report (non-finite count, range, checksum) of one slab of the input, read by the task."""
    from ...maps.checks import chunk_report

    return index, chunk_report(source.read(bounds))
