"""Quality of local sharpening against global sharpening, in every mode, and of the local resolution.

For every map: map–model CC (``evaluate_map``'s ``cc_mask``: B = 0 model map, both low-passed at the
resolution, within 3 Å of atoms) of the input and of

* model-free: ``global_sharpen`` and ``local_sharpen`` (default shrinkage);
* half maps (phantoms): ``half_map_sharpen`` and ``local_sharpen(..., half_maps=...)``, and the rank
  (Spearman) correlation, over the boxes holding at least :data:`MIN_ATOMS` atoms, between a box's
  mean true atomic B (the phantom's B) and its local resolution;
* model (real maps): ``model_sharpen`` and ``local_sharpen(..., model=...)``.

``--rules`` also renders the model-free boxes with several shrinkage rules
(:mod:`localsharp.sharpening.shrinkage`): the box search runs once per map; each rule only re-runs
the blend pass on the same recorded boxes (a resumed run whose output image was removed).

Maps: phantoms whose B grows from 20 Å² at the centre to 200 Å² at the rim (``localsharp.phantom``)
of single models and of multi-copy assemblies (copies of one model on a grid, one structure, so the
B gradient spans the assembly: > 100 boxes), several seeds and noise levels; the three real maps.
The phantoms are split in a TUNE set (the rule's constant is chosen on it) and a CHECK set.

Run: ``python benchmarks/quality_local.py [--rules] [name ...]`` (about half an hour on a 2-core
machine; names select cases); prints the tables and writes ``benchmarks/results/quality_local.json``
(merged by case name with an existing file, so cases can be run one at a time).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import gemmi
import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, RESULTS, SHARED, available, print_table  # noqa: E402
from quality_modes import CachedEvaluator  # noqa: E402

import localsharp  # noqa: E402
from localsharp.config import LocalOptions  # noqa: E402
from localsharp.engine.local import tasks as tasks_module  # noqa: E402
from localsharp.maps.model import read_model  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402
from localsharp.sharpening import shrinkage  # noqa: E402

DATA = ROOT / "tests" / "data"
HB = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"
HB2 = SHARED / "emd3488_haemoglobin" / "model_5me2.pdb"
SPIKE = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
RDRP = SHARED / "emd11007_rdrp" / "model_6yyt_chainC_rna.pdb"
RESOLUTION = 3.5
OUT = RESULTS / "quality_local.json"
#: Boxes with fewer atoms in their core are left out of the resolution–B rank correlation.
MIN_ATOMS = 50

#: name -> (model, copies per axis (z, y, x), seed, noise, set)
PHANTOMS = {
    "ph_hb_s0_n1": (HB, (1, 1, 1), 0, 1.0, "tune"),
    "ph_hb8_s0_n1": (HB, (2, 2, 2), 0, 1.0, "tune"),
    "ph_spike_s0_n1": (SPIKE, (1, 1, 1), 0, 1.0, "tune"),
    "ph_rdrp4_s0_n1": (RDRP, (1, 2, 2), 0, 1.0, "tune"),
    "ph_hb_s1_n2": (HB, (1, 1, 1), 1, 2.0, "check"),
    "ph_hb_s2_n05": (HB, (1, 1, 1), 2, 0.5, "check"),
    "ph_hb8_s1_n2": (HB, (2, 2, 2), 1, 2.0, "check"),
    "ph_5me2_s1_n1": (HB2, (1, 1, 1), 1, 1.0, "check"),
    "ph_spike8_s2_n1": (SPIKE, (2, 2, 2), 2, 1.0, "check"),
    "ph_rdrp_s1_n05": (RDRP, (1, 1, 1), 1, 0.5, "check"),
}
REAL = ("emd3488", "emd21457", "emd11007")


def _linear(alpha: float) -> Callable[[dict], dict]:
    """Every box's b_sharpen times ``alpha`` (a baseline without per-box evidence)."""
    def rule(row: dict) -> dict:
        out = shrinkage.shrink(row, widen=0.0)
        s = row.get("sharpening")
        if s and s.get("method") in ("b_iso", "b_iso_to_d_cut"):
            out["sharpening"] = {**s, "b_sharpen": alpha * s["b_sharpen"]}
            out["b_sharpen_applied"] = alpha * s["b_sharpen"]
        return out
    return rule


def _eb(tau: float) -> Callable[[dict], dict]:
    """Empirical-Bayes style: b · τ² / (τ² + σ²), σ = half the plateau's width."""
    def rule(row: dict) -> dict:
        out = shrinkage.shrink(row, widen=0.0)
        s, span = row.get("sharpening"), row.get("b_sharpen_within_noise")
        if s and span and s.get("method") in ("b_iso", "b_iso_to_d_cut"):
            sigma = 0.5 * (span[1] - span[0])
            b = s["b_sharpen"] * tau**2 / (tau**2 + sigma**2)
            out["sharpening"] = {**s, "b_sharpen": b}
            out["b_sharpen_applied"] = b
        return out
    return rule


def _plateau(widen: float) -> Callable[[dict], dict]:
    return lambda row: shrinkage.shrink(row, widen=widen)


#: rule name -> rule (``plateau_w0`` is the search's pick as is: local before shrinkage)
RULES: dict[str, Callable[[dict], dict]] = {
    "plateau_w0": _plateau(0.0), "plateau_w0.5": _plateau(0.5), "plateau_w1": _plateau(1.0),
    "plateau_w1.5": _plateau(1.5), "plateau_w2": _plateau(2.0), "plateau_w3": _plateau(3.0),
    "linear_0.5": _linear(0.5), "linear_0": _linear(0.0), "eb_tau20": _eb(20.0), "eb_tau40": _eb(40.0),
}


def assembly(model: Path, copies: tuple[int, int, int]) -> gemmi.Structure:
    """The model's first model repeated on a grid (copies along z, y, x), 4 Å apart, as one structure."""
    structure = read_model(model)
    while len(structure) > 1:
        del structure[len(structure) - 1]
    structure.remove_ligands_and_waters()
    if copies == (1, 1, 1):
        return structure
    first = structure[0]
    xyz = np.array([a.pos.tolist() for ch in first for r in ch for a in r])
    step = xyz.max(axis=0) - xyz.min(axis=0) + 4.0
    originals = [ch.clone() for ch in first]
    while len(first):
        del first[0]
    n = 0
    for kz in range(copies[0]):
        for ky in range(copies[1]):
            for kx in range(copies[2]):
                shift = gemmi.Position(kx * step[0], ky * step[1], kz * step[2])
                for ch in originals:
                    c = ch.clone()
                    c.name = f"{chr(65 + n % 26)}{n // 26}"
                    n += 1
                    for r in c:
                        for a in r:
                            a.pos = a.pos + shift
                    first.add_chain(c)
    structure.setup_entities()
    return structure


def measure(name: str, density, model, resolution: float, tmp: Path, rules: bool) -> dict[str, Any]:
    """Model-free global and local CC (and, with ``rules``, local CC per shrinkage rule)."""
    cc = CachedEvaluator(density, model, resolution)
    t0 = time.perf_counter()
    overall = localsharp.global_sharpen(density, resolution)
    t1 = time.perf_counter()
    store = tmp / f"store_{name}"
    result = localsharp.local_sharpen(density, resolution, store=store, local=LocalOptions())
    t2 = time.perf_counter()
    rows = [r for r in result.boxes if r["status"] != "skipped"]
    out: dict[str, Any] = {
        "cc_input": cc(density), "cc_global": cc(overall.map), "cc_local": cc(result.map.compute()),
        "global_b_sharpen": overall.sharpening.b_sharpen,
        "n_boxes": result.summary(with_boxes=False)["n_boxes"], "n_rendered": len(rows),
        "time_global_s": t1 - t0, "time_local_s": t2 - t1}
    if rules:
        out["cc_local_rule"], out["mean_abs_b_applied"] = {}, {}
        for rule_name, rule in RULES.items():
            # the render tasks apply tasks.applied_row: the rule replaces the shrinkage there
            tasks_module.applied_row = lambda row, shrunk=True, rule=rule: (
                rule(row) if shrunk else shrinkage.applied_row(row, False))
            shutil.rmtree(store / "output.ome.zarr")
            again = localsharp.local_sharpen(density, resolution, store=store, local=LocalOptions(), resume=True)
            out["cc_local_rule"][rule_name] = cc(again.map.compute())
            applied = [rule(r)["b_sharpen_applied"] for r in rows]
            applied = [abs(b) for b in applied if b is not None]
            out["mean_abs_b_applied"][rule_name] = float(np.mean(applied)) if applied else 0.0
        tasks_module.applied_row = shrinkage.applied_row
    out["boxes"] = box_stats(rows)
    shutil.rmtree(store)
    out["_cc"] = cc
    return out


def measure_half_maps(density, half1, half2, truth: Path, cc: CachedEvaluator, resolution: float) -> dict[str, Any]:
    """Global and local half-map CC, and the rank correlation of local resolution with the true B."""
    t0 = time.perf_counter()
    overall = localsharp.half_map_sharpen(density, half1, half2, resolution)
    t1 = time.perf_counter()
    result = localsharp.local_sharpen(density, resolution, half_maps=(half1, half2))
    t2 = time.perf_counter()
    rows = [r for r in result.boxes if r.get("local_resolution") is not None]
    rank, n_boxes = resolution_rank(rows, truth, density)
    res = [r["local_resolution"] for r in rows]
    return {"cc_global_half": cc(overall.map), "cc_local_half": cc(result.map.compute()),
            "time_global_half_s": t1 - t0, "time_local_half_s": t2 - t1,
            "resolution_rank_b": rank, "n_boxes_rank": n_boxes,
            "local_resolution_range": [float(np.min(res)), float(np.median(res)), float(np.max(res))] if res else None}


def measure_model(density, model: Path, cc: CachedEvaluator, resolution: float) -> dict[str, Any]:
    """Global and local model-based CC (the model is also the evaluation's: an optimistic check)."""
    overall = localsharp.model_sharpen(density, model, resolution)
    result = localsharp.local_sharpen(density, resolution, model=model)
    return {"cc_global_model": cc(overall.map), "cc_local_model": cc(result.map.compute())}


def resolution_rank(rows: list[dict], truth: Path, density) -> tuple[float | None, int]:
    """Spearman correlation, over boxes with ≥ MIN_ATOMS atoms in their core, of mean true B and local resolution."""
    structure = read_model(truth)
    atoms = [(a.pos.tolist(), a.b_iso) for ch in structure[0] for r in ch for a in r]
    xyz = np.array([p for p, _ in atoms])
    b = np.array([v for _, v in atoms])
    index_zyx = np.floor((xyz - np.asarray(density.first_voxel_position)) / np.asarray(density.voxel_size))[:, ::-1]
    mean_b, resolution = [], []
    for row in rows:
        (z0, z1), (y0, y1), (x0, x1) = row["core_zyx"]
        inside = ((index_zyx[:, 0] >= z0) & (index_zyx[:, 0] < z1) & (index_zyx[:, 1] >= y0) & (index_zyx[:, 1] < y1)
                  & (index_zyx[:, 2] >= x0) & (index_zyx[:, 2] < x1))
        if inside.sum() >= MIN_ATOMS:
            mean_b.append(float(b[inside].mean()))
            resolution.append(float(row["local_resolution"]))
    if len(mean_b) < 3:
        return None, len(mean_b)
    return float(spearmanr(mean_b, resolution).statistic), len(mean_b)


def box_stats(rows: list[dict]) -> dict[str, Any]:
    """Over the boxes whose search recorded a plateau (B-type picks), as the default rule renders them:
    their number, median S/N, median plateau width (Å²), how many plateaus hold 0, median |b applied|."""
    picked = [r for r in rows if r.get("b_sharpen_within_noise")]
    spans = [r["b_sharpen_within_noise"] for r in picked]
    sn = [r["signal_to_noise"] for r in picked if r.get("signal_to_noise") is not None]
    applied = [abs(r["b_sharpen_applied"]) for r in picked]
    return {"n_b_type": len(picked),
            "median_signal_to_noise": float(np.median(sn)) if sn else None,
            "median_plateau_width": float(np.median([b - a for a, b in spans])) if spans else None,
            "n_plateau_holds_zero": sum(a <= 0.0 <= b for a, b in spans),
            "median_abs_b_applied_default": float(np.median(applied)) if applied else None}


def cases(selected: list[str]):
    for name, (model, copies, seed, noise, subset) in PHANTOMS.items():
        if selected and name not in selected:
            continue
        yield name, subset, ("phantom", model, copies, seed, noise)
    for name in REAL:
        if (not selected or name in selected) and available(CASES[name]):
            yield name, "real", ("real",)


#: Single models whose rank correlation is measured again on other noise seeds (how noisy the metric is).
RETEST = {"hb": HB, "spike": SPIKE, "5me2": HB2}
RETEST_SEEDS = (0, 1, 2)


def retest(tmp: Path) -> dict[str, Any]:
    """Per single model: the rank correlation with the true B on three noise seeds, and the rank correlation
    of the local resolutions of the same boxes between seeds (test–retest: the metric's own noise)."""
    out = {}
    for name, model in RETEST.items():
        truths, resolutions = [], []
        for seed in RETEST_SEEDS:
            ph = phantom(assembly(model, (1, 1, 1)), tmp / f"retest_{name}_{seed}", voxel=1.0, resolution=RESOLUTION,
                         noise=1.0, seed=seed, b_core=20.0, b_edge=200.0)
            result = localsharp.local_sharpen(ph.full_map, RESOLUTION, half_maps=(ph.half_map_1, ph.half_map_2))
            rows = [r for r in result.boxes if r.get("local_resolution") is not None]
            truths.append(resolution_rank(rows, ph.paths["model_phantom_b"], ph.full_map)[0])
            resolutions.append({r["index"]: r["local_resolution"] for r in rows})
            shutil.rmtree(tmp / f"retest_{name}_{seed}")
        common = sorted(set.intersection(*(set(r) for r in resolutions)))
        pairs = [float(spearmanr([resolutions[i][k] for k in common], [resolutions[j][k] for k in common]).statistic)
                 for i, j in ((0, 1), (0, 2), (1, 2))]
        out[name] = {"rank_with_true_b": truths, "rank_between_seeds": pairs, "n_boxes": len(common)}
        print("retest", name, [round(t, 3) for t in truths], [round(p, 3) for p in pairs], flush=True)
    return out


def main(selected: list[str], rules: bool) -> None:
    saved = json.loads(OUT.read_text()) if OUT.exists() else {}
    results = {k: v for k, v in saved.get("results", {}).items() if isinstance(v.get("cc_local"), float)}
    noise = saved.get("rank_noise")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not selected or "retest" in selected:
            noise = retest(tmp)
        for name, subset, spec in cases([s for s in selected if s != "retest"] if selected != ["retest"] else ["-"]):
            t = time.perf_counter()
            if spec[0] == "phantom":
                _, model, copies, seed, noise_level = spec
                ph = phantom(assembly(model, copies), tmp / name, voxel=1.0, resolution=RESOLUTION,
                             noise=noise_level, seed=seed, b_core=20.0, b_edge=200.0)
                row = measure(name, ph.full_map, ph.paths["model_b0"], RESOLUTION, tmp, rules)
                row.update(measure_half_maps(ph.full_map, ph.half_map_1, ph.half_map_2, ph.paths["model_phantom_b"],
                                             row["_cc"], RESOLUTION))
                row.update(model=model.name, copies=list(copies), seed=seed, noise=noise_level,
                           shape_xyz=list(ph.full_map.shape_xyz))
                shutil.rmtree(tmp / name)
            else:
                case = CASES[name]
                density = localsharp.read_map(case["map"])
                row = measure(name, density, case["model"], case["resolution"], tmp, rules)
                row.update(measure_model(density, case["model"], row["_cc"], case["resolution"]))
            del row["_cc"]
            row["set"] = subset
            row["time_total_s"] = time.perf_counter() - t
            results[name] = row
            print(name, subset, {k: round(v, 4) for k, v in row.items() if k.startswith("cc_") and isinstance(v, float)},
                  "rank", row.get("resolution_rank_b"), flush=True)
            write(results, noise)
    write(results, noise)
    report(results, noise)


def write(results: dict[str, Any], noise: dict[str, Any] | None) -> None:
    OUT.write_text(json.dumps({
        "benchmark": "CC to the B=0 model within 3 Å of atoms: input, global and local in each mode; rank "
                     "correlation of local resolution with the boxes' mean true B (phantoms)",
        "default_rule": f"plateau_w{shrinkage.WIDEN:g}", "results": results, "rank_noise": noise},
        indent=1, default=float))


def _delta(r: dict[str, Any], local: str, overall: str) -> float | None:
    return round(r[local] - r[overall], 4) if local in r and overall in r else None


def report(results: dict[str, Any], noise: dict[str, Any] | None = None) -> None:
    rows = []
    for name, r in results.items():
        rank = r.get("resolution_rank_b")
        rows.append([name, r["set"], r.get("n_rendered"), round(r["cc_global"], 4), _delta(r, "cc_local", "cc_global"),
                     round(r["cc_global_half"], 4) if "cc_global_half" in r else None,
                     _delta(r, "cc_local_half", "cc_global_half"), None if rank is None else round(rank, 3),
                     round(r["cc_global_model"], 4) if "cc_global_model" in r else None,
                     _delta(r, "cc_local_model", "cc_global_model")])
    for subset in ("tune", "check", "real"):
        part = [r for r in results.values() if r["set"] == subset]
        if not part:
            continue
        summary: list[Any] = [f"mean {subset}", subset, "", round(float(np.mean([r["cc_global"] for r in part])), 4)]
        worst: list[Any] = [f"worst {subset}", subset, "", ""]
        for local, overall in (("cc_local", "cc_global"), ("cc_local_half", "cc_global_half")):
            deltas = [r[local] - r[overall] for r in part if local in r]
            if local == "cc_local_half":
                summary.append(round(float(np.mean([r[overall] for r in part if overall in r])), 4) if deltas else None)
                worst.append("")
            summary.append(round(float(np.mean(deltas)), 4) if deltas else None)
            worst.append(round(float(np.min(deltas)), 4) if deltas else None)
        ranks = [r["resolution_rank_b"] for r in part if r.get("resolution_rank_b") is not None]
        summary.append(round(float(np.mean(ranks)), 3) if ranks else None)
        worst.append(round(float(np.min(ranks)), 3) if ranks else None)
        rows += [summary + ["", ""], worst + ["", ""]]
    print("local − global CC per mode (model-free, half maps, model); rank = Spearman(local resolution, mean true B)")
    print_table(["map", "set", "boxes", "CC global", "local−global", "CC global half", "local−global half", "rank",
                 "CC global model", "local−global model"], rows)
    if noise:
        print("rank correlation of local resolution: with the true B on seeds 0, 1, 2, and between seeds (test-retest)")
        print_table(["model", "boxes", "with true B", "between seeds"],
                    [[k, v["n_boxes"], " ".join(f"{x:.2f}" for x in v["rank_with_true_b"]),
                      " ".join(f"{x:.2f}" for x in v["rank_between_seeds"])] for k, v in noise.items()])
    ruled = {k: r for k, r in results.items() if isinstance(r.get("cc_local_rule"), dict)}
    if ruled:
        names = list(RULES)
        print("model-free local − global CC per shrinkage rule")
        print_table(["map", "set", "CC global"] + names,
                    [[k, r["set"], round(r["cc_global"], 4)] + [round(r["cc_local_rule"][n] - r["cc_global"], 4)
                                                                for n in names] for k, r in ruled.items()])


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main([a for a in arguments if a != "--rules"], "--rules" in arguments)
