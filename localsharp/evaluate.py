"""Map quality against an atomic model: the paper's map–model correlation.

The map and a model map with every atomic B set to 0 (electron form factors)
are both low-pass filtered with a hard cutoff at the resolution, and their
Pearson correlation is measured over the voxels within ``mask_radius`` Å of
an atom (``cc_mask``) and over the whole box (``cc_box``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from .errors import ConfigError
from .kernels.fourier import lowpass
from .maps.density import DensityMap
from .maps.atom_masks import atom_mask
from .maps.model import BOX_MARGIN, atoms_in_box, model_map, read_model


def pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Pearson correlation of two arrays (over ``mask`` if given); ``None`` if undefined.

    Parameters
    ----------
    a, b : numpy.ndarray
        Arrays of the same shape.
    mask : numpy.ndarray of bool, optional
        Voxels to use; all when omitted.
    """
    if mask is not None:
        a, b = a[mask], b[mask]
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2:
        return None
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt(np.dot(a, a) * np.dot(b, b))
    if denominator == 0.0:
        return None
    return float(np.dot(a, b) / denominator)


def _as_structure(model: str | os.PathLike | gemmi.Structure) -> tuple[gemmi.Structure, str]:
    if isinstance(model, gemmi.Structure):
        return model, model.name or "model"
    return read_model(model), str(Path(model))


def evaluate_map(
    density: DensityMap,
    model: str | os.PathLike | gemmi.Structure,
    resolution: float,
    *,
    mask_radius: float = 3.0,
) -> dict[str, Any]:
    """Correlation of a map with the B = 0 model map, both low-passed at ``resolution``.

    Parameters
    ----------
    density : DensityMap
        Map to evaluate.
    model : path or gemmi.Structure
        Model in the map's frame (first model used).
    resolution : float
        Low-pass cutoff (Å) applied to both maps (coefficients with d < resolution
        removed).
    mask_radius : float
        Voxels within this distance (Å) of an atom form the mask for ``cc_mask``.

    Returns
    -------
    dict
        ``cc_mask`` and ``cc_box`` (float, or ``None`` when undefined),
        ``n_mask_voxels``, ``n_atoms_used`` (atoms inside the box, within the
        margin used for the model map), ``resolution`` and ``mask_radius``.

    Raises
    ------
    ConfigError
        If ``resolution`` or ``mask_radius`` is not positive.
    InputFileError
        If the model cannot be read or lies outside the map.
    """
    if not resolution > 0:
        raise ConfigError(f"resolution must be positive, got {resolution}")
    if not mask_radius > 0:
        raise ConfigError(f"mask radius must be positive, got {mask_radius}")
    structure, source = _as_structure(model)
    calculated = model_map(structure, density, resolution=resolution, b_factor=0.0, source=source)
    observed = lowpass(density.data, density.voxel_size_zyx, resolution, density.cell_angles)
    mask = atom_mask(structure, density, mask_radius)
    return {
        "cc_mask": pearson(observed, calculated, mask),
        "cc_box": pearson(observed, calculated),
        "n_mask_voxels": int(np.count_nonzero(mask)),
        "n_atoms_used": int(np.count_nonzero(atoms_in_box(structure, density, BOX_MARGIN))),
        "resolution": float(resolution),
        "mask_radius": float(mask_radius),
    }
