"""Per-box scale factors from half maps or a model (local half-map and local model-based sharpening).

The local counterparts of :func:`~localsharp.modes.half_map.half_map_sharpen` and
:func:`~localsharp.modes.model.model_sharpen` (docs/methods.md, half maps and model, applied per box as
the reference's local variant does; docs/methods.md): each box of the map, with its buffer and soft
edge (the same box and taper as the model-free local search), gets its own
per-shell factors,

* half maps: ``k_i ∝ CC*_i² · exp(B·sthol2_i)`` (the Wiener filter toward a
  B = 0 map) from the FSC of the two half-map boxes inside the box's soft edge
  and soft molecule mask (:func:`~.shellscale.half_map_scale`, ``signal``
  reference, :data:`LOCAL_N_BINS` shells);
* model: the map–model correlation of the box, within
  :data:`~localsharp.modes.model.MODEL_MASK_RADIUS_FACTOR` × resolution of the
  box's atoms (:func:`~.shellscale.model_scale`),

and its local resolution: the resolution at which the FSC of the two half-map
boxes, weighted by the box's soft edge and soft molecule mask, in shells up to
Nyquist, first falls below 0.143 (the criterion of blocres and of the global
FSC; :func:`local_resolution`).  The molecule mask keeps the box's solvent from
diluting the signal-to-noise (as ResMap's mask does); on B-gradient phantoms it
raised the rank correlation of local resolution with the boxes' true B from
0.64 / −0.17 / 0.60 to 0.74 / 0.58 / 0.56 (haemoglobin, spike NTD, haemoglobin
at twice the noise; ``benchmarks/quality_local.py``).

How the half-map statistics were chosen (CC to the B = 0 model within 3 Å of
atoms, local − global half-map, on the B-gradient phantoms of
``benchmarks/quality_local.py``): statistics over the whole soft-edged box
under-sharpen, since the box's solvent lowers its FSC below that of the density
the CC is taken on — local lost up to 0.016 (8 haemoglobins, twice the noise)
and 0.007 (one haemoglobin, twice the noise); inside the molecule mask every
phantom gained (+0.002 … +0.030).  Shrinking each box's FSC toward the FSC
pooled over all boxes (prior weights of 300 – 3000 coefficients per shell)
then only lowered the gain (mean over four tuning phantoms +0.0137 without,
+0.0108 at 1000), and shrinking each box's signal B toward the boxes' mean by
the fit's error (empirical Bayes) changed no phantom by more than 0.001: the
boxes' statistics are used as measured.

Pure functions of the box's voxels (numpy only), like :mod:`.local_box`; the
factors travel as a :class:`~.functions.Sharpening` shell table, so
:func:`~.local_box.render_box` applies them.  Its ``b_sharpen`` holds the
factors' *equivalent B* (:func:`equivalent_b`, reporting only: the B of the
``exp(B·s²/4)`` that fits them best up to the nominal resolution), which the
b_sharpen map shows.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..kernels.fourier import FourierGrid, to_coefficients
from ..kernels.shells import assign_shells, fsc_crossing, shell_centres, shell_fsc
from .functions import Sharpening
from .local_box import BoxOutcome, box_spectrum, unanalysable
from .shellscale import MIN_FACTOR_FOR_FIT, ShellScale, equivalent_b, half_map_scale, model_scale  # noqa: F401
from .spectrum import coefficients_like, spectrum_like

#: Shells of the per-box statistics (the reference's local default: 20).
LOCAL_N_BINS = 20
#: FSC threshold of the local resolution.
FSC_THRESHOLD = 0.143


def local_resolution(half1: np.ndarray, half2: np.ndarray, voxel_zyx: tuple[float, float, float],
                     mask: np.ndarray | None = None) -> tuple[float, bool]:
    """Resolution (Å) where the FSC of two (soft-edged) half-map boxes first falls below 0.143.

    The FSC is measured in equal-volume shells up to Nyquist (``max(10, n/2)``
    shells for a box of edge ``n``).

    Returns
    -------
    (resolution, limited) : tuple
        ``limited`` is True when the FSC stays above the threshold up to
        Nyquist; the resolution is then Nyquist (an upper bound).
    """
    a = half1 if mask is None else half1 * mask
    b = half2 if mask is None else half2 * mask
    return _fsc_resolution(to_coefficients(a), to_coefficients(b), tuple(a.shape), voxel_zyx)


def _fsc_resolution(coeffs1: np.ndarray, coeffs2: np.ndarray, shape: tuple[int, ...],
                    voxel_zyx: tuple[float, float, float]) -> tuple[float, bool]:
    """:func:`local_resolution` from the two boxes' rfft coefficients."""
    grid = FourierGrid(tuple(shape), tuple(voxel_zyx))  # type: ignore[arg-type]
    n_bins = max(10, min(shape) // 2)
    index, edges = assign_shells(grid, grid.nyquist, n_bins)
    fsc = shell_fsc(coeffs1, coeffs2, index, len(edges) - 1, grid.multiplicity)
    crossing = fsc_crossing(shell_centres(edges), fsc, FSC_THRESHOLD)
    if crossing is None:
        return float(grid.nyquist), True
    return float(crossing), False


def _sharpening(scale: ShellScale, resolution: float) -> Sharpening:
    """``scale``'s factors as a shell-table sharpening, its ``b_sharpen`` the equivalent B."""
    return scale.to_sharpening().replace(b_sharpen=equivalent_b(scale, resolution))


def _scaled_outcome(scale: ShellScale, resolution: float, solvent_fraction: float, b_iso: float | None,
                    reason: str, local_res: tuple[float, bool] | None) -> BoxOutcome:
    """The outcome carrying ``scale``'s factors as a shell-table sharpening."""
    notes = "; ".join(scale.notes)
    return BoxOutcome("sharpened", reason + (f"; {notes}" if notes else ""), _sharpening(scale, resolution), b_iso,
                      solvent_fraction, local_resolution=None if local_res is None else local_res[0],
                      resolution_limited=None if local_res is None else local_res[1])


def _weights(edge: np.ndarray | None, molecule: np.ndarray | None) -> np.ndarray | None:
    """The product of the box's soft edge and soft molecule mask (either may be absent)."""
    if molecule is None:
        return edge
    return molecule if edge is None else edge * molecule


def analyse_half_map_box(data: np.ndarray, half1: np.ndarray, half2: np.ndarray,
                         voxel_zyx: tuple[float, float, float], resolution: float, solvent_fraction: float, *,
                         soft_edge: bool = True, d_min_ratio: float = 0.833,
                         n_bins: int = LOCAL_N_BINS, molecule: np.ndarray | None = None) -> BoxOutcome:
    """Half-map scale factors and local resolution of one box.

    Parameters
    ----------
    data, half1, half2 : numpy.ndarray
        The box of the map being sharpened and of the two half maps (same region, buffer included).
    voxel_zyx : tuple of float
        Voxel size (Å).
    resolution : float
        Nominal resolution (Å).
    solvent_fraction : float
        The box's solvent fraction (boxes above :data:`~.local_box.MAX_BOX_SOLVENT` are skipped).
    soft_edge : bool
        Taper the boxes to zero at their faces (σ = resolution) before the transforms.
    d_min_ratio : float
        Factors are measured to ``d_min_ratio × resolution``.
    n_bins : int
        Shells of the statistics.
    molecule : numpy.ndarray, optional
        Soft molecule mask (0…1) on the box: the scale factors' statistics are taken inside it (as
        the global half-map mode takes them inside its molecule mask), so that the box's solvent
        does not dilute the signal-to-noise the factors weight by; the whole box is sharpened.  The
        local resolution is measured with the same weights.

    Returns
    -------
    BoxOutcome
        ``sharpened`` with a ``half_map_sharpening`` shell table and the box's local resolution.
    """
    skipped = unanalysable(data, solvent_fraction)
    if skipped is not None:
        return skipped
    try:
        spectrum, mask = box_spectrum(data, voxel_zyx, resolution, soft_edge, d_min_ratio)
        weights = _weights(mask, molecule)
        observed = spectrum if molecule is None else spectrum_like(spectrum, data * weights)
        # one transform per half map serves both the factors (inside d_min) and the local resolution (to Nyquist)
        coeffs = [to_coefficients(h if weights is None else h * weights) for h in (half1, half2)]
        scale = half_map_scale(observed, *(coefficients_like(spectrum, c) for c in coeffs), n_bins=n_bins,
                               reference="signal")
    except (ConfigError, ValueError) as exc:
        return BoxOutcome("skipped", str(exc), solvent_fraction=solvent_fraction)
    local_res = _fsc_resolution(coeffs[0], coeffs[1], tuple(data.shape), voxel_zyx)
    reason = (f"half-map scale factors in {scale.stats.n_shells} shells; FSC = {FSC_THRESHOLD} at "
              f"{'≤ ' if local_res[1] else ''}{local_res[0]:.2f} Å")
    b_iso = spectrum.b_iso if spectrum.b_iso_fitted else None
    return _scaled_outcome(scale, resolution, solvent_fraction, b_iso, reason, local_res)


def analyse_model_box(data: np.ndarray, model_box: np.ndarray | None, model_mask: np.ndarray | None,
                      voxel_zyx: tuple[float, float, float], resolution: float, solvent_fraction: float, *,
                      soft_edge: bool = True, d_min_ratio: float = 0.833, n_bins: int = LOCAL_N_BINS,
                      model_rms: float | None = None) -> BoxOutcome:
    """Model-based scale factors of one box.

    Parameters
    ----------
    data : numpy.ndarray
        The box of the map (buffer included).
    model_box : numpy.ndarray or None
        The B = 0 model map on the same voxels; None when no atom lies near the box
        (the box is then kept as it is).
    model_mask : numpy.ndarray or None
        Soft mask (0…1) around the model's atoms: the statistics are taken inside it.
    model_rms : float, optional
        Expected model error (Å), as in :func:`~localsharp.modes.model.model_sharpen`.

    Returns
    -------
    BoxOutcome
        ``sharpened`` with a ``model_sharpening`` shell table, or ``unsharpened``.
    """
    skipped = unanalysable(data, solvent_fraction)
    if skipped is not None:
        return skipped
    if model_box is None or model_mask is None or not float(model_mask.max()) > 0.5:
        return BoxOutcome("unsharpened", "no atom of the model near the box; kept as it is",
                          Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0),
                          solvent_fraction=solvent_fraction)
    try:
        spectrum, mask = box_spectrum(data, voxel_zyx, resolution, soft_edge, d_min_ratio)
        weights = model_mask if mask is None else model_mask * mask
        map_spec = spectrum_like(spectrum, data * weights)
        model_spec = spectrum_like(spectrum, model_box * weights)
        scale = model_scale(map_spec, model_spec, resolution, rmsd=model_rms, n_bins=n_bins)
    except (ConfigError, ValueError) as exc:
        return BoxOutcome("skipped", str(exc), solvent_fraction=solvent_fraction)
    if scale.notes:  # too incomplete a model for this box: unit factors
        return BoxOutcome("unsharpened", f"{scale.notes[0]}; kept as it is",
                          Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0),
                          solvent_fraction=solvent_fraction)
    reason = (f"model scale factors in {scale.stats.n_shells} shells (completeness "
              f"{scale.fraction_complete:.2f})")
    b_iso = spectrum.b_iso if spectrum.b_iso_fitted else None
    return _scaled_outcome(scale, resolution, solvent_fraction, b_iso, reason, None)
