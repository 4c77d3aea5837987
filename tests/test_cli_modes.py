"""The half-map and model modes through the command line: outputs, shell table, clean failures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from localsharp.cli import main
from localsharp.maps.mrc import read_map, write_map
from localsharp.phantom import phantom

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory: pytest.TempPathFactory):
    """A coarse (1.5 Å voxels) haemoglobin phantom, quick to sharpen."""
    return phantom(DATA / "emd3488_haemoglobin" / "model_5ni1.cif", tmp_path_factory.mktemp("ph"), voxel=1.5,
                   resolution=4.0, noise=1.0, seed=4)


@pytest.mark.slow
def test_half_map_cli_writes_every_output_with_a_shell_table(small_phantom, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc = main(["sharpen", "--half-maps", str(small_phantom.paths["half_map_1"]), str(small_phantom.paths["half_map_2"]),
               "--resolution", "4.0", "--output-dir", str(out)])
    assert rc == 0
    for name in ("sharpened_map.ccp4", "shifted_sharpened_map.ccp4", "sharpened_map_coeffs.mtz", "summary.json",
                 "amplitudes.png", "fsc.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "score_vs_b.png").exists()  # no search in half-map mode: no empty score plot
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "half_map" and summary["method"] == "half_map_sharpening"
    shells = summary["shells"]
    assert len(shells) >= 5
    assert all(np.isfinite(row["scale"]) and row["scale"] >= 0 for row in shells)
    assert all(0.0 <= row["cc_star"] <= 1.0 for row in shells)
    assert "half_map_sharpening" in capsys.readouterr().out
    sharpened = read_map(out / "sharpened_map.ccp4")
    assert sharpened.origin == small_phantom.full_map.origin and sharpened.shape == small_phantom.full_map.shape


@pytest.mark.slow
def test_mismatched_half_maps_fail_cleanly(small_phantom, tmp_path: Path, capsys) -> None:
    moved = dataclasses.replace(small_phantom.half_map_2, voxel_size=(1.6, 1.6, 1.6))
    bad = write_map(tmp_path / "moved.mrc", moved)
    out = tmp_path / "out"
    rc = main(["sharpen", "--half-maps", str(small_phantom.paths["half_map_1"]), str(bad), "--resolution", "4.0",
               "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "moved.mrc" in err and "half_map_1" in err and "voxel" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_model_cli_reports_model_shells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = main(["sharpen", str(DATA / "emd21457_spike_ntd" / "map_segment.mrc"), "--model",
               str(DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"), "--resolution", "3.2",
               "--output-dir", str(out), "-q"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "model" and summary["method"] == "model_sharpening"
    assert all(np.isfinite(row["scale"]) and row["scale"] >= 0 for row in summary["shells"])
    assert (out / "fsc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_half_map_mode_reports_the_equivalent_b_of_its_factors_and_no_search(small_phantom, tmp_path: Path,
                                                                            capsys) -> None:
    from localsharp import half_map_sharpen
    from localsharp.sharpening.shellscale import equivalent_b

    out = tmp_path / "out"
    h1, h2 = str(small_phantom.paths["half_map_1"]), str(small_phantom.paths["half_map_2"])
    assert main(["sharpen", "--half-maps", h1, h2, "--resolution", "4.0", "--output-dir", str(out)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    b = summary["equivalent_b_sharpen"]
    assert b is not None and abs(b) > 1.0  # the factors sharpen: not the 0.0 of "no B applied"
    assert summary["b_sharpen"] == b and summary["shell_scale"]["equivalent_b_sharpen"] == b
    assert f"equivalent b_sharpen (Å²)   {b:.1f}" in text
    assert "region weight" not in text and "target B_iso" not in text and "signal-to-noise" not in text
    assert "scale factors" in text and f"d_min {summary['d_min']:.2f} Å" in text
    assert summary["values"]["rescaled"] and summary["values"]["output"]["sd"] == pytest.approx(1.0, abs=1e-3)
    # the API says the same: b_sharpen of a shell table is its equivalent B, not 0
    result = half_map_sharpen(None, h1, h2, 4.0)
    assert result.sharpening.b_sharpen == pytest.approx(b, abs=1e-6)
