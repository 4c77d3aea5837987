"""Our scorer on the reference engine's own inputs: do the two engines score the same maps alike?

The reference engine's log (``reference_engine.py --log``, kept in ``results/reference_logs``)
prints, for its default run, the analysis box it cut (grid origin and size), the box's solvent
fraction, its region weight and the score of each of its 21 trials (the column headed "SA" is
the adjusted surface area: its two ends are equal, as the delta-ratio weight makes them).  This
script cuts the same box from the same map, applies each trial's b_sharpen with our
``b_iso_to_d_cut`` and scores it with our ``measure_map`` at the reference's solvent fraction and
weight.  Where the scores agree, a different pick comes from the inputs to the score (our B
estimate, box solvent fraction and region weight), not from the scoring.

Run: ``python benchmarks/reference_scores.py``; prints a table per map and writes
``benchmarks/results/reference_scores.json``.
"""

from __future__ import annotations

import re

import numpy as np

from _common import CASES, RESULTS, available, print_table, write_json

LOGS = RESULTS / "reference_logs"
ROW = re.compile(r"^\s*(-?\d+\.\d)\s+(-?\d+\.\d)\s+(\d+\.\d)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(\S+)\s+(\d+\.\d+)\s*$")


def parse_log(text: str) -> dict:
    """Box, box solvent fraction, region weight, trial table and pick of one reference run."""
    box_part = text.split("Getting map as box", 1)[1] if "Getting map as box" in text else ""
    origin = re.search(r"Working origin moved from grid position of: \((\d+), (\d+), (\d+)\)", box_part)
    grid = re.search(r"Box map grid:\s+(\d+)\s+(\d+)\s+(\d+)", box_part)
    solvent = re.findall(r"Solvent fraction from overall mask:\s+([\d.]+)", text)
    weight = re.search(r"Region weight set to\s+([\d.]+)", text)
    best = re.search(r"Best scores for sharpening with b_iso =\s*(\S+)\s+b_sharpen =\s*(\S+)", text)
    rows = [m.groups() for m in map(ROW.match, text.splitlines()) if m]
    use_box = origin is not None and grid is not None
    return {
        "origin_xyz": [int(v) for v in origin.groups()] if use_box else None,
        "grid_xyz": [int(v) for v in grid.groups()] if use_box else None,
        "solvent_fraction": float(solvent[1] if use_box and len(solvent) > 1 else solvent[0]),
        "region_weight": float(weight.group(1)) if weight else None,
        "trials": [{"b_sharpen": float(r[0]), "b_iso": float(r[1]), "adjusted_sa": float(r[3])} for r in rows],
        "pick_b_sharpen": float(best.group(2)) if best else None,
    }


def rescore(density, resolution: float, ref: dict) -> list[float]:
    """Our adjusted SA of each reference trial, on the reference's box, solvent fraction and weight."""
    from localsharp.sharpening.functions import Sharpening
    from localsharp.sharpening.score import measure_map
    from localsharp.sharpening.spectrum import Spectrum

    data = density.data
    if ref["origin_xyz"]:
        (x0, y0, z0), (nx, ny, nz) = ref["origin_xyz"], ref["grid_xyz"]
        data = np.ascontiguousarray(data[z0:z0 + nz, y0:y0 + ny, x0:x0 + nx])
    spectrum = Spectrum.from_map(data, density.voxel_size_zyx, resolution, angles=density.cell_angles)
    scores = []
    for trial in ref["trials"]:
        factors = Sharpening("b_iso_to_d_cut", b_sharpen=trial["b_sharpen"]).factors(spectrum)
        measures = measure_map(spectrum.render(factors, sigma_scaled=False), ref["solvent_fraction"])
        scores.append(measures.adjusted_sa(ref["region_weight"]))
    return scores


def main() -> None:
    import localsharp

    out = {}
    for name, case in CASES.items():
        log = LOGS / f"{name}.log"
        if not available(case) or not log.exists():
            print(f"skip {name}: {case['map'] if not available(case) else log} missing")
            continue
        ref = parse_log(log.read_text())
        ours = rescore(localsharp.read_map(case["map"]), case["resolution"], ref)
        theirs = [t["adjusted_sa"] for t in ref["trials"]]
        diff = np.abs(np.array(ours) - np.array(theirs))
        rows = [[t["b_sharpen"], t["b_iso"], t["adjusted_sa"], round(s, 3), round(s - t["adjusted_sa"], 3)]
                for t, s in zip(ref["trials"], ours)]
        print(f"\n{name}: box origin {ref['origin_xyz']} grid {ref['grid_xyz']}, solvent {ref['solvent_fraction']}, "
              f"weight {ref['region_weight']}")
        print_table(["b_sharpen", "ref target B", "ref adjusted SA", "ours", "ours - ref"], rows)
        our_pick = ref["trials"][int(np.argmax(ours))]["b_sharpen"]
        print(f"grid pick: reference {ref['pick_b_sharpen']}, ours on the same inputs {our_pick}; "
              f"|difference| median {np.median(diff):.3f}, max {diff.max():.3f}")
        out[name] = {"reference": ref, "ours_adjusted_sa": ours, "median_abs_diff": float(np.median(diff)),
                     "max_abs_diff": float(diff.max()), "our_grid_pick_b_sharpen": our_pick}
    write_json("reference_scores.json", {"benchmark": "our scorer on the reference's box, solvent and weight",
                                         "results": out})


if __name__ == "__main__":
    main()
