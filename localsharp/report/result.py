"""The result of a global sharpening and its JSON summary (``summary.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import SharpenOptions
from ..maps.density import DensityMap
from ..sharpening.box import BoxChoice
from ..sharpening.functions import SHELL_METHODS, Sharpening
from ..sharpening.score import MapMeasures
from ..sharpening.search import SearchResult
from ..sharpening.solvent import SolventEstimate
from .summary import jsonable


@dataclass
class SharpenResult:
    """Outcome of every global mode (:func:`~localsharp.global_sharpen`, :func:`~localsharp.half_map_sharpen`,
    :func:`~localsharp.model_sharpen`).

    Attributes
    ----------
    map : DensityMap
        The sharpened map on the input grid, header geometry of the input.
    sharpening : Sharpening
        The sharpening applied.  For the half-map and model modes (a per-shell table) its
        ``b_sharpen`` is the factors' *equivalent B* (the B of the ``exp(B·s²/4)`` closest to
        them up to the resolution): a number to compare, not what was applied; the summary
        names it ``equivalent_b_sharpen`` too.
    search : SearchResult or None
        Trial table and search diagnostics (None when the sharpening was fixed).
    b_iso_input, b_iso_output : float or None
        Overall B of the input map and re-measured B of the output (Å²).
    d_min : float
        Fourier cut-off used (Å).
    """

    map: DensityMap
    sharpening: Sharpening
    search: SearchResult | None
    options: SharpenOptions
    b_iso_input: float | None
    b_iso_output: float | None
    d_min: float
    solvent: SolventEstimate
    box_solvent: SolventEstimate
    box: BoxChoice
    region_weight: float
    score_output: MapMeasures
    score_input: MapMeasures
    b_cart_removed: tuple[float, ...] | None
    amplitudes: dict[str, list[float]]
    applicable: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    discarded: bool = False
    shells: list[dict[str, Any]] | None = None
    mode: str = "model_free"
    shell_scale: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: Mean and SD of the input and output values, and whether the output was rescaled (mean 0, rms 1)
    values: dict[str, Any] | None = None

    @property
    def signal_to_noise(self) -> float | None:
        return None if self.search is None else self.search.signal_to_noise

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (see ``summary.json``)."""
        s = self.sharpening
        target = target_b(s, self.b_iso_input)
        w = self.region_weight
        return {
            "mode": self.mode,
            "method": s.method,
            "b_iso_input": self.b_iso_input,
            "b_iso_analysis_box": self.search.b_iso_original if self.search else None,
            "b_iso_output": self.b_iso_output,
            "b_sharpen": s.b_sharpen,
            "equivalent_b_sharpen": s.b_sharpen if s.method in SHELL_METHODS else None,
            "target_b_iso": target,
            "k_sharpen": s.k_sharpen,
            "d_cut": s.d_cut if s.d_cut is not None else self.options.resolution,
            "b_blur_hires": s.b_blur_hires,
            "resolution_dependent_b": list(s.resolution_dependent_b) if s.resolution_dependent_b else None,
            "resolution": self.options.resolution,
            "d_min": self.d_min,
            "region_weight": w,
            "region_weight_calibration": (self.search.calibration.to_dict()
                                          if self.search and self.search.calibration else None),
            "solvent_fraction": self.solvent.solvent_fraction,
            "solvent": self.solvent.to_dict(),
            "box_solvent_fraction": self.box_solvent.solvent_fraction,
            "box": self.box.to_dict(),
            "b_cart_removed": list(self.b_cart_removed) if self.b_cart_removed else None,
            "signal_to_noise": self.signal_to_noise,
            "b_sharpen_within_noise": (list(self.search.plateau_b_sharpen)
                                       if self.search and self.search.plateau_b_sharpen else None),
            "target": self.search.target if self.search else None,
            "search_choice": self._search_choice(),
            "score": {
                "output": {"adjusted_sa": finite(self.score_output.adjusted_sa(w)), "kurtosis": self.score_output.kurtosis,
                           "surface_area": self.score_output.surface_area, "n_regions": self.score_output.n_regions},
                "input": {"adjusted_sa": finite(self.score_input.adjusted_sa(w)), "kurtosis": self.score_input.kurtosis,
                          "surface_area": self.score_input.surface_area, "n_regions": self.score_input.n_regions},
            },
            "discarded_as_worse": self.discarded,
            "applicable": self.applicable,
            "warnings": list(self.warnings),
            "notes": (list(self.search.notes) if self.search else []) + list(self.notes),
            "trials": [{k: finite(v) for k, v in row.items()} for row in self.search.table()] if self.search else [],
            "shells": self.shells,
            "shell_scale": self.shell_scale,
            "amplitudes": self.amplitudes,
            "values": self.values,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "options": jsonable(self.options.to_dict()),
        }

    def _search_choice(self) -> dict[str, Any] | None:
        """What the search picked (before the input may have been kept instead), or None."""
        if self.search is None:
            return None
        s = self.search.sharpening
        return {"method": s.method, "b_sharpen": s.b_sharpen,
                "target_b_iso": target_b(s, self.search.b_iso_original), "score": finite(self.search.score)}


def target_b(s: Sharpening, b_original: float | None) -> float | None:
    """Target map B of a sharpening: its own, or ``b_original − b_sharpen`` for the B-type methods."""
    if s.b_iso_target is None and b_original is not None and s.method in ("b_iso", "b_iso_to_d_cut"):
        return b_original - s.b_sharpen
    return s.b_iso_target


def finite(value: Any) -> Any:
    """``value``, or None where it is a non-finite float (JSON has no NaN)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
