"""The distributed overall pass on large maps: wall time and peak worker memory.

Maps are built by tiling the real EMD-11007 crop (192³, 0.834 Å voxels) to ``size``³ (see
``bench_large.make_map``; nothing large is kept).  A LocalCluster of 2 workers × 1 thread with a
memory limit (default 2 GiB) runs :func:`localsharp.engine.overall.driver.overall_pass` with the router
deciding (a 512³ map, 0.5 GB, needs ~3 GB in one task, so it goes distributed).  Every 50 ms the
resident memory (RSS) and anonymous memory (``RssAnon``: what the system cannot reclaim; pages
of a memory-mapped input count in RSS only) of each worker process and of the driver are sampled.

Run: ``python benchmarks/bench_overall.py [--sizes 384 512] [--memory-limit 2GiB]``.
Writes ``benchmarks/results/overall.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from _common import CASES, available, print_table, write_json
from bench_large import make_map


def _memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, RssAnon) of a process in MB from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "RssAnon:")):
                key, number = line.split()[:2]
                values[key] = int(number) / 1024.0
    return values.get("VmRSS:", 0.0), values.get("RssAnon:", 0.0)


class Sampler(threading.Thread):
    """Peak memory of some processes, sampled every ``period`` s until stopped."""

    def __init__(self, pids: dict[str, int], period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pids, self.period = pids, period
        self.peaks = {name: [0.0, 0.0] for name in pids}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for name, pid in self.pids.items():
                try:
                    rss, anon = _memory_mb(pid)
                except OSError:
                    continue
                peak = self.peaks[name]
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], anon)
            time.sleep(self.period)


def run_size(size: int, memory_limit: str, workdir: Path) -> dict:
    import distributed

    from localsharp.config import SharpenOptions
    from localsharp.engine.overall.driver import overall_pass
    from localsharp.maps.store import RunStore

    map_path = workdir / f"tiled{size}.mrc"
    make_map(size, map_path)
    store = workdir / f"run{size}.zarr"
    RunStore.create(store, {}, (size, size, size), (64, 64, 64), overwrite=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  memory_limit=memory_limit, env={"LOCALSHARP_FFT_WORKERS": "1"}) as cluster, \
            distributed.Client(cluster) as client:
        pids = {f"worker{i}": pid for i, pid in enumerate(client.run(os.getpid).values())}
        pids["driver"] = os.getpid()
        sampler = Sampler(pids)
        sampler.start()
        t0 = time.perf_counter()
        summary = overall_pass(client, str(map_path), str(store), SharpenOptions(resolution=CASES["emd11007"]["resolution"]))
        wall = time.perf_counter() - t0
        sampler.done.set()
        sampler.join()
    map_path.unlink()
    workers = [v for k, v in sampler.peaks.items() if k.startswith("worker")]
    return {"size": size, "map_mb": size**3 * 4 / 2**20, "memory_limit": memory_limit, "path": summary["path"],
            "wall_s": wall, "worker_peak_rss_mb": max(w[0] for w in workers),
            "worker_peak_anon_mb": max(w[1] for w in workers), "driver_peak_rss_mb": sampler.peaks["driver"][0],
            "driver_peak_anon_mb": sampler.peaks["driver"][1], "method": summary["method"],
            "b_sharpen": summary["b_sharpen"], "box": summary["box"]["bounds_zyx"], "box_method": summary["box"]["method"],
            "applicable": summary["applicable"], "warnings": summary["warnings"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512])
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--output", default="overall.json")
    args = parser.parse_args()
    if not available(CASES["emd11007"]):
        raise SystemExit("the EMD-11007 crop in ../shared/data is needed to build the large maps")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_overall_") as tmp:
        for size in args.sizes:
            rows.append(run_size(size, args.memory_limit, Path(tmp)))
            r = rows[-1]
            print_table(["size", "map MB", "path", "wall s", "worker RSS MB", "worker anon MB", "driver RSS MB",
                         "method", "b_sharpen", "box"],
                        [[r["size"], r["map_mb"], r["path"], r["wall_s"], r["worker_peak_rss_mb"],
                          r["worker_peak_anon_mb"], r["driver_peak_rss_mb"], r["method"], r["b_sharpen"],
                          r["box_method"]]])
    print(write_json(args.output, {"runs": rows}))


if __name__ == "__main__":
    main()
