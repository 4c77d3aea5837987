"""Quality of local sharpening: map–model CC of the input, of the overall (global) sharpening and of
local sharpening, on phantoms whose B grows from the core to the surface and on the real maps.

Phantoms: the haemoglobin model, B 20 Å² at the centre → 200 Å² at the surface, seeds 0–2 × noise
0.5/1/2 (``localsharp.phantom``).  CC = ``evaluate_map``'s ``cc_mask`` (B = 0 model map, both
low-passed at the resolution, within 3 Å of atoms).  Local sharpening runs in-process (the Dask run
gives the identical map, tests/test_local.py).

Run: ``python benchmarks/quality_local.py`` (several minutes); prints a table and writes
``benchmarks/results/quality_local.json``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, available, print_table, write_json  # noqa: E402
from quality_modes import PHANTOM_MODEL, CachedEvaluator  # noqa: E402

import localsharp  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402

SEEDS = (0, 1, 2)
NOISES = (0.5, 1.0, 2.0)
RESOLUTION = 3.5


def measure(name: str, density, model, resolution: float, rows: list, out: dict) -> None:
    cc = CachedEvaluator(density, model, resolution)
    t0 = time.perf_counter()
    overall = localsharp.global_sharpen(density, resolution)
    t1 = time.perf_counter()
    local = localsharp.local_sharpen(density, resolution)
    t2 = time.perf_counter()
    s = local.summary()
    cc_in, cc_global, cc_local = cc(density), cc(overall.map), cc(local.map.compute())
    rows.append([name, round(cc_in, 4), round(cc_global, 4), round(cc_local, 4), round(cc_local - cc_global, 4),
                 s["n_boxes"], round(t2 - t1, 1)])
    out[name] = {"cc_input": cc_in, "cc_global": cc_global, "cc_local": cc_local, "n_boxes": s["n_boxes"],
                 "boxes_by_status": s["boxes_by_status"], "smoothing_radius": s["smoothing_radius"],
                 "mean_b_sharpen_boxes": s["mean_b_sharpen_sharpened_boxes"],
                 "global_b_sharpen": overall.sharpening.b_sharpen, "time_global_s": t1 - t0,
                 "time_local_s": t2 - t1}


def main() -> None:
    rows: list = []
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in SEEDS:
            for noise in NOISES:
                ph = phantom(PHANTOM_MODEL, Path(tmp) / f"s{seed}n{noise}", voxel=1.0, resolution=RESOLUTION,
                             noise=noise, seed=seed)
                measure(f"phantom seed{seed} noise{noise}", ph.full_map, ph.paths["model_b0"], RESOLUTION, rows, out)
                print(rows[-1], flush=True)
    for name, case in CASES.items():
        if not available(case):
            print(f"skip {name}: {case['map']} missing")
            continue
        measure(name, localsharp.read_map(case["map"]), case["model"], case["resolution"], rows, out)
        print(rows[-1], flush=True)
    print_table(["map", "CC input", "CC global", "CC local", "local - global", "boxes", "local time (s)"], rows)
    write_json("quality_local.json", {"benchmark": "CC to B=0 model within 3 Å of atoms: input, global, local",
                                      "results": out})


if __name__ == "__main__":
    main()
