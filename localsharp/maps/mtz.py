"""Map coefficients in MTZ files (gemmi): reading a crystallographic map, writing FWT/PHIFWT."""

from __future__ import annotations

import os
from pathlib import Path

import gemmi
import numpy as np
import scipy.fft

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


def coefficient_table(density: DensityMap, d_min: float) -> np.ndarray:
    """Rows ``(h, k, l, |F|, φ in degrees)`` (float32) of the coefficients of ``density`` to ``d_min``.

    Reflections are those of the P1 asymmetric unit (:func:`p1_asu`), in MTZ sort order
    (h, then k, then l ascending), so no sort is needed.  One real FFT of the map (our own,
    multi-threaded) with the halved axis along z gives exactly the ASU's half-space ``l >= 0``;
    it is read one h-slab at a time, only over the (k, l) window of the resolution ellipse
    (:func:`_kl_window`), each slab straight into its float32 rows (20 bytes a reflection), so
    besides the FFT no map-sized array is made.  The crystallographic sign
    convention ``F(h) = Σ ρ(x) exp(+2πi h·x)`` is used (the conjugate of numpy's).  Terms on a
    Nyquist plane (ambiguous sign) and F000 are left out.
    """
    nz, ny, nx = density.data.shape
    grid = fourier.FourierGrid((nz, ny, nx), density.voxel_size_zyx, density.cell_angles)
    g = grid.metric
    half = scipy.fft.rfftn(np.asarray(density.data, dtype=np.float32), axes=(2, 1, 0),
                           workers=fourier.FFT_WORKERS)  # [l >= 0, k, h]
    ks = np.arange(-(ny // 2), (ny - 1) // 2 + 1)
    ls = np.arange(0, nz // 2 + 1)
    kk, ll = np.meshgrid(ks.astype(np.float64), ls.astype(np.float64), indexing="ij")
    base = g[1, 1] * kk * kk + g[2, 2] * ll * ll + 2.0 * g[1, 2] * kk * ll
    limit = 1.0 / d_min**2
    nyquist_kl = ((ny % 2 == 0) & (np.abs(kk) == ny // 2)) | ((nz % 2 == 0) & (ll == nz // 2))
    blocks = []
    for h in range(-(nx // 2), (nx - 1) // 2 + 1):
        if nx % 2 == 0 and abs(h) == nx // 2:
            continue
        window = _kl_window(g, limit, h, ks, ls)
        if window is None:
            continue
        part = np.s_[window[0]:window[1], window[2]:window[3]]
        k_part, l_part = kk[part], ll[part]
        s2 = base[part] + g[0, 0] * h * h + 2.0 * h * (g[0, 1] * k_part + g[0, 2] * l_part)
        keep = (s2 <= limit) & ~nyquist_kl[part] & p1_asu(h, k_part, l_part)  # l = 0: only the ASU half
        ik, il = np.nonzero(keep)  # C order: k, then l ascending
        if ik.size == 0:
            continue
        k, l = ks[ik + window[0]], ls[il + window[2]]
        values = np.conj(half[l, k % ny, h % nx])
        block = np.empty((ik.size, 5), dtype=np.float32)
        block[:, 0] = h
        block[:, 1] = k
        block[:, 2] = l
        block[:, 3] = np.abs(values)
        block[:, 4] = np.degrees(np.angle(values))
        blocks.append(block)
    del half
    if not blocks:
        return np.zeros((0, 5), dtype=np.float32)
    return np.concatenate(blocks)


def _kl_window(g: np.ndarray, limit: float, h: int, ks: np.ndarray,
               ls: np.ndarray) -> tuple[int, int, int, int] | None:
    """Index ranges ``(k0, k1, l0, l1)`` into ``ks``/``ls`` holding every ``(k, l)`` with ``|s(h, k, l)|² <= limit``.

    At fixed h the sphere of resolution is an ellipse in (k, l): with ``A = G[1:, 1:]`` and
    ``b = G[1:, 0]`` its centre is ``−h A⁻¹ b`` and ``r² = limit − h² (G₀₀ − bᵀ A⁻¹ b)``; its half
    extents are ``√(r² (A⁻¹)_kk)`` and ``√(r² (A⁻¹)_ll)``.  One index of margin absorbs rounding;
    the exact test is still made on every (k, l) of the window.  None when the plane holds no
    reflection.
    """
    a = g[1:, 1:]
    b = g[1:, 0]
    a_inv = np.linalg.inv(a)
    r2 = limit - h * h * (g[0, 0] - float(b @ a_inv @ b))
    if r2 < 0:
        return None
    centre = -h * (a_inv @ b)
    half_k, half_l = np.sqrt(r2 * a_inv[0, 0]), np.sqrt(r2 * a_inv[1, 1])
    k0 = max(0, int(np.floor(centre[0] - half_k)) - 1 - int(ks[0]))
    k1 = min(ks.size, int(np.ceil(centre[0] + half_k)) + 2 - int(ks[0]))
    l0 = max(0, int(np.floor(centre[1] - half_l)) - 1 - int(ls[0]))
    l1 = min(ls.size, int(np.ceil(centre[1] + half_l)) + 2 - int(ls[0]))
    if k0 >= k1 or l0 >= l1:
        return None
    return k0, k1, l0, l1


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
    table = coefficient_table(density, d_min)
    amps = table[:, 3]  # a view: scaled in place
    scale = SCALE_MAX / max(float(amps.max()), 1e-30) if amps.size else 1.0
    amps *= np.float32(scale)
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup("P 1")
    mtz.set_cell_for_all(cell)
    mtz.add_dataset("localsharp")
    mtz.add_column("FWT", "F")
    mtz.add_column("PHIFWT", "P")
    mtz.set_data(table)
    mtz.sort_order = [1, 2, 3, 0, 0]  # rows come sorted by h, k, l
    with atomic_path(path, overwrite=overwrite) as tmp:
        mtz.write_to_file(str(tmp))
    return path
