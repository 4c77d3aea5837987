"""The example files of docs/troubleshooting.md's error table, made in a directory (for tests/test_troubleshooting.py).

Each name the table's examples use is made by one function below; the files are small (a few kB to
4 MB), so the whole set takes a second or two.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Callable

import gemmi
import mrcfile
import numpy as np

DATA = Path(__file__).resolve().parent / "data"
TOUR_MAP = DATA / "emd3488_haemoglobin" / "map.mrc"
TOUR_MODEL = DATA / "emd3488_haemoglobin" / "model_5ni1.cif"
SPIKE_MAP = DATA / "emd21457_spike_ntd" / "map_segment.mrc"


def _mrc(path: Path, data: np.ndarray, voxel: float = 1.0, *, label: str | None = None,
         angles: tuple[float, float, float] | None = None) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN on purpose
        with mrcfile.new(path, overwrite=True) as mrc:
            mrc.set_data(np.asarray(data, dtype=np.float32))
            mrc.voxel_size = voxel
            if angles is not None:
                mrc.header.cellb = angles
            if label is not None:
                mrc.header.label[0] = label.encode()
                mrc.header.nlabl = 1


def _smooth(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.5).astype(np.float32)


def _patch(path: Path, offset: int, values: np.ndarray) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(values.tobytes())


def _small(d: Path) -> None:
    _mrc(d / "small.mrc", _smooth((24, 24, 24)))


def _map(d: Path) -> None:
    shutil.copy(TOUR_MAP, d / "map.mrc")


def _half_maps(d: Path) -> None:
    data = _smooth((24, 24, 24))
    _mrc(d / "half_1.mrc", data + 0.1 * _smooth((24, 24, 24), 1))
    _mrc(d / "half_2.mrc", data + 0.1 * _smooth((24, 24, 24), 2))
    _mrc(d / "other_grid.mrc", _smooth((24, 24, 30)))
    _mrc(d / "negative_mask.mrc", -1.0 - np.abs(_smooth((24, 24, 24), 3)))


def _bad_values(d: Path) -> None:
    data = _smooth((24, 24, 24))
    data[3, 4, 5] = np.nan
    _mrc(d / "nan.mrc", data)
    _mrc(d / "constant.mrc", np.full((16, 16, 16), 0.25))


def _bad_files(d: Path) -> None:
    (d / "notes.mrc").write_text("this is not a map\n" * 300)
    (d / "short.mrc").write_bytes(b"hello\n")
    content = SPIKE_MAP.read_bytes()
    (d / "cut.mrc").write_bytes(content[: len(content) * 3 // 5])
    (d / "long.mrc").write_bytes(content + b"\0" * 4096)
    (d / "cut.mrc.gz").write_bytes(gzip.compress(content)[:4000])
    packed = bytearray(gzip.compress(content))
    for k in range(len(packed) // 2, len(packed) // 2 + 64):  # damaged in the middle, size trailer intact
        packed[k] ^= 0xFF
    (d / "damaged.mrc.gz").write_bytes(bytes(packed))
    (d / "folder.mrc").mkdir()
    _mrc(d / "mode3.mrc", _smooth((8, 8, 8)))
    _patch(d / "mode3.mrc", 12, np.array([3], "<i4"))
    _mrc(d / "nocell.mrc", _smooth((8, 8, 8)))
    _patch(d / "nocell.mrc", 40, np.zeros(3, "<f4"))
    _mrc(d / "huge.mrc", _smooth((8, 8, 8)))
    _patch(d / "huge.mrc", 0, np.array([10_000] * 3, "<i4"))
    _mrc(d / "nosizes.mrc", _smooth((8, 8, 8)))
    _patch(d / "nosizes.mrc", 0, np.array([0, 0, 0], "<i4"))
    _mrc(d / "nsymbt.mrc", _smooth((8, 8, 8)))
    _patch(d / "nsymbt.mrc", 92, np.array([-8], "<i4"))


def _headers(d: Path) -> None:
    _mrc(d / "sharpened.mrc", _smooth((24, 24, 24)), label="auto_sharpen map_is_sharpened")
    _mrc(d / "output.mrc", _smooth((24, 24, 24)), label="localsharp model_free: b_iso_to_d_cut b_sharpen 20.0")
    _mrc(d / "oblique.mrc", _smooth((24, 24, 24)), angles=(90.0, 90.0, 120.0))


def _models(d: Path) -> None:
    shutil.copy(TOUR_MODEL, d / "model.cif")
    structure = gemmi.read_structure(str(TOUR_MODEL))
    for atom in (a for ch in structure[0] for r in ch for a in r):
        atom.pos = gemmi.Position(atom.pos.x + 1000.0, atom.pos.y, atom.pos.z)
    structure.setup_entities()
    structure.write_pdb(str(d / "far.pdb"))
    (d / "empty.pdb").write_text("REMARK nothing here\nEND\n")
    (d / "garbage.cif").write_text("data_x\nloop_\n_a.b\n")
    (d / "broken.cif").write_text("data_x\n_a 'unterminated\n")
    (d / "unreadable.mrc").write_bytes(SPIKE_MAP.read_bytes())
    (d / "unreadable.mrc").chmod(0)
    (d / "readonly").mkdir()
    (d / "readonly").chmod(0o555)
    waters = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    residue = gemmi.Residue()
    residue.name, residue.het_flag = "HOH", "H"
    residue.seqid = gemmi.SeqId(1, " ")
    atom = gemmi.Atom()
    atom.name, atom.element, atom.pos = "O", gemmi.Element("O"), gemmi.Position(1, 2, 3)
    residue.add_atom(atom)
    chain.add_residue(residue)
    model.add_chain(chain)
    waters.add_model(model)
    waters.setup_entities()
    waters.write_pdb(str(d / "waters.pdb"))


def _sequences(d: Path) -> None:
    (d / "empty.fasta").write_text(">nothing\n\n")


def _mtz(d: Path) -> None:
    from localsharp.maps.mrc import read_map
    from localsharp.maps.mtz import write_map_coefficients

    density = read_map(SPIKE_MAP)
    write_map_coefficients(d / "coeffs.mtz", density, 3.0)
    mtz = gemmi.read_mtz_file(str(d / "coeffs.mtz"))
    for column in mtz.columns:
        if column.label not in ("H", "K", "L"):
            column.label = column.label.lower() + "_x"
    mtz.write_to_file(str(d / "odd_labels.mtz"))
    zeroed = gemmi.read_mtz_file(str(d / "coeffs.mtz"))
    array = np.array(zeroed, copy=True)
    array[:, 3:] = 0.0
    zeroed.set_data(array)
    zeroed.write_to_file(str(d / "zeros.mtz"))
    empty = gemmi.read_mtz_file(str(d / "coeffs.mtz"))
    empty.set_data(np.zeros((0, len(empty.columns)), dtype=np.float32))
    empty.write_to_file(str(d / "empty.mtz"))
    (d / "notes.mtz").write_text("not an mtz\n")


def _zarr(d: Path) -> None:
    import zarr

    zarr.create_array(str(d / "novoxel.zarr"), shape=(8, 8, 8), dtype="float32")
    zarr.create_array(str(d / "flat.zarr"), shape=(8, 8), dtype="float32").attrs["voxel_size"] = [1, 1, 1]
    zarr.create_array(str(d / "empty_axis.zarr"), shape=(8, 0, 8), dtype="float32").attrs["voxel_size"] = [1, 1, 1]
    zarr.create_array(str(d / "complex.zarr"), shape=(8, 8, 8), dtype="complex64").attrs["voxel_size"] = [1, 1, 1]
    zarr.create_array(str(d / "negative.zarr"), shape=(8, 8, 8), dtype="float32").attrs["voxel_size"] = [-1, 1, 1]
    zarr.create_array(str(d / "badvoxel.zarr"), shape=(8, 8, 8), dtype="float32").attrs["voxel_size"] = "big"
    zarr.create_array(str(d / "v2.zarr"), shape=(8, 8, 8), dtype="float32", zarr_format=2)
    zarr.create_group(str(d / "group.zarr"), zarr_format=3)
    (d / "plain.zarr").mkdir()
    (d / "badjson.zarr").mkdir()
    (d / "badjson.zarr" / "zarr.json").write_text("{not json")
    (d / "format9.zarr").mkdir()
    (d / "format9.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 9, "node_type": "array"}))

    def image(name: str, ome: dict) -> None:
        group = zarr.create_group(str(d / name), zarr_format=3, attributes={"ome": ome})
        group.create_array("0", shape=(8, 8, 8), dtype="float32")

    axes = [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]
    image("nomultiscales.ome.zarr", {"version": "0.5"})
    nested = zarr.create_group(str(d / "nested.ome.zarr"), zarr_format=3, attributes={"ome": {
        "version": "0.5", "multiscales": [{"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}]}})
    nested.create_group("0")
    image("axes.ome.zarr", {"version": "0.5", "multiscales": [{"axes": axes[:2] + [{"name": "t", "type": "time"}],
                                                             "datasets": [{"path": "0", "coordinateTransformations": scale}]}]})
    image("units.ome.zarr", {"version": "0.5", "multiscales": [{"axes": [dict(a, unit="parsec") for a in axes],
                                                              "datasets": [{"path": "0", "coordinateTransformations": scale}]}]})
    image("transform.ome.zarr", {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "affine", "affine": []}]}]}]})


def _outputs(d: Path) -> None:
    (d / "done").mkdir()
    (d / "done" / "summary.json").write_text("{}\n")
    (d / "a_file").write_text("not a directory\n")
    (d / "stored").mkdir()
    (d / "stored" / "local_run.zarr").mkdir()
    (d / "stored" / "local_run.zarr" / "run.json").write_text("{}")
    (d / "damaged").mkdir()
    (d / "damaged" / "local_run.zarr").mkdir()
    (d / "damaged" / "local_run.zarr" / "run.json").write_text("{not json")
    (d / "scheduler.json").write_text("{}")


BUILDERS: list[Callable[[Path], None]] = [_small, _map, _half_maps, _bad_values, _bad_files, _headers, _models,
                                          _sequences, _mtz, _zarr, _outputs]


def make_files(directory: Path) -> Path:
    """Make every example file in ``directory``; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for build in BUILDERS:
        build(directory)
    return directory
