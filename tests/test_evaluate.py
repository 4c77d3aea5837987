"""The map–model quality metric (localsharp.evaluate) and the ``evaluate`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from localsharp.cli import evaluate as evaluate_cli
from localsharp.errors import ConfigError, InputFileError
from localsharp.evaluate import evaluate_map, pearson
from localsharp.maps.model import read_model
from localsharp.maps.mrc import read_map

KEYS = {"cc_mask", "cc_box", "n_mask_voxels", "n_atoms_used", "resolution", "mask_radius"}


def test_pearson_by_hand() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, np.array([1.0, -1.0, -1.0, 1.0])) == pytest.approx(0.0)
    assert pearson(a, a, np.array([True, True, False, False])) == pytest.approx(1.0)
    assert pearson(a, np.ones(4)) is None  # undefined: no variance


@pytest.mark.slow
def test_haemoglobin_map_fits_its_model(emd3488_map: Path, emd3488_model: Path) -> None:
    result = evaluate_map(read_map(emd3488_map), emd3488_model, 3.2)
    assert set(result) == KEYS
    json.dumps(result)  # plain JSON types
    assert result["n_atoms_used"] == 4579
    assert result["cc_mask"] > 0.7 and result["cc_box"] > 0.6
    assert 50_000 < result["n_mask_voxels"] < 200_000


@pytest.mark.slow
def test_structure_and_path_give_the_same_result(spike_map: Path, spike_model: Path) -> None:
    density = read_map(spike_map)
    by_path = evaluate_map(density, spike_model, 3.2)
    by_structure = evaluate_map(density, read_model(spike_model), 3.2)
    assert by_path == by_structure
    assert by_path["cc_mask"] > 0.35  # peripheral NTD, segmented map
    assert by_path["n_atoms_used"] >= 1612  # README: 1,612 of 1,615 atoms inside the box


def test_origin_positioned_map_needs_its_origin(spike_map: Path, spike_model: Path) -> None:
    # The spike segment sits at ORIGIN (162.75, 231, 204.75) Å; dropping the origin moves the box away.
    moved = read_map(spike_map).origin_shifted()
    with pytest.raises(InputFileError, match="model lies outside the map") as info:
        evaluate_map(moved, spike_model, 3.2)
    assert "model_6vyb_ntd.pdb" in str(info.value)


@pytest.mark.slow
@pytest.mark.shared
def test_rdrp_nstart_and_axis_order(rdrp_map: Path, rdrp_model: Path) -> None:
    # NSTART positioning and MAPC/MAPR/MAPS = 3/2/1; README: CC 0.81 with atomic B, 2.5 Å mask.
    result = evaluate_map(read_map(rdrp_map), rdrp_model, 2.9)
    assert result["n_atoms_used"] == 1709
    assert result["cc_mask"] > 0.55
    assert result["cc_box"] < result["cc_mask"]  # most of the map (nsp12) is not modelled


@pytest.mark.slow
def test_controls_give_no_correlation(emd3488_map: Path, emd3488_model: Path) -> None:
    density = read_map(emd3488_map)
    structure = read_model(emd3488_model)
    rolled = density.with_data(np.roll(density.data, [n // 2 for n in density.shape], axis=(0, 1, 2)))
    shifted = evaluate_map(rolled, structure, 3.2)
    assert abs(shifted["cc_mask"]) < 0.05 and abs(shifted["cc_box"]) < 0.05
    transposed = evaluate_map(density.with_data(density.data.transpose(2, 1, 0).copy()), structure, 3.2)
    assert abs(transposed["cc_mask"]) < 0.15
    assert evaluate_map(density, structure, 3.2)["cc_mask"] > 0.7


@pytest.mark.slow
def test_mask_radius_changes_the_mask(emd3488_map: Path, emd3488_model: Path) -> None:
    density = read_map(emd3488_map)
    narrow = evaluate_map(density, emd3488_model, 3.2, mask_radius=2.0)
    wide = evaluate_map(density, emd3488_model, 3.2, mask_radius=3.0)
    assert narrow["n_mask_voxels"] < wide["n_mask_voxels"]
    assert narrow["cc_box"] == wide["cc_box"]


def test_bad_options_are_config_errors(spike_map: Path, spike_model: Path) -> None:
    density = read_map(spike_map)
    with pytest.raises(ConfigError, match="resolution"):
        evaluate_map(density, spike_model, 0.0)
    with pytest.raises(ConfigError, match="mask radius"):
        evaluate_map(density, spike_model, 3.2, mask_radius=-1.0)


def test_missing_model_file(spike_map: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        evaluate_map(read_map(spike_map), tmp_path / "nothing.pdb", 3.2)


def test_empty_model_file(spike_map: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdb"
    empty.write_text("REMARK   1 NOTHING\nEND\n")
    with pytest.raises(InputFileError, match="no atoms"):
        evaluate_map(read_map(spike_map), empty, 3.2)


# ------------------------------------------------------------------ command
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="localsharp evaluate")
    evaluate_cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.slow
def test_cli_prints_json(spike_map: Path, spike_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse([str(spike_map), "--model", str(spike_model), "--resolution", "3.2", "--mask-radius", "2.5"])
    assert evaluate_cli.run(args) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = evaluate_map(read_map(spike_map), spike_model, 3.2, mask_radius=2.5)
    assert {k: printed[k] for k in KEYS} == expected


def test_cli_requires_model_and_resolution(spike_map: Path) -> None:
    with pytest.raises(SystemExit):
        _parse([str(spike_map), "--resolution", "3.2"])
    with pytest.raises(SystemExit):
        _parse([str(spike_map), "--model", "m.pdb"])


def test_cli_reports_missing_map(tmp_path: Path, spike_model: Path) -> None:
    args = _parse([str(tmp_path / "nothing.mrc"), "--model", str(spike_model), "--resolution", "3"])
    with pytest.raises(InputFileError, match="nothing.mrc"):
        evaluate_cli.run(args)
