"""How the optimum is read off the score curve: CC loss of each rule against the family's best B.

For every map (the three real maps and 16 phantoms with known truth) the adjusted surface area of
the analysis box is measured on a 5 Å² grid of target B (the 21-point default grid is every fourth
point), and the CC to the B = 0 model (``evaluate_map``'s ``cc_mask``) of the whole map sharpened
with ``b_iso_to_d_cut`` on a 10 Å² grid of b_sharpen (interpolated by a cubic spline).  Each rule
picks a target B from the default grid's scores; its loss is ``CC(best b_sharpen) − CC(pick)``.

Rules: ``grid`` (the reference: best grid point), ``parabola3`` (localsharp before 2026-12: a
parabola through the best point and three neighbours each side, kept when its vertex lies within
1.5 steps), ``smoothed k`` (``search.smoothed_peak`` with a bandwidth of k grid steps; the default
is :data:`~localsharp.sharpening.search.PEAK_BANDWIDTH_STEPS`).

Phantoms (``localsharp.phantom``, voxel 1 Å, resolution 3.5 Å): haemoglobin (5NI1) with B 20→200 Å²
for seeds 0–2 × noise 0.5/1/2 and uniform B 100 Å² for noise 0.5/1/2; spike NTD (6VYB) with
B 20→200 Å² for noise 0.5/1/2 and uniform B 100 Å² at noise 1.

Also: finer grids (10 and 5 Å² of target B, i.e. 41 and 81 trials) with bandwidths fixed in Å².

Run: ``python benchmarks/peak_rules.py`` (about 5 minutes); prints a table and writes
``benchmarks/results/peak_rules.json`` with the curves, which ``--from-json`` re-analyses.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, available, print_table, write_json  # noqa: E402
from quality_modes import CachedEvaluator  # noqa: E402

import localsharp  # noqa: E402
from localsharp.kernels.masks import box_edge_mask  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402
from localsharp.sharpening.functions import Sharpening  # noqa: E402
from localsharp.sharpening.score import measure_map  # noqa: E402
from localsharp.sharpening.search import PEAK_BANDWIDTH_STEPS, smoothed_peak  # noqa: E402
from localsharp.sharpening.spectrum import Spectrum  # noqa: E402

MODELS = {"hb": ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif",
          "spike": ROOT / "tests/data/emd21457_spike_ntd/model_6vyb_ntd.pdb"}
PHANTOMS = ([("hb", seed, noise, 20.0, 200.0) for seed in (0, 1, 2) for noise in (0.5, 1.0, 2.0)]
            + [("hb", 0, noise, 100.0, 100.0) for noise in (0.5, 1.0, 2.0)]
            + [("spike", 0, noise, 20.0, 200.0) for noise in (0.5, 1.0, 2.0)]
            + [("spike", 0, 1.0, 100.0, 100.0)])
PHANTOM_RESOLUTION = 3.5
FINE_STEP = 5.0
BANDWIDTHS = (0.75, 1.0, 1.5, 2.0)
#: Finer search grids (Å² of target B) tried with a smoothing bandwidth fixed in Å².
FINE_GRIDS = (10.0, 5.0)
FINE_BANDWIDTHS_A2 = (20.0, 30.0, 40.0)


def parabola3(b: np.ndarray, y: np.ndarray) -> float:
    """The former rule: vertex of a parabola through the best point and three neighbours each side."""
    i = int(np.argmax(y))
    lo, hi = max(0, i - 3), min(len(b), i + 4)
    a2, a1, _ = np.polyfit(b[lo:hi], y[lo:hi], 2)
    if a2 >= 0:
        return float(b[i])
    vertex = -a1 / (2 * a2)
    return float(vertex) if abs(vertex - b[i]) <= 1.5 * abs(b[1] - b[0]) else float(b[i])


def rules() -> dict:
    """Rule name -> (grid step in Å², rule(b, y) -> picked target B)."""
    out = {"grid": (20.0, lambda b, y: float(b[int(np.argmax(y))])), "parabola3": (20.0, parabola3)}
    for k in BANDWIDTHS:
        out[f"smoothed {k:g}"] = (20.0, (lambda k: lambda b, y: smoothed_peak(b, y, k * abs(b[1] - b[0]))[0])(k))
    for step in FINE_GRIDS:
        out[f"grid {step:g}"] = (step, lambda b, y: float(b[int(np.argmax(y))]))
        for width in FINE_BANDWIDTHS_A2:
            out[f"grid {step:g} smoothed {width:g} A2"] = (step, (lambda w: lambda b, y: smoothed_peak(b, y, w)[0])(width))
    return out


def analysis_box(density, resolution: float) -> tuple:
    """The automatic run and the spectrum of the box its search analysed."""
    auto = localsharp.global_sharpen(density, resolution)
    data = np.ascontiguousarray(density.data[auto.box.slices()]) if auto.box.used else density.data
    if auto.box.used and auto.box.soft_edge:
        data = data * box_edge_mask(data.shape, density.voxel_size_zyx, resolution)
    return auto, Spectrum.from_map(data, density.voxel_size_zyx, resolution, angles=density.cell_angles)


def cc_curve(density, model, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """CC to the B = 0 model of the whole map sharpened with ``b_iso_to_d_cut``, every 10 Å² of b_sharpen."""
    whole = Spectrum.from_map(density.data, density.voxel_size_zyx, resolution, angles=density.cell_angles)
    cc = CachedEvaluator(density, model, resolution)
    b_sharpen = np.arange(-160.0, 241.0, 10.0)
    ccs = [cc(density.with_data(whole.render(Sharpening("b_iso_to_d_cut", b_sharpen=float(b)).factors(whole))))
           for b in b_sharpen]
    return b_sharpen, np.array(ccs)


def curves(density, model, resolution: float) -> dict:
    """Score curve on the analysis box (5 Å² grid) and CC curve of the whole map."""
    auto, box = analysis_box(density, resolution)
    targets = np.arange(-100.0, 300.0 + 0.5 * FINE_STEP, FINE_STEP)
    scores = []
    for b in targets:
        rendered = box.render(Sharpening("b_iso_to_d_cut", b_sharpen=float(box.b_iso - b)).factors(box),
                              sigma_scaled=False)
        scores.append(measure_map(rendered, auto.box_solvent.solvent_fraction).adjusted_sa(auto.region_weight))
    b_sharpen, ccs = cc_curve(density, model, resolution)
    return {"b_orig": box.b_iso, "targets": targets, "scores": np.array(scores), "b_sharpen": b_sharpen,
            "cc": ccs}


def losses(c: dict) -> dict:
    from scipy.interpolate import CubicSpline

    c = {k: np.asarray(v) for k, v in c.items()}
    spline = CubicSpline(c["b_sharpen"], c["cc"])
    best = float(c["cc"].max())
    out = {}
    for name, (step, rule) in rules().items():
        grid = slice(0, None, int(round(step / FINE_STEP)))
        b, y = np.asarray(c["targets"])[grid], np.asarray(c["scores"])[grid]
        b_sharpen = c["b_orig"] - rule(b, y)
        out[name] = {"b_sharpen": b_sharpen, "loss": best - float(spline(b_sharpen))}
    return out


def benchmark_maps(tmp: Path) -> list[tuple]:
    """``(name, map, model, resolution, real)`` of the 16 phantoms (written under ``tmp``) and the real maps."""
    maps = []
    for model, seed, noise, b_core, b_edge in PHANTOMS:
        name = f"{model} s{seed} n{noise:g} B{b_core:g}-{b_edge:g}"
        ph = phantom(MODELS[model], tmp / name.replace(" ", "_"), voxel=1.0, resolution=PHANTOM_RESOLUTION,
                     noise=noise, seed=seed, b_core=b_core, b_edge=b_edge)
        maps.append((name, ph.full_map, ph.paths["model_b0"], PHANTOM_RESOLUTION, False))
    for name, case in CASES.items():
        if available(case):
            maps.append((name, localsharp.read_map(case["map"]), case["model"], case["resolution"], True))
        else:
            print(f"skip {name}: {case['map']} missing")
    return maps


def compute_curves() -> dict:
    """Score and CC curves of every map (the slow part, about 5 minutes)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, density, model, resolution, _ in benchmark_maps(Path(tmp)):
            c = curves(density, model, resolution)
            out[name] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items()}
            print(name, "done", flush=True)
    return out


def main(argv: list[str]) -> None:
    """``--from-json`` re-reads the curves saved by an earlier run instead of recomputing them."""
    if "--from-json" in argv:
        all_curves = json.loads((ROOT / "benchmarks/results/peak_rules.json").read_text())["curves"]
    else:
        all_curves = compute_curves()
        write_json("peak_rules.json", {"benchmark": "CC loss of peak rules vs the family's best b_sharpen",
                                       "curves": all_curves})
    results = {}
    for name, c in all_curves.items():
        results[name] = {"best_b_sharpen": float(c["b_sharpen"][int(np.argmax(c["cc"]))]),
                         "best_cc": float(max(c["cc"])), "rules": losses(c)}
    names = list(rules())
    rows = []
    for rule in names:
        values = np.array([r["rules"][rule]["loss"] for r in results.values()])
        real = np.array([r["rules"][rule]["loss"] for n, r in results.items() if n in CASES])
        rows.append([rule + (" (default)" if rule == f"smoothed {PEAK_BANDWIDTH_STEPS:g}" else ""),
                     round(float(np.mean(values)), 4), round(float(np.median(values)), 4),
                     round(float(values.max()), 4), round(float(np.mean(real)), 4) if real.size else "-"])
    print_table(["rule", "mean CC loss", "median", "max", "mean (real maps)"], rows)
    write_json("peak_rules.json", {"benchmark": "CC loss of peak rules vs the family's best b_sharpen",
                                   "maps": results, "curves": all_curves,
                                   "summary": {r[0]: {"mean": r[1], "median": r[2], "max": r[3], "mean_real": r[4]}
                                               for r in rows}})


if __name__ == "__main__":
    main(sys.argv[1:])
