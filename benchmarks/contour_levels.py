"""How much the chosen B depends on the contour level of the adjusted surface area.

The score contours the map to enclose ``fraction_occupied`` (default 0.20) of the molecular volume.
For every map of ``peak_rules.py`` (16 phantoms with known truth and the three real maps) the full
search (region-weight calibration included) is run at fractions 0.10–0.30, and its pick (smoothed
peak, the default rule) is scored by the CC to the B = 0 model of the whole map sharpened with it:
loss = CC(family's best b_sharpen) − CC(pick), CC interpolated on a 10 Å² b_sharpen grid.
Combined rules: the mean of the picks at several fractions, and the pick of the mean z-scored curve.

Run: ``python benchmarks/contour_levels.py`` (about 4 minutes); prints a table and writes
``benchmarks/results/contour_levels.json``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_rules import analysis_box, benchmark_maps, cc_curve  # noqa: E402
from _common import print_table, write_json  # noqa: E402

from localsharp.sharpening.score import ScoreParams  # noqa: E402
from localsharp.sharpening.search import SearchConfig, search_sharpening, smoothed_peak  # noqa: E402

FRACTIONS = (0.10, 0.15, 0.20, 0.25, 0.30)
COMBINED = ((0.15, 0.20, 0.25), (0.20, 0.25), (0.20, 0.25, 0.30))


def grid_curve(result, step: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted SA of the grid trials (target B, score), calibration-only points left out."""
    rows = {}
    for t in result.trials:
        b = t.sharpening.b_iso_target
        if t.sharpening.method == "b_iso_to_d_cut" and b is not None:
            rows[b] = t.measures.adjusted_sa(result.region_weight)
    targets = np.array(sorted(rows))
    on_grid = np.isclose(np.mod(targets - targets[0], step), 0.0) | np.isclose(np.mod(targets - targets[0], step), step)
    targets = targets[on_grid]
    return targets, np.array([rows[b] for b in targets])


def pick(targets: np.ndarray, scores: np.ndarray) -> float:
    return smoothed_peak(targets, scores, 1.5 * abs(targets[1] - targets[0]))[0]


def measure(density, model, resolution: float) -> dict:
    auto, box = analysis_box(density, resolution)
    curves = {}
    for f in FRACTIONS:
        result = search_sharpening(box, auto.box_solvent.solvent_fraction,
                                   SearchConfig(score=ScoreParams(fraction_occupied=f)))
        curves[f] = grid_curve(result)
    b_sharpen, ccs = cc_curve(density, model, resolution)
    return {"b_orig": box.b_iso, "curves": curves, "b_sharpen": b_sharpen, "cc": ccs}


def picks(m: dict) -> dict[str, float]:
    """Target B chosen by each rule."""
    c = m["curves"]
    out = {f"fraction {f:.2f}": pick(*c[f]) for f in FRACTIONS}
    for combo in COMBINED:
        label = "/".join(f"{f:.2f}" for f in combo)
        out[f"mean of picks {label}"] = float(np.mean([pick(*c[f]) for f in combo]))
        base = c[combo[0]][0]
        z = [np.interp(base, *c[f]) for f in combo]
        z = [(y - y.mean()) / (y.std() + 1e-12) for y in z]
        out[f"mean z-curve {label}"] = pick(base, np.mean(z, axis=0))
    return out


def main() -> None:
    from scipy.interpolate import CubicSpline

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, density, model, resolution, real in benchmark_maps(Path(tmp)):
            m = measure(density, model, resolution)
            spline = CubicSpline(m["b_sharpen"], m["cc"])
            best = float(m["cc"].max())
            rule_picks = picks(m)
            results[name] = {"real": real, "best_b_sharpen": float(m["b_sharpen"][int(np.argmax(m["cc"]))]),
                             "rules": {k: {"b_sharpen": m["b_orig"] - t, "loss": best - float(spline(m["b_orig"] - t))}
                                       for k, t in rule_picks.items()}}
            print(name, {k: round(v["b_sharpen"], 1) for k, v in results[name]["rules"].items() if k.startswith("fr")},
                  "best", results[name]["best_b_sharpen"], flush=True)
    rows = []
    for rule in next(iter(results.values()))["rules"]:
        loss = np.array([r["rules"][rule]["loss"] for r in results.values()])
        real = np.array([r["rules"][rule]["loss"] for r in results.values() if r["real"]])
        ph = np.array([r["rules"][rule]["loss"] for r in results.values() if not r["real"]])
        rows.append([rule + (" (default)" if rule == "fraction 0.20" else ""), round(float(loss.mean()), 4),
                     round(float(ph.mean()), 4) if ph.size else "-", round(float(real.mean()), 4) if real.size else "-",
                     " ".join(f"{v:.4f}" for v in real)])
    print_table(["rule", "mean CC loss", "phantoms", "real maps", "real: emd3488 emd21457 emd11007"], rows)
    write_json("contour_levels.json", {"benchmark": "CC loss of the pick vs the contour level of the adjusted SA",
                                       "maps": results, "summary": rows})


if __name__ == "__main__":
    main()
