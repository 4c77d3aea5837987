"""Scoring a map: adjusted surface area and kurtosis (docs/methods.md, search), region-weight
calibration (docs/methods.md, search) and the signal-to-noise of a score curve (docs/methods.md, search)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..kernels import regions


@dataclass(frozen=True)
class ScoreParams:
    """Parameters of :func:`measure_map` (the reference's defaults)."""

    fraction_occupied: float = 0.20
    sa_percent: float = 30.0
    max_regions_to_test: int = 30
    #: Region kernels: numba (True), numpy/scipy (False) or by map size (None).  Same results;
    #: numba scores a 40³ box ~2.5× faster but costs ~0.5 s to start in each process, so the
    #: local engine (many boxes per worker) sets True and a one-off small map keeps None.
    jit: bool | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction_occupied <= 1.0:  # also refuses NaN
            raise ConfigError(f"fraction-occupied must lie in (0, 1] (a fraction of the molecular volume), "
                              f"got {self.fraction_occupied}")
        if not 0.0 < self.sa_percent <= 100.0:
            raise ConfigError(f"sa-percent must lie in (0, 100] (percent of the contoured volume), got {self.sa_percent}")
        if int(self.max_regions_to_test) != self.max_regions_to_test or self.max_regions_to_test < 1:
            raise ConfigError(f"max-regions-to-test must be a whole number >= 1, got {self.max_regions_to_test}")


@dataclass(frozen=True)
class MapMeasures:
    """Region statistics of one map; the weight-free part of the score.

    Attributes
    ----------
    surface_area : float
        Surface-to-volume ratio ``Σsa / Σv`` of the largest regions.
    normalized_regions : float
        Number of regions divided by the target voxel count.
    n_regions : int
        Number of 6-connected regions above the threshold.
    kurtosis : float
        Non-excess kurtosis of the map.
    threshold : float
        Contour level (in units of the map as given).
    surface, volume : int
        ``Σsa`` and ``Σv`` of the regions the surface was taken over (``surface_area`` is their ratio).
    n_target : int
        Voxels the contour encloses.
    n_voxels : int
        Voxels of the map.
    """

    surface_area: float
    normalized_regions: float
    n_regions: int
    kurtosis: float
    threshold: float
    surface: int = 0
    volume: int = 0
    n_target: int = 0
    n_voxels: int = 0

    def adjusted_sa(self, region_weight: float) -> float:
        """``surface_area - region_weight * normalized_regions`` (−inf without regions)."""
        if self.n_regions == 0:
            return float("-inf")
        return self.surface_area - region_weight * self.normalized_regions


def target_voxels(n_voxels: int, solvent_fraction: float, fraction_occupied: float) -> int:
    """Voxels enclosed by the contour: ``N · fraction_occupied · (1 − f_sol)`` (docs/methods.md, search)."""
    f_sol = min(max(solvent_fraction, 0.001), 0.999)
    return int(n_voxels * fraction_occupied * (1.0 - f_sol))


def measure_map(data: np.ndarray, solvent_fraction: float, params: ScoreParams = ScoreParams()) -> MapMeasures:
    """Contour a map to enclose 20 % of the molecular volume and measure its regions.

    Parameters
    ----------
    data : numpy.ndarray
        Map ``[z, y, x]``; the score is invariant to ``a·ρ + c`` (a > 0).
    solvent_fraction : float
        Fraction of the box that is solvent.
    params : ScoreParams
        Contour and surface parameters.

    Notes
    -----
    Threshold: exact (partition) instead of the reference's 10-step bisection.
    Regions: 6-connected, not wrapped.  Surface: 26-neighbour dilation count,
    wrapped; taken over the largest regions until their volume reaches
    ``sa_percent`` % of the target (at most ``max_regions_to_test + 1``).
    """
    n_target = target_voxels(data.size, solvent_fraction, params.fraction_occupied)
    jit = params.jit
    if n_target < 1:
        return MapMeasures(0.0, 0.0, 0, float(regions.kurtosis(data, jit)), float(data.max()), n_voxels=data.size)
    kurt, threshold = regions.kurtosis_and_threshold(data, n_target, jit)
    needed = params.sa_percent / 100.0 * n_target
    n_regions, surface, volume = regions.region_measures(data, threshold, needed, params.max_regions_to_test + 1,
                                                         jit)
    if n_regions == 0:
        return MapMeasures(0.0, 0.0, 0, kurt, threshold, n_target=n_target, n_voxels=data.size)
    sa_ratio = float(surface) / max(1.0, float(volume))
    return MapMeasures(
        surface_area=sa_ratio,
        normalized_regions=n_regions / max(1, n_target),
        n_regions=int(n_regions),
        kurtosis=kurt,
        threshold=float(threshold),
        surface=int(surface), volume=int(volume), n_target=int(n_target), n_voxels=int(data.size),
    )


def pooled_measures(parts: list[MapMeasures]) -> MapMeasures:
    """The measures of several boxes taken together, as if their regions were one map's.

    ``surface_area`` is ``Σsurface / Σvolume`` over the boxes, ``normalized_regions`` is
    ``Σn_regions / Σn_target``; the kurtosis is the voxel-weighted mean.  One box gives itself.
    """
    if len(parts) == 1:
        return parts[0]
    n_regions = sum(m.n_regions for m in parts)
    n_target = sum(m.n_target for m in parts)
    n_voxels = sum(m.n_voxels for m in parts)
    surface, volume = sum(m.surface for m in parts), sum(m.volume for m in parts)
    kurt = sum(m.kurtosis * m.n_voxels for m in parts) / max(1, n_voxels)
    if n_regions == 0:
        return MapMeasures(0.0, 0.0, 0, kurt, float("nan"), n_target=n_target, n_voxels=n_voxels)
    return MapMeasures(surface_area=surface / max(1.0, float(volume)), normalized_regions=n_regions / max(1, n_target),
                       n_regions=n_regions, kurtosis=kurt, threshold=float("nan"), surface=surface, volume=volume,
                       n_target=n_target, n_voxels=n_voxels)


@dataclass(frozen=True)
class RegionWeightCalibration:
    """Outcome of the three-point region-weight calibration (docs/methods.md, search)."""

    region_weight: float
    w_delta: float | None
    w_min: float | None
    w_max: float | None
    clamped: bool
    fallback: bool
    reason: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def calibrate_region_weight(low: MapMeasures, high: MapMeasures, mid: MapMeasures, *, method: str = "delta_ratio",
                            factor: float = 1.0, buffer: float = 0.1, default: float = 30.0) -> RegionWeightCalibration:
    """Choose the region weight from maps sharpened to low, high and intermediate B.

    ``delta_ratio`` equalises the adjusted SA at the two extremes, then clamps
    into ``[w_min, w_max]`` which guarantees the intermediate map scores at
    least as high as both extremes.  ``initial_ratio`` uses ``SA0/NR0``.
    """
    sa0, sa1, sa2 = low.surface_area, high.surface_area, mid.surface_area
    nr0, nr1, nr2 = low.normalized_regions, high.normalized_regions, mid.normalized_regions
    w_max = max(1e-10, (sa2 - sa1) / max(0.001, nr2 - nr1))
    w_min = max(1e-10, (sa0 - sa2) / max(0.001, nr0 - nr2))
    spread = buffer * max(0.0, w_max - w_min)
    w_min, w_max = w_min + spread, w_max - spread
    if method == "b_iso" or sa0 - sa1 < 0 or nr0 - nr1 < 0:
        return RegionWeightCalibration(default, None, w_min, w_max, False, True,
                                       "extremes not ordered (SA0<SA1 or NR0<NR1); default weight used")
    w_delta = factor * (sa0 - sa1) / max(1e-10, nr0 - nr1)
    w = w_delta if method == "delta_ratio" else factor * sa0 / max(1e-10, nr0)
    if w_min >= w_max:
        return RegionWeightCalibration(w, w_delta, w_min, w_max, False, False, "w_min >= w_max; not clamped")
    clamped = not (w_min <= w <= w_max)
    w_final = min(max(w, w_min), w_max)
    return RegionWeightCalibration(w_final, w_delta, w_min, w_max, clamped, False,
                                   "clamped into [w_min, w_max]" if clamped else "within [w_min, w_max]")


def signal_to_noise(scores: list[float] | np.ndarray) -> tuple[float, float, float]:
    """Signal, noise and S/N of a score curve ordered by B (docs/methods.md, search).

    ``noise`` is the rms deviation of each interior score from the mean of
    its four neighbours (windows containing a negative score are skipped;
    floor 1e-10); ``signal = max(y) - max(y_first, y_last)``.
    """
    y = np.asarray(scores, dtype=np.float64)
    if y.size < 2 or not np.all(np.isfinite(y)):
        return 0.0, 0.0, 0.0
    deviations = []
    for i in range(2, y.size - 2):
        window = y[i - 2:i + 3]
        if np.any(window < 0):
            continue
        deviations.append((y[i - 2] + y[i - 1] + y[i + 1] + y[i + 2]) / 4.0 - y[i])
    noise = float(np.sqrt(np.mean(np.square(deviations)))) if deviations else 0.0
    noise = max(noise, 1e-10)
    signal = float(y.max() - max(y[0], y[-1]))
    return signal, noise, signal / noise
