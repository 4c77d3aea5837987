"""Crystallographic input: a monoclinic (non-orthogonal) cell from MTZ map coefficients."""

from __future__ import annotations

import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from localsharp.cli import main
from localsharp.kernels.fourier import FourierGrid
from localsharp.maps.density import DensityMap
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


def test_s_components_at_chosen_coefficients_match_the_full_grid() -> None:
    """``s_cartesian_at`` (kept coefficients only) equals the full-grid components, and their
    squared norm equals ``s2`` (built from the metric), for a monoclinic cell."""
    grid = FourierGrid((22, 28, 24), (CELL[2] / 22, CELL[1] / 28, CELL[0] / 24), CELL[3:])
    full = grid.s_cartesian()
    index = np.random.default_rng(1).choice(grid.s2.size, 500, replace=False)
    at = grid.s_cartesian_at(index)
    for a, f in zip(at, full):
        assert np.array_equal(a, f.ravel()[index])
    norm2 = at[0].astype(np.float64) ** 2 + at[1].astype(np.float64) ** 2 + at[2].astype(np.float64) ** 2
    assert np.allclose(grid.s2.ravel()[index], norm2, rtol=1e-5, atol=1e-9)


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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("case, angles", [("emd21457_spike_ntd/map_segment.mrc", None),
                                          ("emd21457_spike_ntd/map_segment.mrc", (80.0, 105.0, 95.0)),
                                          ("emd3488_haemoglobin/map.mrc", None)])
def test_map_coefficients_match_gemmis_own_transform(case: str, angles, tmp_path: Path) -> None:
    """The MTZ writer reads the P1 ASU off our own FFT; gemmi's transform of the same map is the
    oracle: same reflections (Nyquist-plane terms aside), in h, k, l order, amplitudes and phases.
    The spike box is 48×40×47 (non-cubic, one odd edge), also given an oblique cell, so an axis
    swap, a metric or a sign-convention slip would show."""
    import dataclasses

    from localsharp.maps.mtz import write_map_coefficients

    density = read_map(Path(__file__).parent / "data" / case)
    if angles is not None:
        density = dataclasses.replace(density, cell_angles=angles)
    d_min = 3.0
    path = write_map_coefficients(tmp_path / "c.mtz", density, d_min)
    mtz = gemmi.read_mtz_file(str(path))
    assert (mtz.cell.a, mtz.cell.b, mtz.cell.c) == pytest.approx(density.box_lengths, rel=1e-5)
    ours = {tuple(hkl): (f, phi) for hkl, f, phi in zip(
        np.array(mtz.make_miller_array()).tolist(), np.array(mtz.column_with_label("FWT"), copy=False),
        np.array(mtz.column_with_label("PHIFWT"), copy=False))}
    cell = gemmi.UnitCell(*density.box_lengths, *density.cell_angles)
    grid = gemmi.FloatGrid(np.ascontiguousarray(np.transpose(density.data, (2, 1, 0))), cell, gemmi.SpaceGroup("P 1"))
    asu = gemmi.transform_map_to_f_phi(grid, half_l=True).prepare_asu_data(dmin=d_min, with_000=False)
    nx, ny, nz = density.shape_xyz
    theirs = {}
    for (h, k, l), v in zip(asu.miller_array.tolist(), asu.value_array):
        if not ((nx % 2 == 0 and abs(h) == nx // 2) or (ny % 2 == 0 and abs(k) == ny // 2)
                or (nz % 2 == 0 and abs(l) == nz // 2)):
            theirs[(h, k, l)] = v
    assert len(ours) == mtz.nreflections, "a reflection is written twice"
    written = np.array(mtz.make_miller_array())
    assert np.array_equal(np.lexsort(written.T[::-1]), np.arange(len(written))), "rows not sorted by h, k, l"
    assert list(mtz.sort_order) == [1, 2, 3, 0, 0]
    assert len(theirs) > 1000 and set(ours) == set(theirs)
    keys = sorted(theirs)
    f_ours = np.array([ours[h][0] for h in keys])
    f_theirs = np.abs(np.array([theirs[h] for h in keys]))
    assert np.allclose(f_ours / f_ours.max(), f_theirs / f_theirs.max(), atol=2e-5)
    strong = f_theirs > np.median(f_theirs)
    dphi = np.radians(np.array([ours[h][1] for h in keys])) - np.angle(np.array([theirs[h] for h in keys]))
    assert np.max(np.abs(np.angle(np.exp(1j * dphi[strong])))) < 1e-3


@pytest.mark.parametrize("angles", [(90.0, 90.0, 90.0), (70.0, 100.0, 115.0), (62.0, 118.0, 75.0)])
def test_ellipse_window_keeps_every_reflection(angles, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-h (k, l) window of the MTZ table never drops a reflection, on oblique cells too."""
    from localsharp.maps import mtz

    rng = np.random.default_rng(4)
    density = DensityMap(data=rng.normal(size=(18, 21, 24)).astype(np.float32), voxel_size=(1.1, 0.9, 1.3),
                         cell_angles=angles)
    windowed = mtz.coefficient_table(density, 2.9)
    monkeypatch.setattr(mtz, "_kl_window", lambda g, limit, h, ks, ls: (0, ks.size, 0, ls.size))
    whole_plane = mtz.coefficient_table(density, 2.9)
    assert windowed.shape[0] > 100
    assert np.array_equal(windowed, whole_plane)
