"""Symmetric phantoms and the detection of a map's point group, orientation and centre checks."""

from __future__ import annotations

import json
import math

import gemmi
import numpy as np
import pytest

import localsharp
from localsharp.capsid import capsid_phantom, radial_b_factors
from localsharp.cli import main
from localsharp.errors import ConfigError
from localsharp.symmetry import parse_symmetry
from localsharp.symmetry.asu import in_asu
from localsharp.symmetry.detect import (THRESHOLD, bin_map, check_group, choose, detect_symmetry,
                                        operator_correlations, prepare, score_group)
from localsharp.symmetry.groups import rotation

SIZE, VOXEL, RESOLUTION = 64, 3.0, 8.0
#: Blur enough for 3 Å voxels: an unblurred atom is narrower than a voxel and aliases (not symmetric on the grid).
B_BLUR = 100.0


def tripod() -> gemmi.Structure:
    """A tiny asymmetric protomer: three arms of 4, 6 and 9 carbon atoms, 3.8 Å apart, from one atom."""
    structure, model, chain = gemmi.Structure(), gemmi.Model("1"), gemmi.Chain("A")
    structure.name = "tripod"
    points = [np.zeros(3)]
    for n, direction in ((4, (1, 0, 0)), (6, (0, 1, 0.3)), (9, (-0.4, -0.2, 1))):
        d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
        points += [d * 3.8 * (k + 1) for k in range(n)]
    for i, p in enumerate(points):
        residue, atom = gemmi.Residue(), gemmi.Atom()
        residue.name, residue.seqid = "GLY", gemmi.SeqId(i + 1, " ")
        atom.name, atom.element, atom.pos, atom.occ, atom.b_iso = "CA", gemmi.Element("C"), gemmi.Position(*p), 1.0, 20
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


def make(path, noise=1.0, b_blur=B_BLUR, **kwargs):
    return capsid_phantom(tripod(), path, size=SIZE, voxel=VOXEL, resolution=RESOLUTION, radius_fraction=0.32,
                          b_blur=b_blur, noise=noise, **kwargs)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """Noisy 64³ phantoms of the tripod: I (222), I (2n5), O, D7 and 30 random copies."""
    root = tmp_path_factory.mktemp("symmetric")
    specs = {"I (222)": dict(symmetry="I"), "I (2n5)": dict(symmetry="I", orientation="2n5"),
             "O": dict(symmetry="O"), "D7": dict(symmetry="D7"), "C1": dict(copies=30)}
    return {name: make(root / f"{i}.mrc", **kw).map_path for i, (name, kw) in enumerate(specs.items())}


def _detect(path, **kwargs):
    density = localsharp.read_map(path)
    return detect_symmetry(density.data, density.voxel_size, RESOLUTION, first_voxel=density.first_voxel_position,
                           **kwargs)


# ------------------------------------------------------------------ phantoms
def test_symmetric_phantom_sidecar_and_radial_b(tmp_path):
    result = make(tmp_path / "d7.mrc", symmetry="D7", noise=0.0)
    s = json.loads(result.json_path.read_text())
    sym = s["symmetry"]
    assert s["n_copies"] == 14 == sym["order"] and sym["symbol"] == "D7" and sym["relion_name"] == "D7"
    assert sym["centre_A"] == [96.0, 96.0, 96.0] == s["centre_A"]
    group = parse_symmetry("D7")
    np.testing.assert_allclose(np.array(sym["matrices"]), group.matrices, atol=1e-9)
    centres = np.array([c["centre"] for c in s["copies"]])
    np.testing.assert_allclose(centres, group.mates(centres[0], sym["centre_A"]), atol=1e-3)
    assert in_asu(group, centres[:1] - np.array(sym["centre_A"]))[0]  # the protomer sits in the ASU
    b = radial_b_factors(np.array([[1.0, 0, 0], [3.0, 0, 0], [0, 0, 2.0]]), np.zeros(3), 20.0, 120.0)
    np.testing.assert_allclose(b, [20.0, 120.0, 70.0])


@pytest.mark.slow
def test_noise_free_symmetric_phantom_is_symmetric_to_099(tmp_path):
    """STYLE §7: rotate a phantom by every operator, correlate with the original: ≥ 0.99 without noise."""
    for symmetry, orientation in (("I", "2n5"), ("D7", None)):
        path = make(tmp_path / f"{symmetry}.mrc", noise=0.0, symmetry=symmetry, orientation=orientation,
                    b_blur=200.0).map_path
        group = parse_symmetry(symmetry, orientation)
        density = localsharp.read_map(path)
        prepared = prepare(density.data, density.voxel_size, RESOLUTION)
        assert score_group(prepared, group).score >= 0.99


def test_half_maps_by_noise_seed_share_the_signal(tmp_path):
    a = make(tmp_path / "a.mrc", symmetry="O", seed=3)
    b = make(tmp_path / "b.mrc", symmetry="O", seed=3, noise_seed=4)
    clean = make(tmp_path / "c.mrc", symmetry="O", seed=3, noise=0.0)
    data = [localsharp.read_map(r.map_path).data.astype(np.float64) for r in (a, b, clean)]
    sigma = a.summary["noise_sigma"]
    assert a.summary["copies"] == b.summary["copies"] and b.summary["parameters"]["noise_seed"] == 4
    assert np.std(data[0] - data[2]) == pytest.approx(sigma, rel=0.1)  # a = signal + its noise
    assert np.std(data[0] - data[1]) == pytest.approx(math.sqrt(2) * sigma, rel=0.1)  # independent noise
    assert "noise_seed" not in a.summary["parameters"]


def test_symmetric_phantom_refuses_bad_options(tmp_path):
    with pytest.raises(ConfigError, match="copies cannot be set with a symmetry: O places 24 copies"):
        make(tmp_path / "x.mrc", symmetry="O", copies=5)
    with pytest.raises(ConfigError, match="an orientation needs a symmetry"):
        make(tmp_path / "x.mrc", orientation="2n5")
    with pytest.raises(ConfigError, match="C0 has no meaning"):
        make(tmp_path / "x.mrc", symmetry="C0")
    with pytest.raises(ConfigError, match="no chain 'Q'"):
        make(tmp_path / "x.mrc", symmetry="C3", chain="Q")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------- detection
def test_binning_is_block_means_read_in_slabs():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(13, 10, 9)).astype(np.float32)
    whole = bin_map(data, (3, 2, 4))
    assert whole.shape == (3, 5, 3)
    np.testing.assert_allclose(whole[1, 2, 0], data[4:8, 4:6, 0:3].mean(), rtol=1e-5)
    np.testing.assert_allclose(bin_map(data, (3, 2, 4), slab_bytes=1), whole, rtol=1e-6)


def test_kernel_agrees_with_map_coordinates(phantoms):
    density = localsharp.read_map(phantoms["I (2n5)"])
    prepared = prepare(density.data, density.voxel_size, RESOLUTION, n_points=3000)
    group = parse_symmetry("I", "2n5")
    cc = operator_correlations(prepared, [group])
    for m in group.matrices[1::7]:
        assert cc[tuple(np.round(m, 5).ravel() + 0.0)] == pytest.approx(prepared.correlation(m), abs=1e-6)
    np.testing.assert_allclose(prepared.rotated(np.eye(3)), prepared.reference, atol=1e-5)


@pytest.mark.slow
def test_check_group_catches_a_wrong_orientation(phantoms):
    density = localsharp.read_map(phantoms["I (2n5)"])
    args = (density.data, density.voxel_size)
    right = check_group(*args, parse_symmetry("I", "2n5"), RESOLUTION, n_points=5000)
    wrong = check_group(*args, parse_symmetry("I", "2n5r"), RESOLUTION, n_points=5000)
    assert right.passed and right.score > THRESHOLD + 0.1
    assert not wrong.passed and wrong.class_cc["5-fold"] < 0.3
    assert set(right.class_cc) == {"5-fold", "3-fold", "2-fold"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["I (222)", "I (2n5)", "O", "D7", "C1"])
def test_detection_names_the_group_and_orientation(phantoms, name):
    report = _detect(phantoms[name])
    assert report.group_name == name
    assert report.sure
    if name != "C1":
        assert report.chosen.score > THRESHOLD + 0.1
        assert report.runner_up is None or report.runner_up.score < THRESHOLD - 0.1
    content = report.to_dict()
    assert content["symmetry"] == name and len(content["candidates"]) == 33
    json.dumps(content)


def test_detection_on_a_few_candidates_is_fast_and_right(phantoms):
    groups = [parse_symmetry(g, o) for g, o in (("C2", None), ("D2", None), ("D7", None), ("D14", None), ("I", None))]
    report = _detect(phantoms["D7"], groups=groups, n_points=5000)
    assert report.group_name == "D7" and report.sure
    assert [s.passed for s in report.scores] == [False, False, True, False, False]


@pytest.mark.slow
def test_real_haemoglobin_map_is_c2(emd3488_map):
    """EMD-3488 was reconstructed with a two-fold along z about voxel 50: C2, CC 1.0; no D2 along x and y."""
    density = localsharp.read_map(emd3488_map)
    report = detect_symmetry(density.data, density.voxel_size, 3.2, max_order=6)
    assert report.group_name == "C2" and report.sure
    assert report.chosen.score > 0.99
    d2 = next(s for s in report.scores if s.group.symbol == "D2")
    assert d2.class_cc["2-fold xy"] < 0.2


def test_choice_rules():
    def fake(symbol, score, orientation=None):
        from localsharp.symmetry.detect import GroupScore
        g = parse_symmetry(symbol, orientation)
        return GroupScore(group=g, class_cc={}, class_min={}, score=score, passed=score >= THRESHOLD)

    chosen, runner, margin, sure = choose([fake("C2", 0.9), fake("D2", 0.8), fake("C4", 0.1)])
    assert chosen.group.symbol == "D2" and runner is None and margin == pytest.approx(0.8 - THRESHOLD) and sure
    chosen, runner, _, sure = choose([fake("C2", 0.9), fake("D2", 0.8), fake("D4", 0.40)])
    assert chosen.group.symbol == "D2" and runner.group.symbol == "D4" and not sure  # D4 nearly passed
    chosen, _, _, sure = choose([fake("I", 0.8), fake("I", 0.7, "222r")])
    assert chosen.group.orientation == "222" and not sure  # two orientations pass: not sure which
    chosen, runner, margin, sure = choose([fake("C2", 0.1), fake("C3", 0.05)])
    assert chosen is None and runner.group.symbol == "C2" and margin == pytest.approx(THRESHOLD - 0.1) and sure


def test_centre_is_checked(phantoms):
    density = localsharp.read_map(phantoms["O"])
    with pytest.raises(ConfigError, match=r"^x.mrc: the symmetry centre \(500, 96, 96\) Å is outside the map"):
        prepare(density.data, density.voxel_size, RESOLUTION, centre=(500, 96, 96), source="x.mrc")
    with pytest.raises(ConfigError, match="too close to the map's edge"):
        prepare(density.data, density.voxel_size, RESOLUTION, centre=(3, 96, 96), source="x.mrc")
    # a centre given in Å follows the map's ORIGIN: the same voxel, moved by the origin
    moved = prepare(density.data, density.voxel_size, RESOLUTION, first_voxel=(10.0, 0.0, 0.0),
                    centre=(106.0, 96.0, 96.0), n_points=2000)
    np.testing.assert_allclose(moved.centre, [32, 32, 32])


def test_rotated_copy_of_a_phantom_is_found_in_the_rotated_orientation(phantoms):
    """A 2n5 map turned 180° about y is a 2n5r map (STYLE §7): the check follows the turn."""
    density = localsharp.read_map(phantoms["I (2n5)"])
    turned = np.ascontiguousarray(density.data[::-1, :, ::-1])  # (x, y, z) -> (-x, y, -z) about voxel 32 (+1 shift)
    turned = np.roll(turned, 1, axis=(0, 2))  # voxel i -> 64 - i: the turn about voxel 32 exactly
    for orientation, expected in (("2n5r", True), ("2n5", False)):
        score = check_group(turned, density.voxel_size, parse_symmetry("I", orientation), RESOLUTION,
                               n_points=4000)
        assert score.passed == expected, (orientation, score.score)
    np.testing.assert_allclose(rotation((0, 1, 0), math.pi) @ [1, 2, 3], [-1, 2, -3], atol=1e-12)


# ----------------------------------------------------------------------- CLI
def _one_line_error(capsys, argv):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_cli_bad_input_is_one_line_exit_2(phantoms, capsys):
    path = str(phantoms["O"])
    assert _one_line_error(capsys, ["symmetry", path, "--symmetry", "X5"]) == \
        "localsharp symmetry: error: unknown symmetry 'X5': use C<n>, D<n> (n ≥ 1), T, O, I, or RELION's I1–I4"
    assert _one_line_error(capsys, ["symmetry", path, "--symmetry", "C0"]) == \
        "localsharp symmetry: error: symmetry C0 has no meaning: n of C<n> must be at least 1 (C1 = no symmetry)"
    assert _one_line_error(capsys, ["symmetry", path, "--symmetry", "I", "--symmetry-orientation", "5n2"]) == \
        ("localsharp symmetry: error: unknown orientation '5n2' of I: use one of 222, 222r, 2n5, 2n5r, n25, n25r, "
         "2n3, 2n3r")
    assert _one_line_error(capsys, ["symmetry", path, "--centre", "0", "0", "999"]) == \
        (f"localsharp symmetry: error: {path}: the symmetry centre (0, 0, 999) Å is outside the map "
         f"(z 999 not in [0, 189] Å)")
    assert _one_line_error(capsys, ["symmetry", path, "--resolution", "0"]) == \
        "localsharp symmetry: error: --resolution must be a positive number of Å, got 0.0"
    assert "missing.mrc" in _one_line_error(capsys, ["symmetry", path + ".missing.mrc"])
    assert _one_line_error(capsys, ["phantom-capsid", "m.cif", "--output", "x.mrc", "--symmetry", "D0"]) == \
        "localsharp phantom-capsid: error: symmetry D0 has no meaning: n of D<n> must be at least 1 (D1 = one two-fold along x)"


def test_cli_check_prints_classes_and_verdict(phantoms, capsys, tmp_path):
    path = str(phantoms["D7"])
    out_json = tmp_path / "check.json"
    assert main(["symmetry", path, "--resolution", "8", "--symmetry", "D7", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "7-fold z" in out and "2-fold xy" in out and "D7: its mates correlate" in out
    content = json.loads(out_json.read_text())
    assert content["consistent"] is True and content["operators"]["order"] == 14
    assert main(["symmetry", path, "--resolution", "8", "--symmetry", "D14"]) == 0
    assert "D14: its mates do NOT correlate" in capsys.readouterr().out
    before = out_json.read_text()
    assert _one_line_error(capsys, ["symmetry", path, "--symmetry", "D14", "--json", str(out_json)]) == \
        f"localsharp symmetry: error: {out_json}: already exists; use --overwrite to replace it"
    assert out_json.read_text() == before
    assert main(["symmetry", path, "--symmetry", "D14", "--json", str(out_json), "--overwrite"]) == 0
    assert json.loads(out_json.read_text())["consistent"] is False


@pytest.mark.slow
def test_cli_search_prints_the_table_and_json(phantoms, capsys, tmp_path):
    out_json = tmp_path / "s.json"
    assert main(["symmetry", str(phantoms["I (222)"]), "--resolution", "8", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:5] == ["group", "orient.", "RELION", "order", "score"]
    chosen = [line for line in out[2:-2] if " * " in line]
    assert len(chosen) == 1 and chosen[0].split()[:4] == ["I", "222", "I1", "60"]
    assert out[-1].startswith("symmetry: I (222), RELION I1: weakest operator CC") and out[-1].endswith("(sure)")
    content = json.loads(out_json.read_text())
    assert content["symmetry"] == "I (222)" and content["operators"]["relion_name"] == "I1"
    assert len(content["operators"]["matrices"]) == 60


def test_python_api_on_a_path_and_a_density_map(phantoms):
    path = phantoms["D7"]
    groups = [localsharp.parse_symmetry(g) for g in ("C7", "D7", "D14")]
    report = localsharp.find_symmetry(path, RESOLUTION, groups=groups)
    assert isinstance(report, localsharp.SymmetryReport) and report.group_name == "D7"
    density = localsharp.read_map(path)
    assert localsharp.check_symmetry(density, "D7", RESOLUTION).passed
    assert not localsharp.check_symmetry(density, "I", RESOLUTION, orientation="2n5").passed
    with pytest.raises(ConfigError, match=r"^d7 map: the symmetry centre \(-1, 1, 1\) Å is outside"):
        localsharp.check_symmetry(density, "D7", RESOLUTION, centre=(-1, 1, 1), name="d7 map")
