"""Chunk-wise value checks and digest (localsharp.maps.checks) agree with read_map's own checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from localsharp.errors import InputFileError
from localsharp.maps.checks import chunk_report, combine_reports
from localsharp.maps.mrc import read_map
from localsharp.maps.source import MapSource


def z_chunks(source: MapSource, step: int) -> list[dict]:
    """Reports of slabs of ``step`` z-planes, in order."""
    nz, ny, nx = source.shape
    return [chunk_report(source.read(((z, min(z + step, nz)), (0, ny), (0, nx)))) for z in range(0, nz, step)]


def write(path: Path, vol: np.ndarray) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(vol.astype(np.float32))
        mrc.voxel_size = 1.0
    return path


def read_map_error(path: Path) -> str:
    with pytest.raises(InputFileError) as info:
        read_map(path)
    return str(info.value)


def test_chunk_report_fields() -> None:
    values = np.array([[1.5, np.nan], [-2.0, np.inf]], dtype=np.float32)
    report = chunk_report(values)
    assert report == {"size": 4, "n_nonfinite": 2, "min": -2.0, "max": 1.5,
                      "sha256": hashlib.sha256(values.tobytes()).hexdigest()}
    empty = chunk_report(np.full((2, 2), np.nan, np.float32))
    assert empty["min"] is None and empty["max"] is None and empty["n_nonfinite"] == 4
    # C order of a transposed view, float64 input converted to float32
    assert chunk_report(values.T.astype(np.float64))["sha256"] == hashlib.sha256(
        np.ascontiguousarray(values.T).tobytes()).hexdigest()


def test_good_map_digest_is_stable_and_sensitive(emd3488_map: Path, tmp_path: Path) -> None:
    source = MapSource.open(emd3488_map)
    digest = combine_reports(emd3488_map, z_chunks(source, 7))
    assert digest == combine_reports(emd3488_map, z_chunks(source, 7))
    assert len(digest) == 64
    vol = read_map(emd3488_map).data.copy()
    vol[50, 50, 50] = np.nextafter(vol[50, 50, 50], np.float32(np.inf))
    changed = MapSource.open(write(tmp_path / "changed.mrc", vol))
    assert combine_reports(emd3488_map, z_chunks(changed, 7)) != digest


@pytest.mark.filterwarnings("ignore:Data array contains")
@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("step", [1, 3, 100])
def test_nan_and_inf_message_is_read_maps(step: int, tmp_path: Path) -> None:
    vol = np.random.default_rng(0).normal(size=(9, 8, 7)).astype(np.float32)
    vol[0, 0, 0] = np.nan
    vol[5, 3, 2] = np.inf
    vol[8, 7, 6] = -np.inf
    path = write(tmp_path / "bad.mrc", vol)
    with pytest.raises(InputFileError) as info:
        combine_reports(path, z_chunks(MapSource.open(path), step))
    assert str(info.value) == read_map_error(path)
    assert "3 NaN or infinite values" in str(info.value)


@pytest.mark.parametrize("value", [0.0, -3.25])
def test_constant_message_is_read_maps(value: float, tmp_path: Path) -> None:
    path = write(tmp_path / "flat.mrc", np.full((6, 5, 4), value, np.float32))
    with pytest.raises(InputFileError) as info:
        combine_reports(path, z_chunks(MapSource.open(path), 2))
    assert str(info.value) == read_map_error(path)
    assert f"every voxel is {value}" in str(info.value)


def test_constant_within_chunks_but_not_overall_passes(tmp_path: Path) -> None:
    vol = np.zeros((4, 3, 3), np.float32)
    vol[2:] = 1.0  # each 2-plane chunk is constant, the map is not
    path = write(tmp_path / "steps.mrc", vol)
    read_map(path)  # read_map accepts it
    combine_reports(path, z_chunks(MapSource.open(path), 2))


def test_no_reports_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        combine_reports("x.mrc", [])
