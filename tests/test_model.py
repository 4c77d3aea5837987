"""Reading models and computing model density on a map's grid (localsharp.maps.model)."""

from __future__ import annotations

import gzip
from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from localsharp.errors import ConfigError, InputFileError
from localsharp.kernels.fourier import FourierGrid, to_coefficients
from localsharp.maps.density import DensityMap
from localsharp.maps.atom_masks import atom_mask
from localsharp.maps.model import atoms_in_box, choose_blur, model_map, oversampling, read_model
from localsharp.maps.mrc import read_map

# Hand-written: a hydrogen, a charged oxygen (O1-) and a sodium ion (NA1+), 80-column records.
SMALL_PDB = """\
HEADER    TEST MODEL
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00 20.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00 20.00           C
ATOM      3  H   ALA A   1      10.500   6.800  -6.800  1.00 20.00           H
HETATM    4  O1  SO4 B   1      13.000   5.000  -4.000  1.00 30.00           O1-
HETATM    5 NA    NA C   1      15.000   5.000  -4.000  1.00 30.00          NA1+
END
"""


def one_atom(position: tuple[float, float, float], element: str = "C", b_iso: float = 0.0) -> gemmi.Structure:
    """A structure holding a single atom (built in memory, no file)."""
    atom = gemmi.Atom()
    atom.name, atom.element, atom.occ, atom.b_iso = element, gemmi.Element(element), 1.0, b_iso
    atom.pos = gemmi.Position(*position)
    residue = gemmi.Residue()
    residue.name, residue.seqid = element, gemmi.SeqId(1, " ")
    residue.add_atom(atom)
    chain = gemmi.Chain("A")
    chain.add_residue(residue)
    model = gemmi.Model("1")
    model.add_chain(chain)
    structure = gemmi.Structure()
    structure.add_model(model)
    structure.name = "one_atom"
    return structure


def analytic_coefficients(density: DensityMap, position, element: str, b_iso: float) -> np.ndarray:
    """rfft coefficients of one atom on the map's grid: f_e(s) exp(-B s²/4) exp(-2πi s·r) / voxel volume."""
    grid = FourierGrid(density.shape, density.voxel_size_zyx)
    sx, sy, sz = (c.astype(np.float64) for c in grid.s_cartesian())
    s2 = sx**2 + sy**2 + sz**2
    table = gemmi.Element(element).c4322
    f = np.vectorize(lambda v: table.calculate_sf(v / 4.0))(s2) * np.exp(-b_iso * s2 / 4.0)
    r = np.asarray(position) - np.asarray(density.first_voxel_position)
    phase = np.exp(-2j * np.pi * (sx * r[0] + sy * r[1] + sz * r[2]))
    return f * phase / np.prod(density.voxel_size)


@pytest.fixture
def small_pdb(tmp_path: Path) -> Path:
    path = tmp_path / "small.pdb"
    path.write_text(SMALL_PDB)
    return path


# ------------------------------------------------------------------ reading
def test_read_model_accepts_hydrogens_and_charged_atoms(small_pdb: Path) -> None:
    structure = read_model(small_pdb)
    atoms = {cra.atom.name: cra.atom for cra in structure[0].all()}
    assert len(atoms) == 5
    assert atoms["H"].element.name == "H"
    assert atoms["O1"].charge == -1 and atoms["O1"].element.name == "O"
    assert atoms["NA"].charge == 1


def test_read_model_reads_gzip_and_mmcif(small_pdb: Path, tmp_path: Path, emd3488_model: Path) -> None:
    gz = tmp_path / "small.pdb.gz"
    gz.write_bytes(gzip.compress(small_pdb.read_bytes()))
    assert read_model(gz)[0].count_atom_sites() == 5
    assert read_model(emd3488_model)[0].count_atom_sites() == 4579


def test_read_model_detects_format_from_content(small_pdb: Path, tmp_path: Path) -> None:
    odd_name = tmp_path / "model.txt"
    odd_name.write_text(small_pdb.read_text())
    assert read_model(odd_name)[0].count_atom_sites() == 5


def test_read_model_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file") as info:
        read_model(tmp_path / "absent.pdb")
    assert "absent.pdb" in str(info.value)


def test_read_model_without_atoms(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdb"
    empty.write_text("HEADER    NOTHING HERE\nREMARK   1 NO ATOMS\nEND\n")
    with pytest.raises(InputFileError, match="no atoms") as info:
        read_model(empty)
    assert "empty.pdb" in str(info.value)


def test_read_model_unparseable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1\n")  # row shorter than the loop
    with pytest.raises(InputFileError) as info:
        read_model(broken)
    assert "broken.cif" in str(info.value)


# --------------------------------------------------------------- model maps
@pytest.mark.parametrize("resolution", [3.0, 2.6, None])
@pytest.mark.parametrize("b_iso", [0.0, 40.0])
def test_model_map_matches_the_analytic_atom_transform(resolution: float | None, b_iso: float) -> None:
    # Non-cubic box, anisotropic voxels, ORIGIN-positioned: checks placement, axis order and de-blurring.
    density = DensityMap(np.zeros((30, 28, 32), np.float32), voxel_size=(1.0, 1.1, 1.2), origin=(90.0, 190.0, 280.0))
    position = (105.3, 207.1, 303.9)
    structure = one_atom(position, b_iso=b_iso)
    computed = to_coefficients(model_map(structure, density, resolution=resolution, b_factor=None))
    expected = analytic_coefficients(density, position, "C", b_iso)
    d_min = 2.4 if resolution is None else resolution  # None = Nyquist = 2 × largest voxel edge
    s2 = FourierGrid(density.shape, density.voxel_size_zyx).s2
    inside, outside = s2 < 0.999 / d_min**2, s2 > 1.001 / d_min**2
    scale = np.abs(expected).max()
    assert np.abs(computed - expected)[inside].max() < 2e-3 * scale
    assert np.abs(computed[outside]).max() < 1e-5 * scale


def test_b_factor_option_sets_or_keeps_atomic_b() -> None:
    density = DensityMap(np.zeros((24, 24, 24), np.float32), voxel_size=(1.0, 1.0, 1.0))
    structure = one_atom((12.0, 11.5, 12.3), b_iso=50.0)
    kept = model_map(structure, density, resolution=3.0, b_factor=None)
    assert np.allclose(kept, model_map(structure, density, resolution=3.0, b_factor=50.0), atol=1e-6)
    sharp = model_map(structure, density, resolution=3.0)  # default B = 0
    assert sharp.max() > 1.5 * kept.max()
    assert structure[0][0][0][0].b_iso == 50.0  # the input is not modified


def test_origin_and_nstart_positioning_agree() -> None:
    structure = one_atom((21.0, 26.3, 30.2))
    data = np.zeros((20, 22, 24), np.float32)
    by_origin = DensityMap(data, voxel_size=(1.05, 1.05, 1.05), origin=(10 * 1.05, 12 * 1.05, 14 * 1.05))
    by_nstart = DensityMap(data, voxel_size=(1.05, 1.05, 1.05), nstart=(10, 12, 14))
    assert by_origin.first_voxel_position == pytest.approx(by_nstart.first_voxel_position)
    a = model_map(structure, by_origin, resolution=3.0)
    b = model_map(structure, by_nstart, resolution=3.0)
    assert np.allclose(a, b, atol=1e-5 * a.max())
    # the peak sits on the voxel nearest the atom: (21.0, 26.3, 30.2) - (10.5, 12.6, 14.7) = 10, 13.05, 14.76 voxels
    z, y, x = np.unravel_index(np.argmax(a), a.shape)
    assert (x, y, z) == (10, 13, 15)


def test_model_map_runs_on_hydrogen_and_ions(small_pdb: Path) -> None:
    density = DensityMap(np.zeros((24, 24, 24), np.float32), voxel_size=(1.0, 1.0, 1.0), origin=(2.0, -5.0, -16.0))
    values = model_map(read_model(small_pdb), density, resolution=3.0, b_factor=None)
    assert np.isfinite(values).all() and values.max() > 0


def test_atoms_far_outside_the_box_are_dropped() -> None:
    density = DensityMap(np.zeros((20, 20, 20), np.float32), voxel_size=(1.0, 1.0, 1.0))
    inside = one_atom((10.0, 10.0, 10.0))
    both = inside.clone()
    far = gemmi.Atom()
    far.name, far.element, far.occ, far.pos = "C2", gemmi.Element("C"), 1.0, gemmi.Position(10.0, 10.0, 35.0)
    both[0][0][0].add_atom(far)  # 15 Å beyond the +z face: would wrap to z = 15 Å if kept
    assert atoms_in_box(both, density).tolist() == [True, False]
    assert np.allclose(model_map(both, density, resolution=3.0), model_map(inside, density, resolution=3.0), atol=1e-6)


def test_model_outside_the_map_is_an_input_error() -> None:
    density = DensityMap(np.zeros((20, 20, 20), np.float32), voxel_size=(1.0, 1.0, 1.0))
    with pytest.raises(InputFileError, match="model lies outside the map") as info:
        model_map(one_atom((100.0, 5.0, 5.0)), density, resolution=3.0, source="far.pdb")
    assert str(info.value).startswith("far.pdb: ")


def test_model_map_rejects_bad_resolution() -> None:
    density = DensityMap(np.zeros((8, 8, 8), np.float32), voxel_size=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="resolution"):
        model_map(one_atom((4.0, 4.0, 4.0)), density, resolution=0.0)


def test_oversampling_and_blur_choices() -> None:
    assert oversampling((1.05, 1.05, 1.05), 3.2) == (1, 1, 1)
    assert oversampling((1.0, 1.0, 1.0), 2.0) == (2, 2, 2)
    # the blur fills what the softest atom lacks, never negative
    assert choose_blur((1.0, 1.0, 1.0), 4.0, 0.0) > choose_blur((1.0, 1.0, 1.0), 4.0, 30.0) >= 0.0
    assert choose_blur((1.0, 1.0, 1.0), 4.0, 1000.0) == 0.0


# -------------------------------------------------------------------- masks
def test_atom_mask_hand_counted() -> None:
    density = DensityMap(np.zeros((10, 10, 10), np.float32), voxel_size=(1.0, 1.0, 1.0))
    centre = one_atom((5.0, 5.0, 5.0))
    assert atom_mask(centre, density, radius=1.0).sum() == 7  # the voxel and its 6 face neighbours
    assert atom_mask(centre, density, radius=1.5).sum() == 19  # plus the 12 edge neighbours
    corner = atom_mask(one_atom((0.0, 0.0, 0.0)), density, radius=1.0)
    assert corner.sum() == 4 and corner[0, 0, 0] and corner[1, 0, 0] and corner[0, 1, 0] and corner[0, 0, 1]
    assert not atom_mask(centre, density, radius=1.0)[0, 0, 0]


def test_atom_mask_equals_brute_force_on_a_real_model(spike_map: Path, spike_model: Path) -> None:
    density = read_map(spike_map)
    structure = read_model(spike_model)
    mask = atom_mask(structure, density, radius=3.0)
    nx, ny, nz = density.shape_xyz
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    centres = np.stack([x, y, z], axis=-1).reshape(-1, 3) * np.asarray(density.voxel_size)
    centres += np.asarray(density.first_voxel_position)
    atoms = np.array([cra.atom.pos.tolist() for cra in structure[0].all()])
    distance, _ = cKDTree(atoms).query(centres, distance_upper_bound=3.0)
    expected = (distance <= 3.0).reshape(density.shape)
    assert mask.sum() > 10_000
    assert np.array_equal(mask, expected)


def test_atom_mask_rejects_bad_radius() -> None:
    density = DensityMap(np.zeros((8, 8, 8), np.float32), voxel_size=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="radius"):
        atom_mask(one_atom((4.0, 4.0, 4.0)), density, radius=0.0)
