"""``localsharp.global_sharpen(..., client=...)``: the overall sharpening on a Dask cluster.

A map that fits the smallest worker (:func:`.driver.fits_one_worker`) is sharpened by
``global_sharpen`` in one task (the same result as in this process).  A larger MRC map goes
through the distributed overall pass into a scratch run store; the sharpened map is then read
back into this process (the caller asked for it in memory) and wrapped in a SharpenResult.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...modes.common import mean_sd, options_from_kwargs, warn, warnings_returned
from ...modes.model_free import global_sharpen
from ...report.result import SharpenResult
from ...maps.density import DensityMap
from ...maps.mrc import read_map
from ...maps.store import RunStore
from .dfft import Runner
from .driver import fits_one_worker, map_header


def _one_task(map_or_path: Any, resolution: float, kwargs: dict[str, Any]) -> SharpenResult:
    with warnings_returned():  # on a worker: said once, by the client (sharpen_on_cluster)
        return global_sharpen(map_or_path, resolution, **kwargs)


def sharpen_on_cluster(client: Any, map_or_path: DensityMap | str | os.PathLike, resolution: float, *,
                       options: Any = None, mtz_labels: tuple[str, str] | None = None, name: str | None = None,
                       **kwargs: Any) -> SharpenResult:
    """``global_sharpen`` on ``client``: one task when the map fits a worker, else distributed."""
    call = dict(kwargs, options=options, mtz_labels=mtz_labels, name=name)
    is_mtz = not isinstance(map_or_path, DensityMap) and Path(map_or_path).suffix.lower() == ".mtz"
    source = map_or_path if isinstance(map_or_path, DensityMap) else str(Path(map_or_path).resolve())
    if is_mtz or fits_one_worker(client, map_header(source).shape):
        return _said(Runner(client).call(_one_task, source, resolution, call))
    from .distributed import distributed_overall

    t0 = time.perf_counter()
    opts = options if options is not None else options_from_kwargs(resolution, dict(kwargs))
    if opts.resolution != resolution:
        opts = opts.replace(resolution=resolution)
    header = map_header(source)
    scratch = tempfile.mkdtemp(prefix="localsharp_overall_")
    try:
        store_path = str(Path(scratch) / "run.zarr")
        RunStore.create(store_path, {}, header.shape, (64, 64, 64))
        details = distributed_overall(Runner(client), source, store_path, opts, header)["details"]
        density = source if isinstance(source, DensityMap) else read_map(source, mmap=True)
        data = np.asarray(RunStore(store_path).array("overall")[...])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fields = details_for_result(details)
    values = {"input": mean_sd(density.data), "output": mean_sd(data),
              "rescaled": fields["sharpening"].method != "no_sharpening"}
    result = SharpenResult(map=density.with_data(data), options=opts, values=values, **fields)
    result.timings_s["total"] = time.perf_counter() - t0
    return _said(result)


def _said(result: SharpenResult) -> SharpenResult:
    """``result`` after its warnings are logged here, where the caller sees them (once each)."""
    for warning in result.warnings:
        warn(warning)
    return result


def details_for_result(details: dict[str, Any]) -> dict[str, Any]:
    """The SharpenResult fields among the distributed pass's details."""
    keys = ("sharpening", "search", "b_iso_input", "b_iso_output", "d_min", "solvent", "box_solvent", "box",
            "region_weight", "score_output", "score_input", "b_cart_removed", "amplitudes", "applicable",
            "warnings", "discarded")
    out = {k: details[k] for k in keys}
    if not details["scored_whole_map"]:
        out["notes"] = ["the input and output were scored on the analysis box (the map is larger than the "
                        "whole-map scoring limit of the distributed overall pass)"]
    return out
