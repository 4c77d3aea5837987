"""Speed of one local-sharpening box: ``sharpen_box`` single-threaded, boxes/s/core and where the time goes.

Boxes are cut as the local engine cuts them: the map is sharpened overall (``global_sharpen``),
its molecule mask is the engine's (``engine.local.tasks.molecule_mask``), the box grid is
``tiling.boxes.box_grid`` over the molecule's bounding box with the engine's buffer
(1.5 × resolution / voxel), and the search settings are those of ``engine.local.tasks.BoxJob``
(one thread, ``b_blur_hires = 0``, numba region kernels).  Only searched boxes (solvent
fraction <= 0.99) are kept; up to ``N_BOXES`` of them, evenly spread over the grid.

Maps: a capsid-like phantom (40 copies of one haemoglobin chain on a spherical shell, 200³ at
1.1 Å, B 30–80 Å² per copy, noise, 3.2 Å), EMD-3488 (3.2 Å) and the EMD-11007 crop (2.9 Å).

Timing: CPU time of the process (``time.process_time``: the machine is shared, and the box runs
on one core), every box once to warm up, then ``REPEATS`` times; a box's time is the median
of its repeats; the table gives the median over boxes as boxes/s/core.  A separate, hooked
pass charges each call's own time (callees excluded) to a stage.  Each box's chosen b_sharpen
and a hash of its rendered values are stored, and ``--compare OLD.json`` counts boxes whose
outcome differs from an earlier run.

Run: ``python benchmarks/bench_boxes.py [--compare benchmarks/results/box_speed.json]``;
prints a table and writes ``benchmarks/results/box_speed.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("LOCALSHARP_FFT_WORKERS", "1")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import CASES, ROOT, available, print_table, write_json  # noqa: E402

import localsharp  # noqa: E402
from localsharp.config import SharpenOptions  # noqa: E402
from localsharp.engine.local.tasks import BoxJob, bounding_box, molecule_mask  # noqa: E402
from localsharp.maps.density import DensityMap  # noqa: E402
from localsharp.sharpening import local_box  # noqa: E402
from localsharp.sharpening.solvent import RADIUS_FACTOR  # noqa: E402
from localsharp.tiling.boxes import box_grid  # noqa: E402

N_BOXES = 60
REPEATS = 3
PHANTOM_RESOLUTION = 3.2
PHANTOM_VOXEL = 1.1
PHANTOM_SHAPE = 200
PHANTOM_COPIES = 40
PHANTOM_MODEL = ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif"


# ---------------------------------------------------------------- maps
def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = math.pi * (1.0 + 5.0**0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
                     [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
                     [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d]])


def capsid_phantom(seed: int = 0) -> DensityMap:
    """Copies of one chain of the haemoglobin model on a spherical shell, as a noisy 3.2 Å map."""
    import gemmi

    from localsharp.kernels import fourier

    st = gemmi.read_structure(str(PHANTOM_MODEL))
    st.setup_entities()
    chain = st[0][0]
    xyz = np.array([a.pos.tolist() for r in chain for a in r])
    elements = [a.element for r in chain for a in r]
    xyz -= xyz.mean(axis=0)
    extent = float(np.linalg.norm(xyz, axis=1).max())
    edge = PHANTOM_SHAPE * PHANTOM_VOXEL
    radius = 0.5 * edge - extent - 8.0
    rng = np.random.default_rng(seed)
    out = gemmi.Structure()
    out.cell = gemmi.UnitCell(edge, edge, edge, 90, 90, 90)
    out.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    for c, direction in enumerate(_fibonacci_sphere(PHANTOM_COPIES)):
        placed = xyz @ _random_rotation(rng).T + direction * radius + 0.5 * edge
        b = float(rng.uniform(30.0, 80.0))
        new_chain = gemmi.Chain(f"C{c}")
        res = gemmi.Residue()
        res.name, res.seqid = "UNK", gemmi.SeqId(1, " ")
        for p, el in zip(placed, elements):
            atom = gemmi.Atom()
            atom.pos, atom.element, atom.b_iso, atom.occ, atom.name = gemmi.Position(*p), el, b, 1.0, el.name
            res.add_atom(atom)
        new_chain.add_residue(res)
        model.add_chain(new_chain)
    out.add_model(model)
    calc = gemmi.DensityCalculatorE()
    calc.d_min = 0.0
    calc.set_grid_cell_and_spacegroup(out)
    calc.grid.set_size(PHANTOM_SHAPE, PHANTOM_SHAPE, PHANTOM_SHAPE)
    calc.put_model_density_on_grid(out[0])
    signal = np.ascontiguousarray(np.array(calc.grid, copy=False).transpose(2, 1, 0), dtype=np.float32)
    noisy = signal + rng.normal(0.0, 0.5 * float(signal.std()), signal.shape).astype(np.float32)
    voxel = (PHANTOM_VOXEL,) * 3
    data = fourier.lowpass(noisy, voxel, PHANTOM_RESOLUTION).astype(np.float32)
    n = PHANTOM_SHAPE
    return DensityMap(data=data, voxel_size=voxel, origin=(0.0, 0.0, 0.0), nstart=(0, 0, 0), cell_grid=(n, n, n))


def cut_boxes(density: DensityMap, resolution: float, n_boxes: int) -> tuple[BoxJob, list[tuple[np.ndarray, float]]]:
    """Searched boxes of the overall-sharpened map, cut as the local engine cuts them."""
    opts = SharpenOptions(resolution=resolution)
    overall = localsharp.global_sharpen(density, resolution, options=opts)
    molecule = molecule_mask(density, resolution, overall.solvent.solvent_fraction)
    region = tuple(tuple(b) for b in bounding_box(molecule))
    buffer = int(round(RADIUS_FACTOR * resolution / min(density.voxel_size)))
    boxes = box_grid(density.shape, 40, 20, buffer, region)  # type: ignore[arg-type]
    job = BoxJob("unused", resolution, density.voxel_size_zyx, opts.search, True, opts.d_min_ratio, 0.0,
                 discard_if_worse=opts.discard_if_worse)
    searched = []
    for box in boxes:
        f_sol = 1.0 - float(molecule[box.slices()].mean())
        if f_sol <= local_box.MAX_BOX_SOLVENT:
            searched.append((np.ascontiguousarray(overall.map.data[box.slices()]), f_sol))
    if len(searched) > n_boxes:
        pick = np.linspace(0, len(searched) - 1, n_boxes).round().astype(int)
        searched = [searched[i] for i in pick]
    return job, searched


# ---------------------------------------------------------------- timing
def run(job: BoxJob, data: np.ndarray, f_sol: float):
    return local_box.sharpen_box(data, job.voxel_zyx, job.resolution, f_sol, job.search, soft_edge=job.soft_edge,
                                 d_min_ratio=job.d_min_ratio, discard_if_worse=job.discard_if_worse)


def time_boxes(job: BoxJob, boxes: list[tuple[np.ndarray, float]]) -> tuple[list[float], list[dict]]:
    times, records = [], []
    for data, f_sol in boxes:
        run(job, data, f_sol)
        t = []
        for _ in range(REPEATS):
            t0 = time.process_time()
            outcome, values, _ = run(job, data, f_sol)
            t.append(time.process_time() - t0)
        times.append(statistics.median(t))
        s = outcome.sharpening
        records.append({"status": outcome.status, "b_sharpen": None if s is None else s.b_sharpen,
                        "values_sha1": None if values is None else hashlib.sha1(values.tobytes()).hexdigest()})
    return times, records


#: (module, attribute, stage): calls whose own time (callees excluded) is charged to the stage.
HOOKS = [
    ("localsharp.sharpening.spectrum", "Spectrum.from_map", "spectrum"),
    ("localsharp.sharpening.functions", "Sharpening.factors", "trial: factors"),
    ("localsharp.sharpening.spectrum", "Spectrum.full_coefficients", "trial: scatter"),
    ("localsharp.sharpening.trials", "TrialRenderer.factors", "trial: factors"),
    ("localsharp.sharpening.trials", "TrialRenderer.render_factors", "trial: scatter"),
    ("localsharp.kernels.fourier", "to_map", "trial: inverse FFT"),
    ("localsharp.kernels.fourier", "mean_square", "render"),
    ("localsharp.kernels.regions", "kurtosis", "trial: kurtosis"),
    ("localsharp.kernels.regions", "kurtosis_and_threshold", "trial: kurtosis+threshold"),
    ("localsharp.kernels.regions", "threshold_for_count", "trial: threshold"),
    ("localsharp.kernels.regions", "label_members", "trial: labelling"),
    ("localsharp.kernels.regions", "member_surfaces", "trial: surfaces"),
    ("localsharp.kernels.regions", "region_measures", "trial: labelling+surfaces"),
    ("localsharp.sharpening.score", "measure_map", "trial: other"),
    ("localsharp.sharpening.score", "calibrate_region_weight", "calibration"),
    ("localsharp.sharpening.search", "search_sharpening", "search: other"),
    ("localsharp.sharpening.search", "_search", "search: other"),
    ("localsharp.sharpening.local_box", "_apply", "render"),
    ("localsharp.sharpening.local_box", "render_box", "render"),
    ("localsharp.sharpening.local_box", "sharpen_box", "box: other"),
]


class StageClock:
    """Charges each hooked call's own time to its stage, callees' time to theirs."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.stack: list[list] = []
        self.undo: list = []

    def wrap(self, fn, stage: str):
        clock = self

        def timed(*args, **kwargs):
            frame = [stage, time.process_time(), 0.0]
            clock.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                clock.stack.pop()
                elapsed = time.process_time() - frame[1]
                clock.totals[stage] = clock.totals.get(stage, 0.0) + elapsed - frame[2]
                if clock.stack:
                    clock.stack[-1][2] += elapsed
        return timed

    def install(self) -> None:
        import importlib
        for module_name, attr, stage in HOOKS:  # a hook whose function does not exist (older code) is left out
            try:
                owner = importlib.import_module(module_name)
            except ModuleNotFoundError:
                continue
            *path, name = attr.split(".")
            for p in path:
                owner = getattr(owner, p, None)
            if owner is None or name not in vars(owner):
                continue
            original = vars(owner)[name]
            fn = original.__func__ if isinstance(original, classmethod) else original
            wrapped = self.wrap(fn, stage)
            setattr(owner, name, classmethod(wrapped) if isinstance(original, classmethod) else wrapped)
            self.undo.append((owner, name, original))
        # modules that imported a hooked function by name see the wrapper too
        import localsharp.sharpening.local_box as lb
        import localsharp.sharpening.search as se
        for mod in (lb, se):
            for owner, name, original in self.undo:
                if getattr(mod, name, None) is original:
                    setattr(mod, name, getattr(owner, name))
                    self.undo.append((mod, name, original))

    def remove(self) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)
        self.undo.clear()


def stage_breakdown(job: BoxJob, boxes: list[tuple[np.ndarray, float]]) -> dict[str, float]:
    """Mean ms per box of each stage (one hooked pass over the boxes)."""
    clock = StageClock()
    clock.install()
    try:
        for data, f_sol in boxes:
            run(job, data, f_sol)
    finally:
        clock.remove()
    return {k: 1000.0 * v / len(boxes) for k, v in sorted(clock.totals.items())}


def maps() -> list[tuple[str, DensityMap, float]]:
    out = [("capsid phantom 200³ 1.1 Å", capsid_phantom(), PHANTOM_RESOLUTION)]
    for name in ("emd3488", "emd11007"):
        case = CASES[name]
        if available(case):
            out.append((name, localsharp.read_map(case["map"]), case["resolution"]))
        else:
            print(f"skip {name}: {case['map']} missing")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="earlier box_speed.json: count boxes whose outcome differs")
    parser.add_argument("--n-boxes", type=int, default=N_BOXES)
    parser.add_argument("--output", default="box_speed.json")
    args = parser.parse_args()
    old = json.loads(args.compare.read_text())["maps"] if args.compare else None
    rows, out, stage_rows = [], {}, {}
    for name, density, resolution in maps():
        job, boxes = cut_boxes(density, resolution, args.n_boxes)
        run(job, *boxes[0])  # numba start-up
        times, records = time_boxes(job, boxes)
        stages = stage_breakdown(job, boxes)
        rate = 1.0 / statistics.median(times)
        entry = {"resolution": resolution, "voxel": density.voxel_size[0], "n_boxes": len(boxes),
                 "box_shape": list(boxes[0][0].shape), "box_seconds": times, "median_box_s": statistics.median(times),
                 "median_boxes_per_s_per_core": rate, "stage_ms_per_box": stages, "boxes": records}
        row = [name, len(boxes), "x".join(map(str, boxes[0][0].shape)), round(1000 * statistics.median(times), 1),
               round(rate, 2)]
        if old and name in old:
            prev = old[name]["boxes"]
            n_b = sum(a["b_sharpen"] != b["b_sharpen"] for a, b in zip(prev, records))
            n_v = sum(a["values_sha1"] != b["values_sha1"] for a, b in zip(prev, records))
            entry["compared_to"] = {"file": str(args.compare), "b_sharpen_differs": n_b, "values_differ": n_v,
                                    "old_median_boxes_per_s_per_core": old[name]["median_boxes_per_s_per_core"]}
            row += [round(old[name]["median_boxes_per_s_per_core"], 2), n_b, n_v]
        rows.append(row)
        stage_rows[name] = stages
        out[name] = entry
        print(row, flush=True)
    headers = ["map", "boxes", "shape", "median ms/box", "boxes/s/core"]
    if old:
        headers += ["before", "b_sharpen differs", "values differ"]
    print_table(headers, rows)
    names = sorted({k for s in stage_rows.values() for k in s})
    print()
    print_table(["stage (ms/box)"] + list(stage_rows), [[k] + [round(s.get(k, 0.0), 2) for s in stage_rows.values()]
                                                        for k in names])
    write_json(args.output, {"benchmark": "sharpen_box single-threaded on searched boxes (engine's cut and settings)",
                             "repeats": REPEATS, "maps": out})


if __name__ == "__main__":
    main()
