"""Mutation testing of ``localsharp/sharpening``, ``localsharp/tiling`` and ``localsharp/kernels`` (cosmic-ray).

A benchmark, not a CI step: every mutant is one run of a targeted test selection, so the full set
(thousands of mutants) takes days on a 2-core machine. The script therefore

1. copies the committed tree (``git archive HEAD``) into a scratch directory, so the mutants never
   touch the working tree;
2. lets cosmic-ray (``cosmic-ray init``) make every mutant of the three packages with its core
   operators, and draws a random sample of ``--sample`` mutants per package with ``--seed``;
3. runs each sampled mutant (``cosmic-ray exec``, one session per source file) against the fast tests
   that exercise that file (:data:`TESTS`, ``-x``: the first failure kills the mutant), at ``nice
   -n 19``, with a timeout of ``--timeout`` seconds, several times the slowest unmutated selection on
   the loaded machine (a timeout counts as killed, cosmic-ray's rule; the unmutated selections pass:
   they are part of the suite);
4. writes cosmic-ray's own report (``cr-report``) of every session and a summary: killed,
   survived, equivalent (set aside), and the score killed / (sampled − equivalent) with its 95 %
   Wilson interval — a sample's score, not the whole population's.

Equivalent mutants are set aside in two ways, both listed in the summary:

* by construction: a mutant that removes a decorator which changes speed or caching only
  (``numba`` ``njit``/``jit``, ``functools.lru_cache``/``cache``) leaves every output as it was;
* by review: a surviving mutant shown to leave every output unchanged is entered in
  ``benchmarks/results/mutation/equivalent.json`` (job id → the reason), which this script reads.

Cosmic-ray does not mutate strings, so docstrings, log messages and error texts make no mutants.

    PYTHONPATH=. python benchmarks/mutation.py --sample kernels=30,sharpening=18,tiling=15 --seed 20261208
    PYTHONPATH=. python benchmarks/mutation.py --report-only        # summarise the last run again

Results: ``benchmarks/results/mutation/`` (``summary.json``, ``report.txt`` = cosmic-ray's report,
``survivors.txt`` = the diff of every surviving mutant).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "mutation"
EQUIVALENT = RESULTS / "equivalent.json"
PACKAGES = ("sharpening", "tiling", "kernels")
BLEND = "tests/test_blend_formula.py::test_model_free_local_map_is_the_written_blend_of_known_box_sharpenings"

#: Source file (under localsharp/) -> the fast tests that exercise it.
TESTS: dict[str, list[str]] = {
    "sharpening/box.py": ["tests/test_box.py", "tests/test_box_oracles.py", "tests/test_search.py"],
    "sharpening/curve.py": ["tests/test_search.py", "tests/test_trials.py"],
    "sharpening/functions.py": ["tests/test_search.py", "tests/test_trials.py", BLEND],
    "sharpening/local_box.py": ["tests/test_trials.py", "tests/test_local.py", BLEND],
    "sharpening/local_scale.py": ["tests/test_local_modes.py"],
    "sharpening/score.py": ["tests/test_search.py", "tests/test_trials.py"],
    "sharpening/search.py": ["tests/test_search.py", "tests/test_trials.py", "tests/test_option_effects.py"],
    "sharpening/search_types.py": ["tests/test_search.py", "tests/test_trials.py"],
    "sharpening/shell_stats.py": ["tests/test_shellscale.py", "tests/test_modes.py", "tests/test_shells.py"],
    "sharpening/shellscale.py": ["tests/test_shellscale.py", "tests/test_modes.py"],
    "sharpening/shrinkage.py": ["tests/test_shrinkage.py"],
    "sharpening/solvent.py": ["tests/test_solvent.py", "tests/test_search.py"],
    "sharpening/spectrum.py": ["tests/test_search.py", "tests/test_trials.py", "tests/test_shellscale.py"],
    "sharpening/trials.py": ["tests/test_trials.py", "tests/test_search.py"],
    "tiling/blend.py": ["tests/test_tiling.py", "tests/test_plan.py", BLEND],
    "tiling/boxes.py": ["tests/test_tiling.py", "tests/test_plan.py", BLEND],
    "tiling/occupancy.py": ["tests/test_plan.py", "tests/test_overall.py"],
    "tiling/plan.py": ["tests/test_plan.py", "tests/test_tiling.py"],
    "kernels/fourier.py": ["tests/test_dfft.py", "tests/test_shells.py", "tests/test_kernels.py"],
    "kernels/masks.py": ["tests/test_box.py", "tests/test_kernels.py", "tests/test_solvent.py", BLEND],
    "kernels/noisefield.py": ["tests/test_capsid.py", "tests/test_phantom.py"],
    "kernels/order_stats.py": ["tests/test_kernel_oracles.py", "tests/test_kernels.py", "tests/test_solvent.py"],
    "kernels/radial.py": ["tests/test_dfft.py", "tests/test_solvent.py", "tests/test_kernels.py"],
    "kernels/radial_jit.py": ["tests/test_dfft.py", "tests/test_kernel_paths.py", "tests/test_solvent.py"],
    "kernels/regions.py": ["tests/test_kernel_oracles.py", "tests/test_trials.py", "tests/test_kernels.py"],
    "kernels/regions_jit.py": ["tests/test_kernel_oracles.py", "tests/test_kernels.py", "tests/test_kernel_paths.py",
                               "tests/test_trials.py"],
    "kernels/rotate_jit.py": ["tests/test_symmetry_detect.py"],
    "kernels/shell_sums.py": ["tests/test_shells.py", "tests/test_kernels.py"],
    "kernels/shells.py": ["tests/test_shells.py", "tests/test_shellscale.py"],
    "kernels/slab_fft.py": ["tests/test_dfft.py"],
    "kernels/splat_jit.py": ["tests/test_kernel_oracles.py", "tests/test_capsid.py"],
    "kernels/wilson.py": ["tests/test_shellscale.py", "tests/test_kernels.py"],
}
#: Decorators whose removal changes speed or caching only (equivalent by construction).
SPEED_ONLY_DECORATORS = ("njit", "jit", "lru_cache", "cache", "vectorize", "guvectorize")


def source_files() -> list[str]:
    files = sorted(str(p.relative_to(ROOT / "localsharp")) for pkg in PACKAGES
                   for p in (ROOT / "localsharp" / pkg).glob("*.py") if p.name != "__init__.py")
    missing = [f for f in files if f not in TESTS]
    if missing:
        raise SystemExit(f"no test selection for {missing}: add them to TESTS")
    return files


def test_command(tests: list[str], base: Path = ROOT) -> str:
    """``nice -n 19 python -m pytest`` of ``tests`` (those in ``base``): the fast tier of whole files, slow
    tests named by id."""
    files = [t for t in tests if "::" not in t and (base / t).exists()]
    ids = [t for t in tests if "::" in t and (base / t.split("::")[0]).exists()]
    parts = []
    common = "nice -n 19 python -m pytest -x -q -p no:cacheprovider -W ignore"
    if files:
        parts.append(f"{common} -m 'not slow' {' '.join(files)}")
    if ids:
        parts.append(f"{common} {' '.join(ids)}")
    return "bash -c " + json.dumps(" && ".join(parts))


def run(cmd: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, text=True, capture_output=True, **kw)


def prepare(work: Path) -> Path:
    """A fresh copy of HEAD in ``work/src`` (the mutant databases of an earlier run are kept)."""
    src = work / "src"
    keep = work / "db"
    keep.mkdir(parents=True, exist_ok=True)
    if src.exists():
        for db in src.glob("*.sqlite"):
            shutil.move(str(db), keep / db.name)
        shutil.rmtree(src)
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    for db in keep.glob("all_*.sqlite"):  # every mutant of the same source: made again only when it changed
        shutil.move(str(db), src / db.name)
    return src


def write_config(src: Path, file: str, timeout: float) -> Path:
    cfg = src / f"cr_{file.replace('/', '_')}.toml"
    cfg.write_text("[cosmic-ray]\n"
                   f'module-path = "localsharp/{file}"\n'
                   f"timeout = {timeout:.0f}\n"
                   "excluded-modules = []\n"
                   f"test-command = {json.dumps(test_command(TESTS[file], src))}\n"
                   "[cosmic-ray.distributor]\nname = \"local\"\n")
    return cfg


def all_mutants(src: Path) -> dict[str, list]:
    """Every mutant cosmic-ray makes, per source file (a throw-away session per file)."""
    from cosmic_ray.work_db import WorkDB, use_db

    import hashlib

    out = {}
    for file in source_files():
        cfg = write_config(src, file, 60)
        digest = hashlib.sha256((src / "localsharp" / file).read_bytes()).hexdigest()[:16]
        db = src / f"all_{file.replace('/', '_')}.{digest}.sqlite"
        if db.exists():
            with use_db(str(db), WorkDB.Mode.open) as wdb:
                out[file] = list(wdb.work_items)
            continue
        proc = run(["cosmic-ray", "init", str(cfg), str(db)], src)
        if proc.returncode != 0:
            raise SystemExit(f"cosmic-ray init failed for {file}:\n{proc.stderr[-2000:]}")
        with use_db(str(db), WorkDB.Mode.open) as wdb:
            out[file] = list(wdb.work_items)
    return out


def sample_size(spec: str, package: str) -> int:
    """``--sample``: one number for every package, or ``package=N`` pairs."""
    if "=" not in spec:
        return int(spec)
    sizes = dict(part.split("=") for part in spec.split(","))
    return int(sizes.get(package, 0))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _speed_only(diff: str) -> bool:
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    return any(line.strip("- ").startswith("@") and any(d in line for d in SPEED_ONLY_DECORATORS)
               for line in removed)


def summarise(work: Path, meta: dict) -> dict:
    """Results of every session: the tool's report, survivors' diffs, and the score."""
    from cosmic_ray.work_db import WorkDB, use_db

    src = work / "src"
    equivalent = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    rows, reports, survivors = [], [], []
    for file in meta["files"]:
        db = src / f"sample_{file.replace('/', '_')}.sqlite"
        if not db.exists():
            continue
        reports.append(f"===== localsharp/{file}: {test_command(TESTS[file], src)}\n"
                       + run(["cr-report", str(db)], src).stdout)
        with use_db(str(db), WorkDB.Mode.open) as wdb:
            for item, result in wdb.completed_work_items:
                m = item.mutations[0]
                outcome = result.test_outcome.value if result.test_outcome else str(result.worker_outcome.value)
                diff = result.diff or ""
                if _speed_only(diff):
                    status, reason = "equivalent", "removes a decorator that changes speed or caching only"
                elif item.job_id in equivalent:
                    status, reason = "equivalent", equivalent[item.job_id]
                elif outcome == "killed":
                    status, reason = "killed", ("timeout" if result.output == "timeout" else "")
                elif outcome == "survived":
                    status, reason = "survived", ""
                else:
                    status, reason = "incompetent", outcome
                rows.append({"job_id": item.job_id, "file": file, "operator": m.operator_name,
                             "occurrence": m.occurrence, "line": m.start_pos[0], "status": status,
                             "reason": reason})
                if status == "survived" or (status == "equivalent" and item.job_id in equivalent):
                    survivors.append(f"--- {item.job_id} localsharp/{file}:{m.start_pos[0]} {m.operator_name} "
                                     f"[{status}{': ' + reason if reason else ''}]\n{diff}\n")
    count = {s: sum(1 for r in rows if r["status"] == s) for s in ("killed", "survived", "equivalent", "incompetent")}
    by_package = {}
    for pkg in PACKAGES:
        sel = [r for r in rows if r["file"].startswith(pkg + "/")]
        k = sum(1 for r in sel if r["status"] == "killed")
        n = sum(1 for r in sel if r["status"] in ("killed", "survived"))
        by_package[pkg] = {"sampled": len(sel), "killed": k, "survived": n - k,
                           "equivalent": sum(1 for r in sel if r["status"] == "equivalent"),
                           "score": k / n if n else None, "ci95": wilson(k, n)}
    n = count["killed"] + count["survived"]
    summary = {**meta, "counted": n, **count, "score": count["killed"] / n if n else None,
               "ci95_wilson": wilson(count["killed"], n), "by_package": by_package, "mutants": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.txt").write_text("\n".join(reports))
    (RESULTS / "survivors.txt").write_text("\n".join(survivors))
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", default="60",
                        help="mutants drawn per package (0: all), or per package as kernels=30,tiling=15,...")
    parser.add_argument("--seed", type=int, default=20261208)
    parser.add_argument("--work", type=Path, default=Path("/tmp/localsharp-mutation"))
    parser.add_argument("--report-only", action="store_true", help="summarise the sessions in --work again")
    parser.add_argument("--files", nargs="*", help="only these source files (e.g. tiling/blend.py)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's test run")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="run the surviving mutants of the sample in --work again with the tests of HEAD (after "
                             "tests were added for them); the first pass's summary is kept as summary_first_pass.json")
    args = parser.parse_args(argv)
    meta_path = args.work / "meta.json"
    if args.report_only:
        summary = summarise(args.work, json.loads(meta_path.read_text()))
        _print(summary)
        return 0
    from cosmic_ray.work_db import WorkDB, use_db

    if args.rerun_survivors:
        return rerun_survivors(args)
    t0 = time.perf_counter()
    src = prepare(args.work)
    env_note = {"LOCALSHARP_SHARED": os.environ.get("LOCALSHARP_SHARED", str(ROOT.parent / "shared"))}
    os.environ.update(env_note)
    mutants = all_mutants(src)
    files = [f for f in source_files() if not args.files or f in args.files]
    rng = random.Random(args.seed)
    chosen: dict[str, list] = {f: [] for f in files}
    population = {}
    for pkg in PACKAGES:
        pool = [(f, item) for f in files if f.startswith(pkg + "/") for item in mutants[f]]
        population[pkg] = len(pool)
        pool.sort(key=lambda fi: fi[1].job_id)
        rng.shuffle(pool)  # a larger --sample with the same seed extends a smaller one
        n = sample_size(args.sample, pkg)
        pick = pool if n <= 0 else pool[:n]
        for f, item in pick:
            chosen[f].append(item)
    meta = {"date": datetime.date.today().isoformat(), "tool": run(["cosmic-ray", "--version"], src).stdout.strip(),
            "seed": args.seed, "sample_per_package": {p: sample_size(args.sample, p) for p in PACKAGES}, "population": population,
            "files": [f for f in files if chosen[f]], "machine": {"cpus": os.cpu_count(),
                                                                 "load_average_start": os.getloadavg()},
            "tests": {f: test_command(TESTS[f], src) for f in files if chosen[f]}, "timeout_s": args.timeout}
    for file in meta["files"]:
        cfg = write_config(src, file, args.timeout)
        db = src / f"sample_{file.replace('/', '_')}.sqlite"
        kept = args.work / "db" / db.name
        if kept.exists():  # the same sample of an interrupted run: its finished mutants are kept
            with use_db(str(kept), WorkDB.Mode.open) as wdb:
                same = sorted(i.job_id for i in wdb.work_items) == sorted(i.job_id for i in chosen[file])
            if same:
                shutil.move(str(kept), db)
        if not db.exists():
            with use_db(str(db), WorkDB.Mode.create) as wdb:
                wdb.add_work_items(chosen[file])
        print(f"{file}: {len(chosen[file])} mutants", flush=True)
        proc = run(["cosmic-ray", "exec", str(cfg), str(db)], src)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
        meta_path.write_text(json.dumps(meta, indent=1))
        summarise(args.work, meta)
    meta["seconds"] = round(time.perf_counter() - t0)
    meta["machine"]["load_average_end"] = os.getloadavg()
    meta_path.write_text(json.dumps(meta, indent=1))
    _print(summarise(args.work, meta))
    return 0


def rerun_survivors(args: argparse.Namespace) -> int:
    """Forget the results of the surviving mutants and run them again against HEAD's tests."""
    import sqlite3

    meta = json.loads((args.work / "meta.json").read_text())
    shutil.copy(RESULTS / "summary.json", RESULTS / "summary_first_pass.json")
    survivors = [r for r in json.loads((RESULTS / "summary.json").read_text())["mutants"] if r["status"] == "survived"]
    src = prepare(args.work)
    for db in (args.work / "db").glob("sample_*.sqlite"):
        shutil.move(str(db), src / db.name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    meta["rerun_survivors"] = {"commit": commit.strip(), "n": len(survivors), "date": datetime.date.today().isoformat()}
    meta["tests"] = {f: test_command(TESTS[f], src) for f in meta["files"]}
    for file in sorted({r["file"] for r in survivors}):
        db = src / f"sample_{file.replace('/', '_')}.sqlite"
        ids = [r["job_id"] for r in survivors if r["file"] == file]
        with sqlite3.connect(db) as con:
            con.executemany("DELETE FROM work_results WHERE job_id = ?", [(i,) for i in ids])
        cfg = write_config(src, file, args.timeout)
        print(f"{file}: {len(ids)} survivors again", flush=True)
        proc = run(["cosmic-ray", "exec", str(cfg), str(db)], src)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
    (args.work / "meta.json").write_text(json.dumps(meta, indent=1))
    _print(summarise(args.work, meta))
    return 0


def _print(summary: dict) -> None:
    lo, hi = summary["ci95_wilson"]
    print(f"sampled {sum(summary['by_package'][p]['sampled'] for p in PACKAGES)} of "
          f"{sum(summary['population'].values())} mutants (seed {summary['seed']}): killed {summary['killed']}, "
          f"survived {summary['survived']}, equivalent {summary['equivalent']}, incompetent {summary['incompetent']}")
    if summary["score"] is not None:
        print(f"score {summary['score']:.1%} (95 % Wilson interval {lo:.1%}–{hi:.1%}) of the mutants that change "
              "an output")
    for pkg, s in summary["by_package"].items():
        print(f"  {pkg}: {s}")


if __name__ == "__main__":
    raise SystemExit(main())
