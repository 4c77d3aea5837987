"""How stable is the chosen sharpening under perturbations that carry no information?

Each real map is re-written with one to three edge planes removed (zeros on the masked maps; the
header keeps every voxel at its place, so the model still fits) or with Gaussian noise of 0.1 % of
its SD added, and sharpened again.  A pick that moves far under such changes is decided by the
score's noise, not by the map.  The CC to the B = 0 model (``evaluate_map``'s ``cc_mask``) of each
pick is measured on the perturbed map itself.

With ``--reference PYTHON`` (an interpreter with cctbx, REFERENCE_ENGINE.md) the reference engine
is run on the same files through ``benchmarks/reference_engine.py`` and its b_sharpen is applied
with our engine (``b_iso_to_d_cut``), as in ``quality.py``.  The reference is never part of CI.

Run: ``python benchmarks/pick_stability.py [--reference /tmp/ref/bin/python] [--cases emd3488]``
(ours: about 1 minute; with the reference about 12 minutes, mostly EMD-11007 at ~100 s a run).
Writes ``benchmarks/results/pick_stability.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from _common import CASES, available, print_table, write_json

import localsharp  # noqa: E402
from localsharp.maps.density import DensityMap  # noqa: E402

HERE = Path(__file__).resolve().parent


def crop(density: DensityMap, lo_xyz: tuple[int, int, int], hi_xyz: tuple[int, int, int]) -> DensityMap:
    """Remove ``lo`` planes at the start and ``hi`` at the end of x, y, z, keeping voxel positions."""
    (lx, ly, lz), (hx, hy, hz) = lo_xyz, hi_xyz
    nz, ny, nx = density.shape
    data = density.data[lz:nz - hz, ly:ny - hy, lx:nx - hx]
    shift = (lx, ly, lz)
    if any(o != 0.0 for o in density.origin):
        moved = dict(origin=tuple(o + s * v for o, s, v in zip(density.origin, shift, density.voxel_size)))
    else:
        moved = dict(nstart=tuple(n + s for n, s in zip(density.nstart, shift)))
    shape_xyz = data.shape[::-1]
    return dataclasses.replace(density, data=np.ascontiguousarray(data), cell_grid=tuple(shape_xyz),
                               **moved)


def with_noise(density: DensityMap, relative_sd: float, seed: int = 0) -> DensityMap:
    """Add Gaussian noise of ``relative_sd`` times the map's SD (fixed seed)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, relative_sd * float(density.data.std()), density.shape).astype(np.float32)
    return density.with_data(density.data + noise)


VARIANTS: dict[str, Callable[[DensityMap], DensityMap]] = {
    "as given": lambda d: d,
    "first x plane removed": lambda d: crop(d, (1, 0, 0), (0, 0, 0)),
    "last z plane removed": lambda d: crop(d, (0, 0, 0), (0, 0, 1)),
    "last 2 planes of x, y, z removed": lambda d: crop(d, (0, 0, 0), (2, 2, 2)),
    "first 3 planes of x, y, z removed": lambda d: crop(d, (3, 3, 3), (0, 0, 0)),
    "noise 0.1 % of SD added": lambda d: with_noise(d, 1e-3),
}


def run_reference(python: str, map_path: Path, resolution: float) -> dict:
    """The reference engine's choice on ``map_path`` (see ``reference_engine.py``)."""
    out = subprocess.run([python, str(HERE / "reference_engine.py"), str(map_path), f"resolution={resolution}"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", help="python interpreter with cctbx (REFERENCE_ENGINE.md)")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            case = CASES[name]
            if not available(case):
                print(f"skip {name}: {case['map']} missing")
                continue
            res = case["resolution"]
            source = localsharp.read_map(case["map"])
            results[name] = {}
            for label, perturb in VARIANTS.items():
                path = Path(tmp) / f"{name}_{len(results[name])}.mrc"
                localsharp.write_map(path, perturb(source))
                density = localsharp.read_map(path)

                def cc(b_sharpen: float | None = None) -> float:
                    kw = {} if b_sharpen is None else dict(b_sharpen=b_sharpen, methods=("b_iso_to_d_cut",))
                    r = localsharp.global_sharpen(density, res, **kw)
                    return r, localsharp.evaluate_map(r.map, case["model"], res)["cc_mask"]

                ours, cc_ours = cc()
                row = {"shape_xyz": list(density.shape_xyz), "b_sharpen": ours.sharpening.b_sharpen,
                       "method": ours.sharpening.method, "cc": cc_ours}
                ref_b, cc_ref = None, None
                if args.reference:
                    ref = run_reference(args.reference, path, res)
                    row["reference"] = ref
                    ref_b = ref["b_sharpen"]
                    if ref_b is not None:
                        cc_ref = cc(ref_b)[1]
                        row["cc_reference_choice"] = cc_ref
                results[name][label] = row
                rows.append([name, label, ours.sharpening.method, round(ours.sharpening.b_sharpen, 1),
                             round(cc_ours, 4), "-" if ref_b is None else round(ref_b, 1),
                             "-" if cc_ref is None else round(cc_ref, 4),
                             "-" if cc_ref is None else ("yes" if cc_ours >= cc_ref else "no")])
                print(*rows[-1], flush=True)
    print_table(["case", "variant", "our method", "our b_sharpen", "our CC", "ref b_sharpen", "CC ref choice",
                 "ours >= ref"], rows)
    write_json("pick_stability.json", {"benchmark": "chosen b_sharpen and CC under uninformative perturbations",
                                       "reference_run": bool(args.reference), "results": results})


if __name__ == "__main__":
    main()
