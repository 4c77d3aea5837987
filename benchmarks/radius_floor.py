"""Does the floor of the model-free smoothing radius cost map quality?

The default smoothing radius is ⅔ of the mean spacing of box centres, at least ⅔ of the stride
(:func:`localsharp.tiling.blend.default_radius`).  Without the floor, a small map whose boxes are
packed closer than the stride got ⅔ of that spacing (3 Å on the tour map).  For every map this runs
``localsharp local`` (model-free, in this process) twice — with the default and with
``--smoothing-radius`` set to the radius without the floor — and correlates both outputs with the
B = 0 model map (``localsharp evaluate``: ``cc_mask``, within 3 Å of atoms).

Maps: the three real maps and six phantoms of ``benchmarks/quality_local.py`` (the phantoms are
made here, into ``--cache``).  Run: ``python benchmarks/radius_floor.py`` (about 15 minutes on a
2-core machine); prints a table and writes ``benchmarks/results/radius_floor.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, RESULTS, available, print_table  # noqa: E402
from _proctree import machine  # noqa: E402

PHANTOMS = ("ph_hb_s0_n1", "ph_spike_s0_n1", "ph_hb_s1_n2", "ph_hb_s2_n05", "ph_hb8_s0_n1", "ph_rdrp4_s0_n1")


def localsharp(*args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "localsharp", *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(done.stderr)
    return done.stdout


def radius_without_floor(map_path: Path, resolution: float, out: Path) -> float:
    """⅔ of the mean spacing of the box centres of the run in ``out`` (the rule without the floor)."""
    from localsharp.engine.local.inputs import open_input
    from localsharp.maps.store import RunStore
    from localsharp.sharpening.solvent import RADIUS_FACTOR
    from localsharp.tiling.blend import radius_from_spacing
    from localsharp.tiling.boxes import BoxGrid

    source = open_input(map_path)
    overall = RunStore(out / "local_run.zarr").record("overall")
    buffer = int(round(RADIUS_FACTOR * resolution / min(source.voxel_size)))
    region = tuple(tuple(b) for b in overall["molecule_bounds_zyx"])
    grid = BoxGrid.build(source.shape, 40, 20, buffer, region)
    return radius_from_spacing(grid.nearest_neighbour_distance(source.voxel_size_zyx))


def phantom_case(name: str, cache: Path) -> tuple[Path, Path, float]:
    from quality_local import PHANTOMS as SPECS, assembly

    model, copies, seed, noise, _ = SPECS[name]
    where = cache / name
    if not (where / "full_map.mrc").exists():
        where.mkdir(parents=True, exist_ok=True)
        assembly(model, copies).make_mmcif_document().write_file(str(where / "model.cif"))
        localsharp("phantom", str(where / "model.cif"), "--output-dir", str(where), "--resolution", "3.5",
                   "--seed", str(seed), "--noise", str(noise), "--overwrite")
    return where / "full_map.mrc", where / "model_b0.cif", 3.5


def measure(name: str, map_path: Path, model: Path, resolution: float, cache: Path) -> dict:
    row: dict = {}
    out = cache / f"out_{name}"
    for label in ("floor", "without_floor"):
        extra = [] if label == "floor" else ["--smoothing-radius", str(radius_without_floor(map_path, resolution,
                                                                                           cache / f"out_{name}"))]
        localsharp("local", str(map_path), "--resolution", str(resolution), "--in-process", "-q", "--overwrite",
                   "--output-dir", str(out), *extra)
        summary = json.loads((out / "local_summary.json").read_text())
        cc = json.loads(localsharp("evaluate", str(out / "local_sharpened_map.ccp4"), "--model", str(model),
                                   "--resolution", str(resolution)))
        row[label] = {"radius": summary["smoothing_radius"], "cc_mask": cc["cc_mask"], "n_boxes": summary["n_boxes"]}
    row["delta_cc_mask"] = row["floor"]["cc_mask"] - row["without_floor"]["cc_mask"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp-radius-floor"))
    parser.add_argument("names", nargs="*", help="cases to run (default: all)")
    args = parser.parse_args()
    cases = {name: (c["map"], c["model"], c["resolution"]) for name, c in CASES.items() if available(c)}
    for name in PHANTOMS:
        cases[name] = phantom_case(name, args.cache) if not args.names or name in args.names else None
    results = {}
    for name, case in cases.items():
        if case is None or (args.names and name not in args.names):
            continue
        results[name] = measure(name, *case, args.cache)
        print(name, json.dumps(results[name]), flush=True)
    rows = [[n, r["without_floor"]["radius"], r["floor"]["radius"], f"{r['without_floor']['cc_mask']:.4f}",
             f"{r['floor']['cc_mask']:.4f}", f"{r['delta_cc_mask']:+.5f}"] for n, r in results.items()]
    print_table(["map", "R without floor", "R", "cc without floor", "cc", "delta"], rows)
    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
           "load_average": os.getloadavg()[0], "cases": results}
    (RESULTS / "radius_floor.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
