"""Shared helpers for the benchmark scripts: case table, timing, table printing, JSON output."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LOCALSHARP_SHARED", ROOT.parent / "shared")) / "data"
RESULTS = Path(__file__).resolve().parent / "results"

#: Real cases: map, model, resolution, and the reference engine's choice (REFERENCE_ENGINE.md,
#: default settings): target B and b_sharpen.
CASES = {
    "emd3488": dict(map=ROOT / "tests/data/emd3488_haemoglobin/map.mrc",
                    model=ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif",
                    resolution=3.2, ref_target_b=80.0, ref_b_sharpen=-31.5),
    "emd21457": dict(map=ROOT / "tests/data/emd21457_spike_ntd/map_segment.mrc",
                     model=ROOT / "tests/data/emd21457_spike_ntd/model_6vyb_ntd.pdb",
                     resolution=3.2, ref_target_b=80.0, ref_b_sharpen=33.1),
    "emd11007": dict(map=SHARED / "emd11007_rdrp/map_crop192.mrc",
                     model=SHARED / "emd11007_rdrp/model_6yyt_chainC_rna.pdb",
                     resolution=2.9, ref_target_b=60.0, ref_b_sharpen=15.8),
}


def available(case: dict[str, Any]) -> bool:
    return Path(case["map"]).exists()


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    """Wall times (s) of ``repeats`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def write_json(name: str, content: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    content = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform(), "load_average": list(os.getloadavg())}, **content}
    path = RESULTS / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path
