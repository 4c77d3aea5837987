"""The analysis region of a symmetric map: molecule boxes in one asymmetric unit when the map's copies are the same.

A map reconstructed with its symmetry imposed has symmetric noise: the boxes of one asymmetric unit see all it
holds.  A map whose copies differ keeps the boxes over the whole map (their copies average the score's noise).
"""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from localsharp.config import SharpenOptions
from localsharp.engine.overall.driver import overall_pass
from localsharp.maps.mrc import read_map
from localsharp.maps.store import RunStore
from localsharp.modes.model_free import global_sharpen
from localsharp.sharpening import region
from localsharp.sharpening.box import select_profiles
from localsharp.symmetry.groups import parse_symmetry
from localsharp.tiling.occupancy import block_counts
from localsharp.tiling.symmetric import BoxSymmetry

N = 64


def _placed(name: str, n: int = N, voxel: float = 1.0) -> BoxSymmetry:
    """``name`` about voxel n/2 of an n³ map whose first voxel sits at the origin."""
    return BoxSymmetry(parse_symmetry(name, None), (n / 2 * voxel,) * 3, (0.0, 0.0, 0.0), (voxel,) * 3)


def _apply(values: np.ndarray, matrix: np.ndarray, centre: float) -> np.ndarray:
    """``values`` at ``M·(i − c) + c`` for every voxel ``i`` (M a signed permutation in z y x; 0 outside)."""
    idx = np.indices(values.shape).reshape(3, -1).astype(np.float64)
    j = np.rint(matrix @ (idx - centre) + centre).astype(np.int64)
    ok = np.all((j >= 0) & (j < values.shape[0]), axis=0)
    out = np.zeros(values.size, dtype=values.dtype)
    out[ok] = values[tuple(j[:, ok])]
    return out.reshape(values.shape)


def _symmetrised(values: np.ndarray, name: str, centre: float) -> np.ndarray:
    """The mean of ``values`` over every operator of ``name`` (all exact on the grid for O and D2 in 222)."""
    group = parse_symmetry(name, None)
    return np.mean([_apply(values, m[::-1, ::-1], centre) for m in group.matrices], axis=0).astype(np.float32)


def _shell_map(symmetric_noise: bool, seed: int = 0) -> np.ndarray:
    """Blobs on a hollow sphere (symmetric under O about voxel N/2) plus noise, symmetrised or not."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices((N,) * 3, dtype=np.float32) - N / 2
    r = np.sqrt(z**2 + y**2 + x**2)
    shell = ((np.abs(r - 22.0) < 3.0) * (1.0 + 0.5 * np.cos(0.7 * x) * np.cos(0.7 * y) * np.cos(0.7 * z)))
    signal = _symmetrised(shell.astype(np.float32), "O", N / 2)
    noise = rng.normal(0.0, 0.6, signal.shape).astype(np.float32)
    if symmetric_noise:
        noise = _symmetrised(noise, "O", N / 2) * np.float32(np.sqrt(24.0))
    return signal + noise


@pytest.mark.parametrize("name", ["C2", "C4", "D7", "T", "O", "I"])
def test_an_exact_copy_of_a_box_lines_up_with_the_box_in_a_symmetric_map(name: str) -> None:
    placed = _placed(name)
    exact = placed.exact_operator()
    assert exact is not None, f"{name} about voxel N/2 has an operator on the voxel grid"
    matrix, shift = exact
    assert sorted(np.abs(matrix).sum(axis=0).tolist()) == [1, 1, 1] and not np.array_equal(matrix, np.eye(3))
    rng = np.random.default_rng(1)
    values = rng.normal(size=(N,) * 3).astype(np.float32)
    symmetric = sum(_apply(values, np.linalg.matrix_power(matrix, k), N / 2) for k in range(12))  # 12: a whole number of turns of a 2-, 3- or 4-fold
    bounds = ((20, 35), (24, 40), (22, 30))
    mate = placed.exact_mate(bounds, (N,) * 3)
    assert mate is not None
    mate_bounds, align = mate
    assert mate_bounds != bounds or name == "C2"
    box = symmetric[tuple(slice(a, b) for a, b in bounds)]
    copy = align(symmetric[tuple(slice(a, b) for a, b in mate_bounds)])
    inner = (slice(3, -3),) * 3  # away from voxels whose copies left the map in the sum above
    np.testing.assert_allclose(copy[inner], box[inner], rtol=1e-5, atol=1e-5)
    # and the copy of an unsymmetric map does not line up
    assert np.corrcoef(align(values[tuple(slice(a, b) for a, b in mate_bounds)]).ravel(),
                       values[tuple(slice(a, b) for a, b in bounds)].ravel())[0, 1] < 0.5


def test_no_exact_copy_without_an_operator_on_the_grid() -> None:
    assert _placed("C3").exact_operator() is None  # a three-fold about z moves voxels between grid points
    shifted = BoxSymmetry(parse_symmetry("C2", None), (32.3, 32.0, 32.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert shifted.exact_operator() is None  # a centre neither on a voxel nor halfway between two
    assert _placed("C4").exact_mate(((0, 10), (0, 10), (50, 64)), (N,) * 3) is None  # its copy leaves the map


def _region(data: np.ndarray, symmetry: BoxSymmetry | None):
    faces, profiles = select_profiles(data)
    counts = block_counts(np.abs(data) > 0.8, 8)
    return region.choose_region(data.shape, (1.0, 1.0, 1.0), select=(faces, profiles), counts=counts, block=8,
                                box_size=(16, 16, 16), buffer=2, symmetry=symmetry,
                                read=lambda b: data[tuple(slice(a, c) for a, c in b)])


@pytest.mark.slow
def test_a_symmetrised_hollow_map_is_analysed_in_one_asymmetric_unit() -> None:
    data = _shell_map(symmetric_noise=True)
    plain = _region(data, None)
    asu = _region(data, _placed("O"))
    assert plain.method == asu.method == "molecule_boxes"
    assert 1 <= len(asu.all_boxes) < len(plain.all_boxes)
    assert "copies are the same" in asu.reason
    centres = np.array([[(a + b) / 2 for a, b in bounds] for bounds in asu.all_boxes])
    assert _placed("O").voxels_in_asu(centres, margin=8.0).all()


@pytest.mark.slow
def test_a_hollow_map_whose_copies_differ_keeps_the_boxes_over_the_whole_map() -> None:
    data = _shell_map(symmetric_noise=False)
    plain = _region(data, None)
    chosen = _region(data, _placed("O"))
    assert chosen.all_boxes == plain.all_boxes
    assert "copies differ" in chosen.reason
    # a group with no operator on the grid cannot be checked: the whole map's boxes too
    unchecked = _region(_shell_map(symmetric_noise=True), BoxSymmetry(parse_symmetry("C2", None), (32.3, 32.0, 32.0),
                                                                      (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    assert "boxes over the whole map" in unchecked.reason


@pytest.mark.slow
def test_both_overall_paths_take_the_same_asymmetric_unit(tmp_path) -> None:
    path = tmp_path / "symmetrised_shell.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(_shell_map(symmetric_noise=True))
        mrc.voxel_size = 1.0
    density = read_map(path)
    placed = _placed("O")
    options = SharpenOptions(resolution=4.0, box_size=(20, 20, 20))
    in_memory = global_sharpen(density, 4.0, options=options, symmetry=placed)
    assert in_memory.box.method == "molecule_boxes" and "copies are the same" in in_memory.box.reason
    store = tmp_path / "run.zarr"
    RunStore.create(str(store), {}, density.shape, (32, 32, 32))
    summary = overall_pass(None, str(path), str(store), options, distributed=True, symmetry=placed)
    assert summary["box"]["reason"] == in_memory.box.reason
    assert summary["box"].get("boxes_zyx", [summary["box"]["bounds_zyx"]]) == \
        [[list(b) for b in box] for box in in_memory.box.all_boxes]
    assert summary["b_sharpen"] == pytest.approx(in_memory.sharpening.b_sharpen, abs=0.5)
    assert len(global_sharpen(density, 4.0, options=options).box.all_boxes) > len(in_memory.box.all_boxes)
