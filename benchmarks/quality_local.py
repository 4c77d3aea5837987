"""Quality of local sharpening against the overall (global) sharpening, with and without shrinkage.

For every map: map–model CC (``evaluate_map``'s ``cc_mask``: B = 0 model map, both low-passed at the
resolution, within 3 Å of atoms) of the input, of ``global_sharpen`` and of local sharpening rendered
with several shrinkage rules (:mod:`localsharp.sharpening.shrinkage`).  The box search runs once
per map; each rule only re-runs the blend pass on the same recorded boxes (a resumed run whose
output image was removed), in-process.

Maps: phantoms whose B grows from 20 Å² at the centre to 200 Å² at the rim (``localsharp.phantom``)
of single models and of multi-copy assemblies (copies of one model on a grid, one structure, so the
B gradient spans the assembly: > 100 boxes), several seeds and noise levels; the three real maps.
The phantoms are split in a TUNE set (the rule's constant is chosen on it) and a CHECK set.

Run: ``python benchmarks/quality_local.py [name ...]`` (tens of minutes on a shared machine; names
select cases); prints a table and writes ``benchmarks/results/quality_local.json`` (merged by case
name with an existing file, so cases can be run one at a time).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, RESULTS, SHARED, available, print_table  # noqa: E402
from quality_modes import CachedEvaluator  # noqa: E402

import localsharp  # noqa: E402
from localsharp.config import LocalOptions  # noqa: E402
from localsharp.engine import tasks as tasks_module  # noqa: E402
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


def measure(name: str, density, model, resolution: float, tmp: Path) -> dict[str, Any]:
    cc = CachedEvaluator(density, model, resolution)
    t0 = time.perf_counter()
    overall = localsharp.global_sharpen(density, resolution)
    t1 = time.perf_counter()
    store = tmp / f"store_{name}"
    result = localsharp.local_sharpen(density, resolution, store=store, local=LocalOptions())
    t2 = time.perf_counter()
    rows = [r for r in result.boxes if r["status"] != "skipped"]
    out: dict[str, Any] = {
        "cc_input": cc(density), "cc_global": cc(overall.map), "global_b_sharpen": overall.sharpening.b_sharpen,
        "n_boxes": result.summary(with_boxes=False)["n_boxes"], "n_rendered": len(rows),
        "time_global_s": t1 - t0, "time_local_s": t2 - t1, "cc_local": {}, "mean_abs_b_applied": {}}
    for rule_name, rule in RULES.items():
        tasks_module.shrink = rule
        shutil.rmtree(store / "output.ome.zarr")
        again = localsharp.local_sharpen(density, resolution, store=store, local=LocalOptions(), resume=True)
        out["cc_local"][rule_name] = cc(again.map.compute())
        applied = [rule(r)["b_sharpen_applied"] for r in rows]
        applied = [abs(b) for b in applied if b is not None]
        out["mean_abs_b_applied"][rule_name] = float(np.mean(applied)) if applied else 0.0
    tasks_module.shrink = shrinkage.shrink
    out["boxes"] = box_stats(rows)
    shutil.rmtree(store)
    return out


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


def main(selected: list[str]) -> None:
    results = json.loads(OUT.read_text()).get("results", {}) if OUT.exists() else {}
    results = {k: v for k, v in results.items() if isinstance(v.get("cc_local"), dict)}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, subset, spec in cases(selected):
            t = time.perf_counter()
            if spec[0] == "phantom":
                _, model, copies, seed, noise = spec
                ph = phantom(assembly(model, copies), tmp / name, voxel=1.0, resolution=RESOLUTION, noise=noise,
                             seed=seed, b_core=20.0, b_edge=200.0)
                row = measure(name, ph.full_map, ph.paths["model_b0"], RESOLUTION, tmp)
                row.update(model=model.name, copies=list(copies), seed=seed, noise=noise,
                           shape_xyz=list(ph.full_map.shape_xyz))
                shutil.rmtree(tmp / name)
            else:
                case = CASES[name]
                row = measure(name, localsharp.read_map(case["map"]), case["model"], case["resolution"], tmp)
            row["set"] = subset
            row["time_total_s"] = time.perf_counter() - t
            results[name] = row
            print(name, subset, round(row["cc_global"], 4), {k: round(v - row["cc_global"], 4)
                                                              for k, v in row["cc_local"].items()}, flush=True)
            write(results)
    report(results)


def write(results: dict[str, Any]) -> None:
    OUT.write_text(json.dumps({
        "benchmark": "CC to the B=0 model within 3 Å of atoms: input, global, local per shrinkage rule "
                     "(plateau_w0 = the search's pick, no shrinkage)",
        "default_rule": f"plateau_w{shrinkage.WIDEN:g}", "results": results}, indent=1, default=float))


def report(results: dict[str, Any]) -> None:
    names = list(RULES)
    rows = []
    for name, r in results.items():
        rows.append([name, r["set"], r.get("n_rendered"), round(r["cc_global"], 4)]
                    + [round(r["cc_local"][k] - r["cc_global"], 4) for k in names])
    for subset in ("tune", "check", "real"):
        part = [r for r in results.values() if r["set"] == subset]
        if part:
            rows.append([f"mean {subset}", subset, "", round(float(np.mean([r["cc_global"] for r in part])), 4)]
                        + [round(float(np.mean([r["cc_local"][k] - r["cc_global"] for r in part])), 4)
                           for k in names])
            rows.append([f"worst {subset}", subset, "", ""]
                        + [round(float(np.min([r["cc_local"][k] - r["cc_global"] for r in part])), 4)
                           for k in names])
    print("local - global CC per rule")
    print_table(["map", "set", "boxes", "CC global"] + names, rows)


if __name__ == "__main__":
    main(sys.argv[1:])
