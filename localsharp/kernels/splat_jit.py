"""Gaussian atoms added onto a block of a regular grid (numba loop).

Used by :mod:`localsharp.capsid` to compute a large model map block by block: each atom is a
3-D Gaussian ``amplitude * exp(-alpha * r²)``, evaluated within ``cutoff`` voxels of its centre
as a product of three 1-D factors, so the cost per atom is the number of voxels in its cube
plus three short ``exp`` loops.  Imported on first use only (numba's import costs ~0.5 s).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def splat_gaussians(block: np.ndarray, start_zyx: np.ndarray, voxel: float, xyz: np.ndarray,
                    amplitude: np.ndarray, alpha: np.ndarray, reach: np.ndarray) -> None:  # pragma: no cover
    """Add Gaussian atoms to ``block`` in place.

    Parameters
    ----------
    block : numpy.ndarray
        float32 array ``(nz, ny, nx)``: the grid voxels ``start_zyx + (k, j, i)``.
    start_zyx : numpy.ndarray
        int64 grid index of ``block[0, 0, 0]`` along z, y, x.
    voxel : float
        Cubic voxel edge (Å); grid point ``(k, j, i)`` is at ``(i, j, k) * voxel``.
    xyz : numpy.ndarray
        float64 ``(n, 3)`` atom positions (Å, x, y, z) in the grid's frame.
    amplitude, alpha : numpy.ndarray
        float64 ``(n,)``: peak height and ``alpha`` (1/Å²) of each Gaussian.
    reach : numpy.ndarray
        float64 ``(n,)``: evaluation radius (Å) of each atom; beyond it the atom adds nothing.
    """
    nz, ny, nx = block.shape
    z0, y0, x0 = start_zyx[0], start_zyx[1], start_zyx[2]
    wx = np.empty(nx, dtype=np.float64)
    wy = np.empty(ny, dtype=np.float64)
    wz = np.empty(nz, dtype=np.float64)
    for a in range(xyz.shape[0]):
        cut = reach[a] / voxel
        gx, gy, gz = xyz[a, 0] / voxel - x0, xyz[a, 1] / voxel - y0, xyz[a, 2] / voxel - z0
        ilo, ihi = max(0, int(math.ceil(gx - cut))), min(nx - 1, int(math.floor(gx + cut)))
        jlo, jhi = max(0, int(math.ceil(gy - cut))), min(ny - 1, int(math.floor(gy + cut)))
        klo, khi = max(0, int(math.ceil(gz - cut))), min(nz - 1, int(math.floor(gz + cut)))
        if ilo > ihi or jlo > jhi or klo > khi:
            continue
        s = alpha[a] * voxel * voxel
        for i in range(ilo, ihi + 1):
            wx[i] = math.exp(-s * (i - gx) ** 2)
        for j in range(jlo, jhi + 1):
            wy[j] = math.exp(-s * (j - gy) ** 2)
        for k in range(klo, khi + 1):
            wz[k] = amplitude[a] * math.exp(-s * (k - gz) ** 2)
        for k in range(klo, khi + 1):
            for j in range(jlo, jhi + 1):
                w = wz[k] * wy[j]
                for i in range(ilo, ihi + 1):
                    block[k, j, i] += np.float32(w * wx[i])
