"""Streamed CCP4 writing (localsharp.maps.stream): byte-identical to write_map on the real maps,
bounded slabs along the file's slowest axis, atomic replacement."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
from mrcfile.dtypes import HEADER_DTYPE

from localsharp.errors import OutputError
from localsharp.maps import mrc as mrc_module
from localsharp.maps.mrc import read_map, write_map
from localsharp.maps.source import MapSource
from localsharp.maps.stream import write_map_streamed

REAL_MAPS = [
    pytest.param("emd3488_map", id="emd3488"),
    pytest.param("spike_map", id="spike_origin"),
    pytest.param("rdrp_map", id="rdrp_crop_321", marks=pytest.mark.shared),
]
STATS = ("dmin", "dmax", "dmean", "rms")


class RecordingArray:
    """A numpy array behind ``__getitem__`` that records the size of every block read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.reads = data, data.shape, []

    def __getitem__(self, index):
        block = self.data[index]
        self.reads.append(block.nbytes)
        return block


@pytest.mark.slow
@pytest.mark.parametrize("slab_bytes", [1, 300_000, 64 * 2**20], ids=["one_section", "slabs", "default"])
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_streamed_file_is_write_maps_file(fixture: str, slab_bytes: int, request: pytest.FixtureRequest,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = request.getfixturevalue(fixture)
    density = read_map(path)
    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0)  # write_map's chunked writer: float64 statistics
    expected = write_map(tmp_path / "expected.mrc", density, label="streamed").read_bytes()
    for template in (density, MapSource.open(path)):
        out = write_map_streamed(tmp_path / "out.mrc", density.data, template, label="streamed",
                                 slab_bytes=slab_bytes, overwrite=True)
        assert out.read_bytes() == expected
    # against mrcfile's writer (float32 statistics) everything but the statistics is identical
    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 2**62)
    small = write_map(tmp_path / "mrcfile.mrc", density, label="streamed").read_bytes()
    ours = (tmp_path / "out.mrc").read_bytes()
    assert ours[1024:] == small[1024:]
    a, b = (np.frombuffer(x[:1024], HEADER_DTYPE)[0] for x in (ours, small))
    for name in HEADER_DTYPE.names:
        if name in STATS:
            assert float(a[name]) == pytest.approx(float(b[name]), rel=1e-6)
        else:
            assert a[name].tobytes() == b[name].tobytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_header_and_voxels_read_back_exactly(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = request.getfixturevalue(fixture)
    source = MapSource.open(path)
    out = write_map_streamed(tmp_path / "out.ccp4", RecordingArray(source.read()), source, slab_bytes=100_000)
    again, original = read_map(out), read_map(path)
    for name in ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group"):
        assert getattr(again, name) == getattr(original, name), name
    assert again.header_extras == original.header_extras
    assert again.data.tobytes() == original.data.tobytes()
    with mrcfile.open(path, permissive=True) as a, mrcfile.open(out, permissive=True) as b:
        for name in ("nx", "ny", "nz", "mapc", "mapr", "maps", "nxstart", "nystart", "nzstart", "mx", "my", "mz",
                     "cella", "cellb", "origin", "ispg", "nlabl", "exttyp", "nversion", "nsymbt"):
            assert a.header[name].tobytes() == b.header[name].tobytes(), name
        n = int(a.header.nlabl)  # labels past NLABL are cleared, as write_map does
        assert a.header.label[:n].tobytes() == b.header.label[:n].tobytes()
        data = b.data.astype(np.float64)
        assert float(b.header.dmax) == np.float32(data.max()) and float(b.header.dmin) == np.float32(data.min())
        assert float(b.header.rms) == pytest.approx(data.std(), rel=1e-6)


@pytest.mark.slow
def test_slabs_follow_the_files_slowest_axis(rdrp_map: Path, tmp_path: Path) -> None:
    """RdRp is stored x-slowest (axis order 3,2,1): slabs are x-ranges of the [z, y, x] array, within the bound."""
    source = MapSource.open(rdrp_map)
    array = RecordingArray(source.read())
    section = 192 * 192 * 4
    write_map_streamed(tmp_path / "out.mrc", array, source, slab_bytes=5 * section + 10)
    slab_reads = array.reads[1:]  # the first read gives the statistics' shift (first 2**22 voxels in z, y, x)
    assert max(slab_reads) <= 5 * section
    assert len(slab_reads) == -(-192 // 5)
    assert sum(slab_reads) == source.nbytes


@pytest.mark.slow
def test_chunked_zarr_slabs_are_chunk_multiples(spike_map: Path, tmp_path: Path) -> None:
    import zarr

    source = MapSource.open(spike_map)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=source.shape, chunks=(4, 16, 16), dtype="float32")
    array[...] = source.read()
    out = write_map_streamed(tmp_path / "out.mrc", array, source, slab_bytes=10 * 40 * 48 * 4)
    assert out.read_bytes()[1024:] == spike_map.read_bytes()[1024:]
    from localsharp.maps.stream import _slab_sections

    assert _slab_sections(array, 0, 40 * 48 * 4, 10 * 40 * 48 * 4) == 8  # two chunks of 4 planes


def test_write_is_atomic(spike_map: Path, tmp_path: Path) -> None:
    source = MapSource.open(spike_map)
    target = tmp_path / "out.mrc"
    target.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        write_map_streamed(target, source.read(), source)

    class Failing(RecordingArray):
        def __getitem__(self, index):
            if len(self.reads) >= 3:
                raise RuntimeError("disk went away")
            return super().__getitem__(index)

    with pytest.raises(RuntimeError, match="disk went away"):
        write_map_streamed(target, Failing(source.read()), source, slab_bytes=40 * 48 * 4, overwrite=True)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mrc"]


def test_bad_calls_are_refused(spike_map: Path, tmp_path: Path) -> None:
    source = MapSource.open(spike_map)
    with pytest.raises(ValueError, match="differs from the template"):
        write_map_streamed(tmp_path / "a.mrc", np.zeros((2, 2, 2), np.float32), source)
    with pytest.raises(ValueError, match="does not compress"):
        write_map_streamed(tmp_path / "a.mrc.gz", source.read(), source)
    assert not list(tmp_path.iterdir())
