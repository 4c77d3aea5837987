"""The public entry points of global sharpening, gathered from the modules that define them.

The modes live in :mod:`localsharp.modes` (one module each), map loading and the input checks
in :mod:`localsharp.maps.loading`, the result in :mod:`localsharp.report.result`.  This module
adds the one thing the modes do not do themselves: :func:`global_sharpen` on a Dask cluster
(``client=``), which it hands to :mod:`localsharp.engine.overall.on_client`.  Nothing below
this module imports it.
"""

from __future__ import annotations

import os
from typing import Any

from .config import SharpenOptions
from .maps.density import DensityMap
from .maps.loading import (MASKED_ZERO_FRACTION, check_limitations, check_resolution, load_map, map_limitations,
                           masked_warning, unit_cell_view)
from .modes import model_free
from .modes.common import (applicability, finish_sharpening, fixed_sharpening, options_from_kwargs, progress,
                           restore_input_grid)
from .modes.half_map import half_map_sharpen
from .modes.model import model_sharpen
from .sharpening.solvent import analysis_box_solvent
from .report.result import SharpenResult

__all__ = ["MASKED_ZERO_FRACTION", "SharpenResult", "analysis_box_solvent", "applicability", "check_limitations",
           "check_resolution", "finish_sharpening", "fixed_sharpening", "global_sharpen", "half_map_sharpen",
           "load_map", "map_limitations", "masked_warning", "model_sharpen", "options_from_kwargs", "progress",
           "restore_input_grid", "unit_cell_view"]


def global_sharpen(map_or_path: DensityMap | str | os.PathLike, resolution: float, *,
                   options: SharpenOptions | None = None, mtz_labels: tuple[str, str] | None = None,
                   name: str | None = None, client: Any = None, **kwargs: Any) -> SharpenResult:
    """Sharpen a whole map with one overall sharpening function.

    Parameters
    ----------
    map_or_path : DensityMap, str or path-like
        The map, or an MRC/CCP4 (``.gz`` too) or MTZ file.
    resolution : float
        Nominal resolution (Å).
    options : SharpenOptions, optional
        Full option set; otherwise built from ``kwargs``, which may name any
        field of :class:`SharpenOptions` or :class:`SearchConfig` (e.g.
        ``methods=("b_iso",)``, ``target="kurtosis"``, ``b_sharpen=50``).
    mtz_labels : tuple of str, optional
        Amplitude/phase labels for MTZ input.
    name : str, optional
        Name of the map used in messages (default: the path, or "map").
    client : distributed.Client, optional
        Run on a Dask cluster: as one task when the map fits the smallest worker (the same result as
        without a client), otherwise by the distributed overall pass
        (:mod:`localsharp.engine.overall.driver`, whose notes say what is then approximate).

    Returns
    -------
    SharpenResult
        The sharpened map, chosen parameters and the score table.

    Notes
    -----
    Without a client this is :func:`localsharp.modes.model_free.global_sharpen`: the sharpening
    is determined on the analysis region by :func:`~localsharp.sharpening.search.search_sharpening`
    — the same function local sharpening runs on each box — then applied to the whole map, whose
    anisotropy is estimated and removed independently.  The output is sigma-scaled (mean 0, rms 1),
    like the reference's.
    """
    if client is None:
        return model_free.global_sharpen(map_or_path, resolution, options=options, mtz_labels=mtz_labels,
                                         name=name, **kwargs)
    from .engine.overall.on_client import sharpen_on_cluster
    return sharpen_on_cluster(client, map_or_path, resolution, options=options, mtz_labels=mtz_labels, name=name,
                              **kwargs)
