"""Two `localsharp local` runs started together on one output directory, many times over.

Each round starts two runs of the spike segment at the same instant on one directory (options
cycling through: both ``--overwrite``; plain and ``--overwrite``; ``--overwrite`` and another
``--task-block``; both ``--overwrite`` on a directory that holds a finished run), waits for both,
and counts: rounds where exactly one exited 0 (the other refused in one line naming the holder),
rounds where both exited 0 (must never happen), rounds where neither did, and maps that differ from
a clean run's (must never happen).  The runs share one LocalCluster (``--scheduler-address``), or
start their own with ``--own-clusters``.

Prints a table and writes ``benchmarks/results/concurrent.json`` (``concurrent_own_clusters.json``).
Run: ``python benchmarks/concurrent_runs.py --rounds 20``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, print_table  # noqa: E402
from _proctree import machine  # noqa: E402

MAP = ROOT / "tests/data/emd21457_spike_ntd/map_segment.mrc"
OPTIONS = ["--resolution", "3.2", "--box-size", "32", "--stride", "16", "--chunk", "32", "-q"]
MAPS = ("local_sharpened_map.ccp4", "local_b_sharpen_map.ccp4")
#: The options of the two runs of a round, cycling; "finished" rounds start on a finished run's directory.
VARIANTS = [("both --overwrite", ["--overwrite"], ["--overwrite"], False),
            ("plain and --overwrite", [], ["--overwrite"], False),
            ("--overwrite and another --task-block", ["--overwrite"], ["--overwrite", "--task-block", "1"], False),
            ("both --overwrite on a finished run", ["--overwrite"], ["--overwrite"], True)]


def command(out: Path, cluster: list[str], extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "localsharp", "local", str(MAP), "--output-dir", str(out), *OPTIONS, *cluster, *extra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--own-clusters", action="store_true", help="each run starts its own LocalCluster (1 worker)")
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    from distributed import LocalCluster

    work = Path(tempfile.mkdtemp(prefix="localsharp-concurrent-"))
    counts = {"rounds": 0, "exactly_one_exit_0": 0, "both_exit_0": 0, "neither_exit_0": 0,
              "maps_differing_from_clean": 0, "refusals_naming_the_holder": 0, "tracebacks": 0}
    rows, rounds = [], []
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, memory_limit="1GiB") as cluster:
        shared = [] if args.own_clusters else ["--scheduler-address", cluster.scheduler_address]
        own = ["--workers", "1"] if args.own_clusters else []
        clean_dir = work / "clean"
        subprocess.run(command(clean_dir, shared + own, []), check=True, env=env)
        clean = {name: (clean_dir / name).read_bytes() for name in MAPS}
        for i in range(args.rounds):
            label, first, second, finished = VARIANTS[i % len(VARIANTS)]
            out = work / f"round{i:02d}"
            if finished:
                shutil.copytree(clean_dir, out)
            t0 = time.perf_counter()
            runs = [subprocess.Popen(command(out, shared + own, extra), stderr=subprocess.PIPE, text=True, env=env)
                    for extra in (first, second)]
            errs = [run.communicate()[1] for run in runs]
            codes = [run.returncode for run in runs]
            wall = time.perf_counter() - t0
            winners = codes.count(0)
            counts["rounds"] += 1
            counts["exactly_one_exit_0"] += winners == 1
            counts["both_exit_0"] += winners == 2
            counts["neither_exit_0"] += winners == 0
            counts["tracebacks"] += sum("Traceback" in e for e in errs)
            counts["refusals_naming_the_holder"] += sum("another run is using this output (pid" in e for e in errs)
            differs = winners > 0 and any((out / name).read_bytes() != clean[name] for name in MAPS)
            counts["maps_differing_from_clean"] += differs
            refusal = next((e.strip().splitlines()[-1] for e, c in zip(errs, codes) if c != 0 and e.strip()), "")
            rounds.append({"round": i, "variant": label, "exit_statuses": codes, "wall_s": round(wall, 1),
                           "map_differs": differs, "refusal": refusal})
            rows.append([i, label, " ".join(map(str, codes)), "yes" if differs else "no", round(wall, 1)])
            print(rows[-1], refusal[:160], flush=True)
            shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    print_table(["round", "options", "exit statuses", "map differs", "wall (s)"], rows)
    print(json.dumps(counts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("concurrent_own_clusters.json" if args.own_clusters else "concurrent.json")).write_text(json.dumps({
        "benchmark": "two localsharp local runs started together on one output directory",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
        "own_clusters": args.own_clusters, "counts": counts, "rounds": rounds}, indent=1) + "\n")


if __name__ == "__main__":
    main()
