"""Half-map and model-based sharpening end to end (localsharp.modes) on real files."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from localsharp import modes
from localsharp.api import global_sharpen
from localsharp.errors import InputFileError
from localsharp.evaluate import evaluate_map, pearson
from localsharp.kernels.fourier import lowpass
from localsharp.maps.density import DensityMap
from localsharp.maps.atom_masks import atom_mask
from localsharp.maps.model import model_map, read_model
from localsharp.maps.mrc import read_map, write_map
from localsharp.phantom import phantom

PHANTOM_RESOLUTION = 3.5


@pytest.fixture(scope="module")
def hb_phantom(tmp_path_factory: pytest.TempPathFactory):
    """Haemoglobin phantom (80×96×90 voxels of 1 Å, B 20→200 Å², FSC 0.143 at 3.5 Å)."""
    model = Path(__file__).resolve().parent / "data" / "emd3488_haemoglobin" / "model_5ni1.cif"
    return phantom(model, tmp_path_factory.mktemp("phantom"), voxel=1.0, resolution=PHANTOM_RESOLUTION,
                   noise=1.0, seed=0)


def _write(path: Path, density: DensityMap) -> Path:
    write_map(path, density)
    return path


class _Evaluator:
    """evaluate_map's cc_mask with the model map and mask computed once."""

    def __init__(self, density: DensityMap, model: Path, resolution: float) -> None:
        structure = read_model(model)
        self.resolution = resolution
        self.calculated = model_map(structure, density, resolution=resolution, b_factor=0.0)
        self.mask = atom_mask(structure, density, 3.0)

    def __call__(self, density: DensityMap) -> float:
        observed = lowpass(density.data, density.voxel_size_zyx, self.resolution, density.cell_angles)
        return pearson(observed, self.calculated, self.mask)  # type: ignore[return-value]


# ------------------------------------------------------------------ quality
@pytest.mark.slow
def test_half_map_sharpening_beats_every_single_b_on_a_phantom(hb_phantom) -> None:
    res = PHANTOM_RESOLUTION
    full = hb_phantom.full_map
    cc = _Evaluator(full, hb_phantom.paths["model_b0"], res)
    assert cc(full) == pytest.approx(evaluate_map(full, hb_phantom.paths["model_b0"], res)["cc_mask"], abs=1e-9)
    result = modes.half_map_sharpen(None, hb_phantom.half_map_1, hb_phantom.half_map_2, res)
    cc_half = cc(result.map)

    def cc_b(b: float) -> float:
        return cc(global_sharpen(full, res, b_sharpen=float(b), methods=("b_iso",)).map)

    scan = {b: cc_b(b) for b in range(0, 201, 25)}
    best = max(scan, key=scan.get)
    scan.update({b: cc_b(b) for b in range(best - 20, best + 21, 5) if b not in scan})
    best_single_b = max(scan.values())
    cc_auto = cc(global_sharpen(full, res).map)
    assert cc_half >= best_single_b - 0.01, (cc_half, best_single_b)
    assert cc_half >= cc_auto, (cc_half, cc_auto)
    assert cc_half > cc(full) + 0.05


@pytest.mark.slow
def test_model_sharpening_beats_model_free_on_emd3488(emd3488_map: Path, emd3488_model: Path) -> None:
    density = read_map(emd3488_map)
    result = modes.model_sharpen(density, emd3488_model, 3.2)
    cc_model = evaluate_map(result.map, emd3488_model, 3.2)["cc_mask"]
    cc_free = evaluate_map(global_sharpen(density, 3.2).map, emd3488_model, 3.2)["cc_mask"]
    cc_input = evaluate_map(density, emd3488_model, 3.2)["cc_mask"]
    assert cc_model >= cc_free and cc_model >= cc_input, (cc_model, cc_free, cc_input)
    assert result.mode == "model" and result.sharpening.method == "model_sharpening"
    shell_scale = result.shell_scale
    assert shell_scale["b_eff"] == pytest.approx(8 * math.pi * 0.8**2)
    assert shell_scale["fraction_complete"] > 0.5
    summary = json.loads(json.dumps(result.summary()))
    assert summary["mode"] == "model" and len(summary["shells"]) == 20
    assert {"d", "cc", "cc_corrected", "rms_fo", "rms_fc", "scale"} <= set(summary["shells"][0])
    assert max(row["scale"] for row in summary["shells"]) == pytest.approx(1.0)


# ----------------------------------------------------------- half-map I/O
@pytest.mark.slow
def test_half_maps_from_files_and_explicit_map(hb_phantom, tmp_path: Path) -> None:
    res = PHANTOM_RESOLUTION
    h1 = _write(tmp_path / "h1.mrc", hb_phantom.half_map_1)
    h2 = _write(tmp_path / "h2.mrc", hb_phantom.half_map_2)
    full = _write(tmp_path / "full.mrc", hb_phantom.full_map)
    from_files = modes.half_map_sharpen(full, h1, h2, res)
    in_memory = modes.half_map_sharpen(None, hb_phantom.half_map_1, hb_phantom.half_map_2, res)
    assert np.allclose(from_files.map.data, in_memory.map.data, atol=1e-4)
    assert from_files.map.origin == hb_phantom.full_map.origin and from_files.map.shape == hb_phantom.full_map.shape
    assert from_files.mode == "half_map" and from_files.sharpening.method == "half_map_sharpening"
    assert from_files.box.method == "half_map_mask" and from_files.box.used
    rows = json.loads(json.dumps(from_files.shells))
    assert {"d", "fsc", "cc_star", "rms_fo", "scale", "n"} <= set(rows[0])
    assert rows[0]["fsc"] > 0.9 and rows[-1]["cc_star"] < 0.5
    assert 60 < from_files.shell_scale["b_signal"] < 160
    assert abs(float(np.mean(from_files.map.data))) < 1e-3 and float(np.std(from_files.map.data)) == pytest.approx(1, abs=1e-3)


@pytest.mark.slow
def test_half_map_mask_options(hb_phantom, tmp_path: Path) -> None:
    res = PHANTOM_RESOLUTION
    h1, h2 = hb_phantom.half_map_1, hb_phantom.half_map_2
    unmasked = modes.half_map_sharpen(None, h1, h2, res, mask=False)
    assert not unmasked.box.used
    binary = atom_mask(read_model(hb_phantom.paths["model_b0"]), h1, 6.0)
    mask_path = _write(tmp_path / "mask.mrc", h1.with_data(binary.astype(np.float32)))
    given = modes.half_map_sharpen(None, h1, h2, res, mask=mask_path)
    assert given.box.method == "given_mask"
    # masking raises the measured FSC near the resolution (solvent noise is left out)
    i = next(i for i, row in enumerate(unmasked.shells) if row["d"] < res)
    assert given.shells[i]["fsc"] > unmasked.shells[i]["fsc"] + 0.1
    empty = _write(tmp_path / "empty.mrc", h1.with_data(np.zeros(h1.shape, np.float32)))
    with pytest.raises(InputFileError, match="empty.mrc"):
        modes.half_map_sharpen(None, h1, h2, res, mask=empty)


@pytest.mark.slow
def test_identical_noise_free_halves_are_accepted(hb_phantom) -> None:
    signal = hb_phantom.signal
    result = modes.half_map_sharpen(None, signal, signal, PHANTOM_RESOLUTION, mask=False, reference="flat")
    assert all(row["fsc"] == pytest.approx(1.0, abs=1e-5) for row in result.shells)
    rms = np.array([row["rms_fo"] for row in result.shells])
    expected = (rms[0] / rms) / np.max(rms[0] / rms)  # pure whitening
    assert np.allclose([row["scale"] for row in result.shells], expected, rtol=1e-4)
    assert np.all(np.isfinite(result.map.data))


@pytest.mark.parametrize("change, what", [
    (dict(data=np.random.default_rng(0).standard_normal((80, 96, 88)).astype(np.float32)), "grid"),
    (dict(voxel_size=(1.05, 1.05, 1.05)), "voxel size"),
    (dict(origin=(0.0, 0.0, 0.0)), "position"),
])
def test_mismatched_half_maps_are_refused(hb_phantom, tmp_path: Path, change: dict, what: str) -> None:
    h1 = _write(tmp_path / "half_A.mrc", hb_phantom.half_map_1)
    h2 = _write(tmp_path / "half_B.mrc", dataclasses.replace(hb_phantom.half_map_2, **change))
    with pytest.raises(InputFileError, match=what) as info:
        modes.half_map_sharpen(None, h1, h2, PHANTOM_RESOLUTION)
    assert "half_A.mrc" in str(info.value) and "half_B.mrc" in str(info.value)
    with pytest.raises(InputFileError, match=what) as info:  # the map against the halves
        modes.half_map_sharpen(h2, h1, h1, PHANTOM_RESOLUTION)
    assert "half_A.mrc" in str(info.value) and "half_B.mrc" in str(info.value)


def test_position_by_nstart_equals_position_by_origin(hb_phantom) -> None:
    by_origin = dataclasses.replace(hb_phantom.half_map_1, origin=(10.0, 20.0, 30.0), nstart=(0, 0, 0))
    by_nstart = dataclasses.replace(hb_phantom.half_map_2, origin=(0.0, 0.0, 0.0), nstart=(10, 20, 30))
    modes.check_same_grid(by_origin, "h1", by_nstart, "h2")  # same placement (1 Å voxels): accepted
    shifted = dataclasses.replace(by_nstart, nstart=(11, 20, 30))
    with pytest.raises(InputFileError, match="nstart"):
        modes.check_same_grid(by_origin, "h1", shifted, "h2")


# ------------------------------------------------------------------- model
@pytest.mark.slow
def test_model_with_hydrogens_and_charges(spike_map: Path, spike_model: Path, tmp_path: Path) -> None:
    lines = [line for line in spike_model.read_text().splitlines() if line.startswith(("ATOM", "HETATM"))]
    first = lines[0]
    x, y, z = (float(first[30 + 8 * i: 38 + 8 * i]) for i in range(3))
    extra = [
        f"ATOM  99998  H   ALA Z   1    {x + 1.0:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           H",
        f"HETATM99999  O1  SO4 Z   2    {x:8.3f}{y + 1.5:8.3f}{z:8.3f}  1.00 30.00           O1-",
    ]
    path = tmp_path / "with_h.pdb"
    path.write_text("\n".join(lines + extra + ["END"]) + "\n")
    result = modes.model_sharpen(spike_map, path, 3.2)
    assert np.all(np.isfinite(result.map.data))
    assert result.applicable["value"] and len(result.shells) == 20
    assert evaluate_map(result.map, spike_model, 3.2)["cc_mask"] > evaluate_map(read_map(spike_map), spike_model, 3.2)["cc_mask"]


def test_empty_and_missing_models_name_the_file(spike_map: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdb"
    empty.write_text("HEADER    NOTHING\nEND\n")
    with pytest.raises(InputFileError, match="empty.pdb"):
        modes.model_sharpen(spike_map, empty, 3.2)
    with pytest.raises(InputFileError, match="missing.cif"):
        modes.model_sharpen(spike_map, tmp_path / "missing.cif", 3.2)


def test_model_outside_the_map_names_the_file(spike_map: Path, spike_model: Path, tmp_path: Path) -> None:
    far = tmp_path / "far_away.pdb"
    out = []
    for line in spike_model.read_text().splitlines():
        if line.startswith(("ATOM", "HETATM")):
            line = line[:30] + f"{float(line[30:38]) + 900.0:8.3f}" + line[38:]
        out.append(line)
    far.write_text("\n".join(out) + "\n")
    with pytest.raises(InputFileError, match="far_away.pdb") as info:
        modes.model_sharpen(spike_map, far, 3.2)
    assert "outside the map" in str(info.value)


@pytest.mark.slow
def test_fast_atom_mask_brackets_the_exact_mask(emd3488_map: Path, emd3488_model: Path) -> None:
    density = read_map(emd3488_map)
    structure = read_model(emd3488_model)
    half_diagonal = 0.5 * math.sqrt(3) * max(density.voxel_size)
    fast = modes.atom_ball_mask(structure, density, 3.0)
    inner = atom_mask(structure, density, 3.0 - half_diagonal)
    outer = atom_mask(structure, density, 3.0 + half_diagonal)
    assert np.all(fast[inner]) and not np.any(fast[~outer])
    exact = atom_mask(structure, density, 3.0)
    assert np.count_nonzero(fast ^ exact) < 0.1 * np.count_nonzero(exact)
    # the default model mask: 2 × resolution, soft edge (Gaussian σ = resolution) without wrap-around
    soft = modes.soften_mask(modes.atom_ball_mask(structure, density, 6.4), density.voxel_size_zyx, 3.2)
    assert soft.max() == pytest.approx(1.0) and soft.min() >= 0.0
    assert np.all(soft[exact] > 0.5)
    assert np.all(soft[~modes.atom_ball_mask(structure, density, 6.4 + 4 * 3.2)] < 0.01)


@pytest.mark.slow
def test_incomplete_model_leaves_the_map_unscaled(emd3488_map: Path, emd3488_model: Path) -> None:
    result = modes.model_sharpen(emd3488_map, emd3488_model, 3.2, fraction_complete=0.01)
    assert all(row["scale"] == 1.0 for row in result.shells)
    assert result.applicable["value"] is False and "completeness" in result.applicable["reason"]
