"""localsharp: automatic global and local sharpening of cryo-EM and crystallographic density maps.

Public API
----------
Every sharpening function takes the map input(s) first, then ``resolution`` (Å, positional or
``resolution=``); everything else is keyword-only.

global_sharpen(map_or_path, resolution, *, options=None, client=None, **options) -> SharpenResult
    Model-free automatic sharpening (adjusted surface area or kurtosis).
half_map_sharpen(map_or_none, half1, half2, resolution, *, mask=None, ...) -> SharpenResult
    Per-shell factors from the half maps' FSC (a Wiener filter).
model_sharpen(map_or_path, model, resolution, *, mask_radius=None, ...) -> SharpenResult
    Per-shell factors from the map's agreement with an atomic model.
local_sharpen(map_or_path, resolution, *, client=None, store=None, local=None, ...) -> LocalResult
    Local sharpening: overlapping boxes optimised independently (on Dask workers when a
    client is given), blended with Gaussian weights; resumable through its zarr store.
read_map(path) -> DensityMap / write_map(path, density, overwrite=False)
evaluate_map(density, model, resolution) -> dict
    Correlation with a B = 0 model map (the paper's quality metric).
phantom(model, output_dir, ...) -> PhantomResult
    Half maps with known truth made from an atomic model.
capsid_phantom(model, output, *, size=512, symmetry=None, ...) -> CapsidResult
    A large capsid phantom: copies of a model on a shell, at random or placed by a point group.
parse_symmetry(name, orientation=None) -> PointGroup
    A point group in the conventions users speak (C<n>, D<n>, T, O, I; ChimeraX's orientations, RELION's I1-I4).
find_symmetry(map_or_path, resolution, *, centre=None) -> SymmetryReport
    A map's point group and orientation from the correlation with its rotated copies.
check_symmetry(map_or_path, symmetry, resolution, *, orientation=None, centre=None) -> GroupScore
    Whether a given group's mates correlate in the map.

>>> import localsharp
>>> result = localsharp.global_sharpen("tests/data/emd3488_haemoglobin/map.mrc", 3.2)  # doctest: +SKIP
>>> result.sharpening.b_sharpen, result.b_iso_output  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> module that defines it.  Imported on first use (PEP 562), so that importing a
#: submodule (``localsharp.report.plots`` in the plot process, ``localsharp.cli``) does not pay
#: for numpy, scipy, zarr and the engine it does not need.
_EXPORTS = {
    "SharpenResult": ".report.result",
    "global_sharpen": ".api", "half_map_sharpen": ".modes", "model_sharpen": ".modes",
    "LocalOptions": ".config", "SharpenOptions": ".config",
    "ConfigError": ".errors", "InputFileError": ".errors", "LocalsharpError": ".errors", "OutputError": ".errors",
    "evaluate_map": ".evaluate",
    "DensityMap": ".maps.density",
    "read_map": ".maps.mrc", "write_map": ".maps.mrc",
    "PhantomResult": ".phantom", "phantom": ".phantom",
    "CapsidResult": ".capsid", "capsid_phantom": ".capsid",
    "PointGroup": ".symmetry.groups", "parse_symmetry": ".symmetry.groups",
    "SymmetryReport": ".symmetry.detect", "GroupScore": ".symmetry.detect",
    "find_symmetry": ".symmetry_map", "check_symmetry": ".symmetry_map",
    "Sharpening": ".sharpening.functions",
    "SearchConfig": ".sharpening.search", "SearchResult": ".sharpening.search",
    "search_sharpening": ".sharpening.search",
    "Spectrum": ".sharpening.spectrum",
    "LocalResult": ".engine.local.run", "local_sharpen": ".engine.local.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'localsharp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
