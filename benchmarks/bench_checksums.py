"""Cost of checking what a run writes: `localsharp local` with this checkout against another checkout.

The checks are the CRC32C of every stored and output chunk (every chunk written, also the empty
ones), the sealed (SHA-256) records written with fsync, and the SHA-256 of every output recorded in
``local_summary.json``.  ``--reference DIR`` names a localsharp source tree without them (e.g.
``git archive <revision> | tar -x -C DIR``); both run the same command on the same capsid phantom
(``bench_scale``'s, 256³ by default) on a LocalCluster of ``--workers`` workers, alternately,
``--repeats`` times each after one warm-up run of each.  Also timed: ``localsharp info --verify``
on the last output of this checkout, and the resume check of a finished store (``--resume`` of a
finished run: every record and chunk checked, nothing computed).

Prints the median wall and CPU times (the run and its workers) and their ratios and writes ``benchmarks/results/checksums.json``.
Run: ``python benchmarks/bench_checksums.py --reference /tmp/localsharp-reference``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, print_table  # noqa: E402
from _proctree import machine  # noqa: E402
from bench_scale import ensure_phantom  # noqa: E402


def run(tree: Path, argv: list[str]) -> tuple[int, float, float, str]:
    """``python -m localsharp ARGV`` with the package of ``tree``; exit status, wall seconds, CPU seconds
    (user + system of the run and its workers, which it waits for), stderr."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "localsharp", *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.returncode, wall, cpu, done.stderr


def local_argv(map_path: Path, out: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    return ["local", str(map_path), "--resolution", str(args.resolution), "--workers", str(args.workers),
            "--output-dir", str(out), "-q", *extra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="a localsharp source tree to compare with")
    parser.add_argument("--size", type=int, default=256, help="phantom edge (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tree (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    parser.add_argument("--resolution", type=float, default=3.5, help="resolution given (default 3.5)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp-bench"), help="phantom cache")
    args = parser.parse_args(argv)
    map_path, _ = ensure_phantom(args.cache, args.size, 0)
    trees = {"this checkout": ROOT, "reference": args.reference.resolve()}
    walls: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    work = args.cache / "checksums"
    for i in range(args.repeats + 1):
        for name, tree in trees.items():
            out = work / name.replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            status, wall, cpu, err = run(tree, local_argv(map_path, out, args))
            if status != 0:
                raise SystemExit(f"{name}: exit status {status}\n{err}")
            if i:  # the first round warms the caches
                walls[name].append(wall)
                cpus[name].append(cpu)
            print(f"round {i} {name}: wall {wall:.1f} s, CPU {cpu:.1f} s (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    out = work / "this_checkout"
    _, verify_s, _, _ = run(ROOT, ["info", "--verify", str(out)])
    status, resume_s, _, _ = run(ROOT, local_argv(map_path, out, args, "--resume"))
    medians = {name: statistics.median(times) for name, times in walls.items()}
    cpu_medians = {name: statistics.median(times) for name, times in cpus.items()}
    ratio = medians["this checkout"] / medians["reference"]
    cpu_ratio = cpu_medians["this checkout"] / cpu_medians["reference"]
    print_table(["tree", "runs", "median wall (s)", "min wall (s)", "max wall (s)", "median CPU (s)"],
                [[name, len(t), round(medians[name], 2), round(min(t), 2), round(max(t), 2),
                  round(cpu_medians[name], 2)] for name, t in walls.items()])
    print(f"ratio this checkout / reference: wall {ratio:.3f}, CPU {cpu_ratio:.3f}; info --verify {verify_s:.1f} s; "
          f"--resume of the finished run {resume_s:.1f} s (exit {status})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "checksums.json").write_text(json.dumps({
        "benchmark": "localsharp local wall time with the checks of the run store and outputs, against a tree "
                     "without them", "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(), "size": args.size, "workers": args.workers, "resolution": args.resolution,
        "repeats": args.repeats, "walls_s": walls, "medians_s": medians, "ratio": ratio, "cpu_s": cpus,
        "cpu_medians_s": cpu_medians, "cpu_ratio": cpu_ratio, "load_average_end": os.getloadavg()[0],
        "info_verify_s": verify_s, "resume_of_finished_run_s": resume_s}, indent=1) + "\n")


if __name__ == "__main__":
    main()
