"""Cost of checking what a run writes: `localsharp local` with this checkout against another checkout.

The checks are the CRC32C of every stored and output chunk (every chunk written, also the empty
ones), the sealed (SHA-256) records written with fsync, and the SHA-256 of every output recorded in
``local_summary.json``.  ``--reference DIR`` names a localsharp source tree without them (e.g.
``git archive <revision> | tar -x -C DIR``); both run the same command on the same capsid phantom
(``bench_scale``'s, 256³ by default) on a LocalCluster of ``--workers`` workers, alternately,
``--repeats`` times each after one warm-up run of each.  Also timed: ``localsharp info --verify``
on the last output of this checkout, and the resume check of a finished store (``--resume`` of a
finished run: every record and chunk checked, nothing computed).

Prints the median wall and CPU times (the run and its workers) and their ratios and writes ``benchmarks/results/checksums.json``.
Also measured first, in this process: the CPU time of the parts the checks change (zarr writes and
reads with and without them, the SHA-256 of a map file, the image's manifest digest, the resume
check of every chunk); ``--components-only`` measures only these.

Run: ``python benchmarks/bench_checksums.py --reference /tmp/localsharp-reference``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, ROOT, print_table  # noqa: E402
from _proctree import machine  # noqa: E402
from bench_scale import ensure_phantom  # noqa: E402


def run(tree: Path, argv: list[str]) -> tuple[int, float, float, str]:
    """``python -m localsharp ARGV`` with the package of ``tree``; exit status, wall seconds, CPU seconds
    (user + system of the run and its workers, which it waits for), stderr."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "localsharp", *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.returncode, wall, cpu, done.stderr


def components(size: int, chunk: int = 64, repeats: int = 5) -> dict[str, dict[str, float]]:
    """CPU seconds (median of ``repeats``, this process) of the parts the checks change, on a ``size``³ map:
    writing and reading a float32 zarr array with zarr's default codecs and with the checked ones (CRC32C,
    every chunk written); the SHA-256 of a CCP4-sized file; the manifest digest of the written image."""
    import numpy as np
    import zarr

    from localsharp.maps import checksums

    rng = np.random.default_rng(0)
    data = rng.normal(size=(size,) * 3).astype(np.float32)
    data[: size // 4] = 0  # some empty chunks, as in solvent
    out: dict[str, list[float]] = {}

    def timed(name: str, fn) -> None:
        t0 = time.process_time()
        fn()
        out.setdefault(name, []).append(time.process_time() - t0)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for kind in ("default", "checked"):
                path = Path(tmp) / f"{kind}{i}"
                if kind == "default":
                    array = zarr.create_array(str(path), shape=data.shape, chunks=(chunk,) * 3, dtype="float32",
                                              fill_value=0.0)
                else:
                    array = checksums.create_array(str(Path(tmp)), f"{kind}{i}", shape=data.shape,
                                                   chunks=(chunk,) * 3, dtype="float32", fill_value=0.0)
                timed(f"write {kind}", lambda: array.__setitem__(Ellipsis, data))
                timed(f"read {kind}", lambda: np.asarray(zarr.open_array(str(path), mode="r")[...]))
            blob = Path(tmp) / f"map{i}.ccp4"
            data.tofile(blob)
            timed("sha256 of the map file", lambda: checksums.file_sha256(blob))
            timed("manifest digest of the image", lambda: checksums.zarr_digest(Path(tmp) / f"checked{i}"))
            timed("check of every chunk (resume)", lambda: checksums.damaged_chunks(Path(tmp) / f"checked{i}"))
    return {name: {"median_cpu_s": statistics.median(v), "runs": len(v)} for name, v in out.items()}


def local_argv(map_path: Path, out: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    return ["local", str(map_path), "--resolution", str(args.resolution), "--workers", str(args.workers),
            "--output-dir", str(out), "-q", *extra]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="a localsharp source tree to compare with")
    parser.add_argument("--size", type=int, default=256, help="phantom edge (default 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tree (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    parser.add_argument("--resolution", type=float, default=3.5, help="resolution given (default 3.5)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp-bench"), help="phantom cache")
    parser.add_argument("--components-only", action="store_true",
                        help="only the CPU time of the parts the checks change (no runs; --reference unused)")
    args = parser.parse_args(argv)
    parts = components(args.size)
    print_table(["part (256³ float32, 64³ chunks)" if args.size == 256 else "part", "median CPU (s)"],
                [[name, round(v["median_cpu_s"], 3)] for name, v in parts.items()])
    if args.components_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "checksums_components.json").write_text(json.dumps({
            "benchmark": "CPU time of the parts the checks change", "size": args.size,
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
            "load_average": os.getloadavg()[0], "parts": parts}, indent=1) + "\n")
        return
    map_path, _ = ensure_phantom(args.cache, args.size, 0)
    trees = {"this checkout": ROOT, "reference": args.reference.resolve()}
    walls: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    work = args.cache / "checksums"
    for i in range(args.repeats + 1):
        for name, tree in trees.items():
            out = work / name.replace(" ", "_")
            shutil.rmtree(out, ignore_errors=True)
            status, wall, cpu, err = run(tree, local_argv(map_path, out, args))
            if status != 0:
                raise SystemExit(f"{name}: exit status {status}\n{err}")
            if i:  # the first round warms the caches
                walls[name].append(wall)
                cpus[name].append(cpu)
            print(f"round {i} {name}: wall {wall:.1f} s, CPU {cpu:.1f} s (load {os.getloadavg()[0]:.1f})",
                  flush=True)
    out = work / "this_checkout"
    _, verify_s, _, _ = run(ROOT, ["info", "--verify", str(out)])
    status, resume_s, _, _ = run(ROOT, local_argv(map_path, out, args, "--resume"))
    medians = {name: statistics.median(times) for name, times in walls.items()}
    cpu_medians = {name: statistics.median(times) for name, times in cpus.items()}
    ratio = medians["this checkout"] / medians["reference"]
    cpu_ratio = cpu_medians["this checkout"] / cpu_medians["reference"]
    print_table(["tree", "runs", "median wall (s)", "min wall (s)", "max wall (s)", "median CPU (s)"],
                [[name, len(t), round(medians[name], 2), round(min(t), 2), round(max(t), 2),
                  round(cpu_medians[name], 2)] for name, t in walls.items()])
    print(f"ratio this checkout / reference: wall {ratio:.3f}, CPU {cpu_ratio:.3f}; info --verify {verify_s:.1f} s; "
          f"--resume of the finished run {resume_s:.1f} s (exit {status})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "checksums.json").write_text(json.dumps({
        "benchmark": "localsharp local wall time with the checks of the run store and outputs, against a tree "
                     "without them", "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(), "size": args.size, "workers": args.workers, "resolution": args.resolution,
        "repeats": args.repeats, "walls_s": walls, "medians_s": medians, "ratio": ratio, "cpu_s": cpus,
        "cpu_medians_s": cpu_medians, "cpu_ratio": cpu_ratio, "load_average_end": os.getloadavg()[0],
        "info_verify_s": verify_s, "resume_of_finished_run_s": resume_s, "parts": parts}, indent=1) + "\n")


if __name__ == "__main__":
    main()
