"""Rendering many sharpenings of one spectrum: the per-trial part of a search, without repeated work.

:class:`TrialRenderer` gives, for a :class:`~.functions.Sharpening`, exactly the
values (bit for bit) of ``spectrum.render(sharpening.factors(spectrum),
sigma_scaled=False, workers=w)``, but

* the parts of the B-type factors that do not depend on ``b_sharpen`` (the
  resolution ``d`` of each coefficient and the two switch weights at
  ``d_cut``) are computed once per spectrum and reused by every trial;
* the rfft array is one preallocated buffer, cleared and refilled per trial,
  instead of a fresh map-sized allocation.

Methods other than the B-type ones go through :meth:`Sharpening.factors`.
"""

from __future__ import annotations

import threading

import numpy as np

from ..kernels import fourier
from .functions import Sharpening
from .spectrum import Spectrum

#: Methods whose factors are ``exp(effective_b(d) · sthol2)`` (:meth:`Sharpening.log_factor`).
B_FORMULA_METHODS = ("b_iso", "b_iso_to_d_cut", "target_b_iso_to_d_cut")


class TrialRenderer:
    """Renders sharpenings of one spectrum, each thread into its own reused buffer.

    Parameters
    ----------
    spectrum : Spectrum
        The coefficients to sharpen.
    workers : int, optional
        FFT threads (as :meth:`Spectrum.render`).
    """

    def __init__(self, spectrum: Spectrum, workers: int | None = None) -> None:
        self.spectrum = spectrum
        self.workers = workers
        self._local = threading.local()
        self._sthol2: np.ndarray | None = None
        self._switch: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------ factors
    def _s2(self) -> np.ndarray:
        if self._sthol2 is None:
            self._sthol2 = np.asarray(self.spectrum.sthol2, dtype=np.float64)
        return self._sthol2

    def _weights(self, k_sharpen: float, d_cut: float) -> tuple[np.ndarray, np.ndarray]:
        """``(w_lo, w_hi)`` of :meth:`Sharpening.effective_b` for one switch (cached)."""
        key = (k_sharpen, d_cut)
        cached = self._switch.get(key)
        if cached is None:
            d = 1.0 / np.sqrt(4.0 * np.maximum(self._s2(), 1e-30))
            t = np.clip(k_sharpen * (d_cut - d), -20.0, 20.0)
            w_lo = 1.0 / (1.0 + np.exp(t))
            w_hi = np.maximum(0.0, 1.0 - w_lo)
            cached = self._switch[key] = (w_lo, w_hi)
        return cached

    def factors(self, sharpening: Sharpening) -> np.ndarray:
        """``sharpening.factors(spectrum)``, the same values, with the switch weights reused."""
        if sharpening.method not in B_FORMULA_METHODS:
            return sharpening.factors(self.spectrum)
        s2 = self._s2()
        b = sharpening.b_sharpen
        if sharpening.is_uniform():
            log = b * s2
        else:
            w_lo, w_hi = self._weights(sharpening.k_sharpen, sharpening.d_cut or self.spectrum.resolution)
            b_hi = 0.0 if sharpening.b_blur_hires is None else b - sharpening.b_blur_hires
            log = b * w_lo
            log += b_hi * w_hi
            log *= s2
        np.exp(log, out=log)
        return log.astype(np.float32)

    # ------------------------------------------------------------ maps
    def render(self, sharpening: Sharpening) -> np.ndarray:
        """The map of ``sharpening`` (zero mean, not rescaled), as ``Spectrum.render(..., sigma_scaled=False)``."""
        return self.render_factors(self.factors(sharpening))

    def render_factors(self, factors: np.ndarray) -> np.ndarray:
        """The map of the coefficients times ``factors`` (float32 or float64 per coefficient)."""
        spectrum = self.spectrum
        nz, ny, nx = spectrum.shape
        full = getattr(self._local, "buffer", None)
        if full is None:
            full = np.zeros(nz * ny * (nx // 2 + 1), dtype=np.complex64)
        else:
            full.fill(0)
        full[spectrum.index] = spectrum.coeffs * factors.astype(np.float32, copy=False)
        data = fourier.to_map(full.reshape(nz, ny, nx // 2 + 1), spectrum.shape, workers=self.workers,
                              overwrite=True)
        # a large map is written into the buffer's own memory (fourier.to_map): then it is the result
        self._local.buffer = None if np.shares_memory(data, full) else full
        return data
