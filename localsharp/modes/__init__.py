"""The global sharpening modes, one module each, and what they share.

* :mod:`.model_free` — :func:`global_sharpen`: search for the sharpening that maximises the
  adjusted surface area (or kurtosis) of the analysis box, apply it to the whole map.
* :mod:`.half_map` — :func:`half_map_sharpen`: per-shell factors from the half maps' FSC.
* :mod:`.model` — :func:`model_sharpen`: per-shell factors from the map's agreement with a model.
* :mod:`.common`, :mod:`.scaled` — options, the opening checks every mode runs, applying the
  sharpening and building the :class:`~localsharp.report.result.SharpenResult`.
"""

from __future__ import annotations

from ..kernels.masks import soften_mask
from ..maps.loading import check_same_grid
from ..report.result import SharpenResult
from ..kernels.masks import signal_mask
from ..maps.atom_masks import atom_ball_mask
from ..sharpening.spectrum import spectrum_like
from .half_map import half_map_sharpen
from .model import MODEL_MASK_RADIUS_FACTOR, model_sharpen
from .model_free import global_sharpen

__all__ = ["MODEL_MASK_RADIUS_FACTOR", "SharpenResult", "atom_ball_mask", "check_same_grid", "global_sharpen",
           "half_map_sharpen", "model_sharpen", "signal_mask", "soften_mask", "spectrum_like"]
