"""Hollow, sparse, masked and low-resolution maps: the analysis region and the low-resolution bound.

For every case: the map–model CC (``evaluate_map``'s ``cc_mask``: B = 0 model map, both low-passed
at the resolution, within 3 Å of atoms) of

* the input;
* the best single ``exp(b·s²/4)`` cut at the resolution (b on a 20 Å² grid, then 5 Å² around the
  best: the "oracle" a global sharpening can at most reach);
* ``global_sharpen`` with the defaults (``rule``), and with the region and bound switched off
  (``molecule_boxes=0``: the whole map when the density-selected box is rejected, as the
  reference; ``low_resolution`` far away: no bound) — ``whole``;
* ``local_sharpen`` with the defaults (``--local``).

Phantoms (``localsharp.assemblies`` + ``localsharp.phantom`` with ``noise_reference="molecule"``:
the half-map FSC within a soft mask around the atoms crosses 0.143 at the resolution, as a user's
stated resolution would):

* ``ico_*``: 60 copies of the spike NTD by the icosahedral group (orientation 222) at 175 Å;
* ``icohb_*``: 60 haemoglobin tetramers by I at 165 Å (a denser shell);
* ``shell_*``: 90 NTD copies at random orientations on a 150 Å sphere;
* ``layers_*``: NTD shells at 150 and 110 Å (a thick hollow shell);
* ``fil_*``: a haemoglobin αβ-dimer filament along z (9 copies, rise 45 Å, twist 40°);
* ``single_*``: one molecule in a large box (60 Å of solvent on every side);
* ``*_m``: the same full map masked (zero away from the model); ``*_7A``: at 7 Å (B 150–300 Å²).

Real maps: the three of ``../shared/data`` (``_common.CASES``) and, when ``LOCALSHARP_EXTRA_DATA``
names a folder holding them, two public maps (EMDB and PDB data, CC0), each with its README:

* ``emd1997_groel_c7/``: EMD-1997 (GroEL tetradecamer, 7 Å, C7, the deposited masked map, 68 %
  zeros; Clare et al. 2012, Cell 149:113) as distributed in the PowerFit test cases
  (haddocking/powerfit, ``test-cases/EMD-1997/``), and ``model_1oel_14mer_fitted.pdb``: PDB 1OEL
  (one ring) rigid-body fitted into the map (a coarse search, then refinement of the
  map–model correlation at 7 Å; CC within 3 Å of the atoms 0.699) and its second ring made by the
  entry's BIOMT operator;
* ``emd5168_factin_6p6/``: EMD-5168 (F-actin, 6.6 Å, unmasked) as distributed in the TEMPy examples
  (Topf-Lab/Tempy, ``Examples/Test_Files/emd_5168.map``) with ``model_3mfp_modeller.pdb``, the
  TEMPy authors' Modeller rebuild of PDB 3MFP (one subunit) in the map's frame.

Run: ``python benchmarks/quality_sparse.py [--local | --local-only] [name ...]`` (phantoms cached in
``$LOCALSHARP_BENCH_CACHE``, default ``/tmp/localsharp-bench/sparse``; hours on a loaded 2-core
machine); prints the table and writes ``benchmarks/results/quality_sparse.json`` (merged by case name).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fft

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, RESULTS, available, print_table, write_json  # noqa: E402
from quality_modes import CachedEvaluator  # noqa: E402

import localsharp  # noqa: E402
from localsharp.assemblies import assembly  # noqa: E402
from localsharp.kernels.fourier import FourierGrid, to_coefficients  # noqa: E402
from localsharp.maps.mrc import read_map  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402

DATA = ROOT / "tests" / "data"
SPIKE = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
HB = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"
CACHE = Path(os.environ.get("LOCALSHARP_BENCH_CACHE", "/tmp/localsharp-bench")) / "sparse"
OUT = RESULTS / "quality_sparse.json"
EXTRA = Path(os.environ["LOCALSHARP_EXTRA_DATA"]) if os.environ.get("LOCALSHARP_EXTRA_DATA") else None

#: name -> (assembly arguments, phantom arguments)
LAYOUTS = {
    "ico": (dict(model=SPIKE, layout="point_group", symmetry="I", radius=175.0), dict(voxel=1.4, padding=2.0)),
    "icohb": (dict(model=HB, layout="point_group", symmetry="I", radius=165.0), dict(voxel=1.4, padding=2.0)),
    "shell": (dict(model=SPIKE, layout="shell", copies=90, radius=150.0, seed=1), dict(voxel=1.4, padding=4.0)),
    "layers": (dict(model=SPIKE, layout="layers", copies=70, radii=(150.0, 110.0), seed=2),
               dict(voxel=1.4, padding=4.0)),
    "fil": (dict(model=HB, layout="filament", chains=("A", "B"), copies=9, radius=22.0, seed=3),
            dict(voxel=1.0, padding=30.0)),
    "single": (dict(model=SPIKE, layout="single"), dict(voxel=1.2, padding=60.0)),
    "singlehb": (dict(model=HB, layout="single", chains=("A",)), dict(voxel=1.0, padding=60.0)),
}
#: name -> (layout, resolution, b_core, b_edge, noise, seed, masked, voxel override)
PHANTOMS = {
    "ico_n1": ("ico", 4.0, 20.0, 120.0, 1.0, 0, False, None),
    "ico_n2": ("ico", 4.0, 20.0, 120.0, 2.0, 1, False, None),
    "icohb_n1": ("icohb", 4.0, 20.0, 120.0, 1.0, 0, False, None),
    "shell_n1": ("shell", 4.0, 20.0, 120.0, 1.0, 0, False, None),
    "layers_n2": ("layers", 4.0, 20.0, 120.0, 2.0, 0, False, None),
    "fil_n1": ("fil", 3.5, 20.0, 150.0, 1.0, 0, False, None),
    "single_n2": ("single", 4.0, 20.0, 120.0, 2.0, 1, False, None),
    "singlehb_n1": ("singlehb", 3.5, 20.0, 120.0, 1.0, 0, False, None),
    "ico_n1_m": ("ico", 4.0, 20.0, 120.0, 1.0, 0, True, None),
    "shell_n1_m": ("shell", 4.0, 20.0, 120.0, 1.0, 0, True, None),
    "fil_n1_m": ("fil", 3.5, 20.0, 150.0, 1.0, 0, True, None),
    "single_n2_m": ("single", 4.0, 20.0, 120.0, 2.0, 1, True, None),
    "ico_7A": ("ico", 7.0, 150.0, 300.0, 1.0, 0, False, 2.0),
    "shell_7A": ("shell", 7.0, 150.0, 300.0, 1.0, 0, False, 2.0),
    "singlehb_7A": ("singlehb", 7.0, 150.0, 300.0, 1.0, 0, False, 2.0),
    "ico_7A_m": ("ico", 7.0, 150.0, 300.0, 1.0, 0, True, 2.0),
}
#: Real maps beyond ``_common.CASES``, under ``$LOCALSHARP_EXTRA_DATA``: folder, map, model, resolution.
EXTRA_CASES = {
    "emd1997": ("emd1997_groel_c7", "map.mrc", "model_1oel_14mer_fitted.pdb", 7.0),
    "emd5168": ("emd5168_factin_6p6", "map.mrc", "model_3mfp_modeller.pdb", 6.6),
}
#: The options that switch the region rule, the low-resolution bound and the least-blur rule off (the
#: reference's behaviour, and localsharp's before these rules).
WHOLE_MAP_OPTIONS = dict(molecule_boxes=0, low_resolution=1e9, least_blur=False)


def make_phantom(name: str) -> tuple[Path, Path, float]:
    """The phantom's full map, its B = 0 model and its resolution (made once, cached)."""
    layout, res, b_core, b_edge, noise, seed, masked, voxel = PHANTOMS[name]
    build, geometry = LAYOUTS[layout]
    out = CACHE / name
    if not (out / "phantom.json").exists():
        kwargs = dict(build)
        model = kwargs.pop("model")
        structure = assembly(model, **kwargs)
        phantom(structure, out, voxel=voxel or geometry["voxel"], padding=geometry["padding"],
                           b_core=b_core, b_edge=b_edge, resolution=res, noise=noise, seed=seed,
                           noise_reference="molecule", masked=masked, overwrite=True)
    return out / "full_map.mrc", out / "model_b0.cif", res


def best_single_b(density: Any, cc: CachedEvaluator) -> tuple[float, float]:
    """The best CC of ``exp(b·s²/4)`` cut at the resolution: 20 Å² grid over −100…300, then 5 Å² steps."""
    grid = FourierGrid(density.shape, density.voxel_size_zyx, density.cell_angles)
    coeffs = to_coefficients(density.data)
    coeffs[grid.s2 > 1.0 / cc.resolution**2] = 0
    scores: dict[float, float] = {}

    def score(b: float) -> float:
        if b not in scores:
            data = scipy.fft.irfftn(coeffs * np.exp(b * grid.s2 / 4.0).astype(np.float32), s=density.shape)
            scores[b] = cc(density.with_data(data.astype(np.float32)))
        return scores[b]

    for b in range(-100, 301, 20):
        score(float(b))
    best = max(scores, key=scores.get)  # type: ignore[arg-type]
    for b in np.arange(best - 15, best + 16, 5.0):
        score(float(b))
    best = max(scores, key=scores.get)  # type: ignore[arg-type]
    return best, scores[best]


def measure_local(density: Any, cc: CachedEvaluator, resolution: float) -> dict[str, Any]:
    """CC and wall time of default local sharpening (its own LocalCluster)."""
    t0 = time.perf_counter()
    result = localsharp.local_sharpen(density, resolution)
    return {"cc_local": cc(result.map.compute()), "overall_local": {k: result.overall.get(k) for k in ("b_sharpen", "method")},
            "time_local_s": time.perf_counter() - t0}


def measure(name: str, map_path: Path, model: Path, resolution: float, local: bool,
            local_only: bool = False) -> dict[str, Any]:
    """Input, oracle, rule and whole-map CC (and local with ``local``; only local with ``local_only``)."""
    density = read_map(map_path)
    cc = CachedEvaluator(density, model, resolution)
    if local_only:
        return measure_local(density, cc, resolution)
    b_best, cc_best = best_single_b(density, cc)
    row: dict[str, Any] = {"shape": list(density.shape), "resolution": resolution,
                           "zeros": float(np.mean(density.data == 0)), "cc_input": cc(density),
                           "best_b": b_best, "cc_best": cc_best}
    for label, options in (("rule", {}), ("whole", WHOLE_MAP_OPTIONS)):
        t0 = time.perf_counter()
        result = localsharp.global_sharpen(density, resolution, **options)
        row[f"cc_{label}"] = cc(result.map)
        row[f"b_{label}"] = result.sharpening.b_sharpen
        row[f"region_{label}"] = result.box.method
        row[f"weight_{label}"] = result.region_weight
        row[f"box_solvent_{label}"] = result.box_solvent.solvent_fraction
        row[f"warnings_{label}"] = [w for w in result.warnings if "solvent" in w or "region weight" in w]
        row[f"time_{label}_s"] = time.perf_counter() - t0
    if local:
        row.update(measure_local(density, cc, resolution))
    return row


def cases(names: list[str]) -> list[tuple[str, Path | None, Path | None, float]]:
    """(name, map, model, resolution) of the selected cases that are available here (phantoms: map None)."""
    out = []
    for name, case in CASES.items():
        if (not names or name in names) and available(case):
            out.append((name, Path(case["map"]), Path(case["model"]), float(case["resolution"])))
    for name, (folder, map_name, model, res) in EXTRA_CASES.items():
        if EXTRA is not None and (not names or name in names) and (EXTRA / folder / map_name).exists():
            out.append((name, EXTRA / folder / map_name, EXTRA / folder / model, res))
    for name in [n for n in names if n in PHANTOMS] or list(PHANTOMS):  # in the order given
        out.append((name, None, None, PHANTOMS[name][1]))  # made when its turn comes
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="cases to run (default: all)")
    parser.add_argument("--local", action="store_true", help="also run local sharpening")
    parser.add_argument("--local-only", action="store_true",
                        help="run only local sharpening (kept beside the case's stored global results)")
    args = parser.parse_args(argv)
    results = json.loads(OUT.read_text())["cases"] if OUT.exists() else {}
    for name, map_path, model, res in cases(args.names):
        t0 = time.perf_counter()
        if map_path is None:
            map_path, model, res = make_phantom(name)
        results[name] = {**results.get(name, {}), **measure(name, map_path, model, res, args.local,
                                                                    args.local_only)}
        r = results[name]
        if args.local_only:
            print(f"{name}: local {r['cc_local']:.4f} global {r.get('cc_rule', float('nan')):.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            write_json(OUT.name, {"benchmark": "quality_sparse", "cases": results})
            continue
        print(f"{name}: input {r['cc_input']:.4f} best {r['best_b']:.0f} {r['cc_best']:.4f} rule {r['b_rule']:.1f} "
              f"{r['cc_rule']:.4f} ({r['region_rule']}) whole {r['b_whole']:.1f} {r['cc_whole']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        write_json(OUT.name, {"benchmark": "quality_sparse", "cases": results})
    rows = [[n, r["cc_input"], r["best_b"], r["cc_best"], r["b_whole"], r["cc_whole"], r["b_rule"], r["cc_rule"],
             r["region_rule"], r.get("cc_local", "")] for n, r in results.items()]
    print_table(["case", "input", "best b", "best", "b whole", "whole", "b rule", "rule", "region", "local"], rows)


if __name__ == "__main__":
    main()
