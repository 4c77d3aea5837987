"""Map coefficients in MTZ files (gemmi): reading a crystallographic map, writing FWT/PHIFWT."""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import numpy as np

from ..errors import InputFileError, OutputError
from ..kernels import fourier
from .atomic import atomic_path
from .density import DensityMap

#: Amplitude/phase label pairs tried in order when none are given.
COMMON_LABELS = (
    ("FWT", "PHWT"), ("FWT", "PHIFWT"), ("2FOFCWT", "PH2FOFCWT"), ("FP", "PHIFP"), ("F", "PHI"),
    ("FC", "PHIC"), ("F-model", "PHIF-model"), ("FC_ALL", "PHIC_ALL"),
)
#: Largest amplitude in written coefficients (the reference's ``scale_max``).
SCALE_MAX = 100000.0


def _pick_labels(path: Path, mtz: gemmi.Mtz, labels: tuple[str, str] | None) -> tuple[str, str]:
    names = [c.label for c in mtz.columns]
    if labels is not None:
        missing = [lbl for lbl in labels if lbl not in names]
        if missing:
            raise InputFileError(path, f"MTZ has no column(s) {missing}; columns are {names}")
        return labels
    for f, phi in COMMON_LABELS:
        if f in names and phi in names:
            return f, phi
    raise InputFileError(path, f"no map-coefficient columns recognised (tried {COMMON_LABELS}); "
                               f"columns are {names}; give --labels F,PHI")


def read_mtz_map(path: str | os.PathLike, labels: tuple[str, str] | None = None,
                 sample_rate: float = 4.0) -> tuple[DensityMap, float]:
    """Compute a map from MTZ map coefficients.

    Parameters
    ----------
    path : str or path-like
        MTZ file.
    labels : tuple of str, optional
        Amplitude and phase column labels; detected from :data:`COMMON_LABELS` if omitted.
    sample_rate : float
        Grid spacing ≈ d_min / sample_rate.

    Returns
    -------
    (DensityMap, float)
        The map over one unit cell (space group kept) and the data's d_min.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    try:
        mtz = gemmi.read_mtz_file(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputFileError(path, f"not a readable MTZ file ({exc})") from None
    f_label, phi_label = _pick_labels(path, mtz, labels)
    if mtz.nreflections == 0:
        raise InputFileError(path, "MTZ holds no reflections")
    grid = mtz.transform_f_phi_to_map(f_label, phi_label, sample_rate=sample_rate)
    data = np.transpose(np.array(grid, copy=True), (2, 1, 0))
    if not np.all(np.isfinite(data)) or float(data.max()) == float(data.min()):
        raise InputFileError(path, f"map from columns {f_label},{phi_label} is constant or not finite")
    cell = mtz.cell
    shape_xyz = (grid.nu, grid.nv, grid.nw)
    voxel = (cell.a / shape_xyz[0], cell.b / shape_xyz[1], cell.c / shape_xyz[2])
    density = DensityMap(
        data=data, voxel_size=voxel, cell_grid=shape_xyz, cell_angles=(cell.alpha, cell.beta, cell.gamma),
        space_group=mtz.spacegroup.number if mtz.spacegroup else 1,
        header_extras={"labels": [f"from {path.name} {f_label},{phi_label}".encode()[:80]]},
    )
    return density, float(mtz.resolution_high())


def p1_asu(h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Whether Miller indices lie in the P1 reciprocal asymmetric unit (CCP4/gemmi convention).

    ``l > 0``, or ``l = 0`` and ``h > 0``, or ``l = h = 0`` and ``k > 0``.
    """
    return (l > 0) | ((l == 0) & ((h > 0) | ((h == 0) & (k > 0))))


def unique_coefficients(density: DensityMap, d_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Miller indices ``(n, 3)`` (h, k, l) and complex coefficients of ``density`` to ``d_min``, P1 ASU.

    One real FFT of the map (our own, multi-threaded; no extra map-sized copy): the
    rfft half ``h >= 0`` is folded into the ASU with Friedel's law.  The crystallographic
    sign convention ``F(h) = Σ ρ(x) exp(+2πi h·x)`` is used (the conjugate of numpy's).
    Terms on a Nyquist plane (ambiguous sign) and F000 are left out.
    """
    grid = fourier.FourierGrid(tuple(density.data.shape), density.voxel_size_zyx, density.cell_angles)
    index = np.flatnonzero(fourier.resolution_mask(grid, d_min))
    values = np.conj(fourier.to_coefficients(density.data).ravel()[index])
    iz, iy, ix = np.unravel_index(index, grid.rfft_shape)
    l_idx, k_idx, h_idx = (axis.ravel().astype(np.int32) for axis in grid.miller)
    h, k, l = h_idx[ix], k_idx[iy], l_idx[iz]
    nz, ny, nx = grid.shape
    nyquist = ((nx % 2 == 0) & (np.abs(h) == nx // 2)) | ((ny % 2 == 0) & (np.abs(k) == ny // 2)) \
        | ((nz % 2 == 0) & (np.abs(l) == nz // 2))
    inside = p1_asu(h, k, l)
    # on the h = 0 plane the rfft holds both Friedel mates: keep the one in the ASU
    keep = ~nyquist & (inside | (h > 0))
    flip = ~inside[keep]
    hkl = np.column_stack([h[keep], k[keep], l[keep]])
    hkl[flip] *= -1
    values = values[keep]
    values[flip] = np.conj(values[flip])
    return hkl, values


def write_map_coefficients(path: str | os.PathLike, density: DensityMap, d_min: float, *,
                           overwrite: bool = False) -> Path:
    """Write P1 coefficients (FWT, PHIFWT) of ``density`` to ``d_min``, atomically.

    The box is treated as the unit cell, with its first voxel at the origin.
    Amplitudes are scaled so the largest is :data:`SCALE_MAX`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists; use --overwrite (overwrite=True) to replace it")
    a, b, c = density.box_lengths
    cell = gemmi.UnitCell(a, b, c, *density.cell_angles)
    hkl, values = unique_coefficients(density, d_min)
    amps = np.abs(values)
    scale = SCALE_MAX / max(float(amps.max()), 1e-30) if amps.size else 1.0
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup("P 1")
    mtz.set_cell_for_all(cell)
    mtz.add_dataset("localsharp")
    mtz.add_column("FWT", "F")
    mtz.add_column("PHIFWT", "P")
    table = np.empty((hkl.shape[0], 5), dtype=np.float32)
    table[:, :3] = hkl
    table[:, 3] = amps * np.float32(scale)
    table[:, 4] = np.degrees(np.angle(values))
    mtz.set_data(table)
    mtz.sort()
    with atomic_path(path, overwrite=overwrite) as tmp:
        mtz.write_to_file(str(tmp))
    return path
