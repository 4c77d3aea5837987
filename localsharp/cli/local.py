"""``localsharp local``: local sharpening on a Dask cluster (a LocalCluster by default)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, InputFileError, LocalsharpError
from . import MISSING_RESOLUTION
from .cluster_args import add_cluster_arguments, check_cluster_arguments, cluster_client, cluster_record

if TYPE_CHECKING:
    from ..config import LocalOptions, SharpenOptions

# The heavy modules (numpy, scipy, zarr, distributed) are imported inside the functions: building the
# parser costs nothing, and a wrong input is refused after reading its header only.

OUTPUTS = {"local_map": "local_sharpened_map.ccp4", "local_image": "local_sharpened.ome.zarr",
           "summary": "local_summary.json", "box_centres": "local_box_centres.pdb",
           "b_sharpen_map": "local_b_sharpen_map.ccp4", "report": "local_report.png"}
#: Written in the half-map mode only.
RESOLUTION_OUTPUT = {"resolution_map": "local_resolution_map.ccp4"}
#: Occupancy written for each box status in the centres file.
STATUS_OCCUPANCY = {"sharpened": 1.0, "unsharpened": 0.5, "skipped": 0.0}
STORE = "local_run.zarr"
#: Where the outputs go unless --output-dir says otherwise (``sharpen`` uses localsharp_sharpen).
DEFAULT_OUTPUT_DIR = "localsharp_local"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``local`` options to ``parser``."""
    parser.description = ("Sharpen a map locally: overall sharpening first, then overlapping boxes each optimised "
                          "on their own (in parallel on Dask workers) and blended with Gaussian weights.")
    parser.add_argument("map", nargs="?", metavar="MAP", help="MRC/CCP4 map (.mrc/.map/.ccp4, optionally .gz), "
                        "a zarr v3 array or an OME-Zarr image; optional with --half-maps (their mean is sharpened)")
    parser.add_argument("--resolution", type=float, metavar="Å", help="nominal resolution (required)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, metavar="DIR",
                        help=f"directory for the outputs and the run store, created if needed "
                             f"(default {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs and run store")
    parser.add_argument("--resume", action="store_true", help="continue the run recorded in the output directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or table on the terminal")
    parser.add_argument("--only-box", type=int, metavar="N",
                        help="run box N by hand, in this process, and print its trials (no map is written)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what the run would do (boxes, tasks, memory per worker, disk, time from a few "
                             "boxes timed here; with --cluster slurm the job script) and write nothing")
    tiling = parser.add_argument_group("boxes")
    tiling.add_argument("--box-size", type=int, default=40, metavar="N", help="box edge (voxels, default 40)")
    tiling.add_argument("--stride", type=int, default=20, metavar="N",
                        help="largest spacing of box centres (voxels, default 20)")
    tiling.add_argument("--smoothing-radius", type=float, metavar="Å",
                        help="R of the blending weight exp(-r²/2R²) (default ⅔ of the mean spacing of box centres, "
                              "at least ⅔ of the stride)")
    tiling.add_argument("--chunk", type=int, default=64, metavar="N", help="output chunk edge (voxels, default 64)")
    tiling.add_argument("--task-block", type=int, default=3, metavar="N",
                        help="boxes per search task along each axis (up to N³ boxes a task, default 3)")
    tiling.add_argument("--tile-chunks", type=int, default=2, metavar="N",
                        help="output chunks per blend task along each axis (default 2)")
    tiling.add_argument("--no-shrink", action="store_true",
                        help="model-free mode: render every box at its own pick (default: a box whose score curve "
                             "cannot tell its pick from the overall sharpening, whose pick blurs it, or whose "
                             "overall sharpening blurs the map keeps the overall sharpening)")
    mode = parser.add_argument_group("mode (default: model-free)")
    mode.add_argument("--half-maps", nargs=2, metavar=("H1", "H2"),
                      help="local half-map sharpening: per-box scale factors from the FSC of the two half maps "
                           "(on MAP's grid); also writes local_resolution_map.ccp4 (FSC = 0.143 per box)")
    mode.add_argument("--model", metavar="MODEL",
                      help="local model-based sharpening: per-box scale factors from the map's agreement with "
                           "this PDB/mmCIF model (in the map's frame)")
    mode.add_argument("--model-rms", type=float, metavar="Å",
                      help="expected model error for --model (default 0.25 × resolution)")
    sym = parser.add_argument_group("symmetry (search one asymmetric unit; see docs/local_sharpening.md)")
    sym.add_argument("--symmetry", metavar="GROUP",
                     help="the map's point group: C<n>, D<n>, T, O, I, RELION's I1-I4, or auto (found from the map, "
                          "used only when sure). Boxes are searched in one asymmetric unit; every other box takes "
                          "the outcome of the searched boxes at its symmetry-mate position")
    sym.add_argument("--symmetry-orientation", metavar="NAME",
                     help="orientation of --symmetry: for I one of 222 (default: two-folds along x, y, z), 222r, "
                          "2n5, 2n5r, n25, n25r, 2n3, 2n3r; for T 222 (default) or z3 (RELION's T)")
    sym.add_argument("--symmetry-centre", "--symmetry-center", type=float, nargs=3, metavar=("X", "Y", "Z"),
                     help="symmetry centre in Å, in the map's frame (as ChimeraX shows it); default: voxel N/2 along "
                          "each axis (RELION's convention)")
    sym.add_argument("--symmetry-mates", choices=("images", "nearest", "interpolate"),
                     help="how the boxes outside the asymmetric unit are made: images (default) blends the searched "
                          "boxes at every symmetry copy of their centres, so the blend keeps the map's symmetry; "
                          "nearest and interpolate blend the grid's boxes, each taking the outcome of the searched box "
                          "nearest to its mate position, or a mean over the searched boxes near it")
    sym.add_argument("--symmetry-margin", type=float, metavar="Å",
                     help="also search the boxes within this distance of the asymmetric unit (default 0)")
    comp = parser.add_argument_group("composition")
    comp.add_argument("--solvent-content", type=float, metavar="F",
                      help="solvent fraction (0-1) of the map (default: estimated from the map)")
    comp.add_argument("--molecular-mass", type=float, metavar="KDA",
                      help="molecular mass in kDa (default: estimated from the map)")
    comp.add_argument("--ignore-map-limitations", action="store_true",
                      help="sharpen a map whose header says it is already sharpened (refused by default)")
    add_cluster_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run local sharpening and write the map and summary atomically; returns the exit status.

    The output directory is checked (made, written to) and locked before anything starts; a resumed
    run is checked against its store before the cluster starts.  Ctrl-C, at any moment, ends the run
    with one line that advises ``--resume`` only when the store holds this run's work; a disk fault
    ends it with one line (exit status 74) saying whether ``--resume`` continues.
    """
    out = Path(args.output_dir)
    names = {**OUTPUTS, **(RESOLUTION_OUTPUT if args.half_maps else {})}
    paths = {role: out / name for role, name in names.items()}
    if args.map is None and not args.half_maps:
        raise ConfigError("no input: give MAP or --half-maps H1 H2")
    if args.resolution is None:
        raise ConfigError(MISSING_RESOLUTION)
    if args.half_maps and args.model:
        raise ConfigError("give --half-maps or --model, not both")
    maps = [m for m in [args.map] + list(args.half_maps or []) if m is not None]
    for given in maps + ([args.model] if args.model else []):
        if not Path(given).exists():
            raise InputFileError(given, "no such file")
    from ..maps.source import MapSource

    for given in maps:
        MapSource.open(given)  # a file that is no map is refused here, before the engine is even imported
    from ..config import LocalOptions, SharpenOptions
    from ..engine.local.run import prepare_input
    from ..maps.lock import RunLock, lock_path
    from ..report.outputs import prepare_output_dir, remove_if_unused

    check_cluster_arguments(args)
    for flag, value in (("--symmetry-mates", args.symmetry_mates), ("--symmetry-margin", args.symmetry_margin)):
        if value is not None and args.symmetry is None:
            raise ConfigError(f"{flag} needs --symmetry (it says how the boxes of a symmetric run are shared)")
    if args.resume and args.overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    local = LocalOptions(box_size=args.box_size, stride=args.stride, smoothing_radius=args.smoothing_radius,
                         chunk=args.chunk, task_block=args.task_block, tile_chunks=args.tile_chunks,
                         shrink=not args.no_shrink, symmetry_mates=args.symmetry_mates or "images",
                         symmetry_margin=0.0 if args.symmetry_margin is None else args.symmetry_margin)
    options = SharpenOptions(resolution=args.resolution, solvent_content=args.solvent_content,
                             molecular_mass=args.molecular_mass,
                             ignore_map_limitations=args.ignore_map_limitations)
    # header checks, before anything starts (no MAP: half map 1 stands for the mean of the half maps)
    source, options = prepare_input(args.map or args.half_maps[0], args.resolution, options)
    opened = None
    if args.half_maps or args.model:
        from ..engine.local.scale_setup import open_scale_inputs

        opened = open_scale_inputs(source, tuple(args.half_maps) if args.half_maps else None, args.model,
                                   model_rms=args.model_rms, resolution=args.resolution)  # refused early
        if args.map is None:  # the run's input is the mean of the half maps, as local_sharpen records it
            opened["mean"] = True
    from ..engine.local.symmetry import symmetry_spec

    args.symmetry_spec = symmetry_spec(source, args.symmetry, args.symmetry_orientation,  # checked before anything
                                       args.symmetry_centre, args.map or args.half_maps[0])
    if args.dry_run:
        from .local_dry_run import dry_run

        return dry_run(args, source, out, local, options, opened)
    if args.resume and not out.is_dir():
        raise ConfigError(f"{out}: there is no run to resume there; run without --resume to start one")
    if args.only_box is not None:
        if args.half_maps or args.model or args.map is None:
            raise ConfigError("--only-box runs a model-free box search; it does not take --half-maps or --model")
        if args.symmetry:
            raise ConfigError("--only-box runs one box by hand; it does not take --symmetry")
        return _only_box(args, out, local, options)
    created = prepare_output_dir(out, paths, args.overwrite or args.resume)
    run_ = SimpleNamespace(source=source, local=local, options=options, opened=opened, spec=args.symmetry_spec)
    try:
        with RunLock(lock_path(out / STORE), "localsharp local"):
            return _locked_run(args, run_, out, paths)
    except KeyboardInterrupt:
        saved = _holds_this_run(out / STORE, run_)
        if not saved:
            remove_if_unused(out, created)
        if sys.stderr.isatty():
            print(file=sys.stderr)  # off the progress bar's line
        print("localsharp local: " + (
            f"interrupted; the work done so far is saved in {out / STORE}: run the same command with --resume"
            + (" (in place of --overwrite)" if args.overwrite else "") + " to continue" if saved
            else "interrupted before any work was saved: there is nothing to resume; run the same command again"),
            file=sys.stderr)
        return 130
    except LocalsharpError:
        if not _holds_this_run(out / STORE, run_):
            remove_if_unused(out, created)
        raise
    except OSError as exc:
        from ..errors import is_disk_fault

        if not is_disk_fault(exc):
            raise
        from .faults import disk_fault

        saved = _holds_this_run(out / STORE, run_)
        if not saved:
            _remove_leftovers(out, created)
        hint = "run the same command with --resume" + (" (in place of --overwrite)" if args.overwrite else "") \
            + " to continue"
        needed = _space_needed(out, source.shape, 3 if args.half_maps else 2, args.chunk, args.tile_chunks)
        raise disk_fault(exc, out, resumable=saved, needed=needed, resume_hint=hint) from None


def _locked_run(args: argparse.Namespace, run_: Any, out: Path, paths: dict[str, Path]) -> int:
    """The run once its output directory is locked: checks of the store, the cluster, the outputs."""
    from ..engine.local.inputs import template_of
    from ..engine.local.mean_input import mean_name
    from ..engine.local.run import check_resumable
    from ..errors import OutputError
    from ..maps.store import RunStore
    from ..report.outputs import check_writable
    from ..report.summary import versions

    if args.resume and not (out / STORE / "run.json").exists():
        raise ConfigError(f"{out}: there is no run to resume there; run without --resume to start one")
    if args.resume:  # the store must hold this run, and be writable: said before any cluster starts
        check_resumable(out / STORE, run_.source, run_.local, run_.options, run_.opened, run_.spec)
        for directory in (out / STORE, out / STORE / "records" / "boxes", out / STORE / "records" / "tiles"):
            if directory.is_dir():
                check_writable(directory, "the run store")
    elif (out / STORE).exists() and not args.overwrite:
        raise OutputError(f"{out / STORE}: a run store already exists; resume it with --resume, "
                          "or replace it with --overwrite")
    t0 = time.perf_counter()
    result = _sharpen(args, run_.source, out, run_.local, run_.options, paths)
    summary = result.summary(with_boxes=False)
    digest = (RunStore(result.store).record("input") or {}).get("voxels_sha256") if result.store else None
    name = args.map or mean_name(tuple(args.half_maps))
    summary.update({"input": {"map": name, "voxels_sha256": digest, "geometry": result.map.geometry()},
                    "resolution": args.resolution, "versions": versions(), "command": sys.argv,
                    "outputs": {k: str(v) for k, v in paths.items()}})
    summary["timings_s"]["total"] = time.perf_counter() - t0
    summary["cluster"] = getattr(args, "cluster_record", None)
    try:
        _write_outputs(args, result, summary, paths, template_of(run_.source))
    except ValueError as exc:  # zarr: a chunk of an image read back does not match its CRC32C
        if "checksum" not in str(exc):
            raise
        raise _damaged_image(result) from None
    if not args.quiet:
        _print_table(summary, paths)
    return 0


def _damaged_image(result: Any) -> Exception:
    """The StoreDamaged error naming the first damaged chunk of the run's images."""
    from ..errors import StoreDamaged
    from ..maps import checksums

    for image in (result.map, result.b_sharpen_map, result.resolution_map):
        if image is not None:
            bad = checksums.damaged_chunks(image.path)
            if bad:
                return StoreDamaged(f"{checksums.chunk_path(image.path, bad[0][0])}: {bad[0][1]}; run the same "
                                    "command with --resume to render it again")
    return StoreDamaged(f"{result.map.path}: a chunk fails its checksum; run the same command with --resume")


def _write_outputs(args: argparse.Namespace, result: Any, summary: dict[str, Any], paths: dict[str, Path],
                   template: Any) -> None:
    """The maps, report, centres and summary (with the checksums of the others), all or nothing.

    The CCP4 maps, the report and the box centres are written side by side in threads (each map is
    streamed from its zarr image, whose reads and writes leave the GIL; the report draws meanwhile),
    then their checksums, then the summary."""
    from concurrent.futures import ThreadPoolExecutor

    from ..maps.atomic import AtomicSet
    from ..maps.checksums import output_checksums, zarr_digest
    from ..maps.stream import write_map_streamed

    b_label = ("b_sharpen (A^2) relative to the overall sharpening" if summary["local_mode"] == "model_free"
               else "equivalent b_sharpen (A^2) of the box scale factors")
    with AtomicSet(overwrite=True) as files:
        staged = {role: files.stage(path) for role, path in paths.items() if role not in ("local_image",)}
        maps = [("local_map", result.map, f"localsharp local: {summary['n_boxes']} boxes b_sharpen varies"),
                ("b_sharpen_map", result.b_sharpen_map, f"localsharp local: {b_label}")]
        if result.resolution_map is not None:
            maps.append(("resolution_map", result.resolution_map,
                         "localsharp local: local resolution (A), half-map FSC=0.143"))
        with ThreadPoolExecutor(max_workers=len(maps) + 1) as pool:
            writes = [pool.submit(write_map_streamed, staged[role], image.array, template, overwrite=True, label=label)
                      for role, image, label in maps]
            drawn = pool.submit(_write_report_and_centres, staged, result, summary)
            written = [w.result() for w in writes]
            drawn.result()
        summary["values"] = _values(written[0], summary["local_mode"], (summary.get("overall") or {}).get("method"))
        # the proof the outputs carry: checked by `localsharp info --verify OUT`
        summary["checksums"] = output_checksums({paths[r].name: f for r, f in staged.items() if r != "summary"})
        summary["checksums"][paths["local_image"].name] = {"zarr_manifest_sha256": zarr_digest(paths["local_image"])}
        _write_summary(staged["summary"], summary, result.iter_boxes())


def _write_report_and_centres(staged: dict[str, Path], result: Any, summary: dict[str, Any]) -> None:
    """``local_report.png`` and ``local_box_centres.pdb`` at their staged paths."""
    _write_report(staged["report"], result, summary)
    _write_centres(staged["box_centres"], result.iter_boxes(), result.map.geometry())


def _remove_leftovers(out: Path, created: bool) -> None:
    """After a fault that left no resumable store: remove the fragments a run writes after its directory
    vanished (a store without run.json, an image without zarr.json: zarr makes the directories of the
    chunks it writes), and the output directory if this run made it and it is empty then."""
    import shutil

    from ..report.outputs import remove_if_unused

    for leftover, marker in ((out / STORE, "run.json"), (out / OUTPUTS["local_image"], "zarr.json")):
        if leftover.is_dir() and not (leftover / marker).exists():
            shutil.rmtree(leftover, ignore_errors=True)
    remove_if_unused(out, created)


def _holds_this_run(store: Path, run_: Any) -> bool:
    """Whether ``store`` holds work of this run (a store of the same input and options): what --resume continues."""
    from ..engine.local.run import check_resumable

    if not (store / "run.json").exists():
        return False
    try:
        check_resumable(store, run_.source, run_.local, run_.options, run_.opened, run_.spec)
    except (LocalsharpError, OSError):
        return False
    return True


def _space_needed(out: Path, shape: tuple[int, int, int], n_maps: int, chunk: int, tile_chunks: int) -> int:
    """About how many bytes the run still writes: the overall map and molecule mask unless recorded, the
    ``n_maps`` images' tiles not yet recorded (uncompressed), the CCP4 maps and the small outputs."""
    voxels = int(shape[0]) * int(shape[1]) * int(shape[2])
    records = out / STORE / "records"
    overall = 0 if (records / "overall.json").exists() else voxels * (4 + 1)
    edge = chunk * tile_chunks
    n_tiles = 1
    for n in shape:
        n_tiles *= -(-int(n) // edge)
    try:
        done = sum(1 for name in os.listdir(records / "tiles") if name.startswith(f"t{tile_chunks}-"))
    except OSError:
        done = 0
    images = n_maps * 4 * voxels * max(0, n_tiles - done) // n_tiles
    return overall + images + n_maps * (4 * voxels + 1024) + 2**18


def _sharpen(args: argparse.Namespace, source: Any, out: Path, local: LocalOptions, options: SharpenOptions,
             paths: dict[str, Path]) -> Any:
    """The run on the cluster the options name (the store is kept for --resume, also on Ctrl-C)."""
    from ..engine.cluster.client import quiet_distributed_logs
    from ..engine.local.run import local_sharpen
    from ..report.progress import ProgressReporter

    reporter = ProgressReporter("localsharp local", quiet=args.quiet)
    reporter.attach_to_logging()
    from ..engine.local.mean_input import mean_name

    name = args.map or mean_name(tuple(args.half_maps))
    reporter.note(f"{name}: {'x'.join(map(str, source.shape[::-1]))} voxels; starting "
                  + ("in this process" if args.in_process else "the cluster"))
    if not args.verbose and not args.in_process:
        quiet_distributed_logs()
    with cluster_client(args, out, reporter.note) as client:
        result = local_sharpen(source if args.map else None, args.resolution, client=client, store=out / STORE, local=local,
                               options=options, resume=args.resume, overwrite=args.overwrite,
                               progress=reporter, output=paths["local_image"],
                               half_maps=tuple(args.half_maps) if args.half_maps else None,
                               model=args.model, model_rms=args.model_rms, symmetry=args.symmetry_spec)
        args.cluster_record = cluster_record(client)  # for the summary
        return result


def _only_box(args: argparse.Namespace, out: Path, local: LocalOptions, options: SharpenOptions) -> int:
    """``--only-box N``: one box by hand (the run store is made or reused; no map is written)."""
    import shutil

    from ..report.outputs import prepare_output_dir, remove_if_unused
    from ..engine.local.run import inspect_box

    created = prepare_output_dir(out, {}, True)
    made_store = not (out / STORE).exists()
    try:
        row = inspect_box(args.map, args.only_box, resolution=args.resolution, store=out / STORE, local=local,
                          options=options)
    except LocalsharpError:  # e.g. a box that does not exist: a store made for it alone is not kept
        if made_store:
            shutil.rmtree(out / STORE, ignore_errors=True)
        remove_if_unused(out, created)
        raise
    print(f"localsharp local: box {row['index']} of {args.map}: centre {row['centre_A']} Å, "
          f"core {row['core_zyx']} (z, y, x), searched on {row['outer_zyx']}")
    print(f"  status {row['status']}: {row['reason']}")
    b_start = "-" if row["b_iso_start"] is None else f"{row['b_iso_start']:.1f} Å²"
    print(f"  solvent fraction {row['solvent_fraction']:.3f}, B_iso of the box {b_start}")
    print(f"  {_applied_text(row)}")
    if row["trials"]:
        print("  trials:  target_B  b_sharpen  surf_area  regions  adjusted_SA  kurtosis")
        for t in sorted(row["trials"], key=lambda t: t["b_iso"]):
            print(f"          {t['b_iso']:8.1f} {t['b_sharpen']:10.1f} {t['surface_area']:10.3f} {t['n_regions']:8d} "
                  f"{t['adjusted_sa']:12.3f} {t['kurtosis']:9.2f}")
    return 0


def _write_report(path: Path, result: Any, summary: dict[str, Any]) -> None:
    """``local_report.png``: central planes coloured by b_sharpen (and local resolution) and box histograms."""
    from ..report.local_report import B_SHARPEN_LABEL, EQUIVALENT_B_LABEL, plot_local_report

    voxel = tuple(result.map.geometry()["voxel_size"])[::-1]
    mode = summary.get("local_mode", "model_free")
    plot_local_report(path, result.map.array, result.b_sharpen_map.array, result.iter_boxes(),
                      resolution_map=None if result.resolution_map is None else result.resolution_map.array,
                      voxel_zyx=voxel, title=f"local sharpening ({mode.replace('_', '-')}): {summary['input']['map']}",
                      b_sharpen_label=B_SHARPEN_LABEL if mode == "model_free" else EQUIVALENT_B_LABEL)


def _write_summary(path: Path, summary: dict[str, Any], rows: Iterable[dict[str, Any]]) -> None:
    """The summary as JSON with its per-box table streamed row by row (no list of every box is built)."""
    from ..report.summary import json_default

    head = json.dumps(summary, indent=1, allow_nan=False, default=json_default)
    with open(path, "w") as handle:
        handle.write(head[:-2] + ',\n "boxes": [')
        for i, row in enumerate(rows):
            handle.write(("," if i else "") + "\n  " + json.dumps(row, allow_nan=False, default=json_default))
        handle.write("\n ]\n}\n")


def _write_centres(path: Path, rows: Iterable[dict[str, Any]], geometry: dict[str, Any]) -> None:
    """Searched box centres as a PDB file: B = the b_sharpen the box applied, occupancy 1 / 0.5 / 0 = sharpened /
    kept / skipped as applied (boxes the coarse mask skipped without a task are left out).  A symmetric run
    also writes the boxes that took a mate's outcome: residue MAT in chain M (the searched ones are BOX in
    chain A), the residue number is the box index, and a REMARK 250 line per mate names the searched boxes
    it took its outcome from."""
    import numpy as np

    from ..maps.model import write_points_pdb

    positions, b, occupancy, names, chains, numbers, remarks = [], [], [], [], [], [], []
    symmetric = False
    for row in rows:
        if row["status"] == "skipped" and "no task" in row["reason"]:
            continue
        positions.append(row["centre_A"])
        b.append(row.get("b_sharpen_applied") or 0.0)
        occupancy.append(STATUS_OCCUPANCY.get(row["status"], 0.0))
        role = (row.get("symmetry") or {}).get("role")
        symmetric = symmetric or role is not None
        names.append("MAT" if role == "mate" else "BOX")
        chains.append("M" if role == "mate" else "A")
        numbers.append(int(row["index"]))
        if role == "mate":
            sources = row["symmetry"].get("from", [])
            weights = row["symmetry"].get("weights", [])
            items = [f"{j}({w:.2f})" for j, w in zip(sources, weights)] or ["NONE"]
            for start in range(0, len(items), 4):  # a REMARK line holds 80 characters
                remarks.append(f"BOX {row['index']} FROM " + " ".join(items[start:start + 4]))
    cell = SimpleNamespace(cell_lengths=tuple(geometry["cell_lengths"]), cell_angles=tuple(geometry["cell_angles"]))
    extra = {"names": names, "chains": chains, "numbers": numbers,
             "remarks": ["BOX = SEARCHED (CHAIN A); MAT = TOOK A SYMMETRY MATE'S OUTCOME (CHAIN M);",
                         "BOX N FROM J(W): BOX N TOOK THE OUTCOME OF SEARCHED BOX J WITH WEIGHT W", *remarks]
             } if symmetric else {}
    write_points_pdb(path, np.array(positions, dtype=float).reshape(-1, 3), np.array(b, dtype=float),
                     np.array(occupancy, dtype=float), cell, **extra)


def _values(path: Path, mode: str, overall_method: str | None = None) -> dict[str, Any]:
    """Mean and SD of the written map (its header's, computed as it was streamed) and the scale they are on."""
    import mrcfile

    with mrcfile.open(path, header_only=True, permissive=True) as mrc:
        mean, sd = float(mrc.header.dmean), float(mrc.header.rms)
    kept = ("each box keeps its own mean and its in-band amplitude" if mode == "model_free"
            else "each box keeps its own mean and SD")
    scale = (f"on the scale of the overall-sharpened map (rescaled to mean 0, SD 1); {kept}"
             if mode == "model_free" and overall_method != "no_sharpening"
             else f"on the input map's scale; {kept}")
    return {"output": {"mean": mean, "sd": sd}, "scale": scale}


def _applied_text(row: dict[str, Any]) -> str:
    """``b_sharpen applied … (searched …, score within its noise for … )`` of one box row."""
    applied, searched = row.get("b_sharpen_applied"), row.get("b_sharpen_searched")
    if applied is None:
        return "b_sharpen applied: none (the box is not rendered)"
    text = f"b_sharpen applied {applied:.1f} Å²"
    span = row.get("b_sharpen_within_noise")
    if searched is not None and (searched != applied or span):
        text += f" (search's pick {searched:.1f} Å²"
        if span:
            text += f", score within its noise for {span[0]:.1f} ... {span[1]:.1f}"
        text += ")"
    return text


#: What a box status means in the terminal table, by mode.
KEPT_WORDS = {"model_free": "kept at the overall sharpening", "half_map": "kept as they are",
              "model": "kept as they are"}


def _status_text(by_status: dict[str, int], mode: str) -> str:
    words = {"sharpened": "sharpened", "unsharpened": KEPT_WORDS.get(mode, "kept"), "skipped": "skipped",
             "failed": "failed (kept at the overall sharpening)"}
    order = ["sharpened", "unsharpened", "skipped", "failed"]
    keys = order + sorted(k for k in by_status if k not in order)
    return ", ".join(f"{by_status[k]} {words.get(k, k)}" for k in keys if by_status.get(k))


def _mean_text(summary: dict[str, Any], scale_mode: bool) -> str:
    mean_sharpened, mean_all = summary["mean_b_sharpen_sharpened_boxes"], summary.get("mean_b_sharpen_applied")
    n_sharpened = summary["boxes_by_status"].get("sharpened", 0)
    if mean_all is None:
        return "- (no box was analysed)"
    text = (f"mean {mean_sharpened:.1f} Å² over the {n_sharpened} sharpened boxes, " if mean_sharpened is not None
            else "no box sharpened; ")
    text += f"{mean_all:.1f} Å² over all {summary.get('boxes_analysed', 0)} analysed"
    searched = summary.get("mean_b_sharpen_searched")
    if not scale_mode and searched is not None:
        text += f" (search picks: mean {searched:.1f} Å²)"
    return text


def _print_table(summary: dict[str, Any], paths: dict[str, Path]) -> None:
    overall = summary["overall"]
    mode = summary.get("local_mode", "model_free")
    scale_mode = mode != "model_free"
    rows = [
        ("mode", mode.replace("_", "-")),
        ("overall sharpening", f"{overall['method']} b_sharpen {overall['b_sharpen']:.1f} Å²"
         + (" (its molecule mask places the boxes)" if scale_mode else "")),
        ("boxes", f"{summary['n_boxes']} in the grid: {summary['boxes_searched']} searched, "
                  f"{summary['boxes_skipped_by_mask']} skipped by the coarse mask"),
        ("boxes as applied", _status_text(summary["boxes_by_status"], mode)),
        ("equivalent B applied" if scale_mode else "b_sharpen applied", _mean_text(summary, scale_mode)),
    ]
    symmetry = summary.get("symmetry")
    if symmetry is not None:
        rows.append(("symmetry", _symmetry_line(symmetry)))
        if symmetry.get("warning"):
            rows.append(("warning", symmetry["warning"]))
    rows += [
        ("smoothing radius", f"{summary['smoothing_radius']:.1f} Å"),
        ("output values", "-" if not summary.get("values") else
         f"mean {summary['values']['output']['mean']:.3g}, SD {summary['values']['output']['sd']:.3g}, "
         + summary["values"]["scale"]),
        ("time", f"{summary['timings_s']['total']:.1f} s"),
    ]
    print(f"localsharp local: {summary['input']['map']}")
    for key, value in rows:
        print(f"  {key:<25} {value}")
    for role, path in paths.items():
        print(f"  {role:<25} {path}")


def _symmetry_line(symmetry: dict[str, Any]) -> str:
    """The table's symmetry line: the group used and how many boxes were searched or took a mate's outcome."""
    if not symmetry.get("used"):
        return f"none used ({symmetry.get('verdict', '')})"
    group = symmetry["group"]
    relion = f", RELION {group['relion_name']}" if group.get("relion_name") and group["symbol"] == "I" else ""
    centre = ", ".join(f"{c:g}" for c in symmetry["centre_A"])
    how = "found" if symmetry.get("given") == "auto" else "given"
    margin = f" + {symmetry['margin_A']:g} Å" if symmetry.get("margin_A") else ""
    return (f"{group['name']}{relion} about ({centre}) Å ({how}); {symmetry['boxes_searched']} boxes searched in "
            f"one asymmetric unit{margin}, {symmetry['boxes_from_mates']} took their mates' outcomes "
            f"({symmetry['mates']})")
