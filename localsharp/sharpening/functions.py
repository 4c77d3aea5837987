"""The sharpening function families (Terwilliger et al. 2018; docs/methods.md) as amplitude scale factors.

A :class:`Sharpening` is a small frozen description (method + parameters);
:meth:`Sharpening.factors` turns it into one real factor per Fourier
coefficient of a :class:`~localsharp.sharpening.spectrum.Spectrum`.  Phases are
never changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from .spectrum import Spectrum

METHODS = (
    "no_sharpening",
    "b_iso",
    "b_iso_to_d_cut",
    "target_b_iso_to_d_cut",
    "resolution_dependent",
    "half_map_sharpening",
    "model_sharpening",
)
#: Methods whose factors are a per-shell table rather than a formula.
SHELL_METHODS = ("half_map_sharpening", "model_sharpening")


#: Coefficients whose B-type factors are computed at a time (float64 temporaries of 8 MB each).
FACTOR_CHUNK = 1 << 20


@dataclass(frozen=True)
class Sharpening:
    """One sharpening function.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    b_sharpen : float
        B applied (Å²); > 0 sharpens.  ``F' = F·exp(b·sthol2)``.
    k_sharpen : float or None
        Steepness (Å⁻¹) of the switch at ``d_cut`` (``b_iso_to_d_cut``);
        ≤ 0 or None gives uniform B.
    d_cut : float or None
        Switch resolution (Å); None → the nominal resolution.
    b_blur_hires : float or None
        Extra blurring beyond ``d_cut`` (Å²); None leaves data beyond ``d_cut``
        unsharpened.
    resolution_dependent_b : tuple of float or None
        ``(b0, b1, b2)`` of the resolution-dependent family (natural log).
    shell_s, shell_k : tuple of float or None
        Shell-scale-factor table: |s| at shell centres and factor k, linearly
        interpolated in |s| (extrapolated linearly at the ends, floored at 0).
    b_iso_target : float or None
        Target overall B this sharpening was derived from (reporting only).
    """

    method: str = "b_iso_to_d_cut"
    b_sharpen: float = 0.0
    k_sharpen: float | None = 10.0
    d_cut: float | None = None
    b_blur_hires: float | None = 200.0
    resolution_dependent_b: tuple[float, float, float] | None = None
    shell_s: tuple[float, ...] | None = None
    shell_k: tuple[float, ...] | None = None
    b_iso_target: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown sharpening method {self.method!r}; expected one of {', '.join(METHODS)}")

    def replace(self, **changes: Any) -> "Sharpening":
        """Copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of the parameters."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    # ----------------------------------------------------------- factors
    def factors(self, spectrum: Spectrum) -> np.ndarray:
        """Scale factor for every coefficient of ``spectrum`` (float32)."""
        if self.method == "no_sharpening":
            return np.ones_like(spectrum.sthol2)
        if self.method in SHELL_METHODS:
            return self._shell_factors(spectrum)
        if self.method == "resolution_dependent":
            return self._resolution_dependent(spectrum)
        sthol2 = spectrum.sthol2
        out = np.empty(sthol2.shape, dtype=np.float32)
        for start in range(0, sthol2.size, FACTOR_CHUNK):  # float64 temporaries one chunk at a time
            part = slice(start, start + FACTOR_CHUNK)
            out[part] = np.exp(self.log_factor(sthol2[part], spectrum.resolution))
        return out

    def is_uniform(self) -> bool:
        """True when the B-type sharpening is the same at every resolution."""
        if self.method == "b_iso":
            return True
        return (
            self.k_sharpen is None
            or self.k_sharpen <= 0
            or (self.b_blur_hires is None and self.b_sharpen < 0)
        )

    def effective_b(self, d: np.ndarray, resolution: float) -> np.ndarray:
        """B applied at resolution ``d`` for the B-type families (docs/methods.md, search)."""
        d = np.asarray(d, dtype=np.float64)
        if self.is_uniform():
            return np.full_like(d, self.b_sharpen)
        d_cut = self.d_cut or resolution
        t = np.clip(self.k_sharpen * (d_cut - d), -20.0, 20.0)
        w_lo = 1.0 / (1.0 + np.exp(t))
        w_hi = np.maximum(0.0, 1.0 - w_lo)
        b_hi = 0.0 if self.b_blur_hires is None else self.b_sharpen - self.b_blur_hires
        return self.b_sharpen * w_lo + b_hi * w_hi

    def log_factor(self, sthol2: np.ndarray, resolution: float) -> np.ndarray:
        """``ln(F'/F)`` for the B-type families."""
        sthol2 = np.asarray(sthol2, dtype=np.float64)
        d = 1.0 / np.sqrt(4.0 * np.maximum(sthol2, 1e-30))
        return self.effective_b(d, resolution) * sthol2

    def _resolution_dependent(self, spectrum: Spectrum) -> np.ndarray:
        """The resolution-dependent family: piecewise-linear ln-scale in sthol2 applied to quasi-normalised amplitudes.

        Differs from the reference: the same normalisation is used during the
        search and in the final application (the reference normalises only in
        the final application by default).
        """
        b0, b1, b2 = self.resolution_dependent_b or (0.0, 0.0, 0.0)
        res = spectrum.resolution
        s2_ = 1.0 / (4.0 * res**2)
        s1_ = s2_ / 2.0
        s3_ = 1.0 / (4.0 * spectrum.d_min**2)
        x = spectrum.sthol2.astype(np.float64)
        v = np.where(
            x <= s1_,
            b0 * x / s1_,
            np.where(x <= s2_, b0 + (x - s1_) * (b1 - b0) / (s2_ - s1_), b1 + (x - s2_) * b2 / max(s3_ - s2_, 1e-12)),
        )
        return (np.exp(np.clip(v, -50, 50)) / np.sqrt(quasi_normalisation(spectrum))).astype(np.float32)

    def _shell_factors(self, spectrum: Spectrum) -> np.ndarray:
        if not self.shell_s or not self.shell_k:
            raise ConfigError(f"method {self.method} needs a shell scale-factor table")
        return interpolate_shell_factors(np.asarray(self.shell_s), np.asarray(self.shell_k), spectrum.sthol2)


def interpolate_shell_factors(shell_s: np.ndarray, shell_k: np.ndarray, sthol2: np.ndarray) -> np.ndarray:
    """Interpolate per-shell factors linearly in |s|, extrapolating linearly, floored at 0."""
    s = np.sqrt(4.0 * np.asarray(sthol2, dtype=np.float64))
    k = np.interp(s, shell_s, shell_k)
    if len(shell_s) >= 2:
        lo = s < shell_s[0]
        hi = s > shell_s[-1]
        slope_lo = (shell_k[1] - shell_k[0]) / (shell_s[1] - shell_s[0])
        slope_hi = (shell_k[-1] - shell_k[-2]) / (shell_s[-1] - shell_s[-2])
        k[lo] = shell_k[0] + slope_lo * (s[lo] - shell_s[0])
        k[hi] = shell_k[-1] + slope_hi * (s[hi] - shell_s[-1])
    return np.maximum(k, 0.0).astype(np.float32)


def quasi_normalisation(spectrum: Spectrum, n_bins: int = 20) -> np.ndarray:
    """Mean amplitude per equal-volume shell, interpolated in d* to each coefficient (floor 0.01)."""
    d_centre, mean_amp = spectrum.shell_mean_amplitude(n_bins)
    s_centre = 1.0 / d_centre
    s = np.sqrt(4.0 * spectrum.sthol2.astype(np.float64))
    m = np.interp(s, s_centre, mean_amp / max(float(mean_amp.max()), 1e-30))
    return np.maximum(m, 0.01)
