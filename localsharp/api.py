"""The public entry points of global sharpening, gathered from the modules that define them.

The modes live in :mod:`localsharp.modes` (one module each), map loading and the input checks
in :mod:`localsharp.maps.loading`, the result in :mod:`localsharp.report.result`.  This module
keeps the names the engine and older code import from one place.
"""

from __future__ import annotations

from .maps.loading import (MASKED_ZERO_FRACTION, check_limitations, check_resolution, load_map, map_limitations,
                           masked_warning, unit_cell_view)
from .modes.common import (applicability, finish_sharpening, fixed_sharpening, options_from_kwargs, progress,
                           restore_input_grid)
from .modes.half_map import half_map_sharpen
from .modes.model import model_sharpen
from .modes.model_free import analysis_box_solvent, global_sharpen
from .report.result import SharpenResult

# Names the engine's modules use.
_applicability = applicability
_box_solvent = analysis_box_solvent
_fixed_sharpening = fixed_sharpening

__all__ = ["MASKED_ZERO_FRACTION", "SharpenResult", "analysis_box_solvent", "applicability", "check_limitations",
           "check_resolution", "finish_sharpening", "fixed_sharpening", "global_sharpen", "half_map_sharpen",
           "load_map", "map_limitations", "masked_warning", "model_sharpen", "options_from_kwargs", "progress",
           "restore_input_grid", "unit_cell_view"]
