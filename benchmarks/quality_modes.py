"""Quality of half-map and model-based sharpening against known truths.

Measures the map–model correlation (``evaluate_map``'s ``cc_mask``: map and
B = 0 model map low-passed at the resolution, Pearson within 3 Å of atoms):

1. **Phantoms** made from the haemoglobin model (seeds × noise levels,
   voxel 1 Å, B 20→200 Å², half-map FSC 0.143 near 3.5 Å at noise 1):
   half-map sharpening of the mean of the half maps, versus the best CC that
   any single overall B achieves on the same map (``global_sharpen(full, res,
   b_sharpen=b, methods=('b_iso',))`` scanned coarse-to-fine to 1 Å²), versus
   model-free auto-sharpening (``global_sharpen(full, res)``) and the input.
   Pass: ``half ≥ best single B − 0.01`` and ``half ≥ auto``.
2. **Real maps with models** (emd3488, spike NTD, RdRp crop): model-based
   sharpening versus model-free sharpening and the input.  Pass: ``model ≥
   model-free`` and ``model ≥ input``.

Engine A's variants (half maps: flat reference spectrum; model: 3 Å atom
mask) are reported beside the defaults for comparison.

Run: ``PYTHONPATH=. python benchmarks/quality_modes.py`` (about 4 minutes);
prints a table and writes ``benchmarks/results/quality_modes.json``.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localsharp import modes  # noqa: E402
from localsharp.api import global_sharpen  # noqa: E402
from localsharp.evaluate import evaluate_map, pearson  # noqa: E402
from localsharp.kernels.fourier import lowpass  # noqa: E402
from localsharp.maps.density import DensityMap  # noqa: E402
from localsharp.maps.atom_masks import atom_mask  # noqa: E402
from localsharp.maps.model import model_map, read_model  # noqa: E402
from localsharp.maps.mrc import read_map  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402

DATA = ROOT / "tests" / "data"
SHARED = ROOT.parent / "shared" / "data"
PHANTOM_MODEL = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"
PHANTOM_RESOLUTION = 3.5
SEEDS = (0, 1, 2)
NOISES = (0.5, 1.0, 2.0)
REAL_CASES = (
    ("emd3488", DATA / "emd3488_haemoglobin" / "map.mrc", DATA / "emd3488_haemoglobin" / "model_5ni1.cif", 3.2),
    ("spike", DATA / "emd21457_spike_ntd" / "map_segment.mrc", DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb",
     3.2),
    ("rdrp", SHARED / "emd11007_rdrp" / "map_crop192.mrc", SHARED / "emd11007_rdrp" / "model_6yyt_chainC_rna.pdb",
     2.9),
)
TOLERANCE = 0.01
OUT = ROOT / "benchmarks" / "results" / "quality_modes.json"


class CachedEvaluator:
    """``evaluate_map(...)['cc_mask']`` with the model map and atom mask computed once (for the B scans)."""

    def __init__(self, density: DensityMap, model: Path, resolution: float) -> None:
        structure = read_model(model)
        self.resolution = resolution
        self.calculated = model_map(structure, density, resolution=resolution, b_factor=0.0, source=str(model))
        self.mask = atom_mask(structure, density, 3.0)
        reference = evaluate_map(density, model, resolution)["cc_mask"]
        assert abs(self(density) - reference) < 1e-9, "cached evaluation differs from evaluate_map"

    def __call__(self, density: DensityMap) -> float:
        observed = lowpass(density.data, density.voxel_size_zyx, self.resolution, density.cell_angles)
        return float(pearson(observed, self.calculated, self.mask))


def best_single_b(full: DensityMap, resolution: float, cc: CachedEvaluator) -> tuple[float, float]:
    """Best CC over uniform b_sharpen: grid −100…300 step 20, then step 4 and step 1 around the best."""
    scores: dict[float, float] = {}

    def score(b: float) -> float:
        if b not in scores:
            scores[b] = cc(global_sharpen(full, resolution, b_sharpen=float(b), methods=("b_iso",)).map)
        return scores[b]

    for b in range(-100, 301, 20):
        score(float(b))
    for step, span in ((4, 20), (1, 4)):
        best = max(scores, key=scores.get)  # type: ignore[arg-type]
        for b in np.arange(best - span, best + span + 0.5, step):
            score(float(b))
    best = max(scores, key=scores.get)  # type: ignore[arg-type]
    return scores[best], best


def phantom_rows(work: Path) -> list[dict]:
    rows = []
    for seed in SEEDS:
        for noise in NOISES:
            t0 = time.perf_counter()
            ph = phantom(PHANTOM_MODEL, work / f"seed{seed}_noise{noise}", voxel=1.0, resolution=PHANTOM_RESOLUTION,
                         noise=noise, seed=seed)
            res = PHANTOM_RESOLUTION
            model = ph.paths["model_b0"]
            cc = CachedEvaluator(ph.full_map, model, res)
            half = modes.half_map_sharpen(None, ph.half_map_1, ph.half_map_2, res)
            half_flat = modes.half_map_sharpen(None, ph.half_map_1, ph.half_map_2, res, reference="flat")
            cc_best, b_best = best_single_b(ph.full_map, res, cc)
            row = {
                "seed": seed, "noise": noise, "shape_xyz": list(ph.full_map.shape_xyz),
                "fsc_0143": ph.fsc_resolution,
                "cc_input": evaluate_map(ph.full_map, model, res)["cc_mask"],
                "cc_auto": evaluate_map(global_sharpen(ph.full_map, res).map, model, res)["cc_mask"],
                "cc_best_single_b": cc_best, "b_sharpen_best": b_best,
                "cc_half_map": evaluate_map(half.map, model, res)["cc_mask"],
                "cc_half_map_flat": evaluate_map(half_flat.map, model, res)["cc_mask"],
                "b_signal": half.shell_scale["b_signal"],
                "mask": half.box.reason,
            }
            row["pass"] = bool(row["cc_half_map"] >= cc_best - TOLERANCE and row["cc_half_map"] >= row["cc_auto"])
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(f"  phantom seed {seed} noise {noise}: half {row['cc_half_map']:.4f}  best B {cc_best:.4f} "
                  f"(b {b_best:g})  auto {row['cc_auto']:.4f}  input {row['cc_input']:.4f}  "
                  f"{'PASS' if row['pass'] else 'FAIL'}", flush=True)
    return rows


def real_rows() -> list[dict]:
    rows = []
    for name, map_path, model_path, res in REAL_CASES:
        if not map_path.exists():
            print(f"  {name}: {map_path} absent, skipped")
            continue
        density = read_map(map_path)
        t = time.perf_counter()
        sharpened = modes.model_sharpen(density, model_path, res)
        seconds = time.perf_counter() - t
        row = {
            "case": name, "resolution": res, "shape_xyz": list(density.shape_xyz),
            "cc_input": evaluate_map(density, model_path, res)["cc_mask"],
            "cc_model_free": evaluate_map(global_sharpen(density, res).map, model_path, res)["cc_mask"],
            "cc_model": evaluate_map(sharpened.map, model_path, res)["cc_mask"],
            "cc_model_3A_mask": evaluate_map(modes.model_sharpen(density, model_path, res, mask_radius=3.0).map,
                                             model_path, res)["cc_mask"],
            "fraction_complete": sharpened.shell_scale["fraction_complete"],
            "b_eff": sharpened.shell_scale["b_eff"],
            "model_sharpen_seconds": seconds,
        }
        row["pass"] = bool(row["cc_model"] >= row["cc_model_free"] and row["cc_model"] >= row["cc_input"])
        rows.append(row)
        print(f"  {name}: model {row['cc_model']:.4f}  model-free {row['cc_model_free']:.4f}  "
              f"input {row['cc_input']:.4f}  {'PASS' if row['pass'] else 'FAIL'}", flush=True)
    return rows


def main() -> int:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="localsharp_quality_") as work:
        print("phantoms (haemoglobin model, voxel 1 Å, B 20→200 Å², resolution 3.5 Å):")
        phantoms = phantom_rows(Path(work))
    print("real maps with models:")
    real = real_rows()

    print("\nHalf-map sharpening on phantoms (cc_mask vs the B = 0 model)")
    print(f"{'seed':>4} {'noise':>5} {'FSC.143':>7} {'input':>7} {'auto':>7} {'bestB':>7} {'b':>5} "
          f"{'half':>7} {'flat(A)':>7}  result")
    for r in phantoms:
        print(f"{r['seed']:>4} {r['noise']:>5} {r['fsc_0143']:>7.2f} {r['cc_input']:>7.4f} {r['cc_auto']:>7.4f} "
              f"{r['cc_best_single_b']:>7.4f} {r['b_sharpen_best']:>5g} {r['cc_half_map']:>7.4f} "
              f"{r['cc_half_map_flat']:>7.4f}  {'PASS' if r['pass'] else 'FAIL'}")
    print("\nModel-based sharpening on real maps (cc_mask vs the B = 0 model)")
    print(f"{'case':>8} {'res':>4} {'input':>7} {'free':>7} {'model':>7} {'3Å(A)':>7} {'compl':>6}  result")
    for r in real:
        print(f"{r['case']:>8} {r['resolution']:>4} {r['cc_input']:>7.4f} {r['cc_model_free']:>7.4f} "
              f"{r['cc_model']:>7.4f} {r['cc_model_3A_mask']:>7.4f} {r['fraction_complete']:>6.3f}  "
              f"{'PASS' if r['pass'] else 'FAIL'}")
    all_pass = all(r["pass"] for r in phantoms + real)
    result = {
        "description": __doc__.split("\n\n")[0],
        "criteria": {"phantom": f"cc_half_map >= cc_best_single_b - {TOLERANCE} and cc_half_map >= cc_auto",
                     "real": "cc_model >= cc_model_free and cc_model >= cc_input"},
        "phantoms": phantoms, "real": real, "all_pass": all_pass,
        "seconds": time.perf_counter() - t0,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'ALL PASS' if all_pass else 'SOME FAIL'}; wrote {OUT.relative_to(ROOT)} "
          f"({result['seconds']:.0f} s)")
    return 0 if all_pass else 1


if __name__ == "__main__":
    raise SystemExit(main())
