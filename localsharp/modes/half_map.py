"""Half-map sharpening (docs/methods.md, half maps and model; ``half_map_sharpen``).

The FSC of the half maps inside a soft molecule mask (given, or automatic from the local
covariance of the half maps) gives per-shell factors that scale the map towards its de-blurred
signal, weighted by CC* (a Wiener filter).  The mask serves the statistics only: the factors,
stored as ``(|s|, k)`` pairs, are interpolated by resolution onto the whole map's coefficients,
whose anisotropy is removed as for model-free sharpening; the masked copies get the same
anisotropy correction, so statistics and application agree.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..config import SharpenOptions
from ..errors import InputFileError
from ..kernels.masks import soften_mask
from ..maps.loading import MapInput, check_same_grid, load_named, unit_cell_view
from ..maps.density import DensityMap
from ..report.result import SharpenResult
from ..sharpening.box import BoxChoice
from ..kernels.masks import signal_mask
from ..sharpening.shellscale import N_BINS, half_map_scale
from ..sharpening.spectrum import aniso_factors, spectrum_like
from .common import progress, restore_input_grid
from .scaled import finish_scaled, mask_bounds, start_mode


def half_map_sharpen(map_or_none: MapInput | None, half1: MapInput, half2: MapInput, resolution: float, *,
                     options: SharpenOptions | None = None, mask: MapInput | bool | None = None,
                     reference: str = "signal", n_bins: int = N_BINS, **kwargs: Any) -> SharpenResult:
    """Sharpen a map with per-shell factors from two half maps (docs/methods.md, half maps and model; ``half_map_sharpening``).

    Parameters
    ----------
    map_or_none : DensityMap, path or None
        The map to sharpen; None → the mean of the half maps.
    half1, half2 : DensityMap or path
        Half maps on the same grid as the map (same shape, voxel size and
        position), else :class:`InputFileError` naming both files.
    resolution : float
        Nominal resolution (Å).
    options : SharpenOptions, optional
        Cut-off ratio (``d_min_ratio``), anisotropy removal, composition (for
        the score); otherwise built from ``kwargs`` (fields of
        SharpenOptions/SearchConfig).
    mask : DensityMap, path, bool or None
        Mask for the FSC analysis.  None/True: automatic (:func:`signal_mask`,
        softened with radius = resolution; the whole map if it fails).
        False: no mask.  A map: used as given (clipped to [0, 1]), same grid as
        the map.  The unmasked map is what gets sharpened.
    reference : {"signal", "flat"}
        Target amplitude spectrum (:func:`~localsharp.sharpening.shellscale.half_map_scale`).
        ``signal`` (default): the half maps' signal with its overall B removed,
        giving ``k ∝ CC*²·exp(B·sthol2)``; ``flat``: Engine A's constant,
        giving ``k ∝ CC*·rmsFo_1/rmsFo``.
    n_bins : int
        Resolution shells (reduced until none is empty).

    Returns
    -------
    SharpenResult
        ``mode='half_map'``; ``shells`` holds one row per shell (d, s, d_avg,
        fsc, fsc_corrected, cc_star, rms_fo, rms_fc, scale, n);
        ``shell_scale`` the fitted signal B and notes.

    Notes
    -----
    Deviations from the reference (Engine A), chosen on phantoms whose truth
    is known (``benchmarks/quality_modes.py``): the default ``signal``
    reference replaces the constant ``rmsFc`` (whitening over-weights the
    middle resolutions and nearly removes the lowest shell); the automatic
    mask uses the half maps' local covariance (the reference's cctbx-only
    path has no mask); factors are interpolated by resolution, not shell
    index (docs/methods.md, half maps and model).
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    h1, h1_name = load_named(half1, "half map 1")
    h2, h2_name = load_named(half2, "half map 2")
    check_same_grid(h1, h1_name, h2, h2_name)
    if map_or_none is None:
        density, name = h1.with_data((h1.data + h2.data) * np.float32(0.5)), "mean of the half maps"
    else:
        density, name = load_named(map_or_none, "map")
        check_same_grid(density, name, h1, h1_name)
    original = density
    density, h1, h2 = (unit_cell_view(m) for m in (density, h1, h2))
    opts, warnings, solvent, whole = start_mode(density, name, resolution, options, kwargs, timings, t0)

    t = time.perf_counter()
    weights, box = _half_map_mask(mask, density, name, h1, h2, resolution)
    timings["mask"] = time.perf_counter() - t

    t = time.perf_counter()
    aniso = aniso_factors(whole)
    spectra = [spectrum_like(whole, m.data if weights is None else m.data * weights, aniso)
               for m in (density, h1, h2)]
    scale = half_map_scale(*spectra, n_bins=n_bins, reference=reference)
    timings["shell_scale"] = time.perf_counter() - t
    progress.info("%s scale factors in %d shells (%.1f s)", scale.method, len(scale.scale), timings["shell_scale"])
    result = finish_scaled(density, whole, scale, opts, solvent, box, warnings, timings, "half_map", t0)
    return restore_input_grid(result, original)


def _half_map_mask(mask: MapInput | bool | None, density: DensityMap, name: str, h1: DensityMap, h2: DensityMap,
                   resolution: float) -> tuple[np.ndarray | None, BoxChoice]:
    whole = tuple((0, n) for n in density.shape)
    if mask is False:
        return None, BoxChoice(whole, "whole_map", False, "no mask: FSC of the whole half maps")
    if mask is None or mask is True:
        binary = signal_mask(h1.data, h2.data, density.voxel_size_zyx, resolution)
        if binary.all() or not binary.any():
            return None, BoxChoice(whole, "whole_map", False,
                                   "automatic molecule mask failed (empty or whole map); FSC of the whole half maps")
        soft = soften_mask(binary, density.voxel_size_zyx, resolution)
        reason = (f"automatic molecule mask ({binary.mean():.0%} of the map, local half-map covariance; soft edge "
                  f"{resolution:g} Å) for the FSC analysis; whole map sharpened")
        return soft, BoxChoice(mask_bounds(soft), "half_map_mask", True, reason)
    given, mask_name = load_named(mask, "mask")
    given = unit_cell_view(given) if given.shape != density.shape else given
    check_same_grid(density, name, given, mask_name)
    soft = np.clip(given.data, 0.0, 1.0).astype(np.float32)
    if not soft.any():
        raise InputFileError(mask_name, "mask holds no positive value")
    return soft, BoxChoice(mask_bounds(soft), "given_mask", True,
                           f"mask {mask_name} for the FSC analysis; whole map sharpened")

