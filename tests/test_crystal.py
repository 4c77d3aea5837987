"""Crystallographic input: a monoclinic (non-orthogonal) cell from MTZ map coefficients."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from localsharp.cli import main
from localsharp.kernels.fourier import FourierGrid
from localsharp.maps.mrc import read_map

MODEL = Path(__file__).resolve().parent / "data" / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
CELL = (60.0, 70.0, 55.0, 90.0, 105.0, 90.0)


def test_reciprocal_metric_matches_gemmi_for_a_monoclinic_cell() -> None:
    shape_zyx, voxel_zyx = (22, 28, 24), (CELL[2] / 22, CELL[1] / 28, CELL[0] / 24)
    grid = FourierGrid(shape_zyx, voxel_zyx, CELL[3:])
    cell = gemmi.UnitCell(*CELL)
    l_idx, k_idx, h_idx = grid.miller
    rng = np.random.default_rng(0)
    for _ in range(50):
        i, j, k = (rng.integers(0, n) for n in grid.rfft_shape)
        hkl = [int(h_idx[0, 0, k]), int(k_idx[0, j, 0]), int(l_idx[i, 0, 0])]
        assert grid.s2[i, j, k] == pytest.approx(cell.calculate_1_d2(hkl), rel=1e-5)


@pytest.fixture(scope="module")
def monoclinic_mtz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    st = gemmi.read_structure(str(MODEL))
    st.cell = gemmi.UnitCell(*CELL)
    st.spacegroup_hm = "P 1 21 1"
    for residue in st[0][0]:
        for atom in residue:
            p = atom.pos
            atom.pos = gemmi.Position(p.x - 190, p.y - 250, p.z - 230)
            atom.b_iso = 60.0
    dc = gemmi.DensityCalculatorX()
    dc.d_min = 2.5
    dc.grid.setup_from(st)
    dc.put_model_density_on_grid(st[0])
    asu = gemmi.transform_map_to_f_phi(dc.grid, half_l=True).prepare_asu_data(dmin=2.5)
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = st.find_spacegroup()
    mtz.set_cell_for_all(st.cell)
    mtz.add_dataset("test")
    mtz.add_column("FWT", "F")
    mtz.add_column("PHWT", "P")
    values = asu.value_array
    mtz.set_data(np.column_stack([asu.miller_array.astype(np.float32), np.abs(values).astype(np.float32),
                                  np.degrees(np.angle(values)).astype(np.float32)]))
    path = tmp_path_factory.mktemp("mtz") / "monoclinic.mtz"
    mtz.write_to_file(str(path))
    return path


def test_monoclinic_mtz_is_sharpened_with_its_cell(monoclinic_mtz: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["sharpen", "--mtz", str(monoclinic_mtz), "--output-dir", str(out), "-q"]) == 0
    density = read_map(out / "sharpened_map.ccp4")
    assert density.cell_angles == pytest.approx(CELL[3:])
    assert density.cell_lengths == pytest.approx(CELL[:3], rel=1e-5)
    assert density.space_group == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resolution"] == pytest.approx(2.5, abs=0.01)  # taken from the MTZ
    assert summary["applicable"]["value"] is True


def test_map_coefficients_of_a_non_cubic_box_reproduce_its_map(tmp_path: Path) -> None:
    """The MTZ writer hands gemmi the map in its own x-fastest layout (no transposed copy): the
    coefficients of a 48×40×47 box must give back that box, not an axis-swapped one."""
    from localsharp.evaluate import pearson
    from localsharp.maps.mtz import write_map_coefficients

    density = read_map(Path(__file__).parent / "data/emd21457_spike_ntd/map_segment.mrc")
    assert len(set(density.shape_xyz)) == 3
    path = write_map_coefficients(tmp_path / "c.mtz", density, 3.0)
    mtz = gemmi.read_mtz_file(str(path))
    assert (mtz.cell.a, mtz.cell.b, mtz.cell.c) == pytest.approx(density.box_lengths, rel=1e-5)
    hkl = np.array(mtz.make_miller_array())
    f = np.array(mtz.column_with_label("FWT"), copy=False) * np.exp(
        1j * np.radians(np.array(mtz.column_with_label("PHIFWT"), copy=False)))
    # our own transform of data[z, y, x], indexed [l, k, h] (h >= 0 half; Friedel mates otherwise);
    # crystallographic sign convention F(h) = sum rho exp(+2 pi i h.x), the conjugate of numpy's
    ours = np.conj(np.fft.rfftn(density.data))
    sign = np.where(hkl[:, 0] < 0, -1, 1)
    h, k, l = (hkl * sign[:, None]).T
    expected = ours[l, k, h]
    expected = np.where(sign < 0, np.conj(expected), expected)
    assert len(f) > 1000
    assert pearson(np.abs(f), np.abs(expected)) > 0.9999
    phase_error = np.angle(f * np.conj(expected))
    strong = np.abs(expected) > np.median(np.abs(expected))
    assert np.percentile(np.abs(phase_error[strong]), 99) < 0.01
