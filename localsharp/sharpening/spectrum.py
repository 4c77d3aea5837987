"""Fourier coefficients of a map (or of one box) ready for sharpening trials.

A :class:`Spectrum` is what a sharpening search works on: the coefficients
inside the resolution sphere ``d >= d_min`` (F000 excluded), optionally with
the anisotropy removed (docs/methods.md, overall B and anisotropy), plus the map's original overall
B.  It holds no reference to files or clients and pickles cheaply (a 40³ box
is a few hundred kB), so the same object serves a whole map and a Dask task.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from ..kernels import fourier, shell_sums, wilson

#: Original B assumed when the Wilson fit fails (docs/methods.md, overall B and anisotropy).
FALLBACK_B_ISO = 200.0
#: Maps of at most this many voxels (boxes) share the geometry of their kept Fourier terms (cached by shape).
KEPT_CACHE_VOXELS = 128**3
#: Spectra with more coefficients than this recompute their s components when asked instead of
#: keeping them (12 bytes per coefficient: 1 GB on a 1000³ map); a 40³ box or a 200³ map keeps them.
S_CACHE_LIMIT = 1 << 23


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Coefficients of a real map inside the resolution sphere.

    Attributes
    ----------
    shape : tuple of int
        Real-space shape ``(nz, ny, nx)`` of the map the coefficients belong to.
    voxel_size : tuple of float
        Voxel size along ``(z, y, x)`` (Å).
    angles : tuple of float
        Cell angles (degrees).
    resolution : float
        Nominal resolution (Å).
    d_min : float
        Fourier cut-off actually used (``d_min_ratio * resolution``, not finer
        than Nyquist).
    index : numpy.ndarray
        Flat indices of the kept coefficients in the rfft array.
    coeffs : numpy.ndarray
        Complex64 coefficients at ``index`` (anisotropy removed if requested).
    sthol2 : numpy.ndarray
        (sin θ/λ)² of each kept coefficient.
    weight : numpy.ndarray
        rfft multiplicity (1 or 2, uint8) of each kept coefficient.
    b_cart : tuple of float or None
        Anisotropic B removed (None if not fitted/removed).
    b_iso : float
        Overall B of the original amplitudes (fallback 200 Å² if the fit failed).
    b_iso_fitted : bool
        Whether :attr:`b_iso` comes from a successful fit.
    """

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    angles: tuple[float, float, float]
    resolution: float
    d_min: float
    index: np.ndarray
    coeffs: np.ndarray
    sthol2: np.ndarray
    weight: np.ndarray
    b_cart: tuple[float, ...] | None
    b_iso: float
    b_iso_fitted: bool

    @classmethod
    def from_map(cls, data: np.ndarray, voxel_size: tuple[float, float, float], resolution: float, *,
                 d_min_ratio: float = 0.833, angles: tuple[float, float, float] = (90.0, 90.0, 90.0),
                 remove_aniso: bool = True, d_fit: float | None = None, fit_b: bool = True) -> "Spectrum":
        """Transform a map and prepare its coefficients.

        Parameters
        ----------
        data : numpy.ndarray
            Map ``[z, y, x]``.
        voxel_size : tuple of float
            Voxel size along ``(z, y, x)`` (Å).
        resolution : float
            Nominal resolution (Å).
        d_min_ratio : float
            Coefficients are kept to ``d_min_ratio * resolution`` (0.833).
        remove_aniso : bool
            Replace the anisotropic fall-off by an isotropic one (docs/methods.md, overall B and anisotropy).
        d_fit : float, optional
            Low-resolution limit of data used for the B fit (default:
            ``resolution``).
        fit_b : bool
            Fit the overall B (and the anisotropy).  False (only with ``remove_aniso=False``)
            skips the fit, for a spectrum that is only rendered: :attr:`b_iso` is then the
            fallback and :attr:`b_iso_fitted` False; the coefficients are the same.
        """
        if not fit_b and remove_aniso:
            raise ValueError("the anisotropy cannot be removed without the B fit (fit_b=False)")
        shape, voxel, angles = tuple(int(n) for n in data.shape), tuple(float(v) for v in voxel_size), tuple(
            float(a) for a in angles)
        nyquist = fourier.FourierGrid(shape, voxel, angles).nyquist  # type: ignore[arg-type]
        d_min = max(d_min_ratio * resolution, nyquist)
        if int(np.prod(shape)) <= KEPT_CACHE_VOXELS:  # a box: its shape recurs, the kept terms are cached
            index, s_xyz, weight = _kept_terms(shape, voxel, angles, float(d_min))  # type: ignore[arg-type]
        else:
            index, s_xyz, weight = _kept_terms.__wrapped__(shape, voxel, angles, float(d_min))  # type: ignore[arg-type]
        if index.size < 20:
            raise ConfigError(f"only {index.size} Fourier terms lie between the box size and d_min = {d_min:.2f} Å; "
                              f"the resolution {resolution} Å is too coarse for a box of shape {tuple(data.shape)}")
        coeffs = fourier.to_coefficients(data).ravel()[index]
        fit = wilson.fit_b_cart(np.abs(coeffs), s_xyz, d_fit or resolution, anisotropic=True) if fit_b else None
        b_cart = None
        if fit is not None and remove_aniso:
            coeffs = coeffs * wilson.anisotropy_correction(fit, s_xyz)
            b_cart = fit.b_cart
        s2 = s_xyz[0] ** 2 + s_xyz[1] ** 2 + s_xyz[2] ** 2
        spectrum = cls(
            shape=tuple(data.shape),
            voxel_size=tuple(voxel_size),
            angles=tuple(angles),
            resolution=float(resolution),
            d_min=float(d_min),
            index=index,
            coeffs=coeffs.astype(np.complex64),
            sthol2=(0.25 * s2).astype(np.float32),
            weight=weight,
            b_cart=b_cart,
            b_iso=fit.b_iso if fit is not None else FALLBACK_B_ISO,
            b_iso_fitted=fit is not None,
        )
        if index.size <= S_CACHE_LIMIT:  # reused by measure_b_iso; never pickled
            object.__setattr__(spectrum, "_s_xyz", s_xyz)
        return spectrum

    @property
    def d(self) -> np.ndarray:
        """Resolution (Å) of each kept coefficient."""
        return 1.0 / np.sqrt(4.0 * self.sthol2)

    def s_cartesian(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cartesian s components of the kept coefficients (computed once, not pickled)."""
        cached = self.__dict__.get("_s_xyz")
        if cached is None:
            grid = fourier.FourierGrid(self.shape, self.voxel_size, self.angles)
            cached = grid.s_cartesian_at(self.index)
            if self.index.size <= S_CACHE_LIMIT:
                object.__setattr__(self, "_s_xyz", cached)
        return cached  # type: ignore[return-value]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_s_xyz", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def measure_b_iso(self, factors: np.ndarray | None = None, d_fit: float | None = None) -> float | None:
        """Overall isotropic-average B of the (optionally scaled) amplitudes (docs/methods.md, overall B and anisotropy)."""
        amps = np.abs(self.coeffs) if factors is None else np.abs(self.coeffs) * factors
        fit = wilson.fit_b_cart(amps, self.s_cartesian(), d_fit or self.resolution, anisotropic=True)
        return None if fit is None else fit.b_iso

    def full_coefficients(self, factors: np.ndarray | None = None) -> np.ndarray:
        """The rfft array with kept coefficients (times ``factors``) and zeros elsewhere."""
        nz, ny, nx = self.shape
        full = np.zeros(nz * ny * (nx // 2 + 1), dtype=np.complex64)
        full[self.index] = self.coeffs if factors is None else self.coeffs * factors.astype(np.float32)
        return full.reshape(nz, ny, nx // 2 + 1)

    def render(self, factors: np.ndarray | None = None, *, sigma_scaled: bool = True,
               workers: int | None = None) -> np.ndarray:
        """Real-space map from the coefficients scaled by ``factors``.

        The map has zero mean (F000 is absent) and, if ``sigma_scaled``, unit rms.
        ``workers`` = FFT threads (default: all cores).
        """
        data = fourier.to_map(self.full_coefficients(factors), self.shape, workers=workers, overwrite=True)
        if not sigma_scaled:
            return data
        rms = float(np.sqrt(fourier.mean_square(data)))
        if rms > 0:
            data /= np.float32(rms)  # data is a fresh array: scaled in place
        return data

    def shell_mean_amplitude(self, n_bins: int = 20, factors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean amplitude (times ``factors``) in shells of equal reciprocal volume: ``(d_centre, mean |F|)``."""
        edges = shell_sums.shell_edges(float(self.sthol2.min()), float(self.sthol2.max()), n_bins)
        amps = np.abs(self.coeffs).astype(np.float64)
        if factors is not None:
            amps = amps * factors
        total, count = shell_sums.shell_sums(self.sthol2, amps, self.weight, edges)
        return shell_sums.shell_means(edges, total, count)


@lru_cache(maxsize=8)
def _kept_terms(shape: tuple[int, int, int], voxel_size: tuple[float, float, float],
                angles: tuple[float, float, float], d_min: float
                ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Flat rfft indices of the terms with ``d >= d_min`` (F000 excluded), their Cartesian s and rfft
    multiplicity: the same for every map of one shape and voxel size (cached for boxes; read-only)."""
    grid = fourier.FourierGrid(shape, voxel_size, angles)
    keep = fourier.resolution_mask(grid, d_min)
    index = np.flatnonzero(keep).astype(grid.flat_index_dtype, copy=False)  # int32: 0.35 GB less on 1000³
    del keep
    s_xyz = grid.s_cartesian_at(index)
    weight = np.ascontiguousarray(grid.multiplicity.ravel()[index], dtype=np.uint8)  # 1 or 2
    for array in (index, weight, *s_xyz):
        array.flags.writeable = False
    return index, s_xyz, weight


def aniso_factors(whole: Spectrum) -> np.ndarray | None:
    """The anisotropy correction applied to ``whole`` (None if none was removed)."""
    if whole.b_cart is None:
        return None
    fit = wilson.WilsonFit(b_cart=tuple(whole.b_cart), n_used=0)  # type: ignore[arg-type]
    return wilson.anisotropy_correction(fit, whole.s_cartesian())


def spectrum_like(reference: Spectrum, data: np.ndarray, factors: np.ndarray | None = None) -> Spectrum:
    """Coefficients of ``data`` on ``reference``'s grid and resolution sphere, times ``factors``.

    Used so that masked maps, half maps and model maps share exactly the
    coefficients (and the anisotropy correction) of the map being sharpened.
    """
    if tuple(data.shape) != reference.shape:
        raise ValueError(f"map shape {data.shape} differs from the spectrum's {reference.shape}")
    return coefficients_like(reference, fourier.to_coefficients(data), factors)


def coefficients_like(reference: Spectrum, rfft: np.ndarray, factors: np.ndarray | None = None) -> Spectrum:
    """:func:`spectrum_like` from a map's rfft coefficients already computed (its whole rfft array)."""
    coeffs = rfft.ravel()[reference.index]
    if factors is not None:
        coeffs = coeffs * factors
    return dataclasses.replace(reference, coeffs=coeffs.astype(np.complex64))
