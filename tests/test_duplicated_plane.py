"""Maps that repeat their first plane after the unit cell (grid 0…N inclusive), docs/methods.md, input checks.

The engine computes on the periodic unit cell and writes the output back on the
input's N+1 grid; the result must equal sharpening the unit cell itself.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from localsharp import global_sharpen
from localsharp.cli import main
from localsharp.maps.density import DensityMap, drop_duplicated_plane, has_duplicated_last_plane
from localsharp.maps.mrc import read_map, write_map
from localsharp.modes import half_map_sharpen

MODEL = Path(__file__).resolve().parent / "data" / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"
CELL = 56.0
RESOLUTION = 3.2


@pytest.fixture(scope="module")
def unit_cell() -> DensityMap:
    """A periodic P1 crystal map (cubic cell, gemmi's grid) of the spike NTD model with B = 60, plus weak noise."""
    st = gemmi.read_structure(str(MODEL))
    st.cell = gemmi.UnitCell(CELL, CELL, CELL, 90, 90, 90)
    st.spacegroup_hm = "P 1"
    st.setup_entities()
    for residue in st[0][0]:
        for atom in residue:
            atom.b_iso = 60.0
    dc = gemmi.DensityCalculatorX()
    dc.d_min = 2.5
    dc.rate = 1.1  # grid spacing ≈ d_min / (2 rate) ≈ 1.1 Å
    dc.grid.setup_from(st)
    dc.put_model_density_on_grid(st[0])
    xyz = np.array(dc.grid, copy=True)
    n = xyz.shape[0]
    rng = np.random.default_rng(7)
    data = xyz.transpose(2, 1, 0).astype(np.float32)
    data += rng.normal(0.0, 0.05 * data.std(), data.shape).astype(np.float32)
    assert xyz.shape == (n, n, n)
    return DensityMap(data=data, voxel_size=(CELL / n,) * 3, cell_grid=(n, n, n))


@pytest.fixture(scope="module")
def with_plane(unit_cell: DensityMap) -> DensityMap:
    """The same map written as grid points 0…N (the last plane repeats the first)."""
    return dataclasses.replace(unit_cell, data=np.pad(unit_cell.data, ((0, 1),) * 3, mode="wrap"))


def test_detection(unit_cell: DensityMap, with_plane: DensityMap) -> None:
    assert has_duplicated_last_plane(with_plane)
    assert not has_duplicated_last_plane(unit_cell)
    assert not has_duplicated_last_plane(dataclasses.replace(with_plane, nstart=(1, 0, 0)))
    assert not has_duplicated_last_plane(dataclasses.replace(with_plane, origin=(0.0, 0.0, 2.0)))
    np.testing.assert_array_equal(drop_duplicated_plane(with_plane).data, unit_cell.data)


@pytest.mark.slow
def test_search_runs_on_the_unit_cell_and_output_keeps_the_input_grid(unit_cell: DensityMap,
                                                                        with_plane: DensityMap) -> None:
    cell_result = global_sharpen(unit_cell, RESOLUTION)
    plane_result = global_sharpen(with_plane, RESOLUTION)
    assert plane_result.sharpening.b_sharpen == pytest.approx(cell_result.sharpening.b_sharpen, abs=1e-6)
    assert plane_result.map.shape == with_plane.shape
    assert plane_result.map.cell_grid == with_plane.cell_grid
    np.testing.assert_allclose(plane_result.map.data[:-1, :-1, :-1], cell_result.map.data, atol=1e-5)
    out = plane_result.map.data
    np.testing.assert_array_equal(out[-1], out[0])
    np.testing.assert_array_equal(out[:, -1], out[:, 0])
    np.testing.assert_array_equal(out[:, :, -1], out[:, :, 0])
    assert any("repeats its first plane" in n for n in plane_result.summary()["notes"])
    assert not any("repeats its first plane" in n for n in cell_result.summary()["notes"])


def test_fixed_sharpening_equals_unit_cell(unit_cell: DensityMap, with_plane: DensityMap) -> None:
    """Without the drop, the repeated plane would make the FFT see a non-periodic map."""
    a = global_sharpen(with_plane, RESOLUTION, b_sharpen=40.0)
    b = global_sharpen(unit_cell, RESOLUTION, b_sharpen=40.0)
    np.testing.assert_allclose(a.map.data[:-1, :-1, :-1], b.map.data, atol=1e-5)


def test_half_maps_with_duplicated_plane(unit_cell: DensityMap, with_plane: DensityMap) -> None:
    rng = np.random.default_rng(3)
    noise = [rng.normal(0.0, 0.3 * unit_cell.data.std(), unit_cell.data.shape).astype(np.float32) for _ in range(2)]
    halves_cell = [unit_cell.with_data(unit_cell.data + n) for n in noise]
    halves_plane = [dataclasses.replace(with_plane, data=np.pad(h.data, ((0, 1),) * 3, mode="wrap"))
                    for h in halves_cell]
    a = half_map_sharpen(None, *halves_plane, RESOLUTION)
    b = half_map_sharpen(None, *halves_cell, RESOLUTION)
    assert a.map.shape == with_plane.shape
    np.testing.assert_allclose(a.map.data[:-1, :-1, :-1], b.map.data, atol=1e-5)


@pytest.mark.slow
def test_cli_writes_the_input_grid_back(with_plane: DensityMap, tmp_path: Path) -> None:
    path = tmp_path / "crystal.ccp4"
    write_map(path, with_plane)
    out = tmp_path / "out"
    assert main(["sharpen", str(path), "--resolution", str(RESOLUTION), "--output-dir", str(out), "-q"]) == 0
    written, original = read_map(out / "sharpened_map.ccp4"), read_map(path)
    assert written.shape == original.shape
    assert written.geometry() == original.geometry()
    summary = json.loads((out / "summary.json").read_text())
    assert any("repeats its first plane" in n for n in summary["notes"])


def test_info_reports_the_repeated_plane(with_plane: DensityMap, unit_cell: DensityMap, tmp_path: Path,
                                         capsys) -> None:
    for density, expected in ((with_plane, True), (unit_cell, False)):
        path = tmp_path / f"map_{expected}.ccp4"
        write_map(path, density)
        assert main(["info", str(path)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["repeats_first_plane"] is expected and report["limitations"] == []
