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

from .api import SharpenResult, global_sharpen
from .config import LocalOptions, SharpenOptions
from .errors import ConfigError, InputFileError, LocalsharpError, OutputError
from .evaluate import evaluate_map
from .maps.density import DensityMap
from .maps.mrc import read_map, write_map
from .phantom import PhantomResult, phantom
from .sharpening.functions import Sharpening
from .sharpening.search import SearchConfig, SearchResult, search_sharpening
from .sharpening.spectrum import Spectrum

__all__ = [
    "ConfigError", "DensityMap", "LocalOptions", "LocalResult", "local_sharpen", "InputFileError", "LocalsharpError", "OutputError", "PhantomResult",
    "SearchConfig", "SearchResult", "SharpenOptions", "SharpenResult", "Sharpening", "Spectrum",
    "evaluate_map", "global_sharpen", "phantom", "read_map", "search_sharpening", "write_map",
]


def __getattr__(name: str):
    """``local_sharpen`` and ``LocalResult`` are imported on first use (zarr costs import time)."""
    if name in ("local_sharpen", "LocalResult"):
        from .engine import run

        return getattr(run, name)
    raise AttributeError(f"module 'localsharp' has no attribute {name!r}")
