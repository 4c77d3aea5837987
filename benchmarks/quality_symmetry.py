"""``localsharp symmetry`` on symmetric and asymmetric phantoms and on EMD-3488; its time and memory at scale.

Detection (``detect``): phantoms of one haemoglobin chain (PDB 5NI1 chain A; ``phantom-capsid
--chain A``), 128³ at 1.5 Å, noise at FSC 0.143 near 4 Å (``--noise 1``) and with four times the
noise power (``--noise 2``): I in orientations ``222`` (RELION I1), ``2n5`` and ``n25`` (RELION I3),
O, T, D7, and 60 copies at random (no symmetry); the ``localsharp phantom`` of the chain alone (no
symmetry) and of the whole tetramer (the deposited model has a two-fold along z through the box
centre: C2); the real EMD-3488 map at 3.2 Å.  For each: the group found, its score (weakest
operator CC), the margin over the threshold, the next higher candidate and its score, "sure", the
seconds of the correlations, and whether the expected group was found.  The expected group is the
truth for the phantoms (for EMD-3488: C2, see docs).

Scale (``scale``): an icosahedral capsid phantom of the whole tetramer (orientation 2n5) of
``--sizes`` (default 256 and 512) at 1.1 Å; ``localsharp symmetry MAP --resolution 3.5`` runs as a
subprocess while /proc is sampled every 0.1 s: wall time, peak RSS (with the pages of the
memory-mapped map) and peak anonymous memory (what the process really holds).

Run: ``python benchmarks/quality_symmetry.py [detect] [scale] [--sizes 256 512 1024] [--cache DIR]``;
prints the tables and writes ``benchmarks/results/symmetry.json`` (parts merged with an existing file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, print_table, write_json  # noqa: E402
from _proctree import TreeSampler, machine, parse_status  # noqa: E402

import localsharp  # noqa: E402
from localsharp.capsid import capsid_phantom  # noqa: E402
from localsharp.maps.model import read_model  # noqa: E402
from localsharp.phantom import phantom  # noqa: E402
from localsharp.symmetry.detect import COMPARE_FACTOR, SURE_MARGIN, THRESHOLD, detect_symmetry  # noqa: E402

MODEL = ROOT / "tests" / "data" / "emd3488_haemoglobin" / "model_5ni1.cif"
EMD3488 = ROOT / "tests" / "data" / "emd3488_haemoglobin" / "map.mrc"
OUT = RESULTS / "symmetry.json"
#: name -> (phantom-capsid keywords, expected group name)
CAPSIDS = {
    "I 222": (dict(symmetry="I"), "I (222)"),
    "I 2n5": (dict(symmetry="I", orientation="2n5"), "I (2n5)"),
    "I3 (n25)": (dict(symmetry="I3"), "I (n25)"),
    "O": (dict(symmetry="O", radius_fraction=0.3), "O"),
    "T": (dict(symmetry="T", radius_fraction=0.25), "T (222)"),
    "D7": (dict(symmetry="D7", radius_fraction=0.3), "D7"),
    "random 60": (dict(copies=60), "C1"),
}


def cases(cache: Path) -> list[tuple[str, Path, float, str]]:
    """(name, map, resolution, expected group) of every detection case, phantoms made if absent."""
    out = []
    for noise in (1.0, 2.0):
        for name, (kwargs, expected) in CAPSIDS.items():
            path = cache / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}_noise{noise:g}.mrc"
            if not path.exists():
                capsid_phantom(MODEL, path, size=128, voxel=1.5, resolution=4.0, chain="A", noise=noise,
                               overwrite=True, **kwargs)
            out.append((f"{name}, noise {noise:g}", path, 4.0, expected))
    for label, chain, expected in (("phantom chain A", "A", "C1"), ("phantom tetramer", None, "C2")):
        directory = cache / label.replace(" ", "_")
        if not (directory / "full_map.mrc").exists():
            structure = read_model(MODEL) if chain is None else _chain(chain)
            phantom(structure, directory, voxel=1.0, resolution=3.5, overwrite=True)
        out.append((label, directory / "full_map.mrc", 3.5, expected))
    out.append(("EMD-3488 (real)", EMD3488, 3.2, "C2"))
    return out


def _chain(name: str):
    structure = read_model(MODEL)
    for index in reversed(range(len(structure[0]))):
        if structure[0][index].name != name:
            del structure[0][index]
    return structure


def detect(cache: Path) -> dict:
    rows, records = [], []
    for name, path, resolution, expected in cases(cache):
        density = localsharp.read_map(path)
        report = detect_symmetry(density.data, density.voxel_size, resolution,
                                 first_voxel=density.first_voxel_position)
        runner = report.runner_up
        found = report.group_name
        score = report.chosen.score if report.chosen is not None else max(s.score for s in report.scores)
        rows.append([name, expected, found, "yes" if found == expected else "NO", round(score, 3),
                     round(report.margin, 3), f"{runner.group.name} {runner.score:.3f}" if runner else "-",
                     "sure" if report.sure else "not sure", round(report.seconds, 1)])
        records.append({"case": name, "map": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name),
                        "resolution": resolution, "expected": expected, "right": found == expected,
                        **report.to_dict()})
        print(" ", rows[-1], flush=True)
    print_table(["case", "truth", "found", "right", "score", "margin", "next higher (or best)", "sure", "s"], rows)
    return {"threshold": THRESHOLD, "sure_margin": SURE_MARGIN, "compare_factor": COMPARE_FACTOR,
            "cases": records}


def _sample_run(cmd: list[str]) -> tuple[int, float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = TreeSampler(proc.pid)
    peak_rss = peak_anon = 0
    while proc.poll() is None:
        sampler.sample()
        try:
            status = parse_status(Path(f"/proc/{proc.pid}/status").read_text())
            peak_rss, peak_anon = max(peak_rss, status.get("VmRSS", 0)), max(peak_anon, status.get("RssAnon", 0))
        except OSError:
            pass
        time.sleep(0.1)
    output = proc.stdout.read() if proc.stdout else ""
    wall = time.perf_counter() - t0
    return proc.returncode, wall, {"peak_rss_mib": round(peak_rss / 1024, 1), "peak_anon_mib": round(peak_anon / 1024, 1),
                                   "output_last_line": output.strip().splitlines()[-1] if output.strip() else ""}


def scale(cache: Path, sizes: list[int]) -> dict:
    rows, records = [], {}
    for size in sizes:
        path = cache / f"icosahedral_2n5_{size}.mrc"
        if not path.exists():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "localsharp", "phantom-capsid", str(MODEL), "--symmetry", "I",
                            "--symmetry-orientation", "2n5", "--size", str(size), "--voxel", "1.1", "--output",
                            str(path), "--overwrite"], check=True)
            print(f"  made {path.name} in {time.perf_counter() - t0:.0f} s", flush=True)
        status, wall, memory = _sample_run([sys.executable, "-m", "localsharp", "symmetry", str(path),
                                            "--resolution", "3.5"])
        records[str(size)] = {"map_mib": round(path.stat().st_size / 2**20, 1), "status": status,
                              "wall_s": round(wall, 1), **memory}
        rows.append([f"{size}³", records[str(size)]["map_mib"], status, round(wall, 1), memory["peak_rss_mib"],
                     memory["peak_anon_mib"], memory["output_last_line"][:70]])
    print_table(["map", "MiB", "exit", "wall s", "peak RSS MiB", "peak anon MiB", "verdict"], rows)
    return {"sizes": records, "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", default=["detect", "scale"], choices=["detect", "scale"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/localsharp_symmetry_bench"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    content = json.loads(OUT.read_text()) if OUT.exists() else {}
    content.pop("date", None), content.pop("machine", None)
    if "detect" in args.parts:
        content["detect"] = detect(args.cache)
    if "scale" in args.parts:
        old, new = content.get("scale", {}), scale(args.cache, args.sizes)
        new["sizes"] = {**old.get("sizes", {}), **new["sizes"]}
        content["scale"] = new
    content["benchmark"] = "localsharp symmetry: detection on phantoms and EMD-3488; time and memory at scale"
    write_json(OUT.name, content)


if __name__ == "__main__":
    main()
