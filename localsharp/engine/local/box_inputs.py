"""What a box task reads, by sharpening mode: one region of each input, never a whole map.

* model-free (``mode="model_free"``): the overall-sharpened map from the run store;
* half maps (``"half_map"``): the map being sharpened and the two half maps;
* model (``"model"``): the map, and the B = 0 model map and soft atom mask computed by the
  task on that region (from the atoms near it only).

Inputs are *readers*: a :class:`~localsharp.maps.source.MapSource` (a file read by region on
the worker) or a :class:`StoredArray` (an in-memory map the driver copied into the run
store), both with ``read(bounds)``.  :class:`ScaleInputs` is small and pickles with the job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ...errors import InputFileError
from ...kernels.masks import soften_mask
from ...maps.atom_masks import atom_ball_mask
from ...maps.density import DensityMap
from ...maps.model import model_map, read_model
from ...maps.store import RunStore

Bounds = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
#: The model map of a region is computed on the region padded by this many resolutions on every
#: side, so that atoms just outside it contribute and none wraps around (gemmi's grid is periodic).
MODEL_PAD_RESOLUTIONS = 2.0


@dataclass(frozen=True)
class StoredArray:
    """An array of the run store read by region (an in-memory input copied there by the driver)."""

    store: str
    name: str

    def read(self, bounds: Bounds) -> np.ndarray:
        return RunStore(self.store).read(self.name, bounds).astype(np.float32, copy=False)


@dataclass(frozen=True)
class ScaleInputs:
    """The inputs of a scale-factor mode (half maps or model), as the tasks read them.

    Attributes
    ----------
    mode : str
        ``"half_map"`` or ``"model"``.
    map : reader
        The map being sharpened (its boxes are rendered from it).
    halves : (reader, reader) or None
        The half maps (``half_map`` mode).
    model : str or None
        Path of the model file (``model`` mode).
    frame : dict
        Geometry of the map (``voxel_size`` x, y, z; ``origin``; ``nstart``; ``cell_angles``),
        to place the model's atoms on a region.
    mask_radius : float
        Statistics within this distance (Å) of the atoms (``model`` mode).
    model_rms : float or None
        Expected model error (Å).
    """

    mode: str
    map: Any
    halves: tuple[Any, Any] | None = None
    model: str | None = None
    frame: dict[str, Any] = dataclasses.field(default_factory=dict)
    mask_radius: float = 0.0
    model_rms: float | None = None


def read_region(store: RunStore, inputs: ScaleInputs | None, region: Bounds) -> dict[str, np.ndarray]:
    """The arrays a box search needs on ``region``: ``data`` (what the box is cut from) and, with half
    maps, ``half1``/``half2``.  (The model mode's model map is made box by box: :func:`model_box`.)"""
    if inputs is None:
        return {"data": store.read("overall", region)}
    arrays = {"data": inputs.map.read(region)}
    if inputs.mode == "half_map":
        arrays["half1"], arrays["half2"] = (h.read(region) for h in inputs.halves)  # type: ignore[union-attr]
    return arrays


def render_source(store: RunStore, inputs: ScaleInputs | None, region: Bounds) -> np.ndarray:
    """The map boxes are rendered from (and the background where none reaches) on ``region``."""
    return store.read("overall", region) if inputs is None else inputs.map.read(region)


def region_frame(frame: dict[str, Any], bounds: Bounds) -> DensityMap:
    """An empty map on ``bounds`` of the input (its voxels placed where the input's are)."""
    (z0, z1), (y0, y1), (x0, x1) = bounds
    voxel = tuple(frame["voxel_size"])
    origin = tuple(frame.get("origin", (0.0, 0.0, 0.0)))
    nstart = tuple(frame.get("nstart", (0, 0, 0)))
    offset = (x0, y0, z0)
    if any(o != 0.0 for o in origin):
        origin = tuple(o + k * v for o, k, v in zip(origin, offset, voxel))
    else:
        nstart = tuple(n + k for n, k in zip(nstart, offset))
    return DensityMap(np.zeros((z1 - z0, y1 - y0, x1 - x0), np.float32), voxel, origin=origin,  # type: ignore[arg-type]
                      nstart=nstart, cell_angles=tuple(frame.get("cell_angles", (90.0, 90.0, 90.0))))  # type: ignore[arg-type]


def _padding(inputs: ScaleInputs, resolution: float) -> list[int]:
    voxel_zyx = tuple(inputs.frame["voxel_size"])[::-1]
    return [int(np.ceil(MODEL_PAD_RESOLUTIONS * resolution / v)) + 1 for v in voxel_zyx]


def model_atoms(inputs: ScaleInputs, region: Bounds, resolution: float) -> Any:
    """The model's atoms near ``region`` (within the padding and the mask radius), as a small structure
    in the input's frame; None when there are none.  Made once per task from the worker's table of
    atom positions (:func:`_atom_table`), without copying the whole model."""
    pad = _padding(inputs, resolution)
    voxel_zyx = tuple(inputs.frame["voxel_size"])[::-1]
    extra = [int(np.ceil(inputs.mask_radius / v)) + 1 for v in voxel_zyx]
    low = np.array([a - p - e for (a, _), p, e in zip(region, pad, extra)][::-1])  # x, y, z voxel indices
    high = np.array([b + p + e for (_, b), p, e in zip(region, pad, extra)][::-1])
    voxel = np.asarray(inputs.frame["voxel_size"], dtype=np.float64)
    first = np.asarray(inputs.frame["first_voxel_position"], dtype=np.float64)
    table = _atom_table(inputs.model)  # type: ignore[arg-type]
    keep = np.flatnonzero(np.all((table.xyz >= first + low * voxel) & (table.xyz < first + high * voxel), axis=1))
    if keep.size == 0:
        return None
    return _substructure(table, keep)


@dataclass(frozen=True)
class _AtomTable:
    """A model and, per atom of its first model (``model.all()`` order), position and chain/residue/atom index."""

    structure: Any
    xyz: np.ndarray
    where: np.ndarray  # (n, 3) int: chain, residue, atom


@lru_cache(maxsize=2)
def _atom_table(path: str) -> _AtomTable:
    """The model read once per worker process, with its atoms' positions as an array."""
    structure = read_model(path)
    xyz, where = [], []
    for ci, chain in enumerate(structure[0]):
        for ri, residue in enumerate(chain):
            for ai, atom in enumerate(residue):
                xyz.append(atom.pos.tolist())
                where.append((ci, ri, ai))
    return _AtomTable(structure, np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
                      np.asarray(where, dtype=np.int64).reshape(-1, 3))


def _substructure(table: _AtomTable, keep: np.ndarray) -> Any:
    """A new structure holding only the atoms ``keep`` (indices into the table), residue by residue."""
    import gemmi

    source = table.structure[0]
    out = gemmi.Structure()
    out.add_model(gemmi.Model("1"))
    model = out[0]
    chains: dict[int, Any] = {}
    residues: dict[tuple[int, int], Any] = {}
    for ci, ri, ai in table.where[keep].tolist():
        if (ci, ri) not in residues:
            original = source[ci][ri]
            residue = gemmi.Residue()
            residue.name, residue.seqid, residue.het_flag = original.name, original.seqid, original.het_flag
            residues[(ci, ri)] = residue
            chains.setdefault(ci, [])
            chains[ci].append((ci, ri))
        residues[(ci, ri)].add_atom(source[ci][ri][ai])
    for ci, keys in chains.items():
        chain = gemmi.Chain(source[ci].name)
        for key in keys:
            chain.add_residue(residues[key])
        model.add_chain(chain)
    out.setup_entities()
    return out


def model_box(inputs: ScaleInputs, atoms: Any, bounds: Bounds, resolution: float, d_min: float
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """B = 0 model map (to ``d_min``) and soft atom mask (edge σ = ``resolution``) on one box's ``bounds``;
    (None, None) when no atom is near.  Computed on the box padded by :data:`MODEL_PAD_RESOLUTIONS`
    resolutions, box by box, so the values do not depend on how boxes are grouped into tasks."""
    if atoms is None:
        return None, None
    pad = _padding(inputs, resolution)
    padded = tuple((a - p, b + p) for (a, b), p in zip(bounds, pad))
    frame = region_frame(inputs.frame, padded)  # type: ignore[arg-type]
    try:
        calculated = model_map(atoms, frame, resolution=d_min, b_factor=0.0, source=inputs.model)
    except InputFileError:  # no atom of the model in this box
        return None, None
    binary = atom_ball_mask(atoms, frame, inputs.mask_radius)
    if not binary.any():
        return None, None
    soft = soften_mask(binary, frame.voxel_size_zyx, resolution)
    inner = tuple(slice(p, p + (b - a)) for (a, b), p in zip(bounds, pad))
    return np.ascontiguousarray(calculated[inner]), np.ascontiguousarray(soft[inner])


