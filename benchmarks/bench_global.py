"""Speed of global sharpening: median wall time of ``global_sharpen`` and of the whole CLI process.

Run: ``python benchmarks/bench_global.py [--repeats N]``.  Prints a table and writes
``benchmarks/results/global.json``.  Targets (issue 2): ≤ 0.5 s on emd3488 (100³), ≤ 3 s on
emd11007 (192³), whole process < 1 s on emd3488; reference engine: ~16 s and ~104 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from _common import CASES, available, median, print_table, timed, write_json

REFERENCE_S = {"emd3488": 16.0, "emd11007": 104.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    import localsharp

    rows, out = [], {}
    for name in ("emd3488", "emd21457", "emd11007"):
        case = CASES[name]
        if not available(case):
            print(f"skip {name}: {case['map']} missing")
            continue
        density = localsharp.read_map(case["map"])
        times, result = timed(lambda: localsharp.global_sharpen(density, case["resolution"]), args.repeats)
        med = median(times)
        ref = REFERENCE_S.get(name)
        rows.append([name, "x".join(map(str, density.shape_xyz)), med, min(times), max(times),
                     ref if ref else "-", f"{ref / med:.0f}x" if ref else "-"])
        out[name] = {"shape_xyz": list(density.shape_xyz), "median_s": med, "times_s": times,
                     "reference_s": ref, "stages_s_last": result.timings_s, "b_sharpen": result.sharpening.b_sharpen}
    cli_times = []
    for _ in range(max(3, args.repeats // 2)):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "localsharp", "sharpen", str(CASES["emd3488"]["map"]),
                            "--resolution", "3.2", "--output-dir", tmp, "-q"], check=True)
            cli_times.append(time.perf_counter() - t0)
    rows.append(["emd3488 whole process (CLI, all outputs)", "100x100x100", median(cli_times), min(cli_times),
                 max(cli_times), "-", "-"])
    out["cli_emd3488"] = {"median_s": median(cli_times), "times_s": cli_times}
    print_table(["case", "grid", "median_s", "min_s", "max_s", "reference_s", "speed-up"], rows)
    write_json("global.json", {"benchmark": "global_sharpen wall time", "repeats": args.repeats, "results": out})


if __name__ == "__main__":
    main()
