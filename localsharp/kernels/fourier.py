"""Fourier-space geometry and transforms on a map's own grid (pure numpy/scipy).

All transforms are real-to-complex (``scipy.fft.rfftn``) over the array axes
``(z, y, x)``; the last axis (x) is halved.  The box is treated as one P1 unit
cell, so Miller index ``h`` along x is ``rfftfreq(nx) * nx`` and so on.

Conventions: ``s`` is the reciprocal-space vector (|s| = 1/d) and
``sthol2 = |s|**2 / 4`` (the crystallographic (sin θ/λ)²).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.fft

#: Threads used by scipy.fft (the machine's cores; set LOCALSHARP_FFT_WORKERS to override).
FFT_WORKERS = int(os.environ.get("LOCALSHARP_FFT_WORKERS", os.cpu_count() or 1))


def orthogonalisation_matrix(lengths: tuple[float, float, float], angles: tuple[float, float, float]) -> np.ndarray:
    """Matrix whose columns are the cell vectors a, b, c in Cartesian Å (PDB convention)."""
    a, b, c = lengths
    alpha, beta, gamma = np.radians(angles)
    cos_a, cos_b, cos_g = np.cos(alpha), np.cos(beta), np.cos(gamma)
    sin_g = np.sin(gamma)
    volume_factor = np.sqrt(max(0.0, 1 - cos_a**2 - cos_b**2 - cos_g**2 + 2 * cos_a * cos_b * cos_g))
    return np.array(
        [
            [a, b * cos_g, c * cos_b],
            [0.0, b * sin_g, c * (cos_a - cos_b * cos_g) / sin_g],
            [0.0, 0.0, c * volume_factor / sin_g],
        ]
    )


@dataclass(frozen=True)
class FourierGrid:
    """Reciprocal-space geometry of the rfft of a box.

    Parameters
    ----------
    shape : tuple of int
        Real-space array shape ``(nz, ny, nx)``.
    voxel_size : tuple of float
        Voxel size along ``(z, y, x)`` in Å.
    angles : tuple of float
        Cell angles alpha, beta, gamma (degrees); 90° for cryo-EM boxes.
    """

    shape: tuple[int, int, int]
    voxel_size: tuple[float, float, float]
    angles: tuple[float, float, float] = (90.0, 90.0, 90.0)

    @property
    def rfft_shape(self) -> tuple[int, int, int]:
        nz, ny, nx = self.shape
        return (nz, ny, nx // 2 + 1)

    @cached_property
    def miller(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable Miller indices ``(l, k, h)`` for axes z, y, x."""
        nz, ny, nx = self.shape
        l_idx = np.rint(np.fft.fftfreq(nz) * nz).astype(np.float64)[:, None, None]
        k_idx = np.rint(np.fft.fftfreq(ny) * ny).astype(np.float64)[None, :, None]
        h_idx = np.rint(np.fft.rfftfreq(nx) * nx).astype(np.float64)[None, None, :]
        return l_idx, k_idx, h_idx

    @cached_property
    def reciprocal_matrix(self) -> np.ndarray:
        """Matrix mapping Miller indices (h, k, l) to Cartesian s (Å⁻¹)."""
        lengths = tuple(n * v for n, v in zip(self.shape[::-1], self.voxel_size[::-1]))
        return np.linalg.inv(orthogonalisation_matrix(lengths, self.angles)).T

    @cached_property
    def metric(self) -> np.ndarray:
        """Reciprocal metric ``G = MᵀM``: ``|s|² = Σ G_ij m_i m_j`` for Miller indices ``m = (h, k, l)``."""
        m = self.reciprocal_matrix
        return np.ascontiguousarray(m.T @ m)

    @property
    def flat_index_dtype(self) -> type:
        """int32 when every flat index into the rfft array fits in it (half the bytes), else int64."""
        nz, ny, nh = self.rfft_shape
        return np.int32 if nz * ny * nh < 2**31 - 1 else np.int64

    def s_cartesian(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cartesian components (sx, sy, sz) of s for every rfft coefficient (float32)."""
        l_idx, k_idx, h_idx = self.miller
        m = self.reciprocal_matrix
        comps = []
        for row in m:
            comps.append((row[0] * h_idx + row[1] * k_idx + row[2] * l_idx).astype(np.float32))
        return tuple(comps)  # type: ignore[return-value]

    def s_cartesian_at(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cartesian components (sx, sy, sz) of s (float32) at flat rfft indices ``index`` only."""
        l_idx, k_idx, h_idx = (axis.ravel() for axis in self.miller)
        m = self.reciprocal_matrix
        index = np.asarray(index)
        out = tuple(np.empty(index.size, dtype=np.float32) for _ in range(3))
        for start in range(0, index.size, _CHUNK):  # bounded temporaries on a 1000³ map
            part = slice(start, start + _CHUNK)
            iz, iy, ix = np.unravel_index(index[part], self.rfft_shape)
            h, k, l = h_idx[ix], k_idx[iy], l_idx[iz]
            for row, comp in zip(m, out):
                comp[part] = row[0] * h + row[1] * k + row[2] * l
        return out  # type: ignore[return-value]

    @cached_property
    def s2(self) -> np.ndarray:
        """|s|² = 1/d² for every rfft coefficient, shape :attr:`rfft_shape` (float32).

        Built from the reciprocal metric ``G = MᵀM`` as ``Σ G_ij m_i m_j`` with broadcast 1-D
        terms, so only the result is a full-size array (no per-component temporaries).
        """
        return metric_s2(self.metric, *self.miller, self.rfft_shape)

    @property
    def sthol2(self) -> np.ndarray:
        """(sin θ/λ)² = |s|²/4."""
        return self.s2 * np.float32(0.25)

    @cached_property
    def multiplicity(self) -> np.ndarray:
        """Weight of each rfft coefficient in sums over the full sphere (1 or 2)."""
        nx = self.shape[2]
        w = np.full(self.rfft_shape[2], 2.0, dtype=np.float32)
        w[0] = 1.0
        if nx % 2 == 0:
            w[-1] = 1.0
        return np.broadcast_to(w[None, None, :], self.rfft_shape)

    @property
    def nyquist(self) -> float:
        """Finest resolution (Å) sampled along every axis: 2 × the largest voxel edge."""
        return 2.0 * max(self.voxel_size)


def to_coefficients(data: np.ndarray) -> np.ndarray:
    """Fourier coefficients of a real map (``rfftn`` over all three axes, complex64)."""
    return scipy.fft.rfftn(np.asarray(data, dtype=np.float32), workers=FFT_WORKERS)


def to_map(coeffs: np.ndarray, shape: tuple[int, int, int], workers: int | None = None, *,
           overwrite: bool = False) -> np.ndarray:
    """Real map (float32) from rfft coefficients on a grid of ``shape``.

    ``coeffs`` may carry leading batch axes; the transform acts on the last three.
    ``workers`` = FFT threads (default :data:`FFT_WORKERS`).  With ``overwrite`` the
    coefficients are destroyed: the two complex passes run in place and only the
    output is allocated (``irfftn`` would allocate a full complex copy first: on a
    1000³ map that is 4 GB).
    """
    workers = workers or FFT_WORKERS
    if overwrite and coeffs.dtype == np.complex64 and coeffs.flags.c_contiguous:
        inner = scipy.fft.ifftn(coeffs, axes=(-3, -2), workers=workers, overwrite_x=True)
        if inner.ndim == 3 and inner.size >= IN_PLACE_MIN and np.shares_memory(inner, coeffs):
            return _last_axis_in_place(inner, shape, workers)
        return scipy.fft.irfft(inner, n=shape[-1], axis=-1, workers=workers,
                               overwrite_x=True).astype(np.float32, copy=False)
    return scipy.fft.irfftn(coeffs, s=shape, axes=(-3, -2, -1),
                            workers=workers).astype(np.float32, copy=False)


#: Complex coefficients from which :func:`to_map` writes the map into their own memory (16 M = 128 MB).
IN_PLACE_MIN = 1 << 24


def _last_axis_in_place(inner: np.ndarray, shape: tuple[int, int, int], workers: int) -> np.ndarray:
    """The last (half-complex → real) pass of :func:`to_map`, written into ``inner``'s own memory.

    Each z-slab's real rows (``nx`` floats) fit in the bytes of its complex rows
    (``2·(nx//2 + 1)`` floats): slab by slab, the rows are transformed and stored
    over the coefficients they came from, then moved forward into a contiguous
    ``(nz, ny, nx)`` map at the start of the buffer (a destination never overlaps
    a later slab's source).  The map is a view of that buffer, so the pass needs
    one slab of extra memory instead of a whole map.
    """
    nz, ny, nx = shape
    floats = inner.reshape(-1).view(np.float32)
    rows = floats.reshape(nz, ny, 2 * inner.shape[-1])
    for z in range(nz):
        rows[z, :, :nx] = scipy.fft.irfft(inner[z], n=nx, axis=-1, workers=workers)
    out = floats[: nz * ny * nx].reshape(nz, ny, nx)
    for z in range(nz):
        out[z] = rows[z, :, :nx]  # overlapping forward move: numpy buffers the slab when needed
    return out


def resolution_mask(grid: FourierGrid, d_min: float, d_max: float | None = None) -> np.ndarray:
    """Boolean mask of coefficients with ``d_min <= d (<= d_max)``, F000 excluded."""
    s2 = grid.s2
    mask = s2 <= np.float32(1.0 / d_min**2)
    if d_max is not None:
        mask &= s2 >= np.float32(1.0 / d_max**2)
    mask[0, 0, 0] = False
    return mask


#: Elements per float64 chunk in :func:`mean_square` (8 MB), so no map-sized float64 copy is made.
_CHUNK = 1 << 20


def mean_square(data: np.ndarray) -> float:
    """``mean(data²)`` accumulated in float64, one 8 MB chunk at a time."""
    flat = np.ascontiguousarray(data).reshape(-1)
    if flat.size == 0:
        return 0.0
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK].astype(np.float64)
        total += float(np.dot(chunk, chunk))
    return total / flat.size


def lowpass(data: np.ndarray, voxel_size_zyx: tuple[float, float, float], d_min: float,
            angles: tuple[float, float, float] = (90.0, 90.0, 90.0), keep_mean: bool = True) -> np.ndarray:
    """Hard low-pass filter of a map at resolution ``d_min`` (Å).

    Parameters
    ----------
    data : numpy.ndarray
        Map ``[z, y, x]``.
    voxel_size_zyx : tuple of float
        Voxel size along z, y, x (Å).
    d_min : float
        Coefficients with d < d_min are set to zero.
    keep_mean : bool
        Keep F000 (the mean); otherwise the result has zero mean.
    """
    grid = FourierGrid(tuple(data.shape), tuple(voxel_size_zyx), angles)
    coeffs = to_coefficients(data)
    keep = grid.s2 <= np.float32(1.0 / d_min**2)
    keep[0, 0, 0] = keep_mean
    coeffs *= keep
    return to_map(coeffs, data.shape, overwrite=True)


def shell_edges_equal_volume(s_min: float, s_max: float, n_bins: int) -> np.ndarray:
    """Bin edges in |s| dividing ``[s_min, s_max]`` into shells of equal reciprocal volume."""
    cubes = np.linspace(s_min**3, s_max**3, n_bins + 1)
    return np.cbrt(cubes)


def metric_s2(g: np.ndarray, l_idx: np.ndarray, k_idx: np.ndarray, h_idx: np.ndarray,
              shape: tuple[int, int, int]) -> np.ndarray:
    """|s|² = hᵀ G* h (float32, ``shape``) from the reciprocal metric ``g`` and broadcastable Miller
    index arrays, term by term so that only the result is a full-size array."""
    out = np.empty(shape, dtype=np.float32)
    np.add((g[2, 2] * l_idx * l_idx).astype(np.float32), (g[1, 1] * k_idx * k_idx).astype(np.float32), out=out)
    out += (g[0, 0] * h_idx * h_idx).astype(np.float32)
    for (i, a), (j, b) in (((0, h_idx), (1, k_idx)), ((0, h_idx), (2, l_idx)), ((1, k_idx), (2, l_idx))):
        if g[i, j] != 0.0:
            out += (2.0 * g[i, j] * a * b).astype(np.float32)
    return out
