"""MRC/CCP4 reading and writing (localsharp.maps.mrc): exact header round trips on the real maps,
every axis order, every accepted data mode, gzip, origin shifting and atomic writes."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import os
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from localsharp.errors import OutputError
from localsharp.maps.atomic import atomic_path
from localsharp.maps.density import DensityMap
from localsharp.maps.mrc import read_map, write_map, write_map_like

#: Raw header fields that carry the geometry; a round trip must keep them bit for bit.
GEOMETRY_FIELDS = ("nx", "ny", "nz", "nxstart", "nystart", "nzstart", "mx", "my", "mz", "cella", "cellb",
                   "mapc", "mapr", "maps", "ispg", "origin")


def raw(path: Path) -> tuple[dict, np.ndarray]:
    """Geometry header fields (as raw bytes/values) and the file-order data array, read with mrcfile."""
    with mrcfile.open(path, permissive=True) as mrc:
        header = {name: mrc.header[name].copy() for name in GEOMETRY_FIELDS}
        data = np.array(mrc.data, copy=True)
    return header, data


def assert_same_header(a: dict, b: dict) -> None:
    for name in GEOMETRY_FIELDS:
        assert a[name].tobytes() == b[name].tobytes(), f"header field {name}: {a[name]} != {b[name]}"


#: Fixtures (tests/conftest.py) naming the real maps; rdrp_map skips without ../shared (fails in CI).
REAL_MAPS = [
    pytest.param("emd3488_map", id="emd3488"),
    pytest.param("spike_map", id="spike_origin"),
    pytest.param("rdrp_map", id="rdrp_crop_321", marks=pytest.mark.shared),
]


# ------------------------------------------------------------------ real maps
@pytest.mark.slow
@pytest.mark.parametrize("writer", ["mrcfile", "mapped"])
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_real_map_round_trip_is_exact(fixture: str, writer: str, request: pytest.FixtureRequest, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from localsharp.maps import mrc as mrc_module

    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0 if writer == "mapped" else 2**62)
    path = request.getfixturevalue(fixture)
    header_in, data_in = raw(path)
    density = read_map(path)
    out = write_map(tmp_path / "copy.mrc", density)
    header_out, data_out = raw(out)
    assert_same_header(header_in, header_out)
    assert data_out.dtype == np.float32
    assert data_out.shape == data_in.shape
    assert np.array_equal(data_out, data_in)
    # and reading the copy gives the same DensityMap geometry and values
    again = read_map(out)
    assert np.array_equal(again.data, density.data)
    for name in ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group"):
        assert getattr(again, name) == getattr(density, name), name


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["mrcfile", "mapped"])
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_written_header_statistics_describe_the_data(fixture: str, writer: str, request: pytest.FixtureRequest,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DMIN, DMAX, DMEAN and RMS of a written map are those of its data (viewers scale contours by them)."""
    from localsharp.maps import mrc as mrc_module

    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0 if writer == "mapped" else 2**62)
    density = read_map(request.getfixturevalue(fixture))
    scaled = density.with_data(density.data * np.float32(2.5) + np.float32(1.0))
    with mrcfile.open(write_map(tmp_path / "stats.mrc", scaled, label="stats"), permissive=True) as mrc:
        h, data = mrc.header, mrc.data.astype(np.float64)
        assert float(h.dmin) == pytest.approx(data.min(), rel=1e-6)
        assert float(h.dmax) == pytest.approx(data.max(), rel=1e-6)
        assert float(h.dmean) == pytest.approx(data.mean(), rel=1e-5, abs=1e-6)
        assert float(h.rms) == pytest.approx(data.std(), rel=1e-5)


def test_spike_segment_is_origin_positioned(spike_map: Path) -> None:
    density = read_map(spike_map)
    with mrcfile.open(spike_map, permissive=True) as mrc:
        origin = tuple(float(v) for v in (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z))
        assert int(mrc.header.ispg) == 0
        file_data = np.array(mrc.data)
    assert density.space_group == 0
    assert density.origin == origin
    assert density.nstart == (0, 0, 0)
    assert density.first_voxel_position == origin
    assert density.shape_xyz == (48, 40, 47)
    assert np.array_equal(density.data, file_data)  # axis order 1,2,3: no transpose


def test_rdrp_crop_axis_order_and_nstart(rdrp_map: Path) -> None:
    density = read_map(rdrp_map)
    with mrcfile.open(rdrp_map, permissive=True) as mrc:
        h = mrc.header
        assert (int(h.mapc), int(h.mapr), int(h.maps)) == (3, 2, 1)
        assert (int(h.nxstart), int(h.nystart), int(h.nzstart)) == (31, 28, 0)
        file_data = np.array(mrc.data)
    assert density.axis_order == (3, 2, 1)
    assert density.nstart == (0, 28, 31)  # x, y, z
    assert density.data.shape == (192, 192, 192)
    assert np.array_equal(density.data, np.transpose(file_data, (2, 1, 0)))
    assert density.voxel_size == pytest.approx((0.834, 0.834, 0.834), abs=1e-5)
    assert density.first_voxel_position == pytest.approx((0.0, 28 * 0.834, 31 * 0.834), abs=1e-4)


def test_labels_are_kept_and_a_label_is_added(emd3488_map: Path, tmp_path: Path) -> None:
    density = read_map(emd3488_map)
    with mrcfile.open(emd3488_map, permissive=True) as mrc:
        labels_in = [bytes(mrc.header.label[i]).rstrip(b"\0 ") for i in range(int(mrc.header.nlabl))]
    out = write_map(tmp_path / "labelled.mrc", density, label="localsharp test label")
    with mrcfile.open(out, permissive=True) as mrc:
        labels_out = [bytes(mrc.header.label[i]).rstrip(b"\0 ") for i in range(int(mrc.header.nlabl))]
    assert labels_out[-1] == b"localsharp test label"
    assert labels_out[: len(labels_in)] == labels_in[: min(len(labels_in), 9)]


# ------------------------------------------------------------- synthetic maps
def physical_map(shape_zyx=(5, 6, 7)) -> np.ndarray:
    """A map whose every voxel value encodes its (x, y, z) position."""
    z, y, x = np.indices(shape_zyx)
    return (100.0 * z + 10.0 * y + x + 0.5).astype(np.float32)


def write_with_mrcfile(path: Path, vol_zyx: np.ndarray, axis_order: tuple[int, int, int],
                       start_xyz: tuple[int, int, int], voxel_xyz: tuple[float, float, float],
                       dtype=np.float32, compression=None) -> None:
    """Write the physical map ``vol_zyx`` in the given (MAPC, MAPR, MAPS) layout with mrcfile directly."""
    mapc, mapr, maps = axis_order
    # file array axes are (section, row, column); spatial axis k (1=x,2=y,3=z) is vol axis 3-k
    file_arr = np.ascontiguousarray(np.transpose(vol_zyx, (3 - maps, 3 - mapr, 3 - mapc))).astype(dtype)
    n_xyz = vol_zyx.shape[::-1]
    with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
        mrc.set_data(file_arr)
        h = mrc.header
        h.mapc, h.mapr, h.maps = mapc, mapr, maps
        h.nxstart = start_xyz[mapc - 1]
        h.nystart = start_xyz[mapr - 1]
        h.nzstart = start_xyz[maps - 1]
        h.mx, h.my, h.mz = n_xyz
        h.cella = tuple(n * v for n, v in zip(n_xyz, voxel_xyz))
        h.ispg = 1


@pytest.mark.parametrize("axis_order", list(itertools.permutations((1, 2, 3))),
                         ids=lambda o: "".join(map(str, o)))
def test_every_axis_order_gives_the_same_physical_map(axis_order, tmp_path: Path) -> None:
    vol = physical_map()
    start = (3, -4, 5)
    voxel = (1.0, 1.5, 2.0)
    path = tmp_path / "perm.mrc"
    write_with_mrcfile(path, vol, axis_order, start, voxel)
    density = read_map(path)
    assert density.data.shape == vol.shape
    assert np.array_equal(density.data, vol)
    assert density.axis_order == axis_order
    assert density.nstart == start
    assert density.voxel_size == pytest.approx(voxel)
    assert density.shape_xyz == (7, 6, 5)
    assert density.first_voxel_position == pytest.approx((3.0, -6.0, 10.0))
    # writing keeps the file's own layout and header bit for bit
    header_in, data_in = raw(path)
    out = write_map(tmp_path / "perm_out.mrc", density)
    header_out, data_out = raw(out)
    assert_same_header(header_in, header_out)
    assert np.array_equal(data_out, data_in)


@pytest.mark.parametrize("dtype, mode", [(np.int8, 0), (np.int16, 1), (np.uint16, 6), (np.float16, 12)],
                         ids=["int8", "int16", "uint16", "float16"])
def test_integer_and_half_modes_are_read_as_float32(dtype, mode, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        values = rng.integers(info.min, info.max, size=(6, 7, 8), endpoint=True).astype(dtype)
        values.flat[0], values.flat[1] = info.min, info.max
    else:
        values = (rng.standard_normal((6, 7, 8)) * 100).astype(dtype)
    path = tmp_path / f"mode{mode}.map"
    write_with_mrcfile(path, values, (1, 2, 3), (0, 0, 0), (1.0, 1.0, 1.0), dtype=dtype)
    with mrcfile.open(path, permissive=True) as mrc:
        assert int(mrc.header.mode) == mode
    density = read_map(path)
    assert density.data.dtype == np.float32
    assert np.array_equal(density.data, values.astype(np.float32))


@pytest.mark.parametrize("suffix", [".mrc.gz", ".map.gz", ".ccp4.gz"])
def test_gzipped_map_reads_like_the_plain_one(spike_map: Path, tmp_path: Path, suffix: str) -> None:
    gz = tmp_path / f"spike{suffix}"
    with open(spike_map, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = read_map(spike_map)
    packed = read_map(gz)
    assert np.array_equal(packed.data, plain.data)
    assert packed.origin == plain.origin and packed.voxel_size == plain.voxel_size
    assert packed.axis_order == plain.axis_order and packed.nstart == plain.nstart


def test_gzipped_permuted_map_written_by_mrcfile(tmp_path: Path) -> None:
    vol = physical_map((4, 9, 6))
    path = tmp_path / "perm.mrc.gz"
    write_with_mrcfile(path, vol, (2, 3, 1), (1, 2, 3), (1.2, 1.2, 1.2), compression="gzip")
    density = read_map(path)
    assert np.array_equal(density.data, vol)
    assert density.nstart == (1, 2, 3)


def test_write_gzip_round_trip(spike_map: Path, tmp_path: Path) -> None:
    density = read_map(spike_map)
    out = write_map(tmp_path / "spike_copy.mrc.gz", density)
    with open(out, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"
    again = read_map(out)
    assert np.array_equal(again.data, density.data)
    assert again.origin == density.origin


def test_mrc_and_ccp4_suffixes_are_equivalent(spike_map: Path, tmp_path: Path) -> None:
    density = read_map(spike_map)
    for name in ("a.ccp4", "a.map", "a.mrc"):
        out = write_map(tmp_path / name, density)
        assert np.array_equal(read_map(out).data, density.data)


# --------------------------------------------------------------- origin shift
@pytest.mark.parametrize("fixture", REAL_MAPS[1:])
def test_origin_shifted_zeroes_origin_and_nstart_only(fixture: str, request: pytest.FixtureRequest) -> None:
    density = read_map(request.getfixturevalue(fixture))
    shifted = density.origin_shifted()
    assert shifted.origin == (0.0, 0.0, 0.0)
    assert shifted.nstart == (0, 0, 0)
    assert shifted.first_voxel_position == (0.0, 0.0, 0.0)
    assert np.array_equal(shifted.data, density.data)
    for name in ("voxel_size", "cell_grid", "cell_angles", "axis_order", "space_group", "header_extras"):
        assert getattr(shifted, name) == getattr(density, name), name
    # the input map is a different, unchanged object (both cases have a non-zero position)
    assert density.first_voxel_position != (0.0, 0.0, 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", REAL_MAPS[1:])
def test_oracle18_shift_and_shift_back_reproduces_the_map(fixture: str, request: pytest.FixtureRequest,
                                                          tmp_path: Path) -> None:
    path = request.getfixturevalue(fixture)
    original = read_map(path)
    shifted_file = write_map(tmp_path / "shifted.mrc", original.origin_shifted())
    header_shifted, _ = raw(shifted_file)
    assert all(int(header_shifted[k]) == 0 for k in ("nxstart", "nystart", "nzstart"))
    assert tuple(header_shifted["origin"].item()) == (0.0, 0.0, 0.0)
    shifted = read_map(shifted_file)
    assert np.array_equal(shifted.data, original.data)
    back = dataclasses.replace(shifted, origin=original.origin, nstart=original.nstart)
    back_file = write_map(tmp_path / "back.mrc", back)
    header_in, data_in = raw(path)
    header_back, data_back = raw(back_file)
    assert_same_header(header_in, header_back)
    assert np.array_equal(data_back, data_in)


# -------------------------------------------------------------- atomic writes
def small_map() -> DensityMap:
    return DensityMap(data=physical_map(), voxel_size=(1.0, 1.0, 1.0))


def test_write_refuses_existing_file_and_leaves_it_intact(tmp_path: Path) -> None:
    target = tmp_path / "map.mrc"
    write_map(target, small_map())
    before = target.read_bytes()
    other = small_map().with_data(np.zeros((5, 6, 7), np.float32) + 1)
    with pytest.raises(OutputError, match="already exists"):
        write_map(target, other)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.mrc"]  # no temporary left
    write_map(target, other, overwrite=True)
    assert np.array_equal(read_map_unchecked(target), other.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.mrc"]


def read_map_unchecked(path: Path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as mrc:
        return np.array(mrc.data)


def test_successful_write_leaves_no_temporary(tmp_path: Path) -> None:
    write_map(tmp_path / "a.mrc", small_map())
    write_map(tmp_path / "b.mrc.gz", small_map())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.mrc", "b.mrc.gz"]
    assert not any(n.endswith(".tmp") for n in names)


def test_written_file_has_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        out = write_map(tmp_path / "perm.mrc", small_map())
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_existing_file_byte_identical(tmp_path: Path) -> None:
    target = tmp_path / "keep.mrc"
    write_map(target, small_map())
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_bytes(b"half a map")
            raise RuntimeError("simulated failure while writing")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mrc"]


def test_write_into_missing_directory_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        write_map(tmp_path / "no_such_dir" / "x.mrc", small_map())
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ memory mapping
def _is_memory_mapped(array: np.ndarray) -> bool:
    base = array
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_memory_mapped_read_gives_the_same_map(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Mapped and read maps are identical (values, geometry, labels) and round-trip the header alike."""
    path = request.getfixturevalue(fixture)
    mapped, loaded = read_map(path, mmap=True), read_map(path, mmap=False)
    assert np.array_equal(mapped.data, loaded.data) and mapped.data.dtype == np.float32
    assert mapped.geometry() == loaded.geometry()
    assert mapped.header_extras == loaded.header_extras
    # float32 in x, y, z order is used straight from the file; other axis orders are converted
    assert _is_memory_mapped(mapped.data) == (loaded.axis_order == (1, 2, 3))
    assert not _is_memory_mapped(loaded.data)
    header_in, data_in = raw(path)
    header_out, data_out = raw(write_map(tmp_path / "copy.mrc", mapped))
    assert_same_header(header_in, header_out)
    assert np.array_equal(data_out, data_in)


@pytest.mark.parametrize("dtype, axis_order", [(np.int16, (3, 1, 2)), (np.float16, (1, 2, 3)), (np.float32, (2, 3, 1))])
def test_memory_mapped_modes_axis_orders_and_extended_header(dtype, axis_order, tmp_path: Path) -> None:
    vol = (physical_map() * 50).astype(dtype)
    path = tmp_path / "m.mrc"
    write_with_mrcfile(path, vol, axis_order, (2, 0, -1), (1.0, 1.5, 2.0), dtype=dtype)
    with mrcfile.open(path, mode="r+") as mrc:  # an extended header moves the data offset
        mrc.set_extended_header(np.arange(96, dtype=np.uint8))
    mapped, loaded = read_map(path, mmap=True), read_map(path, mmap=False)
    assert np.array_equal(mapped.data, vol.astype(np.float32))
    assert np.array_equal(mapped.data, loaded.data)
    assert mapped.header_extras["extended_header"] == bytes(range(96))
    assert mapped.geometry() == loaded.geometry()


@pytest.mark.parametrize("mmap", [True, False], ids=["mapped", "read"])
def test_input_voxels_are_read_only(emd3488_map: Path, mmap: bool) -> None:
    """Nothing downstream can modify the input's voxels (nor, when mapped, the file)."""
    density = read_map(emd3488_map, mmap=mmap)
    with pytest.raises(ValueError, match="read-only"):
        density.data[0, 0, 0] = 1.0


def test_big_files_are_memory_mapped_by_default(emd3488_map: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from localsharp.maps import mrc as mrc_module

    assert not _is_memory_mapped(read_map(emd3488_map).data)  # 4 MB: read
    monkeypatch.setattr(mrc_module, "MMAP_MIN_BYTES", emd3488_map.stat().st_size)
    assert _is_memory_mapped(read_map(emd3488_map).data)


def test_gzipped_maps_are_read_even_when_mapping_is_asked(spike_map: Path, tmp_path: Path) -> None:
    gz = tmp_path / "spike.mrc.gz"
    with open(spike_map, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    density = read_map(gz, mmap=True)
    assert not _is_memory_mapped(density.data)
    assert np.array_equal(density.data, read_map(spike_map).data)


@pytest.mark.parametrize("mmap", [True, False], ids=["mapped", "read"])
@pytest.mark.parametrize("dtype", [">f4", ">i2"])
def test_big_endian_maps_read_correctly(dtype: str, mmap: bool, tmp_path: Path) -> None:
    vol = physical_map()
    path = tmp_path / "be.mrc"
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(vol.astype(dtype))  # mrcfile writes the file (header too) in the array's byte order
        mrc.voxel_size = 1.0
    with mrcfile.open(path) as mrc:
        assert mrc.header.mode.dtype.byteorder == ">"
    assert np.array_equal(read_map(path, mmap=mmap).data, vol.astype(dtype).astype(np.float32))


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_value_checks_span_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NaN/Inf and constant-map checks run chunk by chunk (no map-sized temporary) and miss nothing."""
    from localsharp.errors import InputFileError
    from localsharp.maps import mrc as mrc_module

    monkeypatch.setattr(mrc_module, "CHECK_CHUNK", 7)
    vol = physical_map()
    ok = tmp_path / "ok.mrc"
    write_with_mrcfile(ok, vol, (1, 2, 3), (0, 0, 0), (1.0, 1.0, 1.0))
    assert np.array_equal(read_map(ok).data, vol)
    bad = vol.copy()
    bad.flat[-1] = np.nan
    bad.flat[100] = np.inf
    write_with_mrcfile(tmp_path / "nan.mrc", bad, (1, 2, 3), (0, 0, 0), (1.0, 1.0, 1.0))
    with pytest.raises(InputFileError, match="2 NaN or infinite"):
        read_map(tmp_path / "nan.mrc")
    write_with_mrcfile(tmp_path / "flat.mrc", np.full_like(vol, 2.5), (1, 2, 3), (0, 0, 0), (1.0, 1.0, 1.0))
    with pytest.raises(InputFileError, match="constant"):
        read_map(tmp_path / "flat.mrc")


def test_chunked_statistics_match_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """DMIN/DMAX/DMEAN/RMS accumulated over many chunks, with a large offset, equal numpy's float64 values."""
    from localsharp.maps import mrc as mrc_module

    monkeypatch.setattr(mrc_module, "WRITE_CHUNK", 1000)
    data = (np.random.default_rng(3).normal(0.0, 0.01, (17, 19, 23)) + 1000.0).astype(np.float32)
    low, high, mean, rms = mrc_module.data_statistics(data)
    ref = data.astype(np.float64)
    assert (low, high) == (float(data.min()), float(data.max()))
    assert mean == pytest.approx(ref.mean(), rel=1e-12)
    assert rms == pytest.approx(ref.std(), rel=1e-6)


def test_plain_and_gzipped_writers_give_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory-mapped writer (plain files, a few sections at a time) and mrcfile's (gzip) write the same
    bytes: header (statistics to float32 rounding), extended header and data, in a permuted axis order."""
    from mrcfile.dtypes import HEADER_DTYPE

    from localsharp.maps import mrc as mrc_module

    monkeypatch.setattr(mrc_module, "WRITE_CHUNK", 50)  # several chunks on this small map
    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0)
    vol = physical_map((9, 8, 7))
    src = tmp_path / "src.mrc"
    write_with_mrcfile(src, vol, (2, 3, 1), (1, 2, 3), (1.0, 1.5, 2.0))
    with mrcfile.open(src, mode="r+") as mrc:
        mrc.set_extended_header(np.arange(64, dtype=np.uint8))
    density = read_map(src)
    plain = write_map(tmp_path / "plain.mrc", density, label="test").read_bytes()
    packed = gzip.decompress(write_map(tmp_path / "packed.mrc.gz", density, label="test").read_bytes())
    assert len(plain) == len(packed) and plain[1024:] == packed[1024:]
    h_plain, h_packed = (np.frombuffer(b[:1024], HEADER_DTYPE)[0] for b in (plain, packed))
    for name in HEADER_DTYPE.names:
        if name in ("dmin", "dmax", "dmean", "rms"):
            assert float(h_plain[name]) == pytest.approx(float(h_packed[name]), rel=1e-6)
        else:
            assert h_plain[name].tobytes() == h_packed[name].tobytes(), name
    again = read_map(tmp_path / "plain.mrc")
    assert np.array_equal(again.data, vol) and again.header_extras["extended_header"] == bytes(range(64))


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["mrcfile", "mapped"])
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_shifted_copy_is_byte_identical_to_writing_it(fixture: str, writer: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The origin-shifted output made by copying the written map and rewriting its header is the
    file write_map makes (NSTART and axis order 3,2,1 on RdRp; both writers)."""
    from localsharp.maps import mrc as mrc_module

    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0 if writer == "mapped" else 2**62)
    density = read_map(request.getfixturevalue(fixture))
    first = write_map(tmp_path / "map.ccp4", density, label="localsharp test")
    shifted = density.origin_shifted()
    expected = write_map(tmp_path / "shifted_written.ccp4", shifted, label="localsharp test")
    copied = write_map_like(tmp_path / "shifted_copied.ccp4", shifted, first, label="localsharp test")
    assert copied.read_bytes() == expected.read_bytes()
    assert first.read_bytes() != expected.read_bytes() or density.nstart == (0, 0, 0) == tuple(density.origin)
    again = read_map(copied)
    assert again.nstart == (0, 0, 0) and again.origin == (0.0, 0.0, 0.0) and np.array_equal(again.data, density.data)


def test_shifted_copy_keeps_an_extended_header_and_refuses_other_voxels(tmp_path: Path) -> None:
    path = tmp_path / "ext.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
        mrc.set_extended_header(np.arange(96, dtype=np.uint8))
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 3, -2, 7
        mrc.voxel_size = 1.5
    density = read_map(path)
    first = write_map(tmp_path / "a.mrc", density)
    copied = write_map_like(tmp_path / "b.mrc", density.origin_shifted(), first)
    assert copied.read_bytes() == write_map(tmp_path / "c.mrc", density.origin_shifted()).read_bytes()
    other = dataclasses.replace(density, data=np.zeros((5, 5, 6), np.float32))
    with pytest.raises(ValueError, match="does not hold this map's voxels"):
        write_map_like(tmp_path / "d.mrc", other, first)
    assert not (tmp_path / "d.mrc").exists()
    with pytest.raises(OutputError):  # atomic and no silent overwrite, like write_map
        write_map_like(tmp_path / "b.mrc", density, first)
