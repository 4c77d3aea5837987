"""OME-Zarr (OME-NGFF 0.5 on zarr v3) images of maps, and zarr inputs for :class:`~.source.MapSource`.

An image written by :func:`create_image` is a zarr v3 group whose ``ome``
attributes follow OME-NGFF 0.5: one multiscale level ``"0"`` with axes
``z, y, x`` (type ``space``, unit ``angstrom``) and coordinate
transformations ``scale`` = voxel size and ``translation`` = position of the
first voxel (Å, z, y, x).  Its ``localsharp`` attributes keep the MRC header
of the input (cell, NSTART, ORIGIN, axis order, labels, ...), so a CCP4 map
written from the image has the input's header exactly.

:func:`open_zarr_source` opens, for :meth:`MapSource.open <.source.MapSource.open>`,
a bare zarr v3 array (voxel size from its ``voxel_size`` attribute) or an
OME-Zarr image (level 0; geometry from the ``localsharp`` attributes when
present, else from the NGFF metadata).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError
from . import checksums
from .source import MapSource, geometry_of, header_density

NGFF_VERSION = "0.5"
AXES = ("z", "y", "x")
#: Length units of NGFF axes we accept, in Å.
UNITS_IN_ANGSTROM = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4}


# ------------------------------------------------------------------ writing
def header_attributes(template: Any) -> dict[str, Any]:
    """The ``localsharp`` attributes (JSON) holding a map's MRC header fields, exactly."""
    geometry, shape = geometry_of(template)
    extras = geometry["header_extras"]
    attrs: dict[str, Any] = {
        "shape_zyx": list(shape),
        "voxel_size": list(geometry["voxel_size"]),
        "origin": list(geometry["origin"]),
        "nstart": list(geometry["nstart"]),
        "cell_grid": list(geometry["cell_grid"]),
        "cell_angles": list(geometry["cell_angles"]),
        "axis_order": list(geometry["axis_order"]),
        "space_group": int(geometry["space_group"]),
    }
    # Byte strings as latin-1 text: every byte maps to one character and back.
    extra: dict[str, Any] = {}
    if "labels" in extras:
        extra["labels"] = [bytes(label).decode("latin-1") for label in extras["labels"]]
    if "exttyp" in extras:
        extra["exttyp"] = bytes(extras["exttyp"]).decode("latin-1")
    if "extended_header" in extras:
        extra["extended_header_base64"] = base64.b64encode(bytes(extras["extended_header"])).decode("ascii")
    for key in ("nversion",):
        if key in extras:
            extra[key] = int(extras[key])
    for key in ("cella", "voxel_size", "cell_grid"):
        if key in extras:
            extra[f"header_{key}"] = list(extras[key])
    attrs["header_extras"] = extra
    return attrs


def ngff_attributes(template: Any, name: str) -> dict[str, Any]:
    """The OME-NGFF 0.5 ``ome`` attributes of a one-level image of a map."""
    density = header_density(template)
    return {
        "version": NGFF_VERSION,
        "multiscales": [{
            "name": name,
            "axes": [{"name": axis, "type": "space", "unit": "angstrom"} for axis in AXES],
            "datasets": [{
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": list(density.voxel_size_zyx)},
                    {"type": "translation", "translation": list(density.first_voxel_position[::-1])},
                ],
            }],
        }],
    }


def create_image(path: str | os.PathLike, geometry: Any, chunks: tuple[int, int, int], dtype: str = "float32",
                 *, name: str | None = None, overwrite: bool = False) -> Any:
    """Create an empty OME-Zarr image with a map's geometry; return its level-0 zarr array to fill.

    Parameters
    ----------
    path : str or path-like
        Directory of the new zarr v3 group.
    geometry : MapSource or DensityMap
        The map whose shape and header the image takes.
    chunks : tuple of int
        Chunk shape ``(z, y, x)`` of the array.
    dtype : str
        Voxel type of the array.
    name : str, optional
        Multiscale name (default: the directory name without suffix).
    overwrite : bool
        Replace an existing directory; otherwise an existing path is an error.

    Returns
    -------
    zarr.Array
        The array ``path/0``, indexed ``[z, y, x]``, fill value 0; every chunk ends with its CRC32C
        and every chunk is written (:mod:`.checksums`).
    """
    import zarr

    from ..errors import OutputError

    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; use --overwrite (overwrite=True) to replace it")
    _, shape = geometry_of(geometry)
    if len(chunks) != 3 or any(int(c) != c or c <= 0 for c in chunks):
        raise ValueError(f"chunks must be three positive integers (z, y, x), got {chunks!r}")
    attributes = {"ome": ngff_attributes(geometry, name or path.name.split(".")[0]),
                  "localsharp": header_attributes(geometry)}
    group = zarr.create_group(str(path), zarr_format=3, overwrite=overwrite, attributes=attributes)
    return checksums.create_array(group, "0", shape=shape, chunks=tuple(int(c) for c in chunks), dtype=dtype,
                                  fill_value=0, dimension_names=list(AXES))


def slowest_axis(source: MapSource) -> int:
    """The ``[z, y, x]`` axis along which ``source``'s voxels are stored slowest (cheapest slabs)."""
    return source.perm.index(0) if source.kind == "mrc" else 0


def convert_to_image(source: MapSource, path: str | os.PathLike, chunks: tuple[int, int, int], *,
                     slab_bytes: int = 64 * 2**20, name: str | None = None, overwrite: bool = False) -> MapSource:
    """Copy a map into a new OME-Zarr image (:func:`create_image`), one slab at a time; open the image.

    Slabs run along the input's slowest stored axis (:func:`slowest_axis`)
    and span whole chunks, so every chunk is written once and memory is
    bounded by ``slab_bytes`` (or one layer of chunks, if bigger).
    """
    array = create_image(path, source, chunks, name=name, overwrite=overwrite)
    axis = slowest_axis(source)
    layer_bytes = source.nbytes // source.shape[axis]
    step = int(chunks[axis])
    step *= max(1, slab_bytes // max(1, layer_bytes * step))
    for start in range(0, source.shape[axis], step):
        bounds = [(0, n) for n in source.shape]
        bounds[axis] = (start, min(start + step, source.shape[axis]))
        index = tuple(slice(a, b) for a, b in bounds)
        array[index] = source.read(tuple(bounds))  # type: ignore[arg-type]
    return MapSource.open(path)


# ------------------------------------------------------------------ reading
def _metadata(path: Path) -> dict[str, Any]:
    meta = path / "zarr.json"
    if not meta.is_file():
        if (path / ".zarray").is_file() or (path / ".zgroup").is_file():
            raise InputFileError(path, "zarr v2 store; only zarr v3 arrays and OME-Zarr 0.5 images are read")
        raise InputFileError(path, "a directory but not a zarr v3 array or OME-Zarr image (no zarr.json)")
    try:
        content = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(meta, f"cannot read zarr metadata ({exc})") from None
    if content.get("zarr_format") != 3:
        raise InputFileError(path, f"zarr format {content.get('zarr_format')!r}; only zarr v3 is read")
    return content


def _array_metadata(path: Path, where: Path) -> dict[str, Any]:
    content = _metadata(path)
    if content.get("node_type") != "array":
        raise InputFileError(where, f"{path.name} is not a zarr array")
    shape = content.get("shape", [])
    if len(shape) != 3:
        raise InputFileError(where, f"needs a 3-D array, found shape {tuple(shape)}")
    if any(int(n) <= 0 for n in shape):
        raise InputFileError(where, f"array shape {tuple(shape)} has an empty axis")
    try:
        kind = np.dtype(str(content.get("data_type"))).kind
    except TypeError:
        kind = "?"
    if kind not in "iuf":
        raise InputFileError(where, f"array data type {content.get('data_type')!r} is not a real number type")
    return content


def _geometry_from_header_attributes(where: Path, attrs: dict[str, Any], shape: tuple[int, ...]) -> dict[str, Any]:
    if tuple(attrs.get("shape_zyx", shape)) != tuple(shape):
        raise InputFileError(where, f"localsharp attributes describe shape {tuple(attrs['shape_zyx'])}, "
                                    f"the array has {tuple(shape)}")
    extra = attrs.get("header_extras", {})
    extras: dict[str, Any] = {}
    if "labels" in extra:
        extras["labels"] = [text.encode("latin-1") for text in extra["labels"]]
    if "exttyp" in extra:
        extras["exttyp"] = extra["exttyp"].encode("latin-1")
    if "nversion" in extra:
        extras["nversion"] = int(extra["nversion"])
    if "extended_header_base64" in extra:
        extras["extended_header"] = base64.b64decode(extra["extended_header_base64"])
    for key, kind in (("cella", float), ("voxel_size", float), ("cell_grid", int)):
        if f"header_{key}" in extra:
            extras[key] = tuple(kind(v) for v in extra[f"header_{key}"])
    return {
        "voxel_size": tuple(float(v) for v in attrs["voxel_size"]),
        "origin": tuple(float(v) for v in attrs["origin"]),
        "nstart": tuple(int(v) for v in attrs["nstart"]),
        "cell_grid": tuple(int(v) for v in attrs["cell_grid"]),
        "cell_angles": tuple(float(v) for v in attrs["cell_angles"]),
        "axis_order": tuple(int(v) for v in attrs["axis_order"]),
        "space_group": int(attrs["space_group"]),
        "header_extras": extras,
    }


def _plain_geometry(voxel_xyz: tuple[float, ...], origin_xyz: tuple[float, ...],
                    shape: tuple[int, ...]) -> dict[str, Any]:
    return {"voxel_size": tuple(voxel_xyz), "origin": tuple(origin_xyz), "nstart": (0, 0, 0),
            "cell_grid": tuple(int(n) for n in shape[::-1]), "cell_angles": (90.0, 90.0, 90.0),
            "axis_order": (1, 2, 3), "space_group": 1, "header_extras": {}}


def _xyz(where: Path, value: Any, what: str) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, (int, float)) else list(value)
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(np.isfinite(out)):
        raise InputFileError(where, f"attribute {what!r} must be a number or three numbers (x, y, z), got {value!r}")
    return out  # type: ignore[return-value]


def _open_array(path: Path, content: dict[str, Any]) -> MapSource:
    shape = tuple(int(n) for n in content["shape"])
    attrs = content.get("attributes", {})
    if "localsharp" in attrs:
        geometry = _geometry_from_header_attributes(path, attrs["localsharp"], shape)
    else:
        if "voxel_size" not in attrs:
            raise InputFileError(path, 'zarr array has no voxel size: set its attribute "voxel_size" to [x, y, z] '
                                       'in Å, e.g. zarr.open_array(path).attrs["voxel_size"] = [1.0, 1.0, 1.0]')
        origin = _xyz(path, attrs["origin"], "origin") if "origin" in attrs else (0.0, 0.0, 0.0)
        geometry = _plain_geometry(_xyz(path, attrs["voxel_size"], "voxel_size"), origin, shape)
    _check_voxel_size(path, geometry["voxel_size"])
    return MapSource(path=str(path), kind="zarr", shape=shape, geometry=geometry,  # type: ignore[arg-type]
                     array_path=str(path))


def _check_voxel_size(path: Path, voxel: tuple[float, ...]) -> None:
    if any(not v > 0 for v in voxel):
        raise InputFileError(path, f"voxel size {tuple(voxel)} Å must be positive")


def _ngff_transform(where: Path, transforms: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    scale, shift = np.ones(3), np.zeros(3)
    for item in transforms or []:
        if item.get("type") == "scale":
            scale, shift = scale * np.asarray(item["scale"], float), shift * np.asarray(item["scale"], float)
        elif item.get("type") == "translation":
            shift = shift + np.asarray(item["translation"], float)
        elif item.get("type") != "identity":
            raise InputFileError(where, f"unsupported OME-Zarr coordinate transformation {item.get('type')!r}")
    return scale, shift


def _open_image(path: Path, ome: dict[str, Any]) -> MapSource:
    try:
        multiscale = ome["multiscales"][0]
        dataset = multiscale["datasets"][0]
        axes = multiscale["axes"]
    except (KeyError, IndexError, TypeError):
        raise InputFileError(path, "OME-Zarr group has no multiscales with a dataset") from None
    names = tuple(axis.get("name") for axis in axes)
    if names != AXES or any(axis.get("type", "space") != "space" for axis in axes):
        raise InputFileError(path, f"OME-Zarr image needs the spatial axes z, y, x; found {names}")
    units = {axis.get("unit", "angstrom") for axis in axes}
    if len(units) != 1 or next(iter(units)) not in UNITS_IN_ANGSTROM:
        raise InputFileError(path, f"OME-Zarr axis units {sorted(map(str, units))}: need one of "
                                   f"{sorted(UNITS_IN_ANGSTROM)} on all axes")
    array_path = path / str(dataset["path"])
    content = _array_metadata(array_path, path)
    shape = tuple(int(n) for n in content["shape"])
    attrs = _metadata(path).get("attributes", {})
    if "localsharp" in attrs:
        geometry = _geometry_from_header_attributes(path, attrs["localsharp"], shape)
    else:
        scale, shift = _ngff_transform(path, dataset.get("coordinateTransformations", []))
        outer_scale, outer_shift = _ngff_transform(path, multiscale.get("coordinateTransformations", []))
        unit = UNITS_IN_ANGSTROM[next(iter(units))]
        voxel = scale * outer_scale * unit
        first = (shift * outer_scale + outer_shift) * unit
        geometry = _plain_geometry(tuple(float(v) for v in voxel[::-1]), tuple(float(v) for v in first[::-1]), shape)
    _check_voxel_size(path, geometry["voxel_size"])
    return MapSource(path=str(path), kind="ome-zarr", shape=shape, geometry=geometry,  # type: ignore[arg-type]
                     array_path=str(array_path))


def open_zarr_source(path: Path) -> MapSource:
    """A :class:`MapSource` for a zarr v3 array or an OME-Zarr image directory (metadata only)."""
    content = _metadata(path)
    if content.get("node_type") == "array":
        return _open_array(path, _array_metadata(path, path))
    ome = content.get("attributes", {}).get("ome")
    if not isinstance(ome, dict):
        raise InputFileError(path, "zarr group is not an OME-Zarr image (no \"ome\" attributes); "
                                   "give the array's directory instead")
    return _open_image(path, ome)


def metadata_identity(path: Path) -> dict[str, Any]:
    """Total size, latest mtime_ns and SHA-256 of the ``zarr.json`` files under ``path`` (sorted)."""
    digest = hashlib.sha256()
    size = mtime = 0
    for meta in sorted(path.rglob("zarr.json")):
        stat = meta.stat()
        size, mtime = size + stat.st_size, max(mtime, stat.st_mtime_ns)
        digest.update(str(meta.relative_to(path)).encode() + b"\0" + meta.read_bytes())
    return {"size": size, "mtime_ns": mtime, "header_sha256": digest.hexdigest()}
