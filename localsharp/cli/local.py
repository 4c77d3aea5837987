"""``localsharp local``: local sharpening on a Dask cluster (a LocalCluster by default)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LocalOptions, SharpenOptions
from ..errors import ConfigError, InputFileError
from ..maps.atomic import AtomicSet
from ..maps.model import write_points_pdb
from ..maps.mrc import write_map
from ..report.outputs import prepare_output_dir
from ..report.summary import sha256, versions, write_json

OUTPUTS = {"local_map": "local_sharpened_map.ccp4", "summary": "local_summary.json",
           "box_centres": "local_box_centres.pdb"}
#: Occupancy written for each box status in the centres file.
STATUS_OCCUPANCY = {"sharpened": 1.0, "unsharpened": 0.5, "skipped": 0.0}
STORE = "local_run.zarr"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``local`` options to ``parser``."""
    parser.description = ("Sharpen a map locally: overall sharpening first, then overlapping boxes each optimised "
                          "on their own (in parallel on Dask workers) and blended with Gaussian weights.")
    parser.add_argument("map", metavar="MAP", help="MRC/CCP4 map (.mrc/.map/.ccp4, optionally .gz)")
    parser.add_argument("--resolution", type=float, required=True, help="nominal resolution (Å)")
    parser.add_argument("--output-dir", default="localsharp_local", help="output directory (holds the run store)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs and run store")
    parser.add_argument("--resume", action="store_true", help="continue the run recorded in the output directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or table on the terminal")
    parser.add_argument("--only-box", type=int, metavar="N",
                        help="run box N by hand, in this process, and print its trials (no map is written)")
    tiling = parser.add_argument_group("boxes")
    tiling.add_argument("--box-size", type=int, default=40, help="box edge (voxels, default 40)")
    tiling.add_argument("--stride", type=int, default=20, help="largest spacing of box centres (voxels, default 20)")
    tiling.add_argument("--smoothing-radius", type=float, help="R of the blending weight exp(-r²/2R²) (Å)")
    tiling.add_argument("--chunk", type=int, default=64, help="output chunk edge (voxels, default 64)")
    comp = parser.add_argument_group("composition")
    comp.add_argument("--solvent-content", type=float, help="solvent fraction (0-1) of the map")
    comp.add_argument("--molecular-mass", type=float, help="molecular mass in the map (kDa)")
    comp.add_argument("--ignore-map-limitations", action="store_true",
                      help="sharpen a map whose header says it is already sharpened (refused by default)")
    cluster = parser.add_argument_group("cluster (default: a LocalCluster on this machine)")
    cluster.add_argument("--workers", type=int, help="LocalCluster worker processes (default: the cores)")
    cluster.add_argument("--scheduler-file", help="connect to a running scheduler (e.g. started under SLURM)")
    cluster.add_argument("--scheduler-address", help="connect to a running scheduler at this address")
    cluster.add_argument("--in-process", action="store_true", help="no cluster: run every task in this process")


class _Progress:
    """One status line per pass on stderr, refreshed at most every 0.5 s."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.t0, self.last = quiet, time.perf_counter(), 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < 0.5 and done < total):
            return
        self.last = now
        label = {"boxes": "boxes searched", "chunks": "chunks blended"}.get(stage, stage)
        end = "\n" if done >= total else "\r"
        print(f"localsharp local: {label} {done}/{total}  ({now - self.t0:.1f} s)", end=end, file=sys.stderr,
              flush=True)


def run(args: argparse.Namespace) -> int:
    """Run local sharpening and write the map and summary atomically; returns the exit status."""
    from ..engine.cluster import make_client, quiet_distributed_logs
    from ..engine.run import local_sharpen

    out = Path(args.output_dir)
    paths = {role: out / name for role, name in OUTPUTS.items()}
    if not Path(args.map).is_file():
        raise InputFileError(args.map, "no such file")
    if args.resume and args.overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    local = LocalOptions(box_size=args.box_size, stride=args.stride, smoothing_radius=args.smoothing_radius,
                         chunk=args.chunk)
    options = SharpenOptions(resolution=args.resolution, solvent_content=args.solvent_content,
                             molecular_mass=args.molecular_mass,
                             ignore_map_limitations=args.ignore_map_limitations)
    if args.only_box is not None:
        return _only_box(args, out, local, options)
    prepare_output_dir(out, paths, args.overwrite or args.resume)
    t0 = time.perf_counter()
    if not args.verbose and not args.in_process:
        quiet_distributed_logs()
    client = None if args.in_process else make_client(workers=args.workers, scheduler_file=args.scheduler_file,
                                                      scheduler_address=args.scheduler_address, verbose=args.verbose)
    try:
        result = local_sharpen(args.map, client, resolution=args.resolution, store=out / STORE, local=local,
                               options=options, resume=args.resume, overwrite=args.overwrite,
                               progress=_Progress(args.quiet))
    except KeyboardInterrupt:
        print(f"\nlocalsharp local: interrupted; the work done so far is saved in {out / STORE}: "
              "run the same command with --resume to continue", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            _close(client)
    summary = result.summary()
    summary.update({"input": {"map": args.map, "sha256": sha256(args.map), "geometry": result.map.geometry()},
                    "resolution": args.resolution, "versions": versions(), "command": sys.argv,
                    "outputs": {k: str(v) for k, v in paths.items()}})
    summary["timings_s"]["total"] = time.perf_counter() - t0
    with AtomicSet(overwrite=True) as files:
        write_map(files.stage(paths["local_map"]), result.map, overwrite=True,
                  label=f"localsharp local: {summary['n_boxes']} boxes b_sharpen varies")
        write_json(files.stage(paths["summary"]), summary)
        _write_centres(files.stage(paths["box_centres"]), summary["boxes"], result.map)
    if not args.quiet:
        _print_table(summary, paths)
    return 0


def _only_box(args: argparse.Namespace, out: Path, local: LocalOptions, options: SharpenOptions) -> int:
    """``--only-box N``: one box by hand (the run store is made or reused; no map is written)."""
    from ..engine.run import inspect_box

    prepare_output_dir(out, {}, True)
    row = inspect_box(args.map, args.only_box, resolution=args.resolution, store=out / STORE, local=local,
                      options=options)
    sharpening = row["sharpening"] or {}
    print(f"localsharp local: box {row['index']} of {args.map}: centre {row['centre_A']} Å, "
          f"core {row['core_zyx']} (z, y, x), searched on {row['outer_zyx']}")
    print(f"  status {row['status']}: {row['reason']}")
    b_start = "-" if row["b_iso_start"] is None else f"{row['b_iso_start']:.1f} Å²"
    print(f"  solvent fraction {row['solvent_fraction']:.3f}, B_iso of the box {b_start}, "
          f"b_sharpen {sharpening.get('b_sharpen', 0.0):.1f} Å²")
    if row["trials"]:
        print("  trials:  target_B  b_sharpen  surf_area  regions  adjusted_SA  kurtosis")
        for t in sorted(row["trials"], key=lambda t: t["b_iso"]):
            print(f"          {t['b_iso']:8.1f} {t['b_sharpen']:10.1f} {t['surface_area']:10.3f} {t['n_regions']:8d} "
                  f"{t['adjusted_sa']:12.3f} {t['kurtosis']:9.2f}")
    return 0


def _write_centres(path: Path, boxes: list[dict[str, Any]], density: Any) -> None:
    """Box centres as a PDB file: B = the box's b_sharpen, occupancy 1 / 0.5 / 0 = sharpened / kept / skipped."""
    positions = np.array([row["centre_A"] for row in boxes], dtype=float).reshape(-1, 3)
    b = np.array([(row["sharpening"] or {}).get("b_sharpen", 0.0) for row in boxes], dtype=float)
    occupancy = np.array([STATUS_OCCUPANCY.get(row["status"], 0.0) for row in boxes], dtype=float)
    write_points_pdb(path, positions, b, occupancy, density)


def _close(client: Any) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _print_table(summary: dict[str, Any], paths: dict[str, Path]) -> None:
    overall = summary["overall"]
    print(f"localsharp local: {summary['input']['map']}")
    print(f"  overall sharpening        {overall['method']} b_sharpen {overall['b_sharpen']:.1f} Å²")
    print(f"  boxes                     {summary['n_boxes']} ({', '.join(f'{v} {k}' for k, v in summary['boxes_by_status'].items())})")
    mean_b = summary["mean_b_sharpen_sharpened_boxes"]
    print(f"  mean local b_sharpen      {'-' if mean_b is None else f'{mean_b:.1f} Å²'}")
    print(f"  smoothing radius          {summary['smoothing_radius']:.1f} Å")
    print(f"  time                      {summary['timings_s']['total']:.1f} s")
    for role, path in paths.items():
        print(f"  {role:<25} {path}")
