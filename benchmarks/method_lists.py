"""Sharpening families other than the default: CC to the B = 0 model of the automatic choice.

For the 16 phantoms of ``peak_rules.py`` (known truth) and the three real maps, the whole automatic
run (``global_sharpen``) is made with each variant below, and the CC of its output to the B = 0
model map (``evaluate_map``'s ``cc_mask``) is measured.  With two methods the search keeps the one
whose score curve peaks highest (docs/methods.md, search), so the score chooses between them.

Variants: the default (``b_iso_to_d_cut``, d_cut = resolution); ``b_iso`` (uniform B, no blur of
the shell beyond the resolution); both families; ``b_iso_to_d_cut`` with d_cut = 0.9 × resolution
(the 200 Å² blur moved out of the last shell inside the resolution).  The question each answers:
does the score pick a family or transition that keeps the data between d_cut + 0.3 Å and d_cut
(which the default blurs by 25–100 Å²) only where that raises the CC?

Run: ``python benchmarks/method_lists.py`` (about 6 minutes); prints a table and writes
``benchmarks/results/method_lists.json``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, write_json  # noqa: E402
from peak_rules import benchmark_maps  # noqa: E402
from quality_modes import CachedEvaluator  # noqa: E402

import localsharp  # noqa: E402

#: Variant name -> options of ``global_sharpen`` (``d_cut_ratio`` is multiplied by the resolution).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "b_iso": {"methods": ("b_iso",)},
    "both families": {"methods": ("b_iso_to_d_cut", "b_iso")},
    "d_cut 0.9 R": {"d_cut_ratio": 0.9},
}


def run_map(density, model, resolution: float) -> dict:
    """CC, chosen method and b_sharpen of the automatic run with each variant."""
    cc = CachedEvaluator(density, model, resolution)
    out: dict[str, Any] = {"input": {"cc": cc(density)}}
    for name, options in VARIANTS.items():
        options = dict(options)
        if "d_cut_ratio" in options:
            options["d_cut"] = options.pop("d_cut_ratio") * resolution
        result = localsharp.global_sharpen(density, resolution, **options)
        s = result.sharpening
        out[name] = {"cc": cc(result.map), "method": s.method, "b_sharpen": s.b_sharpen}
    return out


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, density, model, resolution, real in benchmark_maps(Path(tmp)):
            results[name] = run_map(density, model, resolution) | {"real": real}
            print(name, " ".join(f"{k}: {v['cc']:.4f}" for k, v in results[name].items() if isinstance(v, dict)),
                  flush=True)
    variants = [v for v in VARIANTS if v != "default"]
    rows = [[name, round(r["input"]["cc"], 4), round(r["default"]["cc"], 4)]
            + [f"{r[v]['cc'] - r['default']['cc']:+.4f}" for v in variants] for name, r in results.items()]
    print_table(["map", "CC input", "CC default"] + [f"{v} - default" for v in variants], rows)
    summary = {}
    for v in variants:
        gain = np.array([r[v]["cc"] - r["default"]["cc"] for r in results.values()])
        real = np.array([r[v]["cc"] - r["default"]["cc"] for r in results.values() if r["real"]])
        summary[v] = {"mean_gain": float(gain.mean()), "median_gain": float(np.median(gain)),
                      "min_gain": float(gain.min()), "max_gain": float(gain.max()),
                      "n_better": int((gain > 0).sum()), "n_worse": int((gain < 0).sum()), "n": int(gain.size),
                      "real_maps_gain": real.tolist()}
    print_table(["variant", "mean CC gain", "median", "min", "max", "better/worse of n"],
                [[v, round(s["mean_gain"], 4), round(s["median_gain"], 4), round(s["min_gain"], 4),
                  round(s["max_gain"], 4), f"{s['n_better']}/{s['n_worse']} of {s['n']}"] for v, s in summary.items()])
    write_json("method_lists.json", {"benchmark": "CC of the automatic choice with other families and d_cut",
                                     "variants": {k: {kk: list(vv) if isinstance(vv, tuple) else vv
                                                      for kk, vv in v.items()} for k, v in VARIANTS.items()},
                                     "maps": results, "summary": summary})


if __name__ == "__main__":
    main()
