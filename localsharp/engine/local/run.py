"""Driver of local sharpening (docs/methods.md, local sharpening): overall pass, box searches, tile-wise blending.

``local_sharpen(map, resolution, client=client)`` runs

0. the input checks: the header in the client; the voxel values (NaN/Inf, constant) and the
   input's checksum chunk by chunk in tasks, before anything is written;
1. the overall (global) sharpening → ``M0``, its molecule mask and the coarse molecule counts,
   stored in the run's zarr store;
2. the plan: the box grid over the molecule (over the whole map with half maps or a model),
   arithmetic on the regular grid; boxes the coarse counts prove to be solvent never become tasks;
3. the box pass: :func:`~localsharp.engine.local.tasks.score_block` on every block of boxes (each
   task records its boxes' outcomes itself): a search relative to ``M0`` (model-free), or
   per-box scale factors from the half maps or the model (:mod:`.box_inputs`,
   :mod:`localsharp.sharpening.local_scale`);
4. the blend pass: :func:`~localsharp.engine.local.tasks.render_tile` re-renders and blends the boxes
   touching each output tile, and writes the b_sharpen (and, with half maps, local resolution)
   images beside the map.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...maps.loading import check_limitations, check_resolution
from ...config import LocalOptions, SharpenOptions
from ...errors import ConfigError, OutputError
from ...maps.density import DensityMap
from ...maps.lock import RunLock, lock_path
from ...maps.store import RunStore
from ...report.summary import jsonable
from ...sharpening.local_box import MAX_BOX_SOLVENT
from ...sharpening.shrinkage import applied_row
from ...sharpening.solvent import RADIUS_FACTOR
from ...tiling.blend import default_radius
from ...tiling.boxes import BoxGrid
from ...tiling.occupancy import possibly_molecule
from ...tiling.plan import LocalPlan
from ...tiling.symmetric import BoxSymmetry, searched_flags
from ...symmetry.groups import PointGroup
from .inputs import MemorySource, Source, geometry_of, header_of, open_input, template_of
from ..cluster import worker_setup
from ..overall.driver import overall_pass
from .scale_setup import open_scale_inputs, scale_inputs
from .passes import WorkerLog, blend_pass, box_pass, check_values, note, report, warn
from .resume import LAYOUT, check_same_run, check_tiles, regroup, repair
from .result import LocalMap, LocalResult, box_row, box_rows, tally
from .mates import mate_pass
from .symmetry import SymmetrySpec, box_symmetry, given_symmetry, resolve_symmetry, symmetry_spec
from .tasks import BoxJob, outcome_row, run_box, save_plan

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

__all__ = ["LocalMap", "LocalResult", "check_resumable", "inspect_box", "local_sharpen", "prepare_input"]
#: The output image inside the store, unless the caller names another place.
OUTPUT_IMAGE = "output.ome.zarr"
#: The blended b_sharpen applied by the boxes (relative to the overall sharpening), inside the store.
B_SHARPEN_IMAGE = "b_sharpen.ome.zarr"
#: The blended local resolution (half-map mode), inside the store.
RESOLUTION_IMAGE = "local_resolution.ome.zarr"


def local_sharpen(map_or_path: DensityMap | str | Path | None, resolution: float, *, client: Any = None,
                  store: str | Path | None = None, local: LocalOptions | None = None,
                  options: SharpenOptions | None = None, resume: bool = False, overwrite: bool = False,
                  progress: Progress | None = None, output: str | Path | None = None,
                  half_maps: tuple[DensityMap | str | Path, DensityMap | str | Path] | None = None,
                  model: str | Path | Any = None, model_rms: float | None = None,
                  symmetry: str | PointGroup | None = None, symmetry_orientation: str | None = None,
                  symmetry_centre: tuple[float, float, float] | None = None) -> LocalResult:
    """Sharpen a map locally: overlapping boxes each get their own sharpening, blended smoothly.

    Three modes, as in global sharpening: model-free (each box searches its own b_sharpen
    relative to the overall sharpening); ``half_maps`` (each box gets per-shell factors from
    the FSC of its two half maps, and a local resolution); ``model`` (per-shell factors from
    the box's agreement with the model's B = 0 map).  In the scale-factor modes the boxes are
    cut from the map as given, and voxels no box reaches keep the map's values.

    Parameters
    ----------
    map_or_path : DensityMap, str, path-like or None
        The map (MRC/CCP4, zarr v3 array or OME-Zarr image) or an in-memory :class:`DensityMap`.
        A file is read by region in the tasks; the client reads only its header.  None with
        ``half_maps``: the mean of the half maps is sharpened (as :func:`~localsharp.half_map_sharpen`
        does), made slab by slab in the run store (``mean_of_half_maps.ome.zarr``).
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
    half_maps : (map, map), optional
        Half maps (files or :class:`DensityMap`) on the map's grid: local half-map sharpening.
    model : path or gemmi.Structure, optional
        Atomic model in the map's frame: local model-based sharpening.
    model_rms : float, optional
        Expected model error (Å) of the model mode (default 0.25 × resolution).
    symmetry : str or PointGroup, optional
        The map's point group: ``"C<n>"``, ``"D<n>"``, ``"T"``, ``"O"``, ``"I"``, RELION's ``"I1"``–``"I4"``
        (:func:`~localsharp.symmetry.groups.parse_symmetry`), or ``"auto"`` (found from the map,
        used only when :func:`~localsharp.symmetry_map.find_symmetry` is sure).  Boxes are then
        searched in one asymmetric unit only; every other box takes the outcome of the searched
        boxes at its symmetry-mate position (``local.symmetry_mates``).  A given group whose
        mates do not correlate in the map is used with a warning (``result.counts["symmetry"]``).
    symmetry_orientation : str, optional
        The orientation of ``symmetry`` (I: ``222`` by default, ``222r``, ``2n5``…; T: ``222`` or ``z3``).
    symmetry_centre : (x, y, z), optional
        The symmetry centre (Å, in the map's frame); default voxel N/2 along each axis.

    Returns
    -------
    LocalResult
        Its ``map`` is on disk (``.array``, ``.to_dask()``, ``.compute()``).
    """
    local = local or LocalOptions()
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float, np.number)):
        raise ConfigError(f"resolution must be a number of Å, got {type(resolution).__name__}: "
                          "call local_sharpen(map, resolution, client=client)")
    map_or_path, mean = _map_or_mean(map_or_path, half_maps)
    source, opts = prepare_input(map_or_path, resolution, options)
    opened = open_scale_inputs(source, half_maps, model, model_rms=model_rms, resolution=opts.resolution)
    if mean:
        opened["mean"] = True  # the map is the mean of the half maps, made in the run store
    spec = symmetry if isinstance(symmetry, SymmetrySpec) else symmetry_spec(
        source, symmetry, symmetry_orientation, symmetry_centre, _input_name(source))
    if client is not None:
        worker_setup.register(client)
    if store is None:
        tmp = Path(tempfile.mkdtemp(prefix="localsharp-"))
        try:
            result = _run(source, client, tmp / "run.zarr", local, opts, False, True, progress, None, opened, spec)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        weakref.finalize(result.map, shutil.rmtree, str(tmp), True)
        result.store = None
        return result
    output = None if output is None else Path(output).resolve()
    path = Path(store).resolve()
    with RunLock(lock_path(path), "localsharp local"):  # one run per store; re-entrant for the command line's
        return _run(source, client, path, local, opts, resume, overwrite, progress, output, opened, spec)


def _map_or_mean(map_or_path: DensityMap | str | Path | None,
                 half_maps: tuple[Any, Any] | None) -> tuple[DensityMap | str | Path, bool]:
    """The map to open, and whether the run's map is the mean of the half maps made in the run store.

    No map: the mean of the half maps (the rule of ``half_map_sharpen``): in memory for in-memory
    half maps, else half map 1 stands for the header checks and the mean is made by tasks.
    """
    if map_or_path is not None:
        return map_or_path, False
    if half_maps is None or len(half_maps) != 2:
        raise ConfigError("no input: give a map, or two half maps (their mean is sharpened)")
    from .mean_input import is_memory, mean_in_memory

    if is_memory(half_maps):
        from ...maps.loading import check_same_grid

        check_same_grid(half_maps[0], "half map 1", half_maps[1], "half map 2")  # type: ignore[arg-type]
        return mean_in_memory(*half_maps), False  # type: ignore[arg-type]
    return half_maps[0], True


def inspect_box(map_or_path: DensityMap | str | Path, index: int, *, resolution: float, store: str | Path,
                local: LocalOptions | None = None, options: SharpenOptions | None = None) -> dict[str, Any]:
    """Run one box by hand, in this process, and return its geometry, outcome and trial table.

    Uses (or makes) the run store at ``store`` for the overall map, exactly as
    :func:`local_sharpen` with the same arguments would, so the box is the one
    that run analyses.  Nothing else is written.  The row is what that run applies to the box
    (:func:`~localsharp.sharpening.shrinkage.applied_row`), with the search's pick in
    ``b_sharpen_searched``; ``trials`` is the search's table.
    """
    local = local or LocalOptions()
    source, opts = prepare_input(map_or_path, resolution, options)
    path = Path(store).resolve()
    with RunLock(lock_path(path), "localsharp local --only-box"):
        return _inspect_box(source, opts, index, path, local)


def _inspect_box(source: Source, opts: SharpenOptions, index: int, path: Path, local: LocalOptions) -> dict[str, Any]:
    run = _run_description(source, local, opts)
    if path.exists():
        store_ = check_same_run(path, run)
        repair(None, store_)  # a damaged overall map is computed again below
    else:
        check_values(None, source)
        store_ = RunStore.create(path, run, source.shape, (local.chunk,) * 3)
    overall = store_.record("overall") or _overall_pass(None, source, store_, opts)
    plan, job = _plan(source, store_, overall, local, opts)
    if not 0 <= index < plan.grid.n_boxes:
        raise ConfigError(f"box {index} does not exist: this run has boxes 0…{plan.grid.n_boxes - 1}")
    box = plan.grid.box(index)
    outcome, _, result = run_box(job, store_, box)
    row = box_row(box, applied_row(outcome_row(job, index, outcome), local.shrink), geometry_of(source))
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
    check_resolution(header, resolution, name)  # type: ignore[arg-type]
    opts = options or SharpenOptions(resolution=resolution)
    if opts.resolution != resolution:
        opts = opts.replace(resolution=resolution)
    check_limitations(header, name, opts)  # type: ignore[arg-type]
    return source, opts


def check_resumable(store: str | Path, source: Source, local: LocalOptions | None, options: SharpenOptions,
                    opened: dict[str, Any] | None = None, spec: SymmetrySpec | None = None) -> None:
    """Refuse, before anything starts, to resume a store that holds another run (OutputError naming the
    options that differ, old → new); ``source`` and ``options`` are :func:`prepare_input`'s, ``opened``
    :func:`~.scale_setup.open_scale_inputs`'."""
    path = Path(store).resolve()
    if not path.exists():
        raise OutputError(f"{path}: there is no run to resume here; run without --resume to start one")
    check_same_run(path, _run_description(source, local or LocalOptions(), options, opened, spec))


def _open_store(source: Source, client: Any, path: Path, local: LocalOptions, opts: SharpenOptions,
                resume: bool, overwrite: bool, progress: Progress | None = None,
                opened: dict[str, Any] | None = None, spec: SymmetrySpec | None = None) -> RunStore:
    """The run's store: the recorded run (``resume``: checked, its damaged parts forgotten to be computed
    again, :func:`.resume.repair`), or a new one after the value checks pass."""
    run = _run_description(source, local, opts, opened, spec)
    if resume:
        if not path.exists():
            raise OutputError(f"{path}: there is no run to resume here; run without --resume to start one")
        store = check_same_run(path, run)
        if repair(client, store)["input"] and not isinstance(source, MemorySource):
            store.write_record("input", {"voxels_sha256": check_values(client, source, progress)})
        return store
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: a run store already exists; resume it with --resume, "
                          "or replace it with --overwrite")
    checksum = check_values(client, source, progress)
    store = RunStore.create(path, run, source.shape, (local.chunk,) * 3, overwrite=overwrite)
    if checksum is not None:
        store.write_record("input", {"voxels_sha256": checksum})
    return store


def _run(source: Source, client: Any, path: Path, local: LocalOptions, opts: SharpenOptions, resume: bool,
         overwrite: bool, progress: Progress | None, output: Path | None,
         opened: dict[str, Any] | None = None, spec: SymmetrySpec | None = None) -> LocalResult:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    store = _open_store(source, client, path, local, opts, resume, overwrite, progress, opened, spec)
    if opened is not None and opened.get("mean"):  # no map given: the mean of the half maps is the input
        from .mean_input import mean_input

        source = mean_input(client, store, opened["halves"], local.chunk, progress)
    scale = scale_inputs(opened, source, store, copy=not resume)
    half_map = scale is not None and scale.mode == "half_map"
    output = output or store.path / OUTPUT_IMAGE
    _ensure_output(store, source, output, local, half_map)
    timings["checks"] = time.perf_counter() - t

    t = time.perf_counter()
    symmetry_record = store.record("symmetry") if spec is not None else None
    checking = None
    if spec is not None and symmetry_record is None:  # checked (or found) beside the overall pass
        checking = _start_symmetry(client, spec, source, opts.resolution)
    overall = store.record("overall")
    resumed = {"overall": int(overall is not None)}
    if overall is None:
        report(progress, "overall", 0, 1)
        overall = _overall_pass(client, source, store, opts, given_symmetry(spec, source))
        report(progress, "overall", 1, 1)
        for warning in overall.get("warnings", []):  # returned by the overall pass, said once here
            log.warning("%s", warning)
    timings["overall"] = time.perf_counter() - t
    if checking is not None:
        t = time.perf_counter()
        symmetry_record = checking()
        store.write_record("symmetry", symmetry_record)
        timings["symmetry_check"] = time.perf_counter() - t
    if symmetry_record is not None:
        note(progress, symmetry_record["verdict"])
        if symmetry_record.get("warning"):
            warn(progress, symmetry_record["warning"])
    placed = box_symmetry(symmetry_record, source)

    t = time.perf_counter()
    plan, job = _plan(source, store, overall, local, opts, scale is not None, placed)
    note(progress, f"{plan.grid.n_boxes} boxes in the grid, {plan.n_active} may hold molecule "
                    f"({plan.grid.n_boxes - plan.n_active} skipped by the coarse mask), smoothing radius "
                    f"{job.radius:.0f} Å; overall sharpening {overall['method']} b_sharpen "
                    f"{overall['b_sharpen']:.1f} Å² ({overall.get('path', 'one_task').replace('_', ' ')})")
    if placed is not None:
        note(progress, f"symmetry {placed.group.name}: {plan.n_searched} boxes searched in one asymmetric unit"
                       f"{f' (+ {local.symmetry_margin:g} Å)' if local.symmetry_margin else ''}, {plan.n_mates} take "
                       f"their mates' outcomes ({local.symmetry_mates})")
    job = dataclasses.replace(job, output=str(output / "0"), b_output=str(store.path / B_SHARPEN_IMAGE / "0"),
                              scale=scale,
                              resolution_output=str(store.path / RESOLUTION_IMAGE / "0") if half_map else "")
    if scale is not None:
        note(progress, f"local {scale.mode.replace('_', '-')} sharpening: per-box scale factors "
                       + ("and local resolution (FSC = 0.143)" if half_map else "from the model"))
    if resume:  # records of another --task-block / --tile-chunks regrouped; damaged output chunks redone
        regroup(store, plan)
        check_tiles(client, store, plan, _images(store, output, half_map))
    timings["plan"] = time.perf_counter() - t

    workers = WorkerLog(client)
    workers.sample(force=True)
    t = time.perf_counter()
    box_pass(client, job, store, plan, progress, resumed, workers)
    timings["boxes"] = time.perf_counter() - t
    if placed is not None:
        t = time.perf_counter()
        mate_pass(client, job, store, plan, placed, local.symmetry_mates)
        timings["mates"] = time.perf_counter() - t
    t = time.perf_counter()
    blend_pass(client, job, store, plan, progress, resumed, workers)
    timings["blend"] = time.perf_counter() - t
    workers.sample(force=True)

    t = time.perf_counter()
    geometry = geometry_of(source)
    failed: list[dict[str, Any]] = []
    shrunk = local.shrink and scale is None  # as the render tasks apply it (tasks._rendered_row)
    by_status, means = tally(box_rows(store, plan, geometry, shrunk), failed)
    counts = {"grid": plan.grid.n_boxes, "searched": plan.n_searched,
              "skipped_by_mask": plan.grid.n_boxes - plan.n_active, "by_status": by_status, "failed": failed}
    if symmetry_record is not None:
        counts["symmetry"] = symmetry_summary(symmetry_record, plan, local)
    for row in failed:
        log.warning("local: box %d (centre %s Å) failed: %s", row["index"], row["centre_A"], row["reason"])
    timings["tally"] = time.perf_counter() - t
    result_map = LocalMap(output / "0", source.shape, source)
    counts["workers_over_time"] = workers.samples
    counts["mode"] = "model_free" if scale is None else scale.mode
    return LocalResult(result_map, overall, job.radius, store.path, local, counts, means["applied_sharpened"], means,
                       timings, resumed, lambda: box_rows(store, plan, geometry, shrunk),
                       LocalMap(store.path / B_SHARPEN_IMAGE / "0", source.shape, source),
                       LocalMap(store.path / RESOLUTION_IMAGE / "0", source.shape, source) if half_map else None)


def _ensure_output(store: RunStore, source: Source, output: Path, local: LocalOptions, half_map: bool = False) -> None:
    """Create the output images unless the recorded tiles are in them; an image that is gone is made
    again and its tiles rendered again."""
    images = _images(store, output, half_map)
    if all((image / "0").exists() for image in images) and store.done_tiles():
        return
    from ...maps.omezarr import create_image

    store.forget_tiles()
    for image in images:
        create_image(image, template_of(source), (local.chunk,) * 3, overwrite=True)


def _images(store: RunStore, output: Path, half_map: bool) -> list[Path]:
    """The OME-Zarr images the blend tasks write."""
    return [output, store.path / B_SHARPEN_IMAGE] + ([store.path / RESOLUTION_IMAGE] if half_map else [])


# ---------------------------------------------------------------- passes
def _overall_pass(client: Any, source: Source, store: RunStore, opts: SharpenOptions,
                  symmetry: BoxSymmetry | None = None) -> dict[str, Any]:
    """Overall sharpening of the whole map (docs/methods.md, local sharpening), its molecule mask and coarse counts; recorded in the store.

    One task when the map fits a worker, else distributed over slabs and pencils
    (:func:`~localsharp.engine.overall.driver.overall_pass`); with a given ``symmetry``, molecule boxes of
    the analysis region lie in one asymmetric unit.
    """
    argument = source.density if isinstance(source, MemorySource) else source.path
    overall = overall_pass(client, argument, str(store.path), opts, symmetry=symmetry)
    store.write_record("overall", overall)
    return overall


def _plan(source: Source, store: RunStore, overall: dict[str, Any], local: LocalOptions,
          opts: SharpenOptions, scale_mode: bool = False, symmetry: BoxSymmetry | None = None
          ) -> tuple[LocalPlan, BoxJob]:
    """The box grid over the molecule, the boxes that may hold molecule, and the job every task shares.

    The smoothing radius is ⅔ of the mean spacing of box centres (the paper's rule; docs/methods.md), at
    least ⅔ of the stride in every mode (:func:`~localsharp.tiling.blend.default_radius`), so that on a
    small map (boxes packed closer than the stride) the boxes are blended smoothly, not split hard.
    With ``symmetry``, only the active boxes in one asymmetric unit (grown by
    ``local.symmetry_margin``) are searched."""
    voxel = source.voxel_size_zyx
    buffer = int(round(RADIUS_FACTOR * opts.resolution / min(source.voxel_size))) if local.soft_mask else 0
    region = overall.get("molecule_bounds_zyx")
    # the scale-factor modes keep the map as given where no box reaches: their grid spans the whole map
    # (the coarse mask still skips the solvent boxes)
    region = tuple(tuple(b) for b in region) if region and not scale_mode else None
    grid = BoxGrid.build(source.shape, local.box_size, local.stride, buffer, region)  # type: ignore[arg-type]
    active = possibly_molecule(grid, store.counts(), MAX_BOX_SOLVENT)
    chunks = (local.chunk,) * 3
    searched = None if symmetry is None else searched_flags(grid, active, symmetry, local.symmetry_margin)
    plan = LocalPlan(grid, local.task_block, active, chunks, (local.chunk * local.tile_chunks,) * 3,  # type: ignore[arg-type]
                     searched)
    save_plan(store, plan)
    radius = local.smoothing_radius or default_radius(grid.nearest_neighbour_distance(voxel),
                                                      local.stride * min(voxel))
    job = BoxJob(str(store.path), opts.resolution, voxel, opts.search, local.soft_mask, opts.d_min_ratio, radius,
                 discard_if_worse=opts.discard_if_worse, grid=grid, block=plan.block, chunks=plan.chunks,
                 tile=plan.tile, shrink=local.shrink, symmetry=symmetry, mates=local.symmetry_mates,
                 overall_blurs=not scale_mode and overall_blurs(overall))
    log.info("local: %d boxes of %d voxels (stride %d, buffer %d), %d may hold molecule; smoothing radius %.1f Å",
             grid.n_boxes, local.box_size, local.stride, buffer, plan.n_active, radius)
    return plan, job


# --------------------------------------------------------------- helpers
def overall_blurs(overall: dict[str, Any]) -> bool:
    """Whether the overall pass's sharpening (its record) blurs the map: a B-type method with b_sharpen < 0."""
    return overall.get("method") in ("b_iso", "b_iso_to_d_cut") and float(overall.get("b_sharpen") or 0.0) < 0.0


def _run_description(source: Source, local: LocalOptions, opts: SharpenOptions,
                     opened: dict[str, Any] | None = None, spec: SymmetrySpec | None = None) -> dict[str, Any]:
    """What identifies a run: the input (file identity, or an in-memory map's checksum), its geometry,
    every option that changes the result (not ``task_block``, ``tile_chunks``: they group the work),
    the half maps or model of a scale-factor mode, and the symmetry asked for."""
    run = {"input": source.identity(), "geometry": geometry_of(source),
           "local": {k: v for k, v in local.to_dict().items() if k not in LAYOUT},  # the grouping may change
           "options": jsonable(opts)}
    if opened is not None:
        run["scale"] = opened["identity"]
        if opened.get("mean"):
            run["input"] = {"kind": "mean_of_half_maps"}  # the half maps are in run["scale"]
    if spec is not None:
        run["symmetry"] = spec.to_dict()
    return run


def _input_name(source: Source) -> str:
    return "map" if isinstance(source, MemorySource) else str(source.path)


def _start_symmetry(client: Any, spec: SymmetrySpec, source: Source, resolution: float) -> Callable[[], dict[str, Any]]:
    """Start checking (or finding) the run's symmetry: a task beside the overall pass on a cluster, else
    here; returns the function that waits for the ``symmetry`` record."""
    argument = source.density if isinstance(source, MemorySource) else str(source.path)
    if client is None:
        record = resolve_symmetry(spec, argument, resolution, _input_name(source))
        return lambda: record
    future = client.submit(resolve_symmetry, spec, argument, resolution, _input_name(source), pure=False)
    return future.result


def symmetry_summary(record: dict[str, Any], plan: LocalPlan, local: LocalOptions) -> dict[str, Any]:
    """The run's symmetry for its summary: the record, and how many boxes were searched or took a mate's outcome."""
    out = {k: v for k, v in record.items()}
    if record.get("used"):
        out.update(boxes_searched=plan.n_searched, boxes_from_mates=plan.n_mates, mates=local.symmetry_mates,
                   margin_A=local.symmetry_margin)
    return out
