"""MapSource (localsharp.maps.source): header-only opening, region reads equal to read_map's voxels
for every axis order, mode, byte order and gzip, header geometry identical to read_map's, cheap pickling."""

from __future__ import annotations

import gzip
import itertools
import os
import pickle
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from localsharp.errors import InputFileError
from localsharp.maps.mrc import read_map, write_map
from localsharp.maps.source import MapSource

REAL_MAPS = [
    pytest.param("emd3488_map", id="emd3488"),
    pytest.param("spike_map", id="spike_origin"),
    pytest.param("rdrp_map", id="rdrp_crop_321", marks=pytest.mark.shared),
]
GEOMETRY = ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group")


def regions(shape: tuple[int, int, int], rng: np.random.Generator, count: int = 6) -> list:
    """The whole map, a single voxel, an empty region and random boxes."""
    out = [tuple((0, n) for n in shape), tuple((n - 1, n) for n in shape), ((0, 0), (0, shape[1]), (0, 1))]
    for _ in range(count):
        bounds = []
        for n in shape:
            a, b = sorted(rng.integers(0, n + 1, size=2))
            bounds.append((int(a), int(b)))
        out.append(tuple(bounds))
    return out


def assert_same_geometry(a, b) -> None:
    for name in GEOMETRY:
        assert getattr(a, name) == getattr(b, name), name
    assert a.header_extras == b.header_extras


def write_layout(path: Path, vol_zyx: np.ndarray, axis_order, start_xyz=(3, -2, 5), dtype=np.float32,
                 compression=None, extended: bytes = b"") -> None:
    """Write the [z, y, x] map ``vol_zyx`` with mrcfile in the given (MAPC, MAPR, MAPS) layout."""
    mapc, mapr, maps = axis_order
    file_arr = np.ascontiguousarray(np.transpose(vol_zyx, (3 - maps, 3 - mapr, 3 - mapc))).astype(dtype)
    n_xyz = vol_zyx.shape[::-1]
    with mrcfile.new(path, overwrite=True, compression=compression) as mrc:
        mrc.set_data(file_arr)
        if extended:
            mrc.set_extended_header(np.frombuffer(extended, dtype=np.uint8))
        h = mrc.header
        h.mapc, h.mapr, h.maps = mapc, mapr, maps
        h.nxstart, h.nystart, h.nzstart = (start_xyz[a - 1] for a in axis_order)
        h.mx, h.my, h.mz = n_xyz
        h.cella = tuple(n * v for n, v in zip(n_xyz, (1.1, 1.2, 1.3)))
        h.ispg = 1
        h.label[0] = b"a test label"
        h.nlabl = 1


def position_map(shape_zyx=(5, 6, 7)) -> np.ndarray:
    z, y, x = np.indices(shape_zyx)
    return (100.0 * z + 10.0 * y + x + 0.5).astype(np.float32)


# ------------------------------------------------------------------ real maps
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_regions_of_real_maps_equal_read_map(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    density = read_map(path)
    source = MapSource.open(path)
    assert source.kind == "mrc"
    assert source.shape == density.shape
    assert source.voxel_size_zyx == density.voxel_size_zyx
    assert source.nbytes == density.data.nbytes
    for bounds in regions(source.shape, np.random.default_rng(3)):
        block = source.read(bounds)
        expected = density.data[tuple(slice(a, b) for a, b in bounds)]
        assert block.dtype == np.float32 and block.flags.c_contiguous
        assert block.shape == expected.shape
        assert block.tobytes() == expected.tobytes(), bounds


@pytest.mark.slow
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_like_reproduces_read_maps_header(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = request.getfixturevalue(fixture)
    density = read_map(path)
    source = MapSource.open(path)
    like = source.like(density.data)
    assert_same_geometry(like, density)
    a = write_map(tmp_path / "from_read_map.mrc", density)
    b = write_map(tmp_path / "from_like.mrc", like)
    assert a.read_bytes() == b.read_bytes()
    again = source.density()
    assert_same_geometry(again, density)
    assert np.array_equal(again.data, density.data)


def test_rdrp_321_region_is_the_transposed_file_block(rdrp_map: Path) -> None:
    source = MapSource.open(rdrp_map)
    with mrcfile.mmap(rdrp_map, permissive=True) as mrc:
        file_data = np.array(mrc.data[10:20, 30:35, 100:150])  # [section=x, row=y, column=z]
    block = source.read(((100, 150), (30, 35), (10, 20)))
    assert np.array_equal(block, np.transpose(file_data, (2, 1, 0)))


def test_blocks_are_writable_copies(emd3488_map: Path) -> None:
    source = MapSource.open(emd3488_map)
    block = source.read(((0, 2), (0, 100), (0, 100)))  # already contiguous in the file: still a copy
    assert block.flags.writeable and block.flags.owndata
    before = block.copy()
    block += 1.0
    assert np.array_equal(source.read(((0, 2), (0, 100), (0, 100))), before)


def test_pickle_holds_no_voxels(emd3488_map: Path) -> None:
    source = MapSource.open(emd3488_map)
    blob = pickle.dumps(source)
    assert len(blob) < 4000  # the map holds 4 MB of voxels
    clone = pickle.loads(blob)
    assert clone == source
    assert np.array_equal(clone.read(((10, 12), (0, 100), (5, 9))), source.read(((10, 12), (0, 100), (5, 9))))


# ------------------------------------------------------------- synthetic maps
@pytest.mark.parametrize("axis_order", list(itertools.permutations((1, 2, 3))),
                         ids=lambda a: "".join(map(str, a)))
def test_every_axis_order_reads_the_same_regions(axis_order, tmp_path: Path) -> None:
    vol = position_map()
    path = tmp_path / "m.mrc"
    write_layout(path, vol, axis_order, extended=bytes(range(40)))
    source = MapSource.open(path)
    density = read_map(path)
    assert source.shape == vol.shape
    assert_same_geometry(source.like(vol), density)
    assert source.geometry["header_extras"]["extended_header"] == bytes(range(40))
    for bounds in regions(vol.shape, np.random.default_rng(sum(axis_order) * 7 + axis_order[0])):
        assert np.array_equal(source.read(bounds), vol[tuple(slice(a, b) for a, b in bounds)])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16, ">f4", ">i2"],
                         ids=["int8", "int16", "uint16", "float16", "be_f4", "be_i2"])
def test_modes_and_byte_orders(dtype, tmp_path: Path) -> None:
    vol = (position_map() % 100).astype(np.float32)
    path = tmp_path / "m.mrc"
    write_layout(path, vol, (2, 3, 1), dtype=dtype)
    source = MapSource.open(path)
    expected = read_map(path).data
    bounds = ((1, 4), (0, 6), (2, 7))
    block = source.read(bounds)
    assert block.dtype == np.float32
    assert block.tobytes() == expected[1:4, 0:6, 2:7].tobytes()


def test_gzipped_map_reads_by_region(spike_map: Path, tmp_path: Path) -> None:
    path = tmp_path / "s.mrc.gz"
    with open(spike_map, "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    source = MapSource.open(path)
    plain = MapSource.open(spike_map)
    assert source.gz and source.shape == plain.shape
    assert source.geometry == plain.geometry
    bounds = ((3, 30), (5, 9), (0, 48))
    assert source.read(bounds).tobytes() == plain.read(bounds).tobytes()
    assert source.identity()["header_sha256"] == plain.identity()["header_sha256"]


def test_rewritten_file_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "m.mrc"
    vol = position_map()
    write_layout(path, vol, (1, 2, 3))
    source = MapSource.open(path)
    assert source.read()[0, 0, 0] == vol[0, 0, 0]
    tmp = tmp_path / "new.mrc"
    write_layout(tmp, vol + 1, (1, 2, 3))
    os.replace(tmp, path)  # replaced the way our writers replace files
    assert source.read()[0, 0, 0] == vol[0, 0, 0] + 1


# ----------------------------------------------------------------- identity
def test_identity_follows_the_header(tmp_path: Path) -> None:
    path = tmp_path / "m.mrc"
    write_layout(path, position_map(), (1, 2, 3))
    first = MapSource.open(path).identity()
    assert first["size"] == path.stat().st_size and first["mtime_ns"] == path.stat().st_mtime_ns
    with mrcfile.open(path, mode="r+") as mrc:
        mrc.header.origin = (1.0, 2.0, 3.0)
    second = MapSource.open(path).identity()
    assert second["header_sha256"] != first["header_sha256"]
    assert len(second["header_sha256"]) == 64


# --------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_file(tmp_path: Path, emd3488_map: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        MapSource.open(tmp_path / "missing.mrc")
    short = tmp_path / "short.mrc"
    short.write_bytes(b"\0" * 100)
    with pytest.raises(InputFileError, match="shorter than the 1024-byte header"):
        MapSource.open(short)
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(emd3488_map.read_bytes()[:-4])
    with pytest.raises(InputFileError, match=r"cut\.mrc: file is truncated"):
        MapSource.open(cut)


def test_region_outside_the_map_is_refused(emd3488_map: Path) -> None:
    source = MapSource.open(emd3488_map)
    with pytest.raises(ValueError, match="leave the map"):
        source.read(((0, 101), (0, 10), (0, 10)))
    with pytest.raises(ValueError, match="differs from map shape"):
        source.like(np.zeros((2, 2, 2), np.float32))


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_open_reads_no_voxels_of_a_map_with_nan(tmp_path: Path) -> None:
    """Value checks happen on reading, not opening: a NaN map opens, read_map refuses it."""
    vol = position_map()
    vol[2, 3, 4] = np.nan
    path = tmp_path / "nan.mrc"
    write_layout(path, vol, (1, 2, 3))
    source = MapSource.open(path)
    assert np.isnan(source.read(((2, 3), (3, 4), (4, 5)))[0, 0, 0])
    with pytest.raises(InputFileError, match="1 NaN or infinite values"):
        source.density()


def _rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024.0
    pytest.skip("no RssFile in /proc/self/status")


@pytest.mark.slow
def test_read_pages_leave_the_resident_set(tmp_path: Path) -> None:
    """Reading a 64 MiB map slab by slab does not leave its file pages in this process's RSS."""
    path = tmp_path / "big.mrc"
    vol = np.arange(256**3, dtype=np.float32).reshape(256, 256, 256)
    write_layout(path, vol, (3, 2, 1))
    del vol
    source = MapSource.open(path)
    before = _rss_file_mb()
    checksum = 0.0
    for x in range(0, 256, 16):  # x is the file's slowest axis here
        checksum += float(source.read(((0, 256), (0, 256), (x, x + 16)))[0, 0, 0])
    assert checksum == sum(float(x) for x in range(0, 256, 16))
    assert _rss_file_mb() - before < 24.0  # the map is 64 MiB


def _read_in_child(source: MapSource, bounds) -> bytes:
    return source.read(bounds).tobytes()


def test_a_pickled_source_reads_in_a_fresh_process(spike_map: Path) -> None:
    """As on a Dask worker: the source travels by pickle and the child maps the file itself."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    source = MapSource.open(spike_map)
    bounds = ((2, 40), (5, 6), (10, 48))
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_read_in_child, source, bounds).result() == source.read(bounds).tobytes()
