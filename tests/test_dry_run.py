"""``localsharp local --dry-run``: the run's plan and estimates, and nothing written."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from localsharp.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOUR_MAP = ROOT / "tests" / "data" / "emd3488_haemoglobin" / "map.mrc"
BOXES = re.compile(r"(\d+) in the grid: (\d+) to be searched, (\d+) skipped by the coarse mask")


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _dry(capsys, argv: list[str]) -> tuple[str, tuple[int, int, int]]:
    assert main(argv + ["--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    match = BOXES.search(captured.out)
    assert match, captured.out
    return captured.out, tuple(int(v) for v in match.groups())  # type: ignore[return-value]


def _real(summary_path: Path) -> tuple[int, int, int]:
    s = json.loads(summary_path.read_text())
    return s["n_boxes"], s["boxes_searched"], s["boxes_skipped_by_mask"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["model_free", "half_maps"])
def test_the_dry_run_counts_the_boxes_of_the_real_run_and_writes_nothing(tmp_path: Path, capsys, mode: str) -> None:
    if mode == "model_free":
        inputs = [str(TOUR_MAP)]
        resolution = "3.2"
    else:  # no MAP: the mean of the half maps, as the real run makes it
        from localsharp.phantom import phantom

        ph = phantom(ROOT / "tests" / "data" / "emd3488_haemoglobin" / "model_5ni1.cif", tmp_path / "ph", voxel=1.5,
                     resolution=4.0, seed=1)
        inputs = ["--half-maps", str(ph.paths["half_map_1"]), str(ph.paths["half_map_2"])]
        resolution = "4.0"
    out = tmp_path / "out"
    before = _listing(tmp_path)
    argv = ["local", *inputs, "--resolution", resolution, "--in-process", "--output-dir", str(out)]
    text, planned = _dry(capsys, argv)
    assert _listing(tmp_path) == before, "the dry run wrote something"
    for label in ("memory per worker", "disk", "time", "tasks"):
        assert f"  {label}" in text
    assert main(argv + ["-q"]) == 0
    assert planned == _real(out / "local_summary.json")
    # with the run's store in place the counts come from it, and are the same
    again, from_store = _dry(capsys, argv)
    assert "from the run store" in again and from_store == planned


@pytest.mark.slow
def test_the_dry_run_of_a_symmetric_run_counts_the_boxes_it_searches(tmp_path: Path, capsys) -> None:
    """With ``--symmetry`` the plan searches the boxes of one asymmetric unit, as the run does, and says
    how many take their mates' outcomes, in fewer search tasks; ``auto`` counts every box."""
    from localsharp.capsid import capsid_phantom

    c4 = tmp_path / "c4.mrc"
    capsid_phantom(ROOT / "tests" / "data" / "emd3488_haemoglobin" / "model_5ni1.cif", c4, size=96, voxel=1.4,
                   radius_fraction=0.22, resolution=4.0, symmetry="C4", chain="A")
    out = tmp_path / "out"
    argv = ["local", str(c4), "--resolution", "4", "--in-process", "--output-dir", str(out),
            "--box-size", "24", "--stride", "12", "--chunk", "32"]
    plain_text, plain = _dry(capsys, argv)
    text, planned = _dry(capsys, argv + ["--symmetry", "C4"])
    auto_text, auto = _dry(capsys, argv + ["--symmetry", "auto"])
    assert not out.exists()
    mates = re.search(r"symmetry\s+C4: the boxes of one asymmetric unit are searched, (\d+) take their mates' "
                      r"outcomes; (\d+) renders of their copies", text)
    assert mates, text
    assert main(argv + ["--symmetry", "C4", "-q"]) == 0
    summary = json.loads((out / "local_summary.json").read_text())
    assert planned == _real(out / "local_summary.json")
    assert int(mates.group(1)) == summary["symmetry"]["boxes_from_mates"]
    assert planned[1] < plain[1] / 3 and auto == plain and "auto: the group is found when the run starts" in auto_text

    def tasks(t: str) -> int:
        return int(re.search(r"(\d+) search tasks", t).group(1))  # type: ignore[union-attr]

    assert tasks(text) < tasks(plain_text)


@pytest.mark.slow
def test_the_dry_run_of_a_slurm_run_prints_the_job_script(tmp_path: Path, capsys) -> None:
    from localsharp.engine.cluster.slurm import have_jobqueue

    if not have_jobqueue():
        pytest.skip("dask-jobqueue builds the job script")
    out = tmp_path / "out"
    text, _ = _dry(capsys, ["local", str(TOUR_MAP), "--resolution", "3.2", "--cluster", "slurm", "--jobs", "3",
                            "--cores", "2", "--memory", "4GB", "--output-dir", str(out)])
    assert "#!/usr/bin/env bash" in text or "#SBATCH" in text
    assert "SLURM: 3 job(s) × 2 worker process(es), 4GB per job" in text and "on 6 worker(s)" in text
    assert not out.exists()


def test_the_dry_run_refuses_what_the_run_refuses(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["local", str(TOUR_MAP), "--resolution", "1.0", "--output-dir", str(out), "--dry-run"]) == 2
    assert "Nyquist" in capsys.readouterr().err and not out.exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
