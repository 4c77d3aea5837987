"""How much a symmetric run's CC depends on which copy of the asymmetric unit it searched.

A run with ``--symmetry`` searches the boxes of one asymmetric unit (ASU) and gives every symmetry
image of them the searched box's outcome.  When the copies of a map carry independent noise (a
map reconstructed without symmetry imposed: the ``bench_symmetry`` phantoms without
``--symmetric-noise``), each copy's own search would pick differently, and which copy happens to
be the searched one moves the CC of the result.  This benchmark measures that spread:

1. ``localsharp local MAP`` (every box searched; the ``plain`` run) and ``localsharp local MAP
   --symmetry GROUP``, both kept (``benchmarks/bench_symmetry.py``'s phantoms and runner);
2. for each operator ``g`` of the group, the searched set is moved to another copy of the ASU: the
   boxes the plain run searched nearest to ``g·p`` for every searched centre ``p``, with the rows the
   plain run recorded for them (their own searches).  For O, whose operators carry the grid onto
   itself, ``g·p`` is a grid point or within two voxels of one: the moved set is a true copy of the
   ASU.  For I the images fall between the grid's boxes (up to ~14 voxels from the nearest), so each
   moved box is a nearby box, not the copy itself: an approximation;
3. the symmetric layout of that set (:func:`localsharp.engine.local.tasks.layout_of`: every image
   of each box, through the run's round windows and ball weights) is blended in this process into
   a scratch image, and its CC to the B = 0 model is measured (``evaluate_map``, the same measure as
   ``localsharp evaluate``).

Operator 0 (the identity) reproduces the symmetric run.  Reported: per operator, the boxes moved,
how far the moved centres lie from grid points, how many are sharpened, the CC and CC − plain;
then the mean, SD, min and max of CC − plain over the operators.

Run: ``python benchmarks/symmetry_asu_copies.py [--phantom O] [--operators 0 1 2 ...]
[--symmetric-noise]``; prints the table and merges the phantom into
``benchmarks/results/symmetry_asu_copies.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_symmetry as bench  # noqa: E402
from _common import RESULTS, print_table  # noqa: E402
from _proctree import machine  # noqa: E402

OUT = RESULTS / "symmetry_asu_copies.json"


def moved_indices(placed, grid, searched: np.ndarray, operator: int, recorded: np.ndarray) -> tuple[np.ndarray, float]:
    """The recorded grid boxes (``recorded``: indices the plain run searched) nearest to the images of the
    searched boxes' centres under ``operator``, and the largest distance (voxels) from an image to its box."""
    from scipy.spatial import cKDTree

    def zyx_of(indices: np.ndarray) -> np.ndarray:
        xyz = placed.positions(grid, indices) + np.asarray(placed.centre) - np.asarray(placed.first_voxel)
        return (xyz / np.asarray(placed.voxel_size))[:, ::-1]

    p = placed.positions(grid, searched) @ np.asarray(placed.group.matrices[operator]).T
    images = ((p + np.asarray(placed.centre) - np.asarray(placed.first_voxel)) / np.asarray(placed.voxel_size))[:, ::-1]
    distance, nearest = cKDTree(zyx_of(recorded)).query(images)
    return recorded[nearest].astype(np.int64), float(np.max(distance))


def blend_cc(job, tiles: list[list[int]], layout, source_path: Path, model: Path, scratch: Path) -> float:
    """Blend ``layout`` into a scratch image in this process and return its CC to the model."""
    import zarr

    from localsharp.engine.local.inputs import template_of
    from localsharp.engine.local.run import prepare_input
    from localsharp.engine.local.tasks import render_tiles
    from localsharp.evaluate import evaluate_map
    from localsharp.maps.mrc import read_map
    from localsharp.maps.omezarr import create_image

    source, _ = prepare_input(str(source_path), bench.RESOLUTION, None)
    shutil.rmtree(scratch, ignore_errors=True)
    create_image(scratch, template_of(source), (64,) * 3, overwrite=True)
    job = dataclasses.replace(job, output=str(scratch / "0"), b_output="", resolution_output="")
    for row in tiles:
        render_tiles(job, list(row), layout=layout)
    density = read_map(source_path)
    blended = dataclasses.replace(density, data=np.asarray(zarr.open_array(str(scratch / "0"))[...], dtype=np.float32))
    return float(evaluate_map(blended, model, bench.RESOLUTION)["cc_mask"])


def measure(args: argparse.Namespace) -> dict:
    from localsharp.engine.cluster.worker_setup import limit_threads
    from localsharp.engine.local import run as local_run
    from localsharp.engine.local.symmetry import box_symmetry
    from localsharp.config import LocalOptions
    from localsharp.engine.local.tasks import layout_of, searched_rows
    from localsharp.maps.store import RunStore

    limit_threads()
    name, group = args.phantom, bench.GROUP[args.phantom]
    map_path, model = bench.ensure_phantom(args.cache, name, symmetric_noise=args.symmetric_noise)
    work = args.cache / f"asu_copies_{name}{'_symmetric_noise' if args.symmetric_noise else ''}"
    runs = {}
    for variant, extra in (("plain", []), ("sym", ["--symmetry", group])):
        done = work / variant / "local_summary.json"
        runs[variant] = bench.run_local(map_path, work / variant, args.workers, extra) if not (args.reuse and done.exists()) \
            else {"map": str(work / variant / "local_sharpened_map.ccp4")}
        print(f"{name} {variant}: run", flush=True)
    plain_cc = bench.evaluate(Path(runs["plain"]["map"]), model)
    sym_cc = bench.evaluate(Path(runs["sym"]["map"]), model)
    source, opts = local_run.prepare_input(str(map_path), bench.RESOLUTION, None)
    sym_store, plain_store = RunStore(work / "sym" / "local_run.zarr"), RunStore(work / "plain" / "local_run.zarr")
    placed = box_symmetry(sym_store.record("symmetry"), source)
    plan, job = local_run._plan(source, sym_store, sym_store.record("overall"), LocalOptions(), opts,
                                False, placed)
    plain_plan, _ = local_run._plan(source, plain_store, plain_store.record("overall"), LocalOptions(), opts)
    searched = np.array(sorted(searched_rows(sym_store, plan)), dtype=np.int64)
    plain_rows = searched_rows(plain_store, plain_plan)
    operators = args.operators if args.operators else list(range(placed.group.order))
    table = []
    recorded = np.array(sorted(plain_rows), dtype=np.int64)
    for g in operators:
        indices, off = moved_indices(placed, job.grid, searched, g, recorded)
        rows = {int(i): plain_rows[int(i)] for i in indices}
        cc = blend_cc(job, plan.tile_rows(), layout_of(job, rows), map_path, model, work / "scratch.ome.zarr")
        entry = {"operator": g, "boxes": len(rows), "largest_offset_voxels": round(off, 3),
                 "sharpened": sum(r["status"] == "sharpened" for r in rows.values()),
                 "cc": round(cc, 5), "cc_minus_plain": round(cc - plain_cc, 5)}
        table.append(entry)
        print(entry, flush=True)
    diffs = [e["cc_minus_plain"] for e in table]
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "map": str(map_path), "model": str(model), "group": group,
              "noise": "symmetric" if args.symmetric_noise else "independent", "workers": args.workers,
              "plain_cc": round(plain_cc, 5), "sym_run_cc": round(sym_cc, 5), "operators": table,
              "cc_minus_plain": {"mean": round(statistics.mean(diffs), 5),
                                 "sd": round(statistics.stdev(diffs), 5) if len(diffs) > 1 else None,
                                 "min": min(diffs), "max": max(diffs), "n": len(diffs)}}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phantom", default="O", choices=sorted(bench.PHANTOMS))
    parser.add_argument("--operators", type=int, nargs="*", help="operator numbers (default: every one)")
    parser.add_argument("--symmetric-noise", action="store_true", help="the phantom with noise averaged over the group")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp-bench-symmetry"))
    parser.add_argument("--reuse", action="store_true", help="reuse the plain and symmetric runs kept by --keep")
    parser.add_argument("--keep", action="store_true", help="keep the runs")
    args = parser.parse_args(argv)
    result = measure(args)
    rows = [[e["operator"], e["boxes"], e["largest_offset_voxels"], e["sharpened"], f"{e['cc']:.4f}",
             f"{e['cc_minus_plain']:+.4f}"] for e in result["operators"]]
    print_table(["operator", "boxes", "offset (vox)", "sharpened", "CC", "CC − plain"], rows)
    s = result["cc_minus_plain"]
    print(f"{result['group']} ({result['noise']} noise): plain CC {result['plain_cc']:.4f}, symmetric run "
          f"{result['sym_run_cc']:.4f}; CC − plain over {s['n']} copies of the ASU: mean {s['mean']:+.4f}, "
          f"SD {s['sd']}, min {s['min']:+.4f}, max {s['max']:+.4f}")
    merged = json.loads(OUT.read_text()) if OUT.exists() else {"benchmark": __doc__.split("\n")[0], "phantoms": {}}
    key = f"{args.phantom}{' symmetric noise' if args.symmetric_noise else ''}"
    merged["phantoms"][key] = result
    OUT.write_text(json.dumps(merged, indent=1) + "\n")


if __name__ == "__main__":
    main()
