"""What the command line says: warnings once with their prefix, errors on one line that say which file is
which, option and cluster mistakes, install hints, and what ``info`` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from localsharp.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOUR_MAP = ROOT / "tests" / "data" / "emd3488_haemoglobin" / "map.mrc"
MASKED = "map looks closely masked"


def _small(path: Path, shape: tuple[int, int, int], voxel: float = 1.0) -> Path:
    rng = np.random.default_rng(1)
    from scipy import ndimage

    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(ndimage.gaussian_filter(rng.standard_normal(shape), 1.5).astype(np.float32))
        mrc.voxel_size = voxel
    return path


def _one_line(capsys: pytest.CaptureFixture, argv: list[str], status: int = 2) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------ warnings
def _run(argv: list[str]) -> subprocess.CompletedProcess:
    """The program in a process of its own (its logging set up as a user's run has it)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "localsharp", *argv], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("command, where", [("sharpen", []), ("local", ["--in-process"]),
                                            ("local", ["--workers", "1"])],
                         ids=["sharpen", "local-in-process", "local-cluster"])
def test_the_masked_map_warning_is_printed_once_with_the_prefix(tmp_path: Path, command: str,
                                                                 where: list[str]) -> None:
    """On a cluster the overall pass of ``local`` runs on a worker, whose own stderr the user sees too."""
    proc = _run([command, str(TOUR_MAP), "--resolution", "3.2", "--output-dir", str(tmp_path / "o"), *where])
    assert proc.returncode == 0, proc.stderr
    said = [line for line in (proc.stderr + proc.stdout).splitlines() if MASKED in line]
    assert len(said) == 1, said
    assert said[0].split(f"localsharp {command}: ", 1)[1].startswith("warning: map looks closely masked"), said


# -------------------------------------------------------------------- errors
@pytest.mark.parametrize("command", ["sharpen", "local"])
def test_a_half_map_on_another_grid_is_named_with_its_own_grid_first(tmp_path: Path, capsys, command: str) -> None:
    h1 = _small(tmp_path / "h1.mrc", (20, 24, 28))
    h2 = _small(tmp_path / "h2.mrc", (20, 24, 30))
    out = tmp_path / "out"
    argv = [command, "--half-maps", str(h1), str(h2), "--resolution", "4", "--output-dir", str(out)]
    line = _one_line(capsys, argv)
    assert line == (f"localsharp {command}: error: {h2}: not on the grid of {h1}: grid (30, 24, 20) here, "
                    f"(28, 24, 20) in {h1} (voxels along x, y, z); half maps, map and mask must share one grid")
    assert not out.exists()


def test_a_value_argparse_cannot_read_is_one_line_with_the_help_hint(capsys) -> None:
    line = _one_line(capsys, ["sharpen", str(TOUR_MAP), "--resolution", "abc"])
    assert line == ("localsharp sharpen: error: argument --resolution: invalid float value: 'abc' "
                    "(`localsharp sharpen --help` lists the options)")


@pytest.mark.parametrize("command", ["sharpen", "local"])
def test_zero_workers_are_refused_by_both_commands(tmp_path: Path, capsys, command: str) -> None:
    out = tmp_path / "out"
    line = _one_line(capsys, [command, str(TOUR_MAP), "--resolution", "3.2", "--workers", "0", "--output-dir",
                              str(out)])
    assert line == f"localsharp {command}: error: --workers must be at least 1, got 0"
    assert not out.exists()


def test_without_dask_jobqueue_the_hint_gives_both_install_commands(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed: import and find_spec fail
    out = tmp_path / "out"
    line = _one_line(capsys, ["local", str(TOUR_MAP), "--resolution", "3.2", "--cluster", "slurm", "--output-dir",
                              str(out)])
    assert line == ("localsharp local: error: dask-jobqueue is not installed: pip install 'localsharp[slurm]' "
                    "(an installed package), or pip install \".[slurm]\" in a localsharp checkout")
    assert not out.exists()


# ---------------------------------------------------------------------- info
@pytest.mark.parametrize("kind", ["ome-zarr", "zarr"])
def test_info_reads_the_zarr_inputs_that_local_reads(tmp_path: Path, capsys, kind: str) -> None:
    from localsharp.maps.mrc import read_map
    from localsharp.maps.omezarr import create_image

    density = read_map(TOUR_MAP)
    if kind == "ome-zarr":
        path = tmp_path / "map.ome.zarr"
        create_image(path, density, (64, 64, 64))
        import zarr

        zarr.open_array(str(path / "0"), mode="r+")[...] = density.data
    else:
        import zarr

        path = tmp_path / "map.zarr"
        array = zarr.create_array(store=str(path), shape=density.shape, chunks=(50, 50, 50), dtype="float32")
        array[...] = density.data
        array.attrs["voxel_size"] = list(density.voxel_size)
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert main(["info", str(TOUR_MAP)]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert info["format"] == kind and reference["format"] == "mrc"
    for key in ("shape_xyz", "voxel_size", "first_voxel_position"):
        assert info[key] == pytest.approx(reference[key]), key
    assert info["statistics"] == pytest.approx(reference["statistics"])
