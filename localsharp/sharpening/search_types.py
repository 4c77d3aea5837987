"""What the sharpening search takes and gives: :class:`SearchConfig`, :class:`Trial`, :class:`MethodResult`, :class:`SearchResult`.

The search itself is :func:`localsharp.sharpening.search.search_sharpening`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from .functions import METHODS, Sharpening
from .score import MapMeasures, RegionWeightCalibration, ScoreParams

#: What a search can maximise.
TARGETS = ("adjusted_sa", "kurtosis")
#: Bandwidth (in grid steps) of the Gaussian kernel that smooths the score curve before its
#: maximum is taken (measured on 16 phantoms and 3 real maps: 1.5 steps, i.e. 30 Å² on the
#: default grid, gave the smallest mean CC loss against the best B of the family).
PEAK_BANDWIDTH_STEPS = 1.5
B_TYPE_METHODS = ("b_iso", "b_iso_to_d_cut")


def _check_finite(obj: Any, names: tuple[str, ...], optional: bool = False) -> None:
    """Raise ConfigError naming the option when a value is NaN or infinite."""
    for name in names:
        value = getattr(obj, name)
        if value is None and optional:
            continue
        if value is None or not np.isfinite(value):
            raise ConfigError(f"{name.replace('_', '-')} must be a finite number, got {value}")


@dataclass(frozen=True)
class SearchConfig:
    """Parameters of the search (the reference's defaults).

    ``reference_quirks=True`` reproduces the reference's behaviour where the
    spec marks a quirk: the kurtosis target is replaced by the adjusted
    surface area, and ``target_b_iso_to_d_cut`` is scored with uniform B.

    Differences from the reference's defaults (measured on phantoms and the
    shared real maps, see README):

    * ``peak_fit`` takes the maximum of the score curve smoothed by a
      Gaussian-weighted local quadratic regression over the grid (bandwidth
      1.5 grid steps), not the best grid point (the reference keeps the grid
      point, 20 Å² apart).
    * A method whose score curve has a signal-to-noise below ``signal_min``
      (e.g. its maximum sits at an end of the B range) is discarded; if no
      method remains the map is left unsharpened.  The reference only does
      this when ``target_b_iso_to_d_cut`` is also listed (then that rule wins).
    * At ``low_resolution`` or worse, the B-type grid (and the region-weight
      calibration) spans only the b_sharpen values whose amplitude gain at the
      resolution, ``exp(|b_sharpen| / (4 d²))``, is at most ``low_resolution_gain``
      (:func:`b_sharpen_bound`).  The reference searches target B −100…300 Å² around a
      Wilson B that, fitted between the resolution and 11 Å, is unreliable there
      (687 Å² on EMD-1997 at 7 Å, 1055 Å² on EMD-5168 at 6.6 Å: both maps were
      sharpened by 500–1000 Å² and lost CC).
    * With ``least_blur``, a pick that blurs (b_sharpen < 0) is moved to the least
      blur the score cannot tell from it: the end of its noise plateau nearest 0, or
      no sharpening (the input map) when the plateau reaches 0.  The adjusted surface area rewards blurring the
      noise away on noisy and sparse maps more than the map's agreement with its
      model does (docs/methods.md: on noisy phantoms the picks −80…−105 Å² lost
      0.02–0.05 of CC).  The blur is also bounded: it lowers the amplitudes at the
      resolution by at most ``blur_gain`` (:meth:`blur_bound`).  The reference keeps
      the pick.
    """

    methods: tuple[str, ...] = ("b_iso_to_d_cut",)
    target: str = "adjusted_sa"
    search_b_min: float = -100.0
    search_b_max: float = 300.0
    search_b_n: int = 21
    k_sharpen: float | None = 10.0
    d_cut: float | None = None
    b_blur_hires: float | None = 200.0
    region_weight: float = 40.0
    adjust_region_weight: bool = True
    region_weight_method: str = "delta_ratio"
    region_weight_factor: float = 1.0
    region_weight_buffer: float = 0.1
    region_weight_default: float = 30.0
    score: ScoreParams = ScoreParams()
    signal_min: float = 3.0
    target_b_iso_ratio: float = 5.9
    optimize_d_cut: bool = False
    optimize_k_sharpen: bool = False
    optimize_b_blur_hires: bool = False
    refine_b_iso: bool = False
    peak_fit: bool = True
    resolution_dependent_eps: float | None = None
    reference_quirks: bool = False
    n_threads: int = 0
    low_resolution: float = 5.0
    low_resolution_gain: float = 1.5
    least_blur: bool = True
    blur_gain: float = 1.5

    def __post_init__(self) -> None:
        _check_finite(self, ("search_b_min", "search_b_max", "region_weight", "region_weight_factor",
                             "region_weight_buffer", "region_weight_default", "signal_min", "target_b_iso_ratio"))
        _check_finite(self, ("k_sharpen", "b_blur_hires", "d_cut"), optional=True)
        if self.d_cut is not None and self.d_cut <= 0:
            raise ConfigError(f"d_cut must be a positive resolution in Å, got {self.d_cut}")
        if self.b_blur_hires is not None and self.b_blur_hires < 0:
            raise ConfigError(f"b_blur_hires must be >= 0, got {self.b_blur_hires}")
        if self.search_b_n > 1 and not self.search_b_min < self.search_b_max:
            raise ConfigError(f"search_b_min ({self.search_b_min}) must be below search_b_max ({self.search_b_max})")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown sharpening method(s) {unknown}; expected some of {', '.join(METHODS)}")
        if self.target not in TARGETS:
            raise ConfigError(f"unknown sharpening target {self.target!r}; expected one of {', '.join(TARGETS)}")
        if self.region_weight_factor <= 0:
            raise ConfigError(f"region-weight-factor must be > 0, got {self.region_weight_factor}")
        if self.search_b_n < 1:
            raise ConfigError(f"search_b_n must be at least 1, got {self.search_b_n}")
        if not (np.isfinite(self.blur_gain) and self.blur_gain > 1.0):
            raise ConfigError(f"blur-gain must be a number above 1, got {self.blur_gain}")
        if not (np.isfinite(self.low_resolution_gain) and self.low_resolution_gain > 1.0):
            raise ConfigError(f"low-resolution-gain must be a number above 1, got {self.low_resolution_gain}")
        if self.region_weight_method not in ("delta_ratio", "initial_ratio", "b_iso"):
            raise ConfigError(f"unknown region_weight_method {self.region_weight_method!r}; "
                              "expected delta_ratio, initial_ratio or b_iso")

    def b_sharpen_bound(self, resolution: float) -> float | None:
        """The largest |b_sharpen| the grid may reach at ``resolution`` (None: unbounded, the reference's grid).

        Bounded at ``low_resolution`` Å or worse: ``4 d² ln(low_resolution_gain)``
        (79 Å² at 7 Å with the default gain 1.5); never with ``reference_quirks``.
        """
        if self.reference_quirks or resolution < self.low_resolution:
            return None
        return float(4.0 * resolution**2 * np.log(self.low_resolution_gain))

    def blur_bound(self, resolution: float) -> float:
        """The most a blurring pick may blur with ``least_blur`` (Å²): ``4 d² ln(blur_gain)``, the b_sharpen
        that lowers the amplitudes at the resolution ``d`` by the factor ``blur_gain`` (26 Å² at 4 Å,
        17 Å² at 3.2 Å with the default 1.5); unbounded without ``least_blur``."""
        if not self.least_blur or self.reference_quirks:
            return float("inf")
        return float(4.0 * resolution**2 * np.log(self.blur_gain))

    @property
    def effective_target(self) -> str:
        """The score actually maximised (the reference quirk forces adjusted_sa)."""
        return "adjusted_sa" if self.reference_quirks else self.target

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["methods"] = list(self.methods)
        return out


@dataclass(frozen=True)
class Trial:
    """One scored sharpening."""

    sharpening: Sharpening
    measures: MapMeasures

    def score(self, target: str, region_weight: float) -> float:
        if target == "kurtosis":
            return self.measures.kurtosis
        return self.measures.adjusted_sa(region_weight)

    def row(self, b_iso_original: float, region_weight: float) -> dict[str, Any]:
        """Row of the trial table in the summary."""
        s = self.sharpening
        m = self.measures
        return {
            "method": s.method,
            "b_iso": s.b_iso_target if s.b_iso_target is not None else b_iso_original - s.b_sharpen,
            "b_sharpen": s.b_sharpen,
            "k_sharpen": s.k_sharpen,
            "d_cut": s.d_cut,
            "b_blur_hires": s.b_blur_hires,
            "surface_area": m.surface_area,
            "n_regions": m.n_regions,
            "normalized_regions": m.normalized_regions,
            "adjusted_sa": m.adjusted_sa(region_weight),
            "kurtosis": m.kurtosis,
        }


@dataclass(frozen=True)
class MethodResult:
    """Best trial of one method and its curve statistics.

    ``score`` is the measured score of ``best``; ``peak_score`` is the height of
    the score curve's peak used to compare methods (the smoothed curve's
    maximum when the peak fit applies, else ``score``).
    """

    method: str
    best: Trial
    score: float
    trials: tuple[Trial, ...]
    peak_score: float = float("-inf")
    signal: float = 0.0
    noise: float = 0.0
    signal_to_noise: float = 0.0
    discarded: bool = False
    #: Target-B interval whose smoothed score is within the noise of its peak (B-type methods).
    plateau_b_iso: tuple[float, float] | None = None


@dataclass(frozen=True)
class SearchResult:
    """Everything the search decided and measured."""

    sharpening: Sharpening
    score: float
    target: str
    b_iso_original: float
    solvent_fraction: float
    region_weight: float
    calibration: RegionWeightCalibration | None
    methods: tuple[MethodResult, ...]
    trials: tuple[Trial, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The method whose score curve decided, when it is not ``sharpening.method`` (a blurring pick that
    #: the least-blur rule turned into no sharpening); None otherwise.
    curve_method: str | None = None

    @property
    def decided_by(self) -> str:
        """The method whose score curve the applied sharpening comes from."""
        return self.curve_method or self.sharpening.method

    @property
    def signal_to_noise(self) -> float:
        for m in self.methods:
            if m.method == self.decided_by:
                return m.signal_to_noise
        return 0.0

    @property
    def plateau_b_sharpen(self) -> tuple[float, float] | None:
        """b_sharpen values the deciding method's score cannot tell from its optimum (low, high)."""
        for m in self.methods:
            if m.method == self.decided_by and m.plateau_b_iso is not None:
                lo, hi = m.plateau_b_iso
                return self.b_iso_original - hi, self.b_iso_original - lo
        return None

    def table(self) -> list[dict[str, Any]]:
        """One row per trial (grid order)."""
        return [t.row(self.b_iso_original, self.region_weight) for t in self.trials]
