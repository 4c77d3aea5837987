"""Phantom maps with a known truth (localsharp.phantom) and the ``phantom`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from localsharp.cli import phantom as phantom_cli
from localsharp.errors import ConfigError, InputFileError, OutputError
from localsharp.evaluate import evaluate_map
from localsharp.maps.model import atom_positions, read_model
from localsharp.maps.mrc import read_map
from localsharp.phantom import OUTPUT_NAMES, phantom, phantom_box, radial_b_factors

# Small and fast: 30 residues of one chain, 1.5 Å voxels, FSC target 4 Å.
SMALL = dict(voxel=1.5, resolution=4.0, padding=6.0)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Residues 1-30 of chain A of PDB 5NI1 (about 230 atoms), written as mmCIF."""
    here = Path(__file__).resolve().parent
    structure = read_model(here / "data" / "emd3488_haemoglobin" / "model_5ni1.cif")
    structure.remove_ligands_and_waters()
    model = structure[0]
    for name in [chain.name for chain in model if chain.name != "A"]:
        model.remove_chain(name)
    chain = model["A"]
    for i in reversed(range(len(chain))):
        if chain[i].seqid.num > 30:
            del chain[i]
    structure.setup_entities()
    path = tmp_path_factory.mktemp("model") / "small.cif"
    structure.make_mmcif_document().write_file(str(path))
    return path


@pytest.fixture(scope="module")
def made(small_model: Path, tmp_path_factory: pytest.TempPathFactory):
    return phantom(small_model, tmp_path_factory.mktemp("phantom") / "out", seed=7, **SMALL)


def test_writes_every_file_and_they_read_back(made) -> None:
    assert set(made.paths) == set(OUTPUT_NAMES)
    for key in ("signal", "half_map_1", "half_map_2", "full_map"):
        on_disk = read_map(made.paths[key])
        in_memory = getattr(made, key)
        assert np.array_equal(on_disk.data, in_memory.data)
        assert on_disk.first_voxel_position == in_memory.first_voxel_position
        assert on_disk.voxel_size == pytest.approx((1.5, 1.5, 1.5))
    summary = json.loads(made.paths["json"].read_text())
    assert summary["parameters"] == {"voxel": 1.5, "b_core": 20.0, "b_edge": 200.0, "resolution": 4.0,
                                     "noise": 1.0, "padding": 6.0, "seed": 7, "noise_reference": "box",
                                     "masked": False}
    assert summary["fsc_0143_resolution"] == pytest.approx(made.fsc_resolution)
    assert summary["noise_sigma"] == pytest.approx(made.noise_sigma)
    assert len(summary["fsc_curve"]["d"]) == len(summary["fsc_curve"]["fsc"]) > 5


def test_box_is_origin_positioned_around_the_model(made, small_model: Path) -> None:
    positions = atom_positions(read_model(small_model))
    signal = made.signal
    start = np.asarray(signal.first_voxel_position)
    end = start + np.asarray(signal.box_lengths)
    assert signal.nstart == (0, 0, 0) and signal.origin == signal.first_voxel_position
    assert np.all(positions.min(axis=0) - start >= 6.0 - 1e-3)  # padding on every side
    assert np.all(end - positions.max(axis=0) >= 6.0 - 1e-3)
    assert all(n % 2 == 0 for n in signal.shape)


def test_half_maps_are_signal_plus_independent_noise(made) -> None:
    signal = made.signal.data
    noise_1 = made.half_map_1.data - signal
    noise_2 = made.half_map_2.data - signal
    assert np.std(noise_1) == pytest.approx(made.noise_sigma, rel=0.02)
    assert abs(np.corrcoef(noise_1.ravel(), noise_2.ravel())[0, 1]) < 0.02
    assert np.allclose(made.full_map.data, 0.5 * (made.half_map_1.data + made.half_map_2.data), atol=1e-6)


def test_fsc_crosses_near_the_requested_resolution(made) -> None:
    assert made.fsc_resolution == pytest.approx(4.0, rel=0.1)


def test_models_written_with_zero_and_phantom_b(made, small_model: Path) -> None:
    original = read_model(small_model)
    b0 = read_model(made.paths["model_b0"])
    used = read_model(made.paths["model_phantom_b"])
    positions = atom_positions(original)
    assert np.allclose(atom_positions(b0), positions, atol=1e-3)  # original frame, unshifted
    assert np.allclose(atom_positions(used), positions, atol=1e-3)
    assert all(cra.atom.b_iso == 0.0 for cra in b0[0].all())
    b_used = np.array([cra.atom.b_iso for cra in used[0].all()])
    assert b_used.min() >= 20.0 - 0.01 and b_used.max() == pytest.approx(200.0, abs=0.01)
    assert np.allclose(b_used, radial_b_factors(positions, 20.0, 200.0), atol=0.01)


def test_radial_b_factors_by_hand() -> None:
    positions = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [-2.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # centroid (0.25, 0, 0): distances 0.25, 1.75, 2.25, 0.75 -> fractions of 2.25
    expected = 10.0 + 90.0 * np.array([0.25, 1.75, 2.25, 0.75]) / 2.25
    assert np.allclose(radial_b_factors(positions, 10.0, 100.0), expected)


def test_signal_correlates_with_the_b0_model(made) -> None:
    # Only the periphery is blurred (B up to 200), so the truth stays close to the B=0 model at 4 Å.
    truth = evaluate_map(made.signal, made.paths["model_b0"], 4.0)
    noisy = evaluate_map(made.half_map_1, made.paths["model_b0"], 4.0)
    assert truth["cc_mask"] > 0.7
    assert noisy["cc_mask"] < truth["cc_mask"]


def test_same_seed_same_maps_other_seed_other_noise(made, small_model: Path, tmp_path: Path) -> None:
    again = phantom(small_model, tmp_path / "again", seed=7, **SMALL)
    assert np.array_equal(again.half_map_1.data, made.half_map_1.data)
    assert np.array_equal(again.half_map_2.data, made.half_map_2.data)
    assert again.paths["json"].read_text() == made.paths["json"].read_text()
    other = phantom(small_model, tmp_path / "other", seed=8, **SMALL)
    assert np.array_equal(other.signal.data, made.signal.data)
    assert not np.array_equal(other.half_map_1.data, made.half_map_1.data)


def test_more_noise_lowers_the_resolution(small_model: Path, tmp_path: Path) -> None:
    noisy = phantom(small_model, tmp_path / "noisy", noise=3.0, seed=1, **SMALL)
    assert noisy.fsc_resolution > 4.4
    clean = phantom(small_model, tmp_path / "clean", noise=0.0, seed=1, **SMALL)
    assert clean.fsc_resolution is None and clean.noise_sigma == 0.0
    assert np.array_equal(clean.half_map_1.data, clean.signal.data)


def test_existing_outputs_are_refused_unless_overwrite(small_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "signal.mrc").write_bytes(b"keep me")
    with pytest.raises(OutputError, match="signal.mrc"):
        phantom(small_model, out, **SMALL)
    assert (out / "signal.mrc").read_bytes() == b"keep me"
    assert sorted(p.name for p in out.iterdir()) == ["signal.mrc"]  # nothing else written
    result = phantom(small_model, out, overwrite=True, **SMALL)
    assert read_map(result.paths["signal"]).shape == result.signal.shape
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_output_dir_that_is_a_file(small_model: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="not a directory"):
        phantom(small_model, blocker, **SMALL)


def test_bad_parameters(small_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Nyquist"):
        phantom(small_model, tmp_path / "a", voxel=2.0, resolution=3.5)
    with pytest.raises(ConfigError, match="noise"):
        phantom(small_model, tmp_path / "b", noise=-1.0, **SMALL)
    with pytest.raises(ConfigError, match="voxel"):
        phantom(small_model, tmp_path / "c", voxel=0.0)
    with pytest.raises(InputFileError, match="no such file"):
        phantom(tmp_path / "absent.cif", tmp_path / "d", **SMALL)
    assert not any(tmp_path.iterdir())  # nothing created before the inputs are known to be good


def test_phantom_box_by_hand() -> None:
    box = phantom_box(np.array([[0.0, 0.0, 0.0], [10.0, 4.0, 1.0]]), voxel=1.0, padding=2.0)
    # extents 14, 8, 5 Å -> 15, 9, 6 voxels -> even FFT sizes 16, 10, 6
    assert box.shape_xyz == (16, 10, 6)
    assert box.first_voxel_position == pytest.approx((5.0 - 8.0, 2.0 - 5.0, 0.5 - 3.0))


def test_accepts_a_structure(small_model: Path, tmp_path: Path) -> None:
    structure = read_model(small_model)
    result = phantom(structure, tmp_path / "s", seed=7, **SMALL)
    assert isinstance(structure, gemmi.Structure) and result.fsc_resolution is not None


# ------------------------------------------------------------------ command
def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="localsharp phantom")
    phantom_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_writes_and_summarises(small_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = [str(small_model), "--output-dir", str(out), "--voxel", "1.5", "--resolution", "4",
            "--padding", "6", "--seed", "3", "--b-core", "30", "--b-edge", "120", "--noise", "1.0"]
    assert phantom_cli.run(_parse(argv)) == 0
    text = capsys.readouterr().out
    assert "FSC=0.143 at" in text and "half_map_1" in text
    summary = json.loads((out / "phantom.json").read_text())
    assert summary["parameters"]["b_core"] == 30.0 and summary["parameters"]["seed"] == 3
    with pytest.raises(OutputError):
        phantom_cli.run(_parse(argv))
    assert phantom_cli.run(_parse(argv + ["--overwrite"])) == 0
