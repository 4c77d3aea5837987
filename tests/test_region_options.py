"""The options of the analysis region, the blur and low-resolution rules and the assembly phantoms do what
their help says (each checked by its effect on the output or the summary, as tests/test_option_effects.py).

The hollow map is a small octahedral shell of spike-NTD copies made by ``localsharp phantom``, so the
phantom options are run by the same commands."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

import localsharp
from localsharp.cli import main

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data"
SPIKE_MODEL = DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
HB_MAP = DATA / "emd3488_haemoglobin" / "map.mrc"
HB_MODEL = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"


def _sharpen(out: Path, map_path: Path, resolution: str, *extra: str) -> dict:
    assert main(["sharpen", str(map_path), "--resolution", resolution, "--output-dir", str(out), "-q", *extra]) == 0
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def hollow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 spike-NTD copies by O on a 60 Å sphere, noise set by the masked FSC at 4 Å."""
    out = tmp_path_factory.mktemp("hollow") / "ph"
    assert main(["phantom", str(SPIKE_MODEL), "--output-dir", str(out), "--layout", "point_group", "--symmetry", "O",
                 "--radius", "60", "--voxel", "1.5", "--resolution", "4", "--b-edge", "120", "--noise-reference",
                 "molecule"]) == 0
    return out


def test_point_group_layout_places_the_group_copies_at_the_radius(hollow: Path) -> None:
    model = gemmi.read_structure(str(hollow / "model_b0.cif"))
    chains = list(model[0])
    assert len(chains) == 24  # --symmetry O: 24 copies of the one-chain protomer
    centres = np.array([np.mean([a.pos.tolist() for r in c for a in r], axis=0) for c in chains])
    middle = centres.mean(axis=0)
    radii = np.linalg.norm(centres - middle, axis=1)
    assert np.allclose(radii, radii[0], atol=0.5) and abs(radii[0] - 60.0) < 1.0  # --radius 60 Å


def test_noise_reference_molecule_sets_the_noise_by_the_masked_fsc(hollow: Path, tmp_path: Path) -> None:
    masked_fsc = json.loads((hollow / "phantom.json").read_text())
    out = tmp_path / "box"
    assert main(["phantom", str(SPIKE_MODEL), "--output-dir", str(out), "--layout", "point_group", "--symmetry", "O",
                 "--radius", "60", "--voxel", "1.5", "--resolution", "4", "--b-edge", "120"]) == 0
    whole_box = json.loads((out / "phantom.json").read_text())
    assert masked_fsc["parameters"]["noise_reference"] == "molecule"
    assert whole_box["parameters"]["noise_reference"] == "box"
    # the shell fills a few % of the box: the whole box's FSC is dragged down by its solvent, so the same
    # FSC measured inside the molecule (as resolutions are reported) allows more noise
    assert masked_fsc["noise_sigma"] > 1.5 * whole_box["noise_sigma"]


def test_molecule_boxes_sets_how_many_boxes_the_score_is_taken_on(hollow: Path, tmp_path: Path) -> None:
    two = _sharpen(tmp_path / "two", hollow / "full_map.mrc", "4", "--molecule-boxes", "2")
    whole = _sharpen(tmp_path / "whole", hollow / "full_map.mrc", "4", "--molecule-boxes", "0")
    assert two["box"]["method"] == "molecule_boxes" and len(two["box"]["boxes_zyx"]) == 2
    assert whole["box"]["method"] == "whole_map"


def test_low_resolution_gain_bounds_the_b_sharpen_grid(tmp_path: Path) -> None:
    for gain in (1.5, 3.0):
        summary = _sharpen(tmp_path / f"g{gain}", HB_MAP, "6", "--low-resolution-gain", str(gain))
        grid = [t["b_sharpen"] for t in summary["trials"] if t.get("method", "b_iso_to_d_cut") == "b_iso_to_d_cut"]
        bound = 4 * 36 * np.log(gain)
        assert max(abs(b) for b in grid) == pytest.approx(bound, abs=0.2)


def test_keep_blur_applies_the_blurring_pick(tmp_path: Path) -> None:
    default = _sharpen(tmp_path / "least", HB_MAP, "3.2")
    kept = _sharpen(tmp_path / "kept", HB_MAP, "3.2", "--keep-blur")
    assert default["method"] == "no_sharpening" and default["b_sharpen"] == 0.0  # its plateau reaches 0
    assert kept["method"] == "b_iso_to_d_cut" and kept["b_sharpen"] < -5.0


def test_filament_layout_chains_rise_and_twist(tmp_path: Path) -> None:
    out = tmp_path / "fil"
    assert main(["phantom", str(HB_MODEL), "--output-dir", str(out), "--layout", "filament", "--chains", "A",
                 "--copies", "4", "--rise", "30", "--twist", "90", "--radius", "20", "--voxel", "2",
                 "--resolution", "6", "--noise", "0"]) == 0
    model = gemmi.read_structure(str(out / "model_b0.cif"))
    chains = list(model[0])
    assert len(chains) == 4  # one chain (A) per copy
    centres = np.array([np.mean([a.pos.tolist() for r in c for a in r], axis=0) for c in chains])
    steps = np.diff(centres[:, 2])
    assert np.allclose(np.abs(steps), 30.0, atol=0.05)  # --rise along z
    xy = centres[:, :2] - centres[:, :2].mean(axis=0)  # four copies 90° apart: their centroid is on the axis
    angles = np.degrees(np.arctan2(xy[:, 1], xy[:, 0]))
    turn = (np.diff(angles) + 180) % 360 - 180
    assert np.allclose(np.abs(turn), 90.0, atol=2.0)  # --twist between neighbours


def test_masked_writes_the_full_map_zero_away_from_the_model(tmp_path: Path) -> None:
    zeros = {}
    for label, extra in (("plain", []), ("masked", ["--masked"])):
        out = tmp_path / label
        assert main(["phantom", str(HB_MODEL), "--output-dir", str(out), "--voxel", "2", "--resolution", "6",
                     "--padding", "20", *extra]) == 0
        zeros[label] = float(np.mean(localsharp.read_map(out / "full_map.mrc").data == 0))
    assert zeros["plain"] < 0.01 and zeros["masked"] > 0.3
