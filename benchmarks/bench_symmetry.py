"""Local sharpening of symmetric capsids with ``--symmetry``: boxes searched, CC, symmetry of the output, time.

For each phantom (``localsharp phantom-capsid`` of haemoglobin chain A, PDB 5NI1, placed by a point
group, with ``--model-output``: the B = 0 model of every copy, what the CC is measured against):

* ``plain``: ``localsharp local MAP --resolution R --workers W`` (every box searched);
* ``sym``: the same with ``--symmetry GROUP`` (boxes searched in one asymmetric unit and blended at
  every symmetry copy of their centres, ``--symmetry-mates images``, the default);
* ``sym nearest`` and ``sym interpolate``: with ``--symmetry-mates nearest|interpolate`` (once each:
  the grid's boxes blended, each mate with the outcome of the searched box nearest to its mate
  position, or a mean over the searched boxes near it);
* ``global``: ``localsharp sharpen MAP --resolution R`` (defaults).

``plain`` and ``sym`` run back to back ``--repeats`` times (the machine is shared: their ratio is
what holds); each run is a subprocess, timed from start to exit (wall), with the phases from its
``local_summary.json``.  Reported per variant: boxes searched, wall time and phases (medians over
the repeats), the CC (``localsharp evaluate --model`` B = 0 model, ``cc_mask``: within 3 Å of atoms;
the runs are deterministic, so CC is measured on the first), and how symmetric the map is: the
mean CC of the map with its rotated copies over every operator of the group, inside the molecule,
at twice the resolution (``check_group``'s default, ``sym@2R``) and at the finest the unbinned map
allows (``compare_factor`` 1, at least 4 voxels: ``sym@fine``), for the input and for each output.
Interpolating the rotated copies costs more correlation the more high-resolution power a map has,
so a sharpened map scores lower than the same map unsharpened although both are exactly as
symmetric; each output's row therefore also gives the input's symmetry at that output's spectrum
(every Fourier shell of the input scaled to the output's power: ``input_at_this_spectrum``), the
fair reference for "at least as symmetric as the input", and ``sym exact``: the mean CC over the
operators that carry the voxel grid onto itself about voxel N/2 (no interpolation; I in 222: the
three two-folds and eight three-folds; O: all 23 others), over the whole map.
The load average before and after every run is recorded.

``--noise-free`` also runs each phantom's noise-free twin (``--noise 0``): with no noise the input
is symmetric but for the grid's interpolation, so the symmetry of the outputs shows what the
sharpening itself does to it (``--noise-free-plain`` adds the plain run there).  For every local
run the symmetry of its ``local_b_sharpen_map.ccp4`` (the b_sharpen the boxes applied) is also
given (``b-map sym``).  ``--symmetric-noise`` uses phantoms whose noise is averaged over the group
(``phantom-capsid --symmetric-noise``), as in a reconstruction made with imposed symmetry: the input
is then symmetric but for the grid, as a user's map of a symmetric particle is.  ``--margin-run`` adds a symmetric run whose asymmetric unit is grown by one box edge
(``--symmetry-margin``).  ``--margins`` also counts, on the plain run's plan, the boxes a symmetric run would search with the
asymmetric unit grown by 0, one stride and one box edge (no run).
``--times-only`` runs only ``plain`` and ``sym``, alternating, ``--repeats`` times each (no other
variant, no CC or symmetry): the wall times' medians and their ratio, kept as ``<phantom> times``
(``<phantom> symmetric noise times``).

Run: ``python benchmarks/bench_symmetry.py [--phantoms I O D7] [--repeats 3] [--workers 2]``;
prints the tables and writes ``benchmarks/results/local_symmetry.json`` (merged by phantom).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, print_table  # noqa: E402
from _proctree import machine  # noqa: E402

MODEL = ROOT / "tests" / "data" / "emd3488_haemoglobin" / "model_5ni1.cif"
OUT = RESULTS / "local_symmetry.json"
#: name -> phantom-capsid options (after MODEL --chain A)
PHANTOMS = {
    "I": ["--symmetry", "I", "--size", "288", "--voxel", "1.4", "--radius-fraction", "0.434", "--resolution", "4"],
    "O": ["--symmetry", "O", "--size", "256", "--voxel", "1.4", "--radius-fraction", "0.3", "--resolution", "4"],
    "D7": ["--symmetry", "D7", "--size", "256", "--voxel", "1.4", "--radius-fraction", "0.3", "--resolution", "4"],
}
GROUP = {"I": "I", "O": "O", "D7": "D7"}
RESOLUTION = 4.0


def command() -> list[str]:
    return [sys.executable, "-m", "localsharp"]


def ensure_phantom(cache: Path, name: str, noise_free: bool = False, symmetric_noise: bool = False
                   ) -> tuple[Path, Path]:
    """The phantom map and its B = 0 assembly model (made once into the cache); ``noise_free``: without noise;
    ``symmetric_noise``: noise averaged over the group (``phantom-capsid --symmetric-noise``)."""
    stem = f"{name}_noise_free" if noise_free else f"{name}_symmetric_noise" if symmetric_noise else name
    path, model = cache / f"{stem}.mrc", cache / f"{stem}_model.cif"
    if not (path.exists() and model.exists()):
        cache.mkdir(parents=True, exist_ok=True)
        extra = ["--noise", "0"] if noise_free else ["--symmetric-noise"] if symmetric_noise else []
        subprocess.run(command() + ["phantom-capsid", str(MODEL), "--chain", "A", *PHANTOMS[name], "--output", str(path),
                                    "--model-output", str(model), "--overwrite", *extra], check=True)
    return path, model


def run_local(map_path: Path, out: Path, workers: int, extra: list[str]) -> dict:
    """One ``localsharp local`` subprocess: wall time, load average, and its summary."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = command() + ["local", str(map_path), "--resolution", str(RESOLUTION), "--workers", str(workers), *extra,
                       "--output-dir", str(out), "-q"]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads((out / "local_summary.json").read_text())
    timings = {k: round(float(v), 2) for k, v in summary["timings_s"].items()}
    return {"wall_s": round(wall, 2), "load_before_after": [round(load, 2), round(os.getloadavg()[0], 2)],
            "timings_s": timings, "boxes_searched": summary["boxes_searched"],
            "boxes_active": summary["n_boxes"] - summary["boxes_skipped_by_mask"],
            "symmetry": {k: summary["symmetry"].get(k) for k in ("boxes_searched", "boxes_from_mates", "mates",
                                                                 "score", "passed", "warning")}
            if "symmetry" in summary else None, "map": str(out / "local_sharpened_map.ccp4"),
            "b_map": str(out / "local_b_sharpen_map.ccp4")}


def evaluate(map_path: Path, model: Path) -> float:
    done = subprocess.run(command() + ["evaluate", str(map_path), "--model", str(model), "--resolution",
                                       str(RESOLUTION)], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout)["cc_mask"])


def symmetry_of(map_path: Path, group_name: str, spectrum_of: Path | None = None) -> dict:
    """Mean CC of the map with its copies over every operator, at 2R (binned to 128³) and at the finest unbinned.

    The rotated copies are interpolated, which costs more correlation the more high-resolution power a
    map has: a sharpened map scores lower than the same map unsharpened although both are exactly as
    symmetric.  ``spectrum_of``: measure the map with every Fourier shell scaled to that map's power
    (the input as symmetric as it is, at the output's spectrum: the fair reference for an output).
    """
    from localsharp.maps.mrc import read_map
    from localsharp.symmetry import parse_symmetry
    from localsharp.symmetry.detect import check_group

    density = read_map(map_path)
    data = density.data if spectrum_of is None else with_spectrum_of(density, read_map(spectrum_of))
    group = parse_symmetry(group_name)
    out = {}
    for label, kwargs in (("sym@2R", {}), ("sym@fine", {"compare_factor": 1.0, "max_grid": max(density.shape)})):
        score = check_group(data, density.voxel_size, group, RESOLUTION,
                            first_voxel=density.first_voxel_position, **kwargs)
        sizes = {label_: len(group.members(label_)) for label_ in group.classes}
        mean = sum(score.class_cc[c] * n for c, n in sizes.items()) / sum(sizes.values())
        out[label] = {"mean": round(mean, 4), "weakest": round(score.score, 4)}
    out["sym exact"] = exact_symmetry(data, group_name)
    return out


def exact_symmetry(data: np.ndarray, group_name: str) -> float | None:
    """Mean CC (whole map) of the map with its copies under the group's operators that carry the voxel grid
    onto itself about voxel N/2 (signed permutations: I in 222, the three two-folds; O, all 24): no
    interpolation, so the measure does not depend on the map's spectrum the way ``sym@2R`` does.
    None when no operator but the identity is exact (or the map is not a cube)."""
    from localsharp.symmetry import parse_symmetry

    if len(set(data.shape)) != 1:
        return None
    a = np.asarray(data, dtype=np.float64)[1:, 1:, 1:]  # voxel N/2 is the centre of voxels 1 … N-1
    a = a - a.mean()
    ccs = []
    for matrix in parse_symmetry(group_name).matrices:
        zyx = np.asarray(matrix)[::-1, ::-1]
        if np.allclose(zyx, np.eye(3)) or not np.allclose(np.abs(zyx).sum(axis=1), 1.0) or \
                not np.allclose(np.abs(zyx).max(axis=1), 1.0):
            continue
        perm = np.abs(zyx).argmax(axis=1)
        signs = zyx[np.arange(3), perm]
        flipped = np.flip(a, axis=tuple(i for i in range(3) if signs[i] < 0)) if (signs < 0).any() else a
        b = np.transpose(flipped, np.argsort(perm))
        ccs.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    return round(float(np.mean(ccs)), 6) if ccs else None


def with_spectrum_of(density, other) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``density``'s voxels with every Fourier shell (one voxel of the transform wide) scaled to ``other``'s power."""
    import scipy.fft

    shape = density.shape
    freqs = [np.fft.fftfreq(n, v) for n, v in zip(shape[:2], density.voxel_size_zyx[:2])]
    freqs.append(np.fft.rfftfreq(shape[2], density.voxel_size_zyx[2]))
    s = np.sqrt(freqs[0][:, None, None] ** 2 + freqs[1][None, :, None] ** 2 + freqs[2][None, None, :] ** 2)
    shell = np.minimum((s * max(shape) * max(density.voxel_size_zyx)).astype(np.int64), max(shape))
    mine = scipy.fft.rfftn(density.data.astype(np.float32), workers=2)
    theirs = scipy.fft.rfftn(other.data.astype(np.float32), workers=2)
    power = [np.bincount(shell.ravel(), (np.abs(c) ** 2).ravel(), max(shape) + 1) for c in (mine, theirs)]
    scale = np.sqrt(np.where(power[0] > 0, power[1] / np.maximum(power[0], 1e-30), 0.0))
    return scipy.fft.irfftn(mine * scale[shell], s=shape, workers=2).astype(np.float32)


def run_global(map_path: Path, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(command() + ["sharpen", str(map_path), "--resolution", str(RESOLUTION), "--output-dir", str(out),
                                "-q"], check=True, capture_output=True)
    return next(out.glob("*sharpened*.ccp4"))


def margins(plain_store: Path, map_path: Path, group_name: str) -> dict:
    """Boxes a symmetric run would search with the ASU grown by 0, one stride, one box edge (plan only)."""
    from localsharp.config import LocalOptions
    from localsharp.engine.local import run as local_run
    from localsharp.engine.local.symmetry import symmetry_spec
    from localsharp.maps.store import RunStore
    from localsharp.symmetry import parse_symmetry
    from localsharp.tiling.symmetric import BoxSymmetry, searched_flags

    store = RunStore(plain_store)
    source, opts = local_run.prepare_input(str(map_path), RESOLUTION, None)
    local = LocalOptions()
    plan, _ = local_run._plan(source, store, store.record("overall"), local, opts)
    spec = symmetry_spec(source, group_name)
    g = local_run.geometry_of(source)
    placed = BoxSymmetry(parse_symmetry(group_name), spec.centre, tuple(g["first_voxel_position"]),
                         tuple(g["voxel_size"]))
    voxel = min(g["voxel_size"])
    out = {"active": plan.n_active}
    for label, margin in (("0", 0.0), ("stride", local.stride * voxel), ("box edge", local.box_size * voxel)):
        n = int(searched_flags(plan.grid, plan.active, placed, margin).sum())
        out[label] = {"margin_A": round(margin, 2), "searched": n, "fraction": round(n / plan.n_active, 4)}
    return out


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r["timings_s"].get(key, 0.0) if key != "wall_s" else r["wall_s"] for r in runs), 2)


def measure_times(name: str, args: argparse.Namespace) -> dict:
    """``plain`` and ``sym`` alternating ``--repeats`` times each: wall times, phases, medians and ratio."""
    map_path, _ = ensure_phantom(args.cache, name, symmetric_noise=args.symmetric_noise)
    work = args.cache / f"times_{name}{'_symmetric_noise' if args.symmetric_noise else ''}"
    runs: dict[str, list[dict]] = {"plain": [], "sym": []}
    for repeat in range(args.repeats):
        for variant, extra in (("plain", []), ("sym", ["--symmetry", GROUP[name]])):
            r = run_local(map_path, work / variant, args.workers, extra)
            runs[variant].append(r)
            print(f"{name} {variant} #{repeat}: {r['wall_s']} s wall, load {r['load_before_after']}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    phases = ("checks", "overall", "symmetry_check", "boxes", "mates", "blend", "total", "wall_s")
    out: dict = {"map": str(map_path), "group": GROUP[name], "workers": args.workers, "repeats": args.repeats,
                 "noise": "symmetric" if args.symmetric_noise else "independent", "variants": {}}
    for variant, rs in runs.items():
        out["variants"][variant] = {"median_s": {p: median_of(rs, p) for p in phases},
                                    "walls_s": [r["wall_s"] for r in rs],
                                    "loads": [r["load_before_after"] for r in rs]}
    v = out["variants"]
    out["wall_plain_over_sym"] = round(v["plain"]["median_s"]["wall_s"] / v["sym"]["median_s"]["wall_s"], 2)
    out["wall_ratios_per_pair"] = [round(p / q, 2) for p, q in zip(v["plain"]["walls_s"], v["sym"]["walls_s"])]
    return out


def measure(name: str, args: argparse.Namespace) -> dict:
    map_path, model = ensure_phantom(args.cache, name, symmetric_noise=args.symmetric_noise)
    group = GROUP[name]
    work = args.cache / f"runs_{name}{'_symmetric_noise' if args.symmetric_noise else ''}"
    runs: dict[str, list[dict]] = {"plain": [], "sym": []}
    for repeat in range(args.repeats):
        for variant, extra in (("plain", []), ("sym", ["--symmetry", group])):
            r = run_local(map_path, work / f"{variant}_{repeat}", args.workers, extra)
            runs[variant].append(r)
            print(f"{name} {variant} #{repeat}: {r['wall_s']} s wall, {r['boxes_searched']} searched, "
                  f"load {r['load_before_after']}", flush=True)
    for mates in ("nearest", "interpolate"):  # the grid's boxes blended, each mate with a searched box's outcome
        runs[f"sym {mates}"] = [run_local(map_path, work / mates, args.workers,
                                          ["--symmetry", group, "--symmetry-mates", mates])]
    if args.margin_run:  # the asymmetric unit grown by one box edge
        edge = 40 * float(PHANTOMS[name][PHANTOMS[name].index("--voxel") + 1])
        runs["sym margin box"] = [run_local(map_path, work / "margin", args.workers,
                                            ["--symmetry", group, "--symmetry-margin", f"{edge:g}"])]
    result: dict = {"map": str(map_path), "model": str(model), "group": group, "workers": args.workers,
                    "repeats": args.repeats, "noise": "symmetric" if args.symmetric_noise else "independent",
                    "variants": {}}
    result["input"] = {"cc": evaluate(map_path, model), **symmetry_of(map_path, group)}
    global_map = run_global(map_path, work / "global")
    result["global"] = {"cc": evaluate(global_map, model), **symmetry_of(global_map, group)}
    phases = ("checks", "overall", "symmetry_check", "boxes", "mates", "blend", "total", "wall_s")
    for variant, rs in runs.items():
        first = Path(rs[0]["map"])
        result["variants"][variant] = {
            "boxes_searched": rs[0]["boxes_searched"], "boxes_active": rs[0]["boxes_active"],
            "median_s": {p: median_of(rs, p) for p in phases}, "runs": rs,
            "cc": evaluate(first, model), **symmetry_of(first, group),
            "b_sharpen_map": symmetry_of(Path(rs[0]["b_map"]), group),
            "input_at_this_spectrum": symmetry_of(map_path, group, spectrum_of=first)}
    v = result["variants"]
    result["ratios"] = {"boxes_searched_plain_over_sym": round(v["plain"]["boxes_searched"] / v["sym"]["boxes_searched"], 2),
                        "wall_plain_over_sym": round(v["plain"]["median_s"]["wall_s"] / v["sym"]["median_s"]["wall_s"], 2),
                        "cc_sym_minus_plain": round(v["sym"]["cc"] - v["plain"]["cc"], 4),
                        "cc_sym_minus_global": round(v["sym"]["cc"] - result["global"]["cc"], 4),
                        "cc_images_minus_nearest": round(v["sym"]["cc"] - v["sym nearest"]["cc"], 4),
                        "cc_images_minus_interpolate": round(v["sym"]["cc"] - v["sym interpolate"]["cc"], 4)}
    if args.margins:
        result["margins"] = margins(work / "plain_0" / "local_run.zarr", map_path, group)
    if args.noise_free:
        result["noise_free"] = noise_free(name, args, work)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def noise_free(name: str, args: argparse.Namespace, work: Path) -> dict:
    """The same capsid without noise: how symmetric the input, the global result and the symmetric (and, with
    ``--noise-free-plain``, the plain) local result are, and their CC."""
    map_path, model = ensure_phantom(args.cache, name, noise_free=True)
    group = GROUP[name]
    out: dict = {"map": str(map_path), "input": {"cc": evaluate(map_path, model), **symmetry_of(map_path, group)}}
    global_map = run_global(map_path, work / "global_noise_free")
    out["global"] = {"cc": evaluate(global_map, model), **symmetry_of(global_map, group)}
    variants = {"sym": ["--symmetry", group]}
    if args.noise_free_plain:
        variants["plain"] = []
    for variant, extra in variants.items():
        r = run_local(map_path, work / f"noise_free_{variant}", args.workers, extra)
        out[variant] = {"cc": evaluate(Path(r["map"]), model), **symmetry_of(Path(r["map"]), group),
                        "b_sharpen_map": symmetry_of(Path(r["b_map"]), group), "wall_s": r["wall_s"],
                        "boxes_searched": r["boxes_searched"]}
    return out


def tables(results: dict) -> None:
    rows = []
    for name, r in results.items():
        for variant, v in r["variants"].items():
            m = v["median_s"]
            rows.append([name, variant, f"{v['boxes_searched']}/{v['boxes_active']}", round(v["cc"], 4),
                         v["sym@2R"]["mean"], v["sym@fine"]["mean"], v["sym exact"],
                         f'{v["input_at_this_spectrum"]["sym@2R"]["mean"]} / {v["input_at_this_spectrum"]["sym@fine"]["mean"]}'
                         f' / {v["input_at_this_spectrum"]["sym exact"]}',
                         v["b_sharpen_map"]["sym@2R"]["mean"],
                         m["overall"], m["boxes"], m.get("mates", 0), m["blend"], m["total"], m["wall_s"]])
        for label in ("input", "global"):
            rows.append([name, label, "-", round(r[label]["cc"], 4), r[label]["sym@2R"]["mean"],
                         r[label]["sym@fine"]["mean"], r[label].get("sym exact"), "-", "-", "-", "-", "-", "-", "-",
                         "-"])
        for label, v in r.get("noise_free", {}).items():
            if isinstance(v, dict) and "cc" in v:
                rows.append([f"{name} noise-free", label, v.get("boxes_searched", "-"), round(v["cc"], 4),
                             v["sym@2R"]["mean"], v["sym@fine"]["mean"], v.get("sym exact"),
                             "-", v["b_sharpen_map"]["sym@2R"]["mean"] if "b_sharpen_map" in v else "-",
                             "-", "-", "-", "-", "-", v.get("wall_s", "-")])
    print_table(["phantom", "variant", "searched/active", "CC", "sym@2R", "sym@fine", "sym exact",
                 "input at its spectrum: 2R / fine / exact",
                 "b-map sym", "overall s",
                 "boxes s", "mates s", "blend s", "total s", "wall s"], rows)
    print()
    print_table(["phantom", "boxes plain/sym", "wall plain/sym", "CC sym-plain", "CC sym-global", "CC images-nearest",
                 "CC images-interp"],
                [[n, r["ratios"]["boxes_searched_plain_over_sym"], r["ratios"]["wall_plain_over_sym"],
                  r["ratios"]["cc_sym_minus_plain"], r["ratios"]["cc_sym_minus_global"],
                  r["ratios"]["cc_images_minus_nearest"], r["ratios"]["cc_images_minus_interpolate"]]
                 for n, r in results.items()])
    for n, r in results.items():
        if "margins" in r:
            print(f"{n}: boxes a symmetric run searches by margin: "
                  + ", ".join(f"{k} ({v['margin_A']} Å) {v['searched']} = {v['fraction']:.3f}"
                              for k, v in r["margins"].items() if k != "active") + f" of {r['margins']['active']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phantoms", nargs="+", default=["I", "O"], choices=sorted(PHANTOMS))
    parser.add_argument("--repeats", type=int, default=3, help="plain and symmetric runs, back to back (default 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp-bench-symmetry"))
    parser.add_argument("--margins", action="store_true", help="also count boxes searched by ASU margin")
    parser.add_argument("--margin-run", action="store_true",
                        help="also run with the asymmetric unit grown by one box edge (--symmetry-margin)")
    parser.add_argument("--noise-free", action="store_true",
                        help="also run the noise-free twin of each phantom (symmetric run and global; symmetry and CC)")
    parser.add_argument("--noise-free-plain", action="store_true", help="with --noise-free, also the plain run")
    parser.add_argument("--symmetric-noise", action="store_true",
                        help="phantoms whose noise is averaged over the group, as in a reconstruction with imposed "
                             "symmetry (results kept as '<phantom> symmetric noise')")
    parser.add_argument("--keep", action="store_true", help="keep the runs' output directories")
    parser.add_argument("--times-only", action="store_true",
                        help="only plain and sym, alternating --repeats times: wall times and their ratio")
    args = parser.parse_args(argv)
    content = json.loads(OUT.read_text()) if OUT.exists() else {}
    content["benchmark"] = ("localsharp local with and without --symmetry on capsid phantoms: boxes searched, CC to "
                            "the B = 0 model, symmetry of the output, wall time and phases")
    content.setdefault("phantoms", {})
    measured = {}
    for name in args.phantoms:
        key = f"{name} symmetric noise" if args.symmetric_noise else name
        if args.times_only:
            key += " times"
            content["phantoms"][key] = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                                        "machine": machine(), **measure_times(name, args)}
            r = content["phantoms"][key]
            print(f"{key}: plain {r['variants']['plain']['median_s']['wall_s']} s, sym "
                  f"{r['variants']['sym']['median_s']['wall_s']} s (medians): {r['wall_plain_over_sym']}x; "
                  f"per pair {r['wall_ratios_per_pair']}", flush=True)
            _save(content)
            continue
        measured[key] = measure(name, args)
        stamp = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine()}
        content["phantoms"][key] = {**stamp, **measured[key]}
        _save(content)
    if measured:
        tables(measured)
    print(f"wrote {OUT}")


def _save(content: dict) -> None:
    """Write the results file atomically."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
