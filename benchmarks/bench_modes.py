"""Wall time of half-map and model-based sharpening on ~100³ maps.

* half maps: a haemoglobin phantom (voxel 1 Å, padding 15 Å → about 100³
  voxels, noise 1, seed 0), ``modes.half_map_sharpen(None, h1, h2, 3.5)``
  with the maps in memory;
* model: EMD-3488 (100³, 1.05 Å) with PDB 5NI1 at 3.2 Å,
  ``modes.model_sharpen(map, "model_5ni1.cif", 3.2)`` with the map in memory
  and the model read from its file on every run.

Each mode runs once to warm up, then ``RUNS`` times; the median wall time and
the median of every stage (``SharpenResult.timings_s``) are reported.  Target:
median ≤ 1 s each.

Run: ``PYTHONPATH=. python benchmarks/bench_modes.py``; prints a table and
writes ``benchmarks/results/modes.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localsharp import modes  # noqa: E402
from localsharp.kernels.fourier import FFT_WORKERS  # noqa: E402
from localsharp.maps.mrc import read_map  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402

DATA = ROOT / "tests" / "data" / "emd3488_haemoglobin"
RUNS = 7
TARGET_S = 1.0
OUT = ROOT / "benchmarks" / "results" / "modes.json"


def measure(run: Callable[[], object]) -> dict:
    run()  # warm-up (numba/FFT plans, caches)
    walls, stages = [], []
    for _ in range(RUNS):
        t = time.perf_counter()
        result = run()
        walls.append(time.perf_counter() - t)
        stages.append(result.timings_s)  # type: ignore[attr-defined]
    names = [k for k in stages[0] if k != "total"]
    return {
        "runs": RUNS,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "all_s": walls,
        "stage_median_s": {k: statistics.median(s.get(k, 0.0) for s in stages) for k in names},
    }


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="localsharp_bench_") as work:
        ph = phantom(DATA / "model_5ni1.cif", Path(work) / "phantom", voxel=1.0, resolution=3.5, noise=1.0,
                     seed=0, padding=15.0)
    density = read_map(DATA / "map.mrc")
    model = DATA / "model_5ni1.cif"
    cases = {
        "half_map": {
            "input": f"haemoglobin phantom {'×'.join(map(str, ph.full_map.shape_xyz))} voxels of 1 Å, 3.5 Å",
            **measure(lambda: modes.half_map_sharpen(None, ph.half_map_1, ph.half_map_2, 3.5)),
        },
        "model": {
            "input": f"EMD-3488 {'×'.join(map(str, density.shape_xyz))} voxels of {density.voxel_size[0]:.3g} Å "
                     "+ 5NI1 (4579 atoms), 3.2 Å",
            **measure(lambda: modes.model_sharpen(density, model, 3.2)),
        },
    }
    print(f"{'mode':>9} {'median s':>9} {'min s':>7} {'max s':>7}  target ≤ {TARGET_S:g} s   input")
    for name, c in cases.items():
        flag = "ok" if c["median_s"] <= TARGET_S else "SLOW"
        print(f"{name:>9} {c['median_s']:>9.3f} {c['min_s']:>7.3f} {c['max_s']:>7.3f}  {flag:<14} {c['input']}")
        print(" " * 10 + "stages: " + ", ".join(f"{k} {v:.3f}" for k, v in c["stage_median_s"].items()))
    result = {
        "description": "median wall time of modes.half_map_sharpen / modes.model_sharpen (maps in memory)",
        "target_s": TARGET_S, "cases": cases,
        "cpu_count": os.cpu_count(), "fft_workers": FFT_WORKERS,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
