"""Large maps: wall time and peak memory of the whole ``localsharp sharpen`` process.

Maps far bigger than the shared cases (virus capsids reach 1000³ voxels) are built by tiling the
real EMD-11007 crop (192³, 0.834 Å voxels) 2×2×2 (384³, 226 MB) and, with ``--sizes 384 512``,
padding/cropping the tiling to other edge lengths.  Each size runs ``--repeats`` times as a fresh
process; the peak resident memory (``ru_maxrss`` of the child), its peak *anonymous* memory
(``RssAnon``, sampled every 20 ms: what the system cannot reclaim; pages of a memory-mapped input
file count in RSS but not here) and the stage timings of ``summary.json`` are recorded.  Bytes per
voxel = peak memory / voxels: what a 1000³ map would need is about 1e9 times that, plus the fixed
~0.3 GB of the interpreter and libraries.

Run: ``python benchmarks/bench_large.py [--sizes 384] [--repeats 3] [--merge] [--output large.json]``.
Writes ``benchmarks/results/large.json`` (``--merge`` keeps the sizes not re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from _proctree import rss_anon_mb  # noqa: E402
from _common import CASES, RESULTS, available, median, print_table, write_json


def make_map(size: int, path: Path) -> None:
    """Tile the EMD-11007 crop to ``size``³ voxels (same voxel size) and write it as MRC."""
    import mrcfile
    import numpy as np

    import localsharp

    src = localsharp.read_map(CASES["emd11007"]["map"])
    reps = -(-size // src.data.shape[0])
    big = np.tile(src.data, (reps, reps, reps))[:size, :size, :size]
    with mrcfile.new(str(path), overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(big, dtype=np.float32))
        mrc.voxel_size = tuple(float(v) for v in src.voxel_size)


def run_once(map_path: Path, out_dir: Path) -> tuple[float, float, float, dict]:
    """Wall time (s), peak RSS and peak anonymous RSS (MB, sampled every 20 ms) of one CLI process, and its
    stage timings."""
    cmd = [sys.executable, "-m", "localsharp", "sharpen", str(map_path), "--resolution", "2.9",
           "--output-dir", str(out_dir), "--overwrite", "-q"]
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: exec the CLI so its ru_maxrss is its own
        os.execv(sys.executable, cmd)
    anon = 0.0
    while True:  # sample the child's anonymous memory (not file pages, which the system can drop)
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        anon = max(anon, rss_anon_mb(pid))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with status {status}")
    summary = json.loads((out_dir / "summary.json").read_text())
    return wall, usage.ru_maxrss / 1024.0, anon, summary["timings_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[384])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--merge", action="store_true", help="keep the other sizes already in large.json")
    parser.add_argument("--output", default="large.json", help="results file name in benchmarks/results")
    args = parser.parse_args()
    if not available(CASES["emd11007"]):
        print(f"skip: {CASES['emd11007']['map']} missing")
        return
    rows, out = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            map_path = Path(tmp) / f"tiled_{size}.mrc"
            make_map(size, map_path)
            runs = [run_once(map_path, Path(tmp) / f"out_{size}") for _ in range(args.repeats)]
            walls = [r[0] for r in runs]
            rss = [r[1] for r in runs]
            anon = [r[2] for r in runs]
            voxels = size**3
            stages = runs[-1][3]
            rows.append([f"{size}^3", round(voxels * 4 / 1e6), median(walls), stages.get("total", float("nan")),
                         median(rss), median(anon), median(anon) * 1e6 / voxels])
            out[f"{size}"] = {"voxels": voxels, "map_mb": voxels * 4 / 1e6, "wall_s": walls, "median_wall_s": median(walls),
                              "peak_rss_mb": rss, "median_peak_rss_mb": median(rss),
                              "peak_anon_mb": anon, "median_peak_anon_mb": median(anon),
                              "bytes_per_voxel": median(rss) * 1e6 / voxels,
                              "anon_bytes_per_voxel": median(anon) * 1e6 / voxels, "stages_s_last": stages}
    print_table(["map", "MB", "wall s (median)", "global_sharpen s", "peak RSS MB", "peak anon MB",
                 "anon bytes/voxel"], rows)
    print(f"(self ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, not included)")
    previous = RESULTS / args.output
    if args.merge and previous.exists():
        out = {**json.loads(previous.read_text())["results"], **out}
    write_json(args.output, {"benchmark": "whole CLI process on tiled EMD-11007, resolution 2.9 Å", "results": out})


if __name__ == "__main__":
    main()
