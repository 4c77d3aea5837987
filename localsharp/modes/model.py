"""Model-based sharpening (docs/methods.md, half maps and model; ``model_sharpen``).

The correlation of the map with a B = 0 model map, inside a soft mask around the model's atoms,
gives per-shell factors that match the map's spectrum to the model's, weighted by the corrected
map–model correlation (docs/methods.md, half maps and model).  The mask serves the statistics only; the whole map is sharpened.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gemmi

from ..config import SharpenOptions
from ..errors import ConfigError
from ..kernels.masks import soften_mask
from ..maps.loading import MapInput, load_named, unit_cell_view
from ..maps.model import check_model_in_box, model_map, read_model
from ..report.result import SharpenResult
from ..sharpening.box import BoxChoice
from ..maps.atom_masks import atom_ball_mask
from ..sharpening.shellscale import N_BINS, model_scale
from ..sharpening.spectrum import aniso_factors, spectrum_like
from .common import progress, restore_input_grid
from .scaled import finish_scaled, mask_bounds, start_mode

#: Default model-mask radius as a multiple of the resolution (Engine B; Engine A uses 3 Å).
MODEL_MASK_RADIUS_FACTOR = 2.0


def model_sharpen(map_or_path: MapInput, model: str | os.PathLike | gemmi.Structure, resolution: float, *,
                  options: SharpenOptions | None = None, model_rms: float | None = None,
                  fraction_complete: float | None = None, mask_radius: float | None = None,
                  n_bins: int = N_BINS, **kwargs: Any) -> SharpenResult:
    """Sharpen a map with per-shell factors from its agreement with an atomic model (docs/methods.md, half maps and model; ``model_sharpening``).

    Parameters
    ----------
    map_or_path : DensityMap or path
        The map.
    model : path or gemmi.Structure
        PDB or mmCIF model in the map's frame (first model; hydrogens and
        charged atoms are fine).  Its density is computed with every B = 0
        (``target_b_iso_model_scale = 0``) to the Fourier cut-off.
    resolution : float
        Nominal resolution (Å).
    options : SharpenOptions, optional
        As for :func:`half_map_sharpen`.
    model_rms : float, optional
        Expected model error (Å); default 0.25 × resolution, giving
        ``b_eff = 8π·rmsd²``.
    fraction_complete : float, optional
        Model completeness; default estimated from the correlation
        (``max_possible_cc²``).  Below 0.05: unit factors.
    mask_radius : float, optional
        Statistics are taken within this distance (Å) of the atoms, with a
        soft edge of radius = resolution, so that a model covering part of the
        map is compared only with the density it explains.  Default
        2 × resolution (Engine B's model-mask radius; see Notes).
    n_bins : int
        Resolution shells.

    Returns
    -------
    SharpenResult
        ``mode='model'``; ``shells`` rows hold d, s, d_avg, cc, cc_corrected,
        rms_fo, rms_fc, scale, n; ``shell_scale`` holds b_eff,
        rmsd, max_possible_cc and fraction_complete (``applicable['value']``
        is False when the model is too incomplete to scale).

    Raises
    ------
    InputFileError
        Model unreadable, empty, or entirely outside the map (the message
        names the model file).

    Notes
    -----
    The reference (Engine A) boxes the map around the model and masks atoms
    with 3 Å plus a soft edge; Engine B masks with 2 × resolution.  On the
    three real test cases 2 × resolution gave equal or higher map–model CC
    (``benchmarks/quality_modes.py``), so it is the default.  The mask is
    applied to map and model map for the statistics only.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    original, name = load_named(map_or_path, "map")
    density = unit_cell_view(original)
    if isinstance(model, gemmi.Structure):
        structure, model_name = model, model.name or "model"
    else:
        structure, model_name = read_model(model), str(model)
    radius = MODEL_MASK_RADIUS_FACTOR * resolution if mask_radius is None else float(mask_radius)
    if not radius > 0:
        raise ConfigError(f"model mask radius must be positive, got {mask_radius}")
    if model_rms is not None and not model_rms >= 0:
        raise ConfigError(f"model rms error must be zero or positive, got {model_rms}")
    if fraction_complete is not None and not 0.0 <= fraction_complete <= 1.0:
        raise ConfigError(f"model completeness must lie in [0, 1], got {fraction_complete}")
    check_model_in_box(structure, density, model_name)  # before any heavy work
    opts, warnings, solvent, whole = start_mode(density, name, resolution, options, kwargs, timings, t0)

    t = time.perf_counter()
    calculated = model_map(structure, density, resolution=whole.d_min, b_factor=0.0, source=model_name)
    timings["model_map"] = time.perf_counter() - t
    progress.info("model map computed (%.1f s)", timings["model_map"])

    t = time.perf_counter()
    binary = atom_ball_mask(structure, density, radius)
    soft = soften_mask(binary, density.voxel_size_zyx, resolution)
    box = BoxChoice(mask_bounds(soft), "model_mask", True,
                    f"statistics within {radius:g} Å of the model's atoms (soft edge {resolution:g} Å), "
                    f"{binary.mean():.0%} of the map; whole map sharpened")
    timings["mask"] = time.perf_counter() - t

    t = time.perf_counter()
    map_spec = spectrum_like(whole, density.data * soft, aniso_factors(whole))
    model_spec = spectrum_like(whole, calculated * soft)
    scale = model_scale(map_spec, model_spec, resolution, rmsd=model_rms, fraction_complete=fraction_complete,
                        n_bins=n_bins)
    timings["shell_scale"] = time.perf_counter() - t
    progress.info("%s scale factors in %d shells (%.1f s)", scale.method, len(scale.scale), timings["shell_scale"])
    result = finish_scaled(density, whole, scale, opts, solvent, box, warnings, timings, "model", t0)
    return restore_input_grid(result, original)
