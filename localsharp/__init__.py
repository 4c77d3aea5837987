"""localsharp: automatic global (and, later, local) sharpening of density maps.

Public API
----------
global_sharpen(map_or_path, resolution, **options) -> SharpenResult
    Model-free automatic sharpening (adjusted surface area or kurtosis).
half_map_sharpen(map, half1, half2, resolution, ...) -> SharpenResult
model_sharpen(map, model, resolution, ...) -> SharpenResult
read_map(path) -> DensityMap / write_map(path, density, overwrite=False)
evaluate_map(density, model, resolution) -> dict
    Correlation with a B = 0 model map (the paper's quality metric).
phantom(model, output_dir, ...) -> PhantomResult
    Half maps with known truth made from an atomic model.
local_sharpen(map, client=None, *, resolution, store=None, local=LocalOptions()) -> LocalResult
    Local sharpening: overlapping boxes optimised independently (on Dask workers when a
    client is given), blended with Gaussian weights; resumable through its zarr store.

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
    "SharpenResult": ".api", "global_sharpen": ".api",
    "LocalOptions": ".config", "SharpenOptions": ".config",
    "ConfigError": ".errors", "InputFileError": ".errors", "LocalsharpError": ".errors", "OutputError": ".errors",
    "evaluate_map": ".evaluate",
    "DensityMap": ".maps.density",
    "read_map": ".maps.mrc", "write_map": ".maps.mrc",
    "PhantomResult": ".phantom", "phantom": ".phantom",
    "Sharpening": ".sharpening.functions",
    "SearchConfig": ".sharpening.search", "SearchResult": ".sharpening.search",
    "search_sharpening": ".sharpening.search",
    "Spectrum": ".sharpening.spectrum",
    "LocalResult": ".engine.run", "local_sharpen": ".engine.run",
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
