"""Speed of local sharpening: wall time in-process and on a LocalCluster (2 single-threaded workers).

Median of 3 runs after one warm-up run, each with a fresh store; the cluster is started once
(its start-up time is reported separately).  Run: ``python benchmarks/bench_local.py``; prints a
table and writes ``benchmarks/results/local.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, available, median, print_table, write_json  # noqa: E402

import localsharp  # noqa: E402

REPEATS = 3
BENCH_CASES = ("emd3488", "emd11007")


def timed_runs(density, resolution: float, client) -> tuple[list[float], dict]:
    times, summary = [], {}
    for i in range(REPEATS + 1):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = localsharp.local_sharpen(density, resolution, client=client, store=Path(tmp) / "run.zarr")
            if i:
                times.append(time.perf_counter() - t0)
            summary = result.summary()
    return times, summary


def main() -> None:
    from distributed import Client, LocalCluster

    rows, out = [], {}
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                      env={"LOCALSHARP_FFT_WORKERS": "1"}) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        startup = time.perf_counter() - t0
        for name in BENCH_CASES:
            case = CASES[name]
            if not available(case):
                print(f"skip {name}: {case['map']} missing")
                continue
            density = localsharp.read_map(case["map"])
            serial, summary = timed_runs(density, case["resolution"], None)
            dask, _ = timed_runs(density, case["resolution"], client)
            shape = "x".join(str(n) for n in density.shape_xyz)
            rows.append([name, shape, summary["n_boxes"], round(median(serial), 2), round(median(dask), 2),
                         round(median(serial) / median(dask), 2)])
            out[name] = {"shape_xyz": density.shape_xyz, "n_boxes": summary["n_boxes"],
                         "in_process_s": serial, "localcluster_2_workers_s": dask,
                         "median_in_process_s": median(serial), "median_localcluster_s": median(dask),
                         "speed_up": median(serial) / median(dask), "timings_last_run_s": summary["timings_s"]}
            print(rows[-1], flush=True)
    print_table(["map", "shape", "boxes", "in-process (s)", "LocalCluster x2 (s)", "speed-up"], rows)
    write_json("local.json", {"benchmark": "local_sharpen wall time, median of 3",
                              "localcluster_startup_s": startup, "results": out})


if __name__ == "__main__":
    main()
