"""Coarse molecule occupancy: which boxes can hold molecule at all (pure numpy, no I/O).

The overall pass stores ``molecule_counts``: the number of molecule voxels in each
``BLOCK³`` block of the map.  Summing the counts of every block that a box's
outer region touches gives an upper bound on the molecule voxels in the box,
so a box whose bound is below ``(1 − MAX_BOX_SOLVENT)`` of its volume is
solvent for certain and needs no task (its exact solvent fraction, from the
full mask, would skip it too).  A capsid's hollow interior and the corners of
its bounding box cost nothing.
"""

from __future__ import annotations

import numpy as np

from .boxes import BoxGrid

#: Edge (voxels) of the blocks whose molecule voxels are counted.
BLOCK = 8


def block_counts(mask: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Molecule voxels in each ``block³`` block of ``mask`` (uint16; partial blocks at the far faces).

    >>> block_counts(np.ones((3, 2, 9), bool), 2).tolist()
    [[[4, 4, 4, 4, 2]], [[2, 2, 2, 2, 1]]]
    """
    m = np.asarray(mask, dtype=np.uint16)
    pad = [(0, (-n) % block) for n in m.shape]
    m = np.pad(m, pad)
    nz, ny, nx = (n // block for n in m.shape)
    return m.reshape(nz, block, ny, block, nx, block).sum(axis=(1, 3, 5), dtype=np.uint32).astype(np.uint16)


def upper_molecule_counts(grid: BoxGrid, counts: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Upper bound of the molecule voxels in every box's outer region, shape ``grid.counts`` (int64).

    Uses an integral image of ``counts`` (size of the coarse grid) and the
    per-axis outer spans of the grid: O(number of boxes + coarse voxels).
    """
    integral = np.zeros(tuple(n + 1 for n in counts.shape), dtype=np.int64)
    integral[1:, 1:, 1:] = counts.astype(np.int64).cumsum(0).cumsum(1).cumsum(2)
    lo, hi = [], []
    for span, n in zip(grid.outer_spans(), counts.shape):
        lo.append(np.minimum(span[:, 0] // block, n))
        hi.append(np.minimum(-(-span[:, 1] // block), n))
    z0, y0, x0 = lo[0][:, None, None], lo[1][None, :, None], lo[2][None, None, :]
    z1, y1, x1 = hi[0][:, None, None], hi[1][None, :, None], hi[2][None, None, :]
    return (integral[z1, y1, x1] - integral[z0, y1, x1] - integral[z1, y0, x1] - integral[z1, y1, x0]
            + integral[z0, y0, x1] + integral[z0, y1, x0] + integral[z1, y0, x0] - integral[z0, y0, x0])


def outer_volumes(grid: BoxGrid) -> np.ndarray:
    """Voxels in every box's outer region, shape ``grid.counts`` (int64)."""
    lz, ly, lx = (s[:, 1] - s[:, 0] for s in grid.outer_spans())
    return lz[:, None, None] * ly[None, :, None] * lx[None, None, :]


def possibly_molecule(grid: BoxGrid, counts: np.ndarray, max_solvent: float, block: int = BLOCK) -> np.ndarray:
    """Flat boolean array (box index order): True where a box may hold more than ``1 − max_solvent`` molecule.

    False only where the bound proves the box's solvent fraction exceeds
    ``max_solvent`` (with a margin of 1e-9 for rounding).
    """
    bound = upper_molecule_counts(grid, counts, block)
    volume = outer_volumes(grid)
    return (bound >= (1.0 - max_solvent - 1e-9) * volume).ravel()
