"""Capsid phantoms: Gaussian atoms, placement, determinism, hollowness, header, atomic writes, CLI."""

from __future__ import annotations

import json
import math

import mrcfile
import numpy as np
import pytest

import localsharp
from localsharp.capsid import (Atoms, block_density, capsid_phantom, copy_b_factors, fibonacci_sphere,
                               random_rotations)
from localsharp.cli import main
from localsharp.errors import ConfigError, OutputError
from localsharp.kernels.noisefield import blur_kernel, noise_block


@pytest.mark.slow
def test_one_gaussian_atom_has_its_weight_and_shape():
    b, weight, voxel = 50.0, 6.0, 0.4
    alpha = 4 * math.pi**2 / b
    amplitude = weight * (4 * math.pi / b) ** 1.5
    reach = 3.5 * math.sqrt(b / (8 * math.pi**2))
    centre = np.array([[8.13, 7.91, 8.37]])
    atoms = Atoms(centre, np.array([amplitude]), np.array([alpha]), np.array([reach]))
    block = block_density(atoms, (0, 0, 0), (40, 40, 40), voxel)
    assert block.sum() * voxel**3 == pytest.approx(weight, rel=0.01)  # 3.5 sigma keeps > 99 %
    k, j, i = 20, 21, 19
    r2 = float(np.sum((np.array([i, j, k]) * voxel - centre[0]) ** 2))
    assert block[k, j, i] == pytest.approx(amplitude * math.exp(-alpha * r2), rel=1e-5)
    assert block[0, 0, 0] == 0.0  # beyond the reach


@pytest.mark.slow
def test_block_offsets_agree_with_the_full_grid():
    rng = np.random.default_rng(3)
    xyz = np.sort(rng.uniform(2, 20, (50, 3)), axis=0)
    xyz = xyz[np.argsort(xyz[:, 2])]
    atoms = Atoms(np.ascontiguousarray(xyz), np.ones(50), np.full(50, 1.5), np.full(50, 3.0))
    full = block_density(atoms, (0, 0, 0), (20, 20, 20), 1.1)
    part = block_density(atoms, (7, 3, 5), (6, 9, 8), 1.1)
    np.testing.assert_allclose(part, full[7:13, 3:12, 5:13], rtol=1e-6, atol=1e-7)


def test_placement_helpers():
    points = fibonacci_sphere(500)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0)
    assert np.abs(points.mean(axis=0)).max() < 0.01  # evenly spread
    rot = random_rotations(20, np.random.default_rng(0))
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0)
    centres = np.array([[0, 0, -10.0], [0, 0, 10.0], [10, 0, 0]])
    np.testing.assert_allclose(copy_b_factors(centres, np.zeros(3), 10.0, 40, 160), [40, 160, 100])


def _map_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.slow
def test_same_seed_same_file_whatever_the_slab(tmp_path, emd3488_model):
    a = capsid_phantom(emd3488_model, tmp_path / "a.mrc", size=64, seed=5, slab=7)
    b = capsid_phantom(emd3488_model, tmp_path / "b.mrc", size=64, seed=5, slab=64)
    c = capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=64, seed=6)
    data_a, data_b, data_c = (_map_bytes(r.map_path)[1024:] for r in (a, b, c))
    assert data_a == data_b
    assert data_a != data_c
    assert a.summary["copies"] == b.summary["copies"] != c.summary["copies"]


@pytest.mark.slow
def test_hollow_shell_with_empty_corners(tmp_path, emd3488_model):
    result = capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=128, noise=0.0)
    data = localsharp.read_map(result.map_path).data
    c = 64
    assert result.summary["hollow_radius_A"] > 15
    assert np.all(data[c - 5:c + 6, c - 5:c + 6, c - 5:c + 6] == 0)  # the interior is solvent
    assert data[0, 0, 0] == data[-1, -1, -1] == 0  # so are the corners
    radius = np.sqrt(np.sum(((np.indices(data.shape) - c) * 1.1) ** 2, axis=0))
    shell = data[np.abs(radius - result.summary["radius_A"]) < 8]
    assert np.mean(shell > 0.05 * data.max()) > 0.4  # the shell is densely covered
    assert data[radius > result.summary["radius_A"] + 45].max() == 0
    assert result.summary["n_copies"] >= 10 and result.summary["noise_sigma"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("b_blur", [0.0, 40.0])
def test_noise_level_in_the_solvent(tmp_path, emd3488_model, b_blur):
    result = capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=128, seed=1, b_blur=b_blur)
    data = localsharp.read_map(result.map_path).data
    sigma, white = result.summary["noise_sigma"], result.summary["noise_sigma_white"]
    assert 0 < sigma <= white and (sigma == white) == (b_blur == 0)
    corners = np.concatenate([data[z, y, x].ravel() for z in (slice(0, 20), slice(-20, None))
                              for y in (slice(0, 20), slice(-20, None)) for x in (slice(0, 20), slice(-20, None))])
    assert corners.std() == pytest.approx(sigma, rel=0.05)
    assert abs(corners.mean()) < 0.05 * sigma


def test_blurred_noise_is_one_periodic_volume():
    kernel = blur_kernel(40.0, 1.1)
    assert kernel.sum() == pytest.approx(1.0) and len(kernel) % 2 == 1
    whole = noise_block(3, 0, 12, 12, 1.0, kernel)
    parts = np.concatenate([noise_block(3, z0, 4, 12, 1.0, kernel) for z0 in (0, 4, 8)])
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-6)
    white = noise_block(3, 0, 12, 12, 1.0, np.ones(1))
    from scipy.ndimage import gaussian_filter
    sigma_vox = math.sqrt(40.0 / (8 * math.pi**2)) / 1.1
    np.testing.assert_allclose(whole, gaussian_filter(white, sigma_vox, mode="wrap"), rtol=1e-4, atol=1e-5)


def test_header_geometry_and_statistics(tmp_path, emd3488_model):
    result = capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=48, voxel=1.2, resolution=3.5, seed=2)
    density = localsharp.read_map(result.map_path)
    assert density.shape_xyz == (48, 48, 48)
    np.testing.assert_allclose(density.voxel_size, 1.2, rtol=1e-6)
    assert density.origin == (0.0, 0.0, 0.0) and density.nstart == (0, 0, 0)
    assert density.cell_grid == (48, 48, 48) and density.axis_order == (1, 2, 3)
    with mrcfile.open(result.map_path, permissive=False) as mrc:
        header = mrc.header
        data = mrc.data.astype(np.float64)
        assert int(header.mode) == 2 and int(header.ispg) == 1
        assert float(header.dmin) == pytest.approx(data.min()) and float(header.dmax) == pytest.approx(data.max())
        assert float(header.dmean) == pytest.approx(data.mean(), rel=1e-5, abs=1e-7)
        assert float(header.rms) == pytest.approx(data.std(), rel=1e-5)
        assert b"capsid phantom" in bytes(header.label[0])
    sidecar = json.loads(result.json_path.read_text())
    assert sidecar["parameters"]["size"] == 48 and len(sidecar["copies"]) == sidecar["n_copies"]


def test_existing_outputs_are_kept_and_a_failed_run_leaves_nothing(tmp_path, emd3488_model):
    first = capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=32)
    before = _map_bytes(first.map_path)
    with pytest.raises(OutputError, match="already exists"):
        capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=32, seed=9)
    assert _map_bytes(first.map_path) == before

    def interrupt(done, total):
        if done < total:
            raise RuntimeError("stopped after the first slab")

    with pytest.raises(RuntimeError):
        capsid_phantom(emd3488_model, tmp_path / "d.mrc", size=32, slab=8, progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.mrc"]  # no d.*, no temporaries


def test_bad_parameters_are_refused(tmp_path, emd3488_model):
    with pytest.raises(ConfigError, match="radius fraction"):
        capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=32, radius_fraction=0.6)
    with pytest.raises(ConfigError, match="uncompressed"):
        capsid_phantom(emd3488_model, tmp_path / "c.mrc.gz", size=32)
    with pytest.raises(ConfigError, match="Nyquist"):
        capsid_phantom(emd3488_model, tmp_path / "c.mrc", size=32, voxel=2.0, resolution=3.5)


def test_cli(tmp_path, emd3488_model, capsys):
    out = tmp_path / "cap.mrc"
    assert main(["phantom-capsid", str(emd3488_model), "--size", "32", "--copies", "3", "--output", str(out)]) == 0
    assert "3 copies" in capsys.readouterr().out
    assert localsharp.read_map(out).shape_xyz == (32, 32, 32)
    assert main(["phantom-capsid", str(emd3488_model), "--size", "32", "--b-min", "90", "--b-max", "10",
                 "--output", str(tmp_path / "x.mrc")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("localsharp phantom-capsid: error:") and "b_min" in err and "\n" not in err
    assert main(["phantom-capsid", str(tmp_path / "missing.cif"), "--output", str(tmp_path / "y.mrc")]) == 2
    assert "missing.cif" in capsys.readouterr().err


def test_symmetric_noise_is_symmetric_at_the_same_level(tmp_path, emd3488_model):
    """--symmetric-noise: the noise is averaged over the group (as in a reconstruction with imposed
    symmetry) at the same sd, so the mates correlate as in the noise-free map; the plain noise does not."""
    from localsharp.symmetry import parse_symmetry
    from localsharp.symmetry.detect import check_group
    from localsharp.symmetry.groups import rotation
    from localsharp.kernels.symmetrise_jit import rotation_average_periodic

    common = dict(size=64, voxel=1.4, radius_fraction=0.3, resolution=4.0, symmetry="O", seed=2)
    maps = {}
    for name, extra in (("plain", {}), ("sym", {"symmetric_noise": True}), ("free", {"noise": 0.0})):
        result = capsid_phantom(emd3488_model, tmp_path / f"{name}.mrc", **common, **extra)
        maps[name] = localsharp.read_map(result.map_path)
    assert json.loads((tmp_path / "sym.json").read_text())["parameters"]["symmetric_noise"] is True
    noise_plain, noise_sym = (maps[k].data - maps["free"].data for k in ("plain", "sym"))
    assert noise_sym.std() == pytest.approx(noise_plain.std(), rel=0.01)
    # the same power in every Fourier shell up to the resolution (the level is set for an FSC there)
    def shell_power(a: np.ndarray) -> np.ndarray:
        f = np.abs(np.fft.rfftn(a)) ** 2
        k = [np.fft.fftfreq(64) * 64] * 2 + [np.fft.rfftfreq(64) * 64]
        r = np.rint(np.sqrt(k[0][:, None, None] ** 2 + k[1][None, :, None] ** 2 + k[2][None, None, :] ** 2))
        return np.bincount(r.astype(int).ravel(), weights=f.ravel())[1:int(64 * 1.4 / 4.0) + 1]
    np.testing.assert_allclose(shell_power(noise_sym), shell_power(noise_plain), rtol=0.02)
    assert abs(np.corrcoef(noise_sym.ravel(), noise_plain.ravel())[0, 1]) < 0.5  # averaged, not the same field
    group = parse_symmetry("O")
    scores = {k: check_group(m.data, m.voxel_size, group, 4.0).score for k, m in maps.items()}
    assert scores["sym"] > 0.99 and scores["plain"] < scores["sym"] - 0.02, scores
    # the kernel: a field already symmetric under a four-fold about z stays itself; the average commutes
    field = np.random.default_rng(0).standard_normal((8, 8, 8)).astype(np.float32)
    four = np.stack([rotation((0, 0, 1), k * np.pi / 2) for k in range(4)])
    centre = np.array([3.5, 3.5, 3.5])  # the grid centre: quarter turns map voxels onto voxels
    once = rotation_average_periodic(field, centre, four)
    np.testing.assert_allclose(rotation_average_periodic(once, centre, four), once, atol=1e-5)
    np.testing.assert_allclose(once, np.mean([np.rot90(field, k, axes=(1, 2)) for k in range(4)], axis=0), atol=1e-5)
    with pytest.raises(ConfigError, match="needs a symmetry"):
        capsid_phantom(emd3488_model, tmp_path / "x.mrc", size=64, symmetric_noise=True)


def test_cli_symmetric_noise_makes_the_whole_map_symmetric(tmp_path, emd3488_model, capsys):
    """``phantom-capsid --symmetric-noise``: the map's mates correlate as if there were no noise."""
    from localsharp.symmetry import parse_symmetry
    from localsharp.symmetry.detect import check_group

    common = ["--size", "64", "--voxel", "1.4", "--radius-fraction", "0.3", "--resolution", "4", "--symmetry", "O",
              "--seed", "3"]
    scores = {}
    for name, extra in (("plain", []), ("sym", ["--symmetric-noise"])):
        path = tmp_path / f"{name}.mrc"
        assert main(["phantom-capsid", str(emd3488_model), "--output", str(path), *common, *extra]) == 0
        m = localsharp.read_map(path)
        scores[name] = check_group(m.data, m.voxel_size, parse_symmetry("O"), 4.0).score
    assert "(symmetric)" in capsys.readouterr().out
    assert json.loads((tmp_path / "sym.json").read_text())["parameters"]["symmetric_noise"] is True
    assert scores["sym"] > 0.99 and scores["sym"] > scores["plain"] + 0.02, scores
