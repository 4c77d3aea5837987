"""Fixed answers: the parameters every sharpening mode chooses on the real maps, and their CC.

One case is one map in one mode: model-free global (``global_sharpen``), model-based
(``model_sharpen`` with the map's model), local model-free and local model-based
(``local_sharpen`` in this process), and — on a phantom made by :func:`localsharp.phantom` from
the haemoglobin test model, since the real maps have no half maps — half-map global and local
(the phantom's model-free modes are recorded too). Each case records what the run chose (method,
b_sharpen, region weight, solvent fraction, analysis box, B of the input and the output; boxes and
their outcomes for local runs) and the CC of the result with the B = 0 model map
(:func:`localsharp.evaluate_map`, what ``localsharp evaluate`` prints, at the case's resolution).

The table is ``tests/answers/answers.json``; ``tests/test_fixed_answers.py`` recomputes every case
with :func:`compute_case` and compares it field by field within the table's tolerances. A change
that moves a result beyond its tolerance fails until the table is regenerated with

    PYTHONPATH=. python benchmarks/fixed_answers.py --write

and the regenerated table is reviewed in the commit (what moved and why).

Other uses::

    PYTHONPATH=. python benchmarks/fixed_answers.py            # compute, compare, print (no writing)
    PYTHONPATH=. python benchmarks/fixed_answers.py --noise    # measure run-to-run and platform noise

``--noise`` reruns every case in fresh processes (twice as is, with every thread pool at 1 and at
4 threads) and the local cases on a 2-worker LocalCluster and with other ``task_block`` /
``tile_chunks``, records the largest deviation of every field from the first run in
``benchmarks/results/fixed_answers_noise.json``; ``--write`` sets the tolerances from that file
(see :func:`tolerances`).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _common import CASES as REAL, RESULTS  # noqa: E402

TABLE = ROOT / "tests" / "answers" / "answers.json"
NOISE = RESULTS / "fixed_answers_noise.json"
REGENERATE = "PYTHONPATH=. python benchmarks/fixed_answers.py --write"

#: The phantom of the half-map cases: haemoglobin model, B 20 → 200 Å² from centre to rim.
PHANTOM = dict(model=ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif", voxel=1.0, resolution=3.5, noise=1.0,
               seed=0, b_core=20.0, b_edge=200.0)

#: case name -> (map, mode). Maps: the keys of benchmarks/_common.CASES, and "phantom".
CASES: dict[str, tuple[str, str]] = {
    f"{m}/{mode}": (m, mode)
    for m, modes in (("emd3488", ("global", "model", "local", "local_model")),
                     ("emd21457", ("global", "model", "local", "local_model")),
                     ("emd11007", ("global", "model", "local", "local_model")),
                     ("phantom", ("half_map", "local_half_map", "global", "local")))
    for mode in modes
}

#: Tolerance kind of every numerical field (strings, integers, booleans and lists compare exactly).
KINDS = {
    "b_sharpen": "b", "b_iso_input": "b", "b_iso_output": "b", "overall_b_sharpen": "b",
    "mean_b_sharpen_searched": "b", "mean_b_sharpen_applied": "b",
    "cc_mask": "cc", "cc_box": "cc",
    "region_weight": "region_weight",
    "solvent_fraction": "fraction", "box_solvent_fraction": "fraction",
    "median_local_resolution": "resolution",
    "shell_b_signal": "b", "shell_b_eff": "b", "shell_fraction_complete": "fraction", "shell_max_possible_cc": "cc",
}
#: Scalars of the scale-factor modes' per-shell fit (``summary()["shell_scale"]``), None in the others.
SHELL_FIELDS = ("b_signal", "b_eff", "fraction_complete", "max_possible_cc")
#: Smallest tolerance of each kind: above rounding, well below a real change (one search grid step
#: of b_sharpen is 20 Å²; a CC change of 0.002 must fail). Relative for the region weight.
FLOORS = {"b": 0.5, "cc": 0.0002, "region_weight": 0.005, "fraction": 0.001, "resolution": 0.01}
#: Largest tolerance allowed, whatever the noise: a value that needs more is reported as too noisy.
CAPS = {"b": 5.0, "cc": 0.001, "region_weight": 0.05, "fraction": 0.01, "resolution": 0.1}
#: Tolerance = SAFETY × the largest deviation measured (at least the floor).
SAFETY = 3.0


# ------------------------------------------------------------------ computing a case
class Context:
    """Maps, models and the phantom of the cases, loaded or made once (in ``work``).

    ``perturb`` (a seed) changes every input voxel by about one float32 rounding step (relative
    2⁻²³ × a standard normal): a stand-in for another CPU or library build, whose FFTs and sums
    round differently (measured by ``--noise``, never used by the table or the test).
    """

    def __init__(self, work: Path, client: Any = None, local_options: dict[str, Any] | None = None,
                 n_threads: int | None = None, perturb: int | None = None) -> None:
        self.work = Path(work)
        self.client = client
        self.local_options = dict(local_options or {})
        self.n_threads = n_threads
        self.perturb = perturb

    def _perturbed(self, density: Any, salt: int) -> Any:
        if self.perturb is None:
            return density
        import numpy as np

        rng = np.random.default_rng([self.perturb, salt])
        data = np.asarray(density.data, dtype=np.float64)
        return density.with_data((data * (1.0 + 2.0**-23 * rng.standard_normal(data.shape))).astype(np.float32))

    @functools.cached_property
    def phantom(self) -> Any:
        from localsharp.phantom import phantom

        spec = {k: v for k, v in PHANTOM.items() if k != "model"}
        return phantom(PHANTOM["model"], self.work / "phantom", overwrite=True, **spec)

    @functools.lru_cache(maxsize=None)
    def half_maps(self) -> tuple[Any, Any]:
        """The phantom's half maps."""
        return self._perturbed(self.phantom.half_map_1, 1), self._perturbed(self.phantom.half_map_2, 2)

    @functools.lru_cache(maxsize=None)
    def inputs(self, name: str) -> tuple[Any, Path, float]:
        """(map, model for the evaluation, resolution) of a map name."""
        import localsharp

        if name == "phantom":
            ph = self.phantom
            return self._perturbed(ph.full_map, 0), ph.paths["model_b0"], PHANTOM["resolution"]
        case = REAL[name]
        return self._perturbed(localsharp.read_map(case["map"]), 0), Path(case["model"]), case["resolution"]


def _search_options(ctx: Context) -> dict[str, Any]:
    return {} if ctx.n_threads is None else {"n_threads": ctx.n_threads}


def _global_fields(result: Any) -> dict[str, Any]:
    s = result.summary()
    box = s["box"]
    return {"method": s["method"], "b_sharpen": s["b_sharpen"], "region_weight": s["region_weight"],
            "solvent_fraction": s["solvent_fraction"], "box_solvent_fraction": s["box_solvent_fraction"],
            "box_method": box["method"], "box_bounds_zyx": box["bounds_zyx"], "box_used": box["used"],
            "b_iso_input": s["b_iso_input"], "b_iso_output": s["b_iso_output"],
            "discarded_as_worse": s["discarded_as_worse"],
            **{f"shell_{k}": (s["shell_scale"] or {}).get(k) for k in SHELL_FIELDS}}


def _local_fields(result: Any) -> dict[str, Any]:
    s = result.summary(with_boxes=False)
    rows = result.boxes
    sharpened = [r for r in rows if r["status"] == "sharpened"]
    applied = [r["b_sharpen_applied"] for r in sharpened if r.get("b_sharpen_applied") is not None]
    searched = [r["b_sharpen_searched"] for r in sharpened if r.get("b_sharpen_searched") is not None]
    resolutions = sorted(r["local_resolution"] for r in rows if r.get("local_resolution") is not None)
    overall = s["overall"]
    return {"overall_method": overall.get("method"), "overall_b_sharpen": overall.get("b_sharpen"),
            "n_boxes": s["n_boxes"], "boxes_searched": s["boxes_searched"],
            "boxes_skipped_by_mask": s["boxes_skipped_by_mask"],
            "boxes_by_status": dict(sorted(s["boxes_by_status"].items())),
            "mean_b_sharpen_searched": sum(searched) / len(searched) if searched else None,  # of the sharpened boxes
            "mean_b_sharpen_applied": sum(applied) / len(applied) if applied else None,
            "median_local_resolution": resolutions[len(resolutions) // 2] if resolutions else None,
            "smoothing_radius": s["smoothing_radius"]}


def compute_case(name: str, ctx: Context) -> dict[str, Any]:
    """Run one case once and return its fields (the same code serves the table and the test)."""
    import localsharp
    from localsharp.config import LocalOptions

    map_name, mode = CASES[name]
    density, model, resolution = ctx.inputs(map_name)
    if mode == "global":
        result = localsharp.global_sharpen(density, resolution, **_search_options(ctx))
        fields, out = _global_fields(result), result.map
    elif mode == "model":
        result = localsharp.model_sharpen(density, model, resolution, **_search_options(ctx))
        fields, out = _global_fields(result), result.map
    elif mode == "half_map":
        result = localsharp.half_map_sharpen(density, *ctx.half_maps(), resolution,
                                             **_search_options(ctx))
        fields, out = _global_fields(result), result.map
    else:
        kwargs: dict[str, Any] = {}
        if mode == "local_model":
            kwargs["model"] = model
        elif mode == "local_half_map":
            kwargs["half_maps"] = ctx.half_maps()
        result = localsharp.local_sharpen(density, resolution, client=ctx.client,
                                          local=LocalOptions(**ctx.local_options), **kwargs)
        fields, out = _local_fields(result), result.map.compute()
    quality = localsharp.evaluate_map(out, model, resolution)
    fields["cc_mask"], fields["cc_box"] = quality["cc_mask"], quality["cc_box"]
    return fields


def available(name: str) -> bool:
    map_name = CASES[name][0]
    return map_name == "phantom" or Path(REAL[map_name]["map"]).exists()


# ------------------------------------------------------------------ comparing
def tolerance_of(field: str, tolerances: dict[str, float]) -> float | None:
    """Absolute tolerance of ``field`` (None: exact comparison)."""
    kind = KINDS.get(field)
    return None if kind is None else tolerances[kind]


def differences(name: str, expected: dict[str, Any], got: dict[str, Any],
                tolerances: dict[str, float]) -> list[str]:
    """One line per field of ``got`` that differs from ``expected`` beyond its tolerance."""
    lines = []
    for field in sorted(set(expected) | set(got)):
        want, have = expected.get(field, "<absent>"), got.get(field, "<absent>")
        kind = KINDS.get(field)
        if kind is not None and isinstance(want, (int, float)) and isinstance(have, (int, float)):
            tol = tolerances[kind]
            allowed = tol * abs(want) if kind == "region_weight" else tol
            if not abs(have - want) <= allowed:
                lines.append(f"{name}: {field} expected {want!r}, got {have!r} (difference {have - want:+.6g}, "
                             f"tolerance ±{allowed:.6g}, kind {kind})")
        elif want != have:
            lines.append(f"{name}: {field} expected {want!r}, got {have!r} (compared exactly)")
    return lines


def deviation(kind: str | None, want: Any, have: Any) -> float | None:
    """Deviation of a numerical field in its tolerance's units (relative for the region weight)."""
    if kind is None or not isinstance(want, (int, float)) or not isinstance(have, (int, float)):
        return None
    d = abs(have - want)
    return d / abs(want) if kind == "region_weight" and want else d


# ------------------------------------------------------------------ noise and tolerances
#: name -> (environment, context keywords, which cases)
VARIANTS: dict[str, tuple[dict[str, str], dict[str, Any], str]] = {
    "repeat": ({}, {}, "all"),
    "threads_1": ({"LOCALSHARP_FFT_WORKERS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                   "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}, {"n_threads": 1, "threadpool": 1}, "all"),
    "threads_4": ({"LOCALSHARP_FFT_WORKERS": "4", "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4",
                   "MKL_NUM_THREADS": "4", "NUMBA_NUM_THREADS": "4"}, {"n_threads": 4}, "all"),
    "cluster_2_workers": ({}, {"cluster": 2}, "local"),
    "task_block_1_tile_chunks_1": ({}, {"local_options": {"task_block": 1, "tile_chunks": 1}}, "local"),
    "task_block_2_tile_chunks_3": ({}, {"local_options": {"task_block": 2, "tile_chunks": 3}}, "local"),
    "rounding_seed_1": ({}, {"perturb": 1}, "all"),
    "rounding_seed_2": ({}, {"perturb": 2}, "all"),
    "rounding_seed_3": ({}, {"perturb": 3}, "all"),
}


def run_variant(variant: str, names: list[str]) -> dict[str, Any]:
    """Compute ``names`` under ``variant`` in this process (the environment is set by the caller)."""
    _, settings, scope = VARIANTS[variant] if variant != "baseline" else ({}, {}, "all")
    if scope == "local":
        names = [n for n in names if CASES[n][1].startswith("local")]
    if settings.get("threadpool"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(settings["threadpool"])
    client = cluster = None
    if settings.get("cluster"):
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=settings["cluster"], threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="fixed_answers_") as work:
            ctx = Context(Path(work), client=client, local_options=settings.get("local_options"),
                          n_threads=settings.get("n_threads"), perturb=settings.get("perturb"))
            for name in names:
                t0 = time.perf_counter()
                out[name] = compute_case(name, ctx)
                out[name]["_seconds"] = time.perf_counter() - t0
                if variant == "baseline":  # the same process again: caches and state must not matter
                    out[name]["_again"] = compute_case(name, ctx)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return out


def measure_noise(names: list[str]) -> dict[str, Any]:
    """Every case in fresh processes under every variant; the largest deviation per field and kind."""
    runs: dict[str, dict[str, Any]] = {}
    for variant in ["baseline", *VARIANTS]:
        env = {**os.environ, **(VARIANTS[variant][0] if variant in VARIANTS else {})}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--emit", variant, *names],
                              env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
        runs[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {variant}: {len(runs[variant])} cases, {time.perf_counter() - t0:.0f} s", flush=True)
    base = runs["baseline"]
    per_field: dict[str, dict[str, dict[str, float]]] = {}
    by_kind: dict[str, float] = {k: 0.0 for k in FLOORS}
    exact_changes: list[str] = []
    compared = {name: {"same_process_again": base[name].pop("_again")} for name in base}
    for variant in VARIANTS:
        for name, fields in runs[variant].items():
            compared[name][variant] = fields
    for name, others in compared.items():
        for variant, fields in others.items():
            for field, want in base[name].items():
                if field.startswith("_"):
                    continue
                have = fields.get(field)
                kind = KINDS.get(field)
                d = deviation(kind, want, have)
                if d is None:
                    if want != have:
                        exact_changes.append(f"{name} {variant}: {field} {want!r} -> {have!r}")
                    continue
                per_field.setdefault(name, {}).setdefault(field, {})[variant] = d
                by_kind[kind] = max(by_kind[kind], d)
    return {"variants": {"same_process_again": "each case computed twice in the baseline process",
                         **{k: {"environment": v[0], "settings": v[1], "cases": v[2]} for k, v in VARIANTS.items()}},
            "max_deviation_by_kind": by_kind, "exact_field_changes": exact_changes,
            "deviation_per_case_field_variant": per_field,
            "seconds_per_case_baseline": {n: round(v["_seconds"], 2) for n, v in base.items()}}


def tolerances(noise: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """Tolerance per kind: SAFETY × the largest measured deviation, at least FLOORS, at most CAPS."""
    out, problems = {}, []
    for kind, floor in FLOORS.items():
        measured = noise["max_deviation_by_kind"].get(kind, 0.0)
        tol = max(floor, SAFETY * measured)
        if tol > CAPS[kind]:
            problems.append(f"{kind}: measured noise {measured:.3g} needs tolerance {tol:.3g} > cap {CAPS[kind]}")
            tol = CAPS[kind]
        out[kind] = tol
    return out, problems


def tolerance_basis(noise: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {v:.3g}" for k, v in noise["max_deviation_by_kind"].items())
    return (f"Measured with `PYTHONPATH=. python benchmarks/fixed_answers.py --noise` ({noise['date']}, "
            f"{noise['machine']['platform']}, {noise['machine']['cpus']} cores): every case rerun in fresh "
            "processes (as is; with scipy.fft, OpenMP/BLAS (threadpoolctl), numba and the search's trial pool at "
            "1 and at 4 threads), computed twice in one process, and the local cases also on a 2-worker "
            "LocalCluster and with task_block/tile_chunks 1/1 and 2/3; and with every input voxel changed by about one "
            "float32 rounding step (3 seeds; a stand-in for another CPU's or library's rounding). Largest deviation "
            "from the first run, "
            f"by kind: {kinds} (region_weight relative). Tolerance = {SAFETY:g} × that, at least the floor "
            f"{FLOORS} (so a b_sharpen change of one 20 Å² grid step or a CC change of 0.002 fails), at most "
            f"{CAPS}. Strings, counts, box bounds and statuses compare exactly. Other CPUs and library versions "
            "were not measured: if a fresh machine disagrees beyond these, measure there with --noise.")


# ------------------------------------------------------------------ main
def _machine() -> dict[str, Any]:
    import numba
    import numpy
    import scipy

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "numpy": numpy.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _rounded(value: Any) -> Any:
    """Floats to 10 significant digits (the table stays readable; far below every tolerance)."""
    if isinstance(value, float):
        return float(f"{value:.10g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def load_table() -> dict[str, Any]:
    return json.loads(TABLE.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help="case names (default: all available)")
    parser.add_argument("--write", action="store_true", help=f"rewrite {TABLE.relative_to(ROOT)}")
    parser.add_argument("--noise", action="store_true", help=f"measure the noise into {NOISE.relative_to(ROOT)}")
    parser.add_argument("--emit", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.cases or [n for n in CASES if available(n)]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    if args.emit:
        print(json.dumps(run_variant(args.emit, names), default=float))
        return 0
    if args.noise:
        t0 = time.perf_counter()
        noise = {"date": _today(), "machine": _machine(), **measure_noise(names)}
        noise["seconds"] = round(time.perf_counter() - t0, 1)
        NOISE.parent.mkdir(parents=True, exist_ok=True)
        NOISE.write_text(json.dumps(_rounded(noise), indent=1) + "\n")
        print("largest deviation by kind:", noise["max_deviation_by_kind"])
        print("exact fields that changed:", noise["exact_field_changes"] or "none")
        print(f"wrote {NOISE.relative_to(ROOT)}")
        return 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fixed_answers_") as work:
        ctx = Context(Path(work))
        results = {}
        for name in names:
            t = time.perf_counter()
            results[name] = compute_case(name, ctx)
            print(f"  {name}: {time.perf_counter() - t:.1f} s", flush=True)
    seconds = time.perf_counter() - t0
    if args.write:
        noise = json.loads(NOISE.read_text())
        tol, problems = tolerances(noise)
        if problems:
            print("tolerances capped (too noisy):", *problems, sep="\n  ")
        old = load_table()["cases"] if TABLE.exists() else {}
        table = {
            "description": "Fixed answers: parameters chosen and CC (localsharp evaluate, cc_mask/cc_box vs the "
                           "B = 0 model map at the case's resolution) of every sharpening mode on the real maps "
                           "and a phantom. Compared by tests/test_fixed_answers.py.",
            "regenerate": REGENERATE,
            "generated": {"date": _today(), "machine": _machine(), "seconds": round(seconds, 1)},
            "phantom": {k: (str(Path(v).relative_to(ROOT)) if k == "model" else v) for k, v in PHANTOM.items()},
            "tolerances": tol,
            "tolerance_basis": tolerance_basis(noise),
            "cases": {name: {"map": CASES[name][0], "mode": CASES[name][1], "values": _rounded(results[name])}
                      for name in names},
        }
        for name in old:  # cases not computed here (a map absent) keep their entry
            table["cases"].setdefault(name, old[name])
        TABLE.parent.mkdir(parents=True, exist_ok=True)
        tmp = TABLE.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(table, indent=1) + "\n")
        os.replace(tmp, TABLE)
        print(f"wrote {TABLE.relative_to(ROOT)} ({len(names)} cases, {seconds:.0f} s)")
        return 0
    table = load_table()
    failures = []
    for name in names:
        if name not in table["cases"]:
            failures.append(f"{name}: not in the table")
            continue
        failures += differences(name, table["cases"][name]["values"], results[name], table["tolerances"])
    print(*(failures or ["all cases match the table"]), sep="\n")
    print(f"{len(names)} cases, {seconds:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
