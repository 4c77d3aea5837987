"""OME-Zarr images (localsharp.maps.omezarr) and zarr inputs of MapSource: NGFF 0.5 metadata,
the round trip MRC -> OME-Zarr -> CCP4 keeping every header field and the voxels bitwise."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import zarr
from mrcfile.dtypes import HEADER_DTYPE

from localsharp.errors import InputFileError, OutputError
from localsharp.maps import mrc as mrc_module
from localsharp.maps.mrc import read_map, write_map
from localsharp.maps.omezarr import convert_to_image, create_image, slowest_axis
from localsharp.maps.source import MapSource
from localsharp.maps.stream import write_map_streamed

REAL_MAPS = [
    pytest.param("emd3488_map", id="emd3488"),
    pytest.param("spike_map", id="spike_origin"),
    pytest.param("rdrp_map", id="rdrp_crop_321", marks=pytest.mark.shared),
]
GEOMETRY = ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group")


def image_of(path: Path, out: Path, chunks=(32, 32, 32)) -> MapSource:
    """Copy an MRC map into an OME-Zarr image, one z-slab of chunks at a time; open the image."""
    source = MapSource.open(path)
    array = create_image(out, source, chunks)
    nz, ny, nx = source.shape
    for z in range(0, nz, chunks[0]):
        array[z:z + chunks[0]] = source.read(((z, min(z + chunks[0], nz)), (0, ny), (0, nx)))
    return MapSource.open(out)


def group_attributes(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())["attributes"]


# ------------------------------------------------------------ NGFF metadata
def test_ngff_metadata(rdrp_map: Path, tmp_path: Path) -> None:
    density = read_map(rdrp_map)
    array = create_image(tmp_path / "rdrp.ome.zarr", density, (64, 32, 16))
    ome = group_attributes(tmp_path / "rdrp.ome.zarr")["ome"]
    assert ome["version"] == "0.5"
    (multiscale,) = ome["multiscales"]
    assert multiscale["name"] == "rdrp"
    assert multiscale["axes"] == [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
    (dataset,) = multiscale["datasets"]
    assert dataset["path"] == "0"
    scale, translation = dataset["coordinateTransformations"]
    assert scale == {"type": "scale", "scale": list(density.voxel_size_zyx)}
    # NSTART (x, y, z) = (0, 28, 31) on a 0.834 Å grid: first voxel at z = 31 * 0.834 Å
    assert translation["type"] == "translation"
    assert translation["translation"] == pytest.approx([31 * 0.834, 28 * 0.834, 0.0], abs=1e-4)
    assert translation["translation"] == list(density.first_voxel_position[::-1])
    assert array.shape == (192, 192, 192) and array.chunks == (64, 32, 16)
    assert array.metadata.dimension_names == ("z", "y", "x")
    assert array.dtype == np.float32
    assert zarr.open_group(str(tmp_path / "rdrp.ome.zarr"), mode="r").metadata.zarr_format == 3


def test_translation_is_the_origin_when_set(spike_map: Path, tmp_path: Path) -> None:
    create_image(tmp_path / "s.ome.zarr", MapSource.open(spike_map), (16, 16, 16))
    dataset = group_attributes(tmp_path / "s.ome.zarr")["ome"]["multiscales"][0]["datasets"][0]
    assert dataset["coordinateTransformations"][1]["translation"] == list(read_map(spike_map).origin[::-1])


def test_existing_image_is_not_replaced(spike_map: Path, tmp_path: Path) -> None:
    create_image(tmp_path / "s.ome.zarr", MapSource.open(spike_map), (16, 16, 16))
    with pytest.raises(OutputError, match="already exists"):
        create_image(tmp_path / "s.ome.zarr", MapSource.open(spike_map), (16, 16, 16))
    create_image(tmp_path / "s.ome.zarr", MapSource.open(spike_map), (8, 8, 8), overwrite=True)
    with pytest.raises(ValueError, match="three positive integers"):
        create_image(tmp_path / "t.ome.zarr", MapSource.open(spike_map), (8, 0, 8))


# ---------------------------------------------------------------- round trip
@pytest.mark.slow
@pytest.mark.parametrize("fixture", REAL_MAPS)
def test_mrc_to_omezarr_to_ccp4_keeps_header_and_voxels(fixture: str, request: pytest.FixtureRequest,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = request.getfixturevalue(fixture)
    density = read_map(path)
    source = MapSource.open(path)
    image = image_of(path, tmp_path / "map.ome.zarr", chunks=(24, 32, 40))
    assert image.kind == "ome-zarr"
    assert image.shape == source.shape and image.voxel_size_zyx == source.voxel_size_zyx
    assert image.geometry == source.geometry  # every header field, labels and extended header included
    for bounds in (((0, 5), (3, 30), (7, 40)), tuple((0, n) for n in source.shape)):
        assert image.read(bounds).tobytes() == source.read(bounds).tobytes()
    # CCP4 from the image: the input's header and voxels, and write_map's file for the same map
    out = write_map_streamed(tmp_path / "back.ccp4", zarr.open_array(image.array_path, mode="r"), image,
                             slab_bytes=2**20)
    with mrcfile.open(path, permissive=True) as a, mrcfile.open(out, permissive=True) as b:
        n = int(a.header.nlabl)
        for name in HEADER_DTYPE.names:
            if name in ("dmin", "dmax", "dmean", "rms", "label", "machst"):
                continue
            assert a.header[name].tobytes() == b.header[name].tobytes(), name
        assert a.header.label[:n].tobytes() == b.header.label[:n].tobytes()
        assert np.array_equal(np.asarray(a.data, np.float32), b.data)
    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0)
    assert out.read_bytes() == write_map(tmp_path / "direct.ccp4", density).read_bytes()
    again = image.like(image.read())
    for name in GEOMETRY:
        assert getattr(again, name) == getattr(density, name), name
    assert again.header_extras == density.header_extras


@pytest.mark.slow
def test_convert_to_image_writes_slabs_along_the_stored_slowest_axis(rdrp_map: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    source = MapSource.open(rdrp_map)
    assert slowest_axis(source) == 2  # axis order 3,2,1: x is the file's section axis
    reads, read = [], MapSource.read
    monkeypatch.setattr(MapSource, "read", lambda self, bounds=None: reads.append(bounds) or read(self, bounds))
    image = convert_to_image(source, tmp_path / "r.ome.zarr", (32, 48, 40), slab_bytes=1)
    assert [b[2] for b in reads] == [(0, 40), (40, 80), (80, 120), (120, 160), (160, 192)]
    assert all(b[:2] == ((0, 192), (0, 192)) for b in reads)
    monkeypatch.undo()
    assert image.geometry == source.geometry
    assert image.read().tobytes() == source.read().tobytes()
    assert zarr.open_array(image.array_path).chunks == (32, 48, 40)


def test_extended_header_and_labels_survive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mrc_module, "WRITE_MAPPED_MIN", 0)  # write_map's chunked writer: float64 statistics
    vol = np.random.default_rng(1).normal(size=(6, 5, 4)).astype(np.float32)
    path = tmp_path / "ext.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(vol)
        mrc.set_extended_header(np.arange(256, dtype=np.uint16).view(np.uint8))
        mrc.header.label[0] = bytes(range(170, 250))  # every byte kept, not only ASCII
        mrc.header.label[1] = b"second"
        mrc.header.nlabl = 2
        mrc.header.exttyp = b"SERI"
        mrc.voxel_size = (1.25, 1.5, 1.75)
    image = image_of(path, tmp_path / "ext.ome.zarr", chunks=(4, 4, 4))
    assert image.geometry["header_extras"]["extended_header"] == np.arange(256, dtype=np.uint16).tobytes()
    out = write_map_streamed(tmp_path / "back.mrc", zarr.open_array(image.array_path), image)
    assert out.read_bytes() == write_map(tmp_path / "direct.mrc", read_map(path)).read_bytes()
    assert read_map(out).header_extras["labels"] == [bytes(range(170, 250)), b"second"]


def test_pickle_and_identity(spike_map: Path, tmp_path: Path) -> None:
    image = image_of(spike_map, tmp_path / "s.ome.zarr")
    blob = pickle.dumps(image)
    assert len(blob) < 4000
    assert pickle.loads(blob).read(((1, 2), (0, 3), (4, 9))).tobytes() == image.read(((1, 2), (0, 3), (4, 9))).tobytes()
    first = image.identity()
    assert first["kind"] == "ome-zarr" and len(first["header_sha256"]) == 64 and first["size"] > 0
    zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="a").attrs["note"] = "changed"
    assert MapSource.open(tmp_path / "s.ome.zarr").identity()["header_sha256"] != first["header_sha256"]


# ----------------------------------------------------------- plain zarr arrays
def test_zarr_array_with_voxel_size(tmp_path: Path) -> None:
    data = np.random.default_rng(2).normal(size=(10, 11, 12)).astype(np.float32)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(4, 4, 4), dtype="float32")
    array[...] = data
    array.attrs["voxel_size"] = [1.1, 1.2, 1.3]
    array.attrs["origin"] = [10.0, 20.0, 30.0]
    source = MapSource.open(tmp_path / "a.zarr")
    assert source.kind == "zarr" and source.shape == (10, 11, 12)
    assert source.voxel_size_zyx == (1.3, 1.2, 1.1)
    assert np.array_equal(source.read(((2, 9), (0, 11), (5, 6))), data[2:9, :, 5:6])
    density = source.density()
    assert density.first_voxel_position == (10.0, 20.0, 30.0) and np.array_equal(density.data, data)
    back = read_map(write_map(tmp_path / "a.mrc", density))
    assert back.voxel_size == pytest.approx((1.1, 1.2, 1.3)) and back.origin == pytest.approx((10.0, 20.0, 30.0))


def test_zarr_integer_array_reads_as_float32(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    array = zarr.create_array(str(tmp_path / "i.zarr"), shape=data.shape, chunks=(2, 5, 6), dtype="int16")
    array[...] = data
    array.attrs["voxel_size"] = 2.0
    block = MapSource.open(tmp_path / "i.zarr").read(((1, 3), (0, 5), (0, 6)))
    assert block.dtype == np.float32 and np.array_equal(block, data[1:3].astype(np.float32))


def test_foreign_omezarr_in_nanometres(tmp_path: Path) -> None:
    """An image made without localsharp attributes: geometry from the NGFF scale and translation."""
    group = zarr.create_group(str(tmp_path / "f.ome.zarr"), zarr_format=3, attributes={"ome": {
        "version": "0.5", "multiscales": [{
            "axes": [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"],
            "datasets": [{"path": "s0", "coordinateTransformations": [
                {"type": "scale", "scale": [0.3, 0.2, 0.1]}, {"type": "translation", "translation": [3.0, 2.0, 1.0]}]}],
        }]}})
    group.create_array("s0", shape=(3, 4, 5), chunks=(3, 4, 5), dtype="float32")[...] = 1.0
    source = MapSource.open(tmp_path / "f.ome.zarr")
    assert source.voxel_size == pytest.approx((1.0, 2.0, 3.0))
    density = source.like(source.read())
    assert density.first_voxel_position == pytest.approx((10.0, 20.0, 30.0))
    assert density.axis_order == (1, 2, 3) and density.cell_grid == (5, 4, 3)


# ------------------------------------------------------------- bad inputs
def test_bad_zarr_inputs_name_the_problem(tmp_path: Path) -> None:
    zarr.create_array(str(tmp_path / "nov.zarr"), shape=(4, 4, 4), dtype="float32")
    with pytest.raises(InputFileError, match=r'nov\.zarr: zarr array has no voxel size: set its attribute "voxel_s'):
        MapSource.open(tmp_path / "nov.zarr")
    flat = zarr.create_array(str(tmp_path / "flat.zarr"), shape=(4, 4), dtype="float32")
    flat.attrs["voxel_size"] = 1.0
    with pytest.raises(InputFileError, match="needs a 3-D array"):
        MapSource.open(tmp_path / "flat.zarr")
    zarr.create_group(str(tmp_path / "g.zarr"), zarr_format=3)
    with pytest.raises(InputFileError, match="not an OME-Zarr image"):
        MapSource.open(tmp_path / "g.zarr")
    zarr.create_array(str(tmp_path / "v2.zarr"), shape=(4, 4, 4), dtype="float32", zarr_format=2)
    with pytest.raises(InputFileError, match="zarr v2"):
        MapSource.open(tmp_path / "v2.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no zarr.json"):
        MapSource.open(tmp_path / "empty")
    bad = zarr.create_array(str(tmp_path / "neg.zarr"), shape=(4, 4, 4), dtype="float32")
    bad.attrs["voxel_size"] = [1.0, 0.0, 1.0]
    with pytest.raises(InputFileError, match="must be positive"):
        MapSource.open(tmp_path / "neg.zarr")


def test_nan_in_a_zarr_input_is_refused_on_density(tmp_path: Path) -> None:
    array = zarr.create_array(str(tmp_path / "nan.zarr"), shape=(3, 3, 3), dtype="float32", fill_value=0.0)
    array[...] = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    array[1, 1, 1] = np.nan
    array.attrs["voxel_size"] = 1.0
    with pytest.raises(InputFileError, match=r"nan\.zarr: map holds 1 NaN or infinite values"):
        MapSource.open(tmp_path / "nan.zarr").density()
