"""Map I/O that scales: wall time and peak memory of region reads, OME-Zarr conversion and streamed CCP4 writing.

A ``size``³ float32 map is built by tiling the real EMD-11007 crop (192³, axis order 3,2,1, NSTART
kept) and written in the crop's axis order.  Each step runs as a fresh process; its peak resident
memory (``ru_maxrss``) and peak *anonymous* memory (``RssAnon``, sampled every 20 ms: what the
system cannot reclaim; pages of a memory-mapped input count in RSS but not here) are recorded.

Steps: ``open`` (MapSource.open, header only), ``boxes`` (64³ regions at random places, ms per box),
``to_omezarr`` (MRC -> OME-Zarr with convert_to_image, 64³ chunks, 64 MiB slabs along the file's
slowest axis), ``checks`` (chunk reports of 64-plane slabs of the image, combined), ``to_ccp4``
(OME-Zarr -> CCP4 with write_map_streamed, 64 MiB slabs), and the whole-map reference
``write_map(read_map)``.

Run: ``python benchmarks/bench_io.py [--sizes 384] [--output io.json]``; writes benchmarks/results/io.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _proctree import rss_anon_mb  # noqa: E402
from _common import CASES, available, print_table, write_json

STEPS = ("open", "boxes", "to_omezarr", "checks", "to_ccp4", "write_map_whole")


def make_map(size: int, path: Path) -> None:
    """Tile the EMD-11007 crop to ``size``³ voxels with the crop's header (axis order 3,2,1)."""
    import numpy as np

    from localsharp.maps.mrc import read_map, write_map

    src = read_map(CASES["emd11007"]["map"])
    reps = -(-size // src.data.shape[0])
    big = np.tile(src.data, (reps, reps, reps))[:size, :size, :size]
    header = {k: v for k, v in src.header_extras.items() if k not in ("cella", "voxel_size", "cell_grid")}
    write_map(path, src.__class__(data=big, voxel_size=src.voxel_size, origin=src.origin, nstart=src.nstart,
                                  cell_grid=(size, size, size), cell_angles=src.cell_angles,
                                  axis_order=src.axis_order, space_group=src.space_group, header_extras=header),
              overwrite=True)


def run_step(step: str, map_path: Path, work: Path) -> dict:
    """Do one step in this process; return its own measurements."""
    import numpy as np
    import zarr

    from localsharp.maps.checks import chunk_report, combine_reports
    from localsharp.maps.mrc import read_map, write_map
    from localsharp.maps.omezarr import convert_to_image
    from localsharp.maps.source import MapSource
    from localsharp.maps.stream import write_map_streamed

    t0 = time.perf_counter()
    source = MapSource.open(map_path)
    result: dict = {"open_ms": (time.perf_counter() - t0) * 1e3}
    nz, ny, nx = source.shape
    image_path = work / "map.ome.zarr"
    if step == "boxes":
        rng = np.random.default_rng(0)
        times = []
        for _ in range(40):
            z, y, x = (int(rng.integers(0, n - 64)) for n in source.shape)
            t = time.perf_counter()
            source.read(((z, z + 64), (y, y + 64), (x, x + 64)))
            times.append(time.perf_counter() - t)
        result["box_ms_median"] = float(np.median(times) * 1e3)
        result["box_ms_first"] = times[0] * 1e3
    elif step == "to_omezarr":
        convert_to_image(source, image_path, (64, 64, 64), overwrite=True)
    elif step == "checks":
        image = MapSource.open(image_path)
        reports = [chunk_report(image.read(((z, min(z + 64, nz)), (0, ny), (0, nx)))) for z in range(0, nz, 64)]
        result["digest"] = combine_reports(image_path, reports)[:16]
    elif step == "to_ccp4":
        image = MapSource.open(image_path)
        write_map_streamed(work / "back.ccp4", zarr.open_array(image.array_path, mode="r"), image, overwrite=True)
    elif step == "write_map_whole":
        write_map(work / "whole.ccp4", read_map(map_path), overwrite=True)
    result["wall_s"] = time.perf_counter() - t0
    return result


def measure(step: str, map_path: Path, work: Path) -> dict:
    """Run a step as a child process; its results plus peak RSS and peak anonymous RSS (MB)."""
    out = work / f"{step}.json"
    cmd = [sys.executable, __file__, "--step", step, "--map", str(map_path), "--work", str(work), "--result", str(out)]
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, cmd)
    anon = 0.0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        anon = max(anon, rss_anon_mb(pid))
        time.sleep(0.02)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"step {step} failed ({status})")
    return {**json.loads(out.read_text()), "peak_rss_mb": usage.ru_maxrss / 1024.0, "peak_anon_mb": anon}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[384])
    parser.add_argument("--output", default="io.json")
    parser.add_argument("--step", choices=STEPS)
    parser.add_argument("--map")
    parser.add_argument("--work")
    parser.add_argument("--result")
    args = parser.parse_args()
    if args.step:
        Path(args.result).write_text(json.dumps(run_step(args.step, Path(args.map), Path(args.work))))
        return
    if not available(CASES["emd11007"]):
        print(f"skip: {CASES['emd11007']['map']} missing")
        return
    rows, results = [], {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        for size in args.sizes:
            work = Path(tmp)
            map_path = work / f"tiled_{size}.mrc"
            make_map(size, map_path)
            per_step = {step: measure(step, map_path, work) for step in STEPS}
            same = (work / "back.ccp4").read_bytes() == (work / "whole.ccp4").read_bytes()
            results[str(size)] = {"map_mb": size**3 * 4 / 2**20, "steps": per_step, "ccp4_equals_write_map": same}
            for step, r in per_step.items():
                rows.append([f"{size}^3", step, r["wall_s"], r["peak_rss_mb"], r["peak_anon_mb"],
                             r.get("box_ms_median", float("nan"))])
            print(f"{size}^3: streamed CCP4 identical to write_map's file: {same}")
    print_table(["map", "step", "wall s", "peak RSS MB", "peak anon MB", "64^3 box ms"], rows)
    write_json(args.output, {"sizes": results})


if __name__ == "__main__":
    main()
