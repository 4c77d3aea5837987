"""The driver's side of the local scale-factor modes: open and check the half maps or the model.

Everything here runs in the client before a task starts and reads headers only
(and the model file): half maps on another grid, or a model outside the map, are
refused with the file's name.  In-memory maps are copied into the run store
(:class:`~.box_inputs.StoredArray`) so that no task pickles a whole map; files are
read by region on the workers.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gemmi
import numpy as np

from ...errors import ConfigError, InputFileError
from ...maps.density import DensityMap
from ...maps.loading import check_same_grid
from ...maps.model import check_model_in_box, read_model
from ...maps.store import RunStore
from ...modes.model import MODEL_MASK_RADIUS_FACTOR
from .box_inputs import ScaleInputs, StoredArray
from .inputs import MemorySource, Source, geometry_of, open_input

MapInput = DensityMap | str | os.PathLike
#: Names of the in-memory inputs copied into the run store.
STORED = {"map": "input", "half1": "half_1", "half2": "half_2"}
#: A model given as a gemmi.Structure is written into the store under this name.
MODEL_FILE = "model.cif"


def grid_view(source: Source) -> SimpleNamespace:
    """The header facts :func:`check_same_grid` and :func:`check_model_in_box` read, without voxels."""
    g = geometry_of(source)
    voxel = tuple(g["voxel_size"])
    shape_xyz = tuple(g["shape_xyz"])
    return SimpleNamespace(shape_xyz=shape_xyz, voxel_size=voxel, cell_angles=tuple(g["cell_angles"]),
                           first_voxel_position=tuple(g["first_voxel_position"]), origin=tuple(g["origin"]),
                           nstart=tuple(g["nstart"]), box_lengths=tuple(n * v for n, v in zip(shape_xyz, voxel)))


def _name(value: Any, default: str) -> str:
    return default if isinstance(value, DensityMap) else str(value)


def open_scale_inputs(source: Source, half_maps: tuple[MapInput, MapInput] | None,
                      model: str | os.PathLike | gemmi.Structure | None, *, model_rms: float | None = None,
                      mask_radius: float | None = None, resolution: float) -> dict[str, Any] | None:
    """Open and check the mode's inputs (headers only); None in the model-free mode.

    Returns a small description: ``mode``, the opened half-map sources, the model (path or structure),
    and the identities that make the run description.

    Raises
    ------
    InputFileError
        A half map that is not a map or not on the map's grid; a model that cannot be read, or lies
        outside the map (the message names the file).
    ConfigError
        Both half maps and a model; a bad model error or mask radius.
    """
    if half_maps is not None and model is not None:
        raise ConfigError("give half maps or a model for local sharpening, not both")
    if half_maps is None and model is None:
        return None
    view, map_name = grid_view(source), source.path if not isinstance(source, MemorySource) else "map"
    if half_maps is not None:
        if len(half_maps) != 2:
            raise ConfigError(f"half maps: give exactly two, got {len(half_maps)}")
        halves = tuple(open_input(h) for h in half_maps)
        for h, given, label in zip(halves, half_maps, ("half map 1", "half map 2")):
            check_same_grid(view, str(map_name), grid_view(h), _name(given, label))  # type: ignore[arg-type]
        return {"mode": "half_map", "halves": halves,
                "identity": {"mode": "half_map", "half_maps": [h.identity() for h in halves]}}
    if model_rms is not None and not model_rms >= 0:
        raise ConfigError(f"model rms error must be zero or positive, got {model_rms}")
    radius = MODEL_MASK_RADIUS_FACTOR * resolution if mask_radius is None else float(mask_radius)
    if not radius > 0:
        raise ConfigError(f"model mask radius must be positive, got {mask_radius}")
    if isinstance(model, gemmi.Structure):
        structure, name, digest = model, model.name or "model", hashlib.sha256(model.make_mmcif_document()
                                                                               .as_string().encode()).hexdigest()
    else:
        path = Path(model).resolve()  # type: ignore[arg-type]
        structure, name, digest = read_model(path), str(path), _file_sha256(path)
    check_model_in_box(structure, view, name)  # type: ignore[arg-type]
    return {"mode": "model", "model": model if isinstance(model, gemmi.Structure) else str(name),
            "model_rms": model_rms, "mask_radius": radius,
            "identity": {"mode": "model", "model": name, "model_sha256": digest, "model_rms": model_rms,
                         "mask_radius": radius}}


def scale_inputs(opened: dict[str, Any] | None, source: Source, store: RunStore, *, copy: bool) -> ScaleInputs | None:
    """The :class:`ScaleInputs` of the tasks; in-memory maps (and a structure) are written into the store
    first when ``copy`` (a new run; a resumed one has them)."""
    if opened is None:
        return None
    frame = geometry_of(source)
    reader = _reader(source, store, STORED["map"], copy)
    if opened["mode"] == "half_map":
        halves = tuple(_reader(h, store, STORED[k], copy) for h, k in zip(opened["halves"], ("half1", "half2")))
        return ScaleInputs("half_map", reader, halves=halves, frame=frame)  # type: ignore[arg-type]
    model = opened["model"]
    if isinstance(model, gemmi.Structure):
        target = store.path / MODEL_FILE
        if copy or not target.exists():
            tmp = target.with_name(".model.tmp.cif")
            model.make_mmcif_document().write_file(str(tmp))
            os.replace(tmp, target)
        model = str(target)
    return ScaleInputs("model", reader, model=model, frame=frame, mask_radius=opened["mask_radius"],
                       model_rms=opened["model_rms"])


def _reader(source: Source, store: RunStore, name: str, copy: bool) -> Any:
    """A file is read by region as it is; an in-memory map is copied into the store once."""
    if not isinstance(source, MemorySource):
        return source
    if copy or name not in store.array_names():
        store.add_array(name, np.ascontiguousarray(source.density.data, dtype=np.float32))
    return StoredArray(str(store.path), name)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InputFileError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    return digest.hexdigest()
