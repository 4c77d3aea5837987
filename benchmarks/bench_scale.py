"""Scale of local sharpening: capsid phantoms of 512³ and 1024³ on a LocalCluster, memory per process.

For each size, the capsid phantom (``localsharp phantom-capsid``, haemoglobin copies on a shell,
1.1 Å voxels) is made once into the cache directory and reused; then
``localsharp local MAP --resolution R --workers W [--memory-limit M] --output-dir OUT -q`` runs
as a subprocess while /proc is read every 0.2 s for its whole process tree (VmRSS and RssAnon per
pid, roles client / nanny / worker / other).  ``--memory-limit`` is passed only when
``localsharp local --help`` offers it.

Reported per size: boxes searched / skipped / total, wall time per pass and in all, boxes/s/core
(searched boxes / (box-pass wall × workers)), peak RSS and anonymous memory of the client and of
the workers, the run store's size and file count (OUT without the final map) and OUT's, signs of
workers killed, restarted or paused for memory (stderr lines, distinct worker pids) and the exit
status.  Prints a table and merges the sizes into ``benchmarks/results/scale.json``.

``--dry-run`` first runs ``localsharp local --dry-run`` with the same options (it must write nothing)
and records its box counts, memory per worker, disk and time beside the measured ones, with their
ratios (``dry_run`` of each size; kept under ``<size>_dry_run``).

``--half-maps`` runs the local half-map mode instead: the half maps are two more phantoms of the same
capsid with other noise seeds (``--noise-seed seed + 1``, ``seed + 2``: the same signal, independent noise), and
the results are kept under ``<size>_half_maps``.

``--symmetry GROUP`` (e.g. ``I``) makes the phantom symmetric (``phantom-capsid --symmetry GROUP``: one
copy per operator about the map centre instead of copies at random) and runs ``localsharp local
--symmetry GROUP``; the results are kept under ``<size>_symmetry_<GROUP>``.  ``--plain`` runs that
symmetric capsid without ``--symmetry`` (every box searched: the comparison), kept under
``<size>_symmetry_<GROUP>_plain``.  A ``MALLOC_MMAP_THRESHOLD_`` in the environment (e.g. 131072,
Dask's own, to compare with the workers' allocator setting of docs/cluster.md) reaches the workers,
is recorded, and adds ``_mmap<value>`` to the key.

Run: ``python benchmarks/bench_scale.py`` (512 and 1024: long; needs ~6 GB of disk), or
``python benchmarks/bench_scale.py --sizes 128`` for a quick check of the harness.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, print_table  # noqa: E402
from _proctree import TreeSampler, machine, memory_summary  # noqa: E402

from localsharp.symmetry import parse_symmetry  # noqa: E402

MODEL = ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif"
POLL_S = 0.2
#: stderr patterns that tell of workers killed, restarted or paused, or memory trouble.
#: "Worker process still alive after 4.0 seconds, killing" is the cluster's shutdown, counted apart.
STDERR_PATTERNS = {"KilledWorker": r"KilledWorker", "worker_process": r"Worker process(?! still alive after)",
                   "paused": r"paus", "memory": r"memory", "restarting": r"restart",
                   "killed_at_shutdown": r"still alive after .* killing"}
#: Box statuses counted as not searched (no score search ran in them).
SKIPPED_WORDS = ("skip", "solvent", "empty", "outside")


def localsharp_command() -> list[str]:
    """The ``localsharp`` program of this interpreter (``python -m localsharp``)."""
    return [sys.executable, "-m", "localsharp"]


def local_options() -> str:
    """The text of ``localsharp local --help``."""
    done = subprocess.run(localsharp_command() + ["local", "--help"], capture_output=True, text=True, check=True)
    return done.stdout


def phantom_path(cache: Path, size: int, seed: int, noise_seed: int | None = None, symmetry: str | None = None) -> Path:
    noise = "" if noise_seed is None or noise_seed == seed else f"_noise{noise_seed}"
    return cache / f"capsid_{size}_seed{seed}{noise}{f'_{symmetry}' if symmetry else ''}.mrc"


def phantom_parameters(size: int, seed: int, noise_seed: int | None = None) -> dict:
    """The ``parameters`` a phantom made now with the default options records in its sidecar."""
    from localsharp import capsid

    defaults = {name: p.default for name, p in inspect.signature(capsid.capsid_phantom).parameters.items()
                if p.default is not inspect.Parameter.empty}
    keys = ("voxel", "radius_fraction", "coverage", "b_min", "b_max", "b_blur", "resolution", "noise")
    params = {"size": size, **{k: defaults[k] for k in keys}, "b_atom": capsid.B_ATOM, "seed": seed}
    if noise_seed is not None and noise_seed != seed:
        params["noise_seed"] = noise_seed
    return params


def ensure_phantom(cache: Path, size: int, seed: int, noise_seed: int | None = None,
                   symmetry: str | None = None) -> tuple[Path, float | None]:
    """The cached phantom of ``size`` (made if absent or made with other parameters); seconds spent making it.

    ``noise_seed``: the same capsid (orientations from ``seed``) with other noise, for half maps.
    ``symmetry``: copies placed by this point group about the map centre (``phantom-capsid --symmetry``).
    """
    path = phantom_path(cache, size, seed, noise_seed, symmetry)
    sidecar = path.with_suffix(".json")
    if path.exists() and sidecar.exists():
        recorded = json.loads(sidecar.read_text())
        if recorded.get("parameters", {}) == phantom_parameters(size, seed, noise_seed) and \
                (recorded.get("symmetry") or {}).get("name") == (parse_symmetry(symmetry).name if symmetry else None):
            return path, None
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    noise = ["--noise-seed", str(noise_seed)] if noise_seed is not None and noise_seed != seed else []
    layout = ["--symmetry", symmetry] if symmetry else []
    subprocess.run(localsharp_command() + ["phantom-capsid", str(MODEL), "--size", str(size), "--seed", str(seed),
                                           *noise, *layout, "--output", str(path), "--overwrite"], check=True)
    return path, time.perf_counter() - t0


def tree_size(root: Path, exclude: set[Path] = frozenset()) -> tuple[int, int, int]:
    """Bytes (apparent), bytes allocated on disk and number of regular files under ``root``.

    ``exclude``: paths not counted.
    """
    total = allocated = count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path in exclude or path.is_symlink():
                continue
            stat = path.stat()
            total += stat.st_size
            allocated += stat.st_blocks * 512
            count += 1
    return total, allocated, count


def stderr_signs(text: str, examples: int = 3) -> dict:
    """Per pattern of :data:`STDERR_PATTERNS`: matching lines (case-insensitive) and a few of them."""
    lines = text.splitlines()
    out = {}
    for key, pattern in STDERR_PATTERNS.items():
        hits = [line.strip() for line in lines if re.search(pattern, line, re.IGNORECASE)]
        out[key] = {"lines": len(hits), "examples": [h[:240] for h in hits[:examples]]}
    return out


def box_counts(summary: dict) -> dict:
    """Boxes searched / skipped / total from a local_summary.json."""
    by_status = dict(summary.get("boxes_by_status", {}))
    skipped = sum(n for status, n in by_status.items() if any(w in status.lower() for w in SKIPPED_WORDS))
    total = int(summary.get("n_boxes", sum(by_status.values())))
    return {"total": total, "searched": total - skipped, "skipped": skipped, "by_status": by_status}


def run_local(map_path: Path, out: Path, resolution: float, workers: int, memory_limit: str | None,
              timeout: float, log: Path, extra: list[str] | None = None) -> tuple[int | None, float, TreeSampler, str]:
    """Run ``localsharp local`` and sample its process tree; returns (status, wall s, sampler, stderr)."""
    cmd = localsharp_command() + ["local", str(map_path), "--resolution", str(resolution), "--workers", str(workers),
                                  *(extra or []), "--output-dir", str(out), "--overwrite", "-q"]
    if memory_limit:
        cmd[-2:-2] = ["--memory-limit", memory_limit]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        status = None
        try:
            while status is None:
                sampler.sample()
                if time.perf_counter() - t0 > timeout:
                    _stop(proc)
                    break
                time.sleep(POLL_S)
                status = proc.poll()
        except BaseException:  # Ctrl-C or an error here: do not leave the run going on its own
            _stop(proc)
            raise
        wall = time.perf_counter() - t0
    return (proc.returncode if status is not None else None), wall, sampler, log.read_text(errors="replace")


def _stop(proc: subprocess.Popen) -> None:
    """End the run's process group (it has its own session): SIGTERM, then SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


#: What ``localsharp local --dry-run`` prints, read back: boxes, memory per worker, disk, time.
DRY_RUN_PATTERNS = {
    "boxes": r"(\d+) in the grid: (\d+) to be searched, (\d+) skipped by the coarse mask",
    "memory": r"memory per worker\s+about ([\d.]+) (GiB|MiB|KiB)",
    "disk": r"disk\s+about ([\d.]+) (GiB|MiB|KiB)",
    "time": r"time\s+about (\S+) on",
}
UNITS = {"GiB": 2**30, "MiB": 2**20, "KiB": 2**10}


def seconds_of(text: str) -> float:
    """``1h02m`` / ``9m29s`` / ``45s`` (:func:`localsharp.report.progress.format_duration`) in seconds."""
    total = 0.0
    for value, unit in re.findall(r"(\d+)([hms])", text):
        total += int(value) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def parse_dry_run(text: str) -> dict:
    """The numbers of a dry run's table."""
    found = {key: re.search(pattern, text) for key, pattern in DRY_RUN_PATTERNS.items()}
    missing = [key for key, match in found.items() if match is None]
    if missing:
        raise ValueError(f"dry run output lacks {missing}: {text}")
    grid, searched, skipped = (int(v) for v in found["boxes"].groups())  # type: ignore[union-attr]
    memory, disk = (float(found[k].group(1)) * UNITS[found[k].group(2)] for k in ("memory", "disk"))  # type: ignore[union-attr]
    return {"boxes": {"grid": grid, "searched": searched, "skipped_by_mask": skipped}, "worker_bytes": memory,
            "disk_bytes": disk, "time_s": seconds_of(found["time"].group(1))}  # type: ignore[union-attr]


def dry_run(map_path: Path, out: Path, resolution: float, workers: int, memory_limit: str | None,
            extra: list[str]) -> dict:
    """``localsharp local --dry-run`` with the run's options: its numbers, its wall time and its text."""
    cmd = localsharp_command() + ["local", str(map_path), "--resolution", str(resolution), "--workers", str(workers),
                                  *extra, *(["--memory-limit", memory_limit] if memory_limit else []),
                                  "--output-dir", str(out), "--dry-run"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    if out.exists():
        raise RuntimeError(f"the dry run wrote {out}")
    return {**parse_dry_run(done.stdout), "wall_s": round(wall, 2), "text": done.stdout.splitlines()}


def compare_dry_run(estimate: dict, result: dict) -> dict:
    """Estimate, measurement and their ratio for each number of the dry run."""
    boxes = result.get("plan") or {}
    measured = {"worker_bytes": result["memory"]["worker_peak_anon_mib"] * 2**20,
                "worker_rss_bytes": result["memory"]["worker_peak_rss_mib"] * 2**20,
                "disk_bytes": result["out_disk_bytes"], "time_s": result["wall_s"]}
    ratios = {key: round(estimate[key] / measured[key], 3) for key in ("worker_bytes", "disk_bytes", "time_s")
              if measured.get(key)}
    return {"boxes_equal": estimate["boxes"] == boxes, "boxes_estimated": estimate["boxes"], "boxes_measured": boxes,
            "estimated": {k: estimate[k] for k in ("worker_bytes", "disk_bytes", "time_s")}, "measured": measured,
            "ratio_estimated_to_measured": ratios}


def measure(size: int, args: argparse.Namespace, memory_limit: str | None) -> dict:
    map_path, made_s = ensure_phantom(args.cache, size, args.seed, symmetry=args.symmetry)
    extra: list[str] = []
    if args.half_maps:
        halves = [ensure_phantom(args.cache, size, args.seed, noise_seed=args.seed + k, symmetry=args.symmetry)[0]
                  for k in (1, 2)]
        extra = ["--half-maps", *map(str, halves)]
    if args.symmetry and not args.plain:
        extra += ["--symmetry", args.symmetry]
    run_dir = args.cache / f"run_{size}"
    out = run_dir / "out"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    estimate = None
    if args.dry_run:
        print(f"{size}³: localsharp local --dry-run on {map_path} ...", flush=True)
        estimate = dry_run(map_path, out, args.resolution, args.workers, memory_limit, extra)
        print("\n".join(estimate["text"]), flush=True)
    print(f"{size}³: localsharp local on {map_path} ...", flush=True)
    load_before = os.getloadavg()
    status, wall, sampler, stderr = run_local(map_path, out, args.resolution, args.workers, memory_limit,
                                              args.timeout, run_dir / "stderr.log", extra)
    load_after = os.getloadavg()
    summary_path = out / "local_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    final_map = Path(summary.get("outputs", {}).get("local_map", out / "local_sharpened_map.ccp4"))
    store_bytes, store_disk, store_files = tree_size(out, {final_map}) if out.exists() else (0, 0, 0)
    out_bytes, out_disk, out_files = tree_size(out) if out.exists() else (0, 0, 0)
    timings = {k: round(float(v), 2) for k, v in summary.get("timings_s", {}).items()}
    boxes = box_counts(summary) if summary else {}
    box_wall = timings.get("boxes")
    rate = boxes["searched"] / (box_wall * args.workers) if boxes and box_wall else None
    memory = memory_summary(sampler)
    result = {
        "size": size, "mode": "half_maps" if args.half_maps else "model_free", "symmetry": args.symmetry,
        "plain": bool(args.plain), "allocator_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
        "map": str(map_path), "map_bytes": map_path.stat().st_size, "phantom_made_s": made_s,
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "workers": args.workers, "memory_limit": memory_limit, "resolution": args.resolution,
        "exit_status": status, "timed_out": status is None, "wall_s": round(wall, 2), "timings_s": timings,
        "boxes": boxes, "boxes_per_s_per_core": rate,
        "overall": {k: summary.get("overall", {}).get(k) for k in ("method", "b_iso_input", "b_sharpen")},
        "mean_b_sharpen_sharpened_boxes": summary.get("mean_b_sharpen_sharpened_boxes"),
        "store_bytes": store_bytes, "store_disk_bytes": store_disk, "store_files": store_files,
        "out_bytes": out_bytes, "out_disk_bytes": out_disk, "out_files": out_files,
        "memory": memory, "stderr_signs": stderr_signs(stderr),
        "workers_restarted": memory["distinct_worker_pids"] > args.workers,
        "stderr_tail": stderr.splitlines()[-5:],
        "plan": {"grid": summary.get("n_boxes"), "searched": summary.get("boxes_searched"),
                 "skipped_by_mask": summary.get("boxes_skipped_by_mask")} if summary else {},
    }
    if estimate is not None:
        result["dry_run"] = {**compare_dry_run(estimate, result), "wall_s": estimate["wall_s"], "text": estimate["text"]}
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def table_row(r: dict) -> list:
    b, m, t = r["boxes"], r["memory"], r["timings_s"]
    signs = ",".join(f"{k}:{v['lines']}" for k, v in r["stderr_signs"].items() if v["lines"]) or "-"
    rate = r["boxes_per_s_per_core"]
    label = f"{r['size']}{' half maps' if r.get('mode') == 'half_maps' else ''}"
    label += f" --symmetry {r['symmetry']}" if r.get("symmetry") else ""
    return [label, r["exit_status"], f"{b.get('searched', '?')}/{b.get('skipped', '?')}/{b.get('total', '?')}",
            t.get("overall", "-"), t.get("boxes", "-"), t.get("blend", "-"), r["wall_s"],
            round(rate, 3) if rate else "-", m["client_peak_rss_mib"], m["client_peak_anon_mib"],
            m["worker_peak_rss_mib"], m["worker_peak_anon_mib"], m["distinct_worker_pids"],
            round(r["store_bytes"] / 2**20, 1), r["store_files"], round(r["out_bytes"] / 2**20, 1), signs]


HEADERS = ["size", "exit", "boxes s/k/n", "overall s", "boxes s", "blend s", "wall s", "box/s/core",
           "client RSS", "client anon", "worker RSS", "worker anon", "worker pids", "store MiB", "store files",
           "OUT MiB", "stderr signs"]


def write_results(results: list[dict], args: argparse.Namespace) -> Path:
    """Merge the sizes measured into results/scale.json (atomically)."""
    path = RESULTS / "scale.json"
    content = json.loads(path.read_text()) if path.exists() else {}
    content["benchmark"] = "localsharp local on capsid phantoms: walls, boxes/s/core, memory per process"
    content.setdefault("sizes", {})
    stamp = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine()}
    for r in results:
        key = str(r["size"]) + ("_half_maps" if r.get("mode") == "half_maps" else "") + ("_dry_run" if "dry_run" in r
                                                                                            else "")
        key += f"_symmetry_{r['symmetry']}" if r.get("symmetry") else ""
        key += "_plain" if r.get("plain") else ""
        key += f"_mmap{r['allocator_mmap_threshold']}" if r.get("allocator_mmap_threshold") else ""
        content["sizes"][key] = {**stamp, **r}
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="map edges (default 512 1024)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    parser.add_argument("--memory-limit", default="2GiB", help="per-worker limit when supported (default 2GiB)")
    parser.add_argument("--resolution", type=float, default=3.5, help="resolution given to localsharp (default 3.5)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp-bench"),
                        help="phantoms and run directories (default /tmp/localsharp-bench)")
    parser.add_argument("--keep", action="store_true", help="keep each run's output directory and stderr log")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per run before it is stopped")
    parser.add_argument("--half-maps", action="store_true", help="run the local half-map mode (two more phantoms)")
    parser.add_argument("--dry-run", action="store_true",
                        help="run `localsharp local --dry-run` first and compare its estimates with the run")
    parser.add_argument("--symmetry", metavar="GROUP",
                        help="a symmetric capsid (copies placed by GROUP) run with localsharp local --symmetry GROUP")
    parser.add_argument("--plain", action="store_true",
                        help="with --symmetry: run the symmetric capsid without --symmetry (every box searched), "
                             "for comparison (kept as '<size>_symmetry_<GROUP>_plain')")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    supported = "--memory-limit" in local_options()
    memory_limit = args.memory_limit if supported else None
    if not supported:
        print("localsharp local has no --memory-limit: running without it")
    results = []
    for size in args.sizes:
        results.append(measure(size, args, memory_limit))
        print_table(HEADERS, [table_row(results[-1])])
        if "dry_run" in results[-1]:
            print(json.dumps({k: v for k, v in results[-1]["dry_run"].items() if k != "text"}, indent=1))
    print()
    print_table(HEADERS, [table_row(r) for r in results])
    print(f"wrote {write_results(results, args)}")


if __name__ == "__main__":
    main()
