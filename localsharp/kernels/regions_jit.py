"""Numba loops behind :mod:`localsharp.kernels.regions` for maps of ``JIT_MIN_VOXELS`` or more.

Imported on first use only: numba's import and first dispatch cost about half a second per
process, more than these loops save on a small map (see :mod:`.regions`).  All functions
release the GIL so several trials can be scored in threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, inline="always")
def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@njit(nogil=True, cache=True, inline="always")
def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit(nogil=True, cache=True)
def label_members(data: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = data.shape
    flat = data.ravel()
    plane = ny * nx
    count = 0
    for i in range(flat.size):
        if flat[i] > threshold:
            count += 1
    # pass 1: provisional ids (1-based, scan order) for voxels above threshold and union-find
    # over those ids only (a few % of the box).  A voxel's earlier face neighbours lie in its own
    # z plane or the previous one, so two planes of provisional ids suffice: no map-sized array.
    parent = np.empty(count + 1, dtype=np.int32)
    members = np.empty(count, dtype=np.int64)
    prev = np.zeros(plane, dtype=np.int32)
    cur = np.zeros(plane, dtype=np.int32)
    k = 0
    for z in range(nz):
        base = z * plane
        for p in range(plane):
            i = base + p
            if flat[i] > threshold:
                k += 1
                cur[p] = k
                parent[k] = k
                members[k - 1] = i
                if p % nx > 0 and cur[p - 1] > 0:
                    _union(parent, k, cur[p - 1])
                if p >= nx and cur[p - nx] > 0:
                    _union(parent, k, cur[p - nx])
                if z > 0 and prev[p] > 0:
                    _union(parent, k, prev[p])
            else:
                cur[p] = 0
        prev, cur = cur, prev
    # pass 2: compact final labels in scan order of each region's first voxel
    final = np.zeros(count + 1, dtype=np.int32)
    member_labels = np.empty(count, dtype=np.int32)
    sizes = np.zeros(count + 1, dtype=np.int64)
    n_labels = 0
    for k in range(1, count + 1):
        root = _find(parent, k)
        if final[root] == 0:
            n_labels += 1
            final[root] = n_labels
        lab = final[root]
        member_labels[k - 1] = lab
        sizes[lab] += 1
    return members, member_labels, sizes[: n_labels + 1].copy()


@njit(nogil=True, cache=True)
def surfaces(shape: tuple[int, int, int], members: np.ndarray, member_labels: np.ndarray, chosen: np.ndarray,
              sizes: np.ndarray, stamp: np.ndarray) -> np.ndarray:
    nz, ny, nx = shape
    n_chosen = chosen.size
    rank = np.full(sizes.size, -1, dtype=np.int64)
    for r in range(n_chosen):
        rank[chosen[r]] = r
    # voxel lists of the chosen regions, grouped by rank (counting sort)
    offsets = np.zeros(n_chosen + 1, dtype=np.int64)
    for r in range(n_chosen):
        offsets[r + 1] = offsets[r] + sizes[chosen[r]]
    fill = offsets[:-1].copy()
    grouped = np.empty(offsets[-1], dtype=np.int64)
    for a in range(members.size):
        r = rank[member_labels[a]]
        if r >= 0:
            grouped[fill[r]] = members[a]
            fill[r] += 1
    result = np.zeros(n_chosen, dtype=np.int64)
    plane = ny * nx
    # flat offsets of the 27 neighbours of a voxel away from the box faces (no wrapping needed)
    deltas = np.empty(27, dtype=np.int64)
    q = 0
    for dz in range(-1, 2):
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                deltas[q] = dz * plane + dy * nx + dx
                q += 1
    for r in range(n_chosen):
        # stamp[j] == r: voxel j is in region r or already counted for it
        for m in range(offsets[r], offsets[r + 1]):
            stamp[grouped[m]] = r
        count = 0
        for m in range(offsets[r], offsets[r + 1]):
            i = grouped[m]
            x = i % nx
            y = (i // nx) % ny
            z = i // plane
            if 0 < x < nx - 1 and 0 < y < ny - 1 and 0 < z < nz - 1:
                for q in range(27):
                    j = i + deltas[q]
                    if stamp[j] != r:
                        stamp[j] = r
                        count += 1
                continue
            for dz in range(-1, 2):
                zz = (z + dz) % nz
                for dy in range(-1, 2):
                    yy = (y + dy) % ny
                    for dx in range(-1, 2):
                        xx = (x + dx) % nx
                        j = (zz * ny + yy) * nx + xx
                        if stamp[j] != r:
                            stamp[j] = r
                            count += 1
        result[r] = count
    return result


@njit(nogil=True, cache=True)
def kth_in_bracket(flat: np.ndarray, k: int, t_lo: float, t_hi: float) -> tuple[bool, float]:
    """k-th largest value if it lies in [t_lo, t_hi]: count above t_hi, sort only the bracket."""
    n_hi = 0
    n_in = 0
    for i in range(flat.size):
        v = flat[i]
        if v > t_hi:
            n_hi += 1
        elif v >= t_lo:
            n_in += 1
    if not (n_hi < k <= n_hi + n_in):
        return False, 0.0
    values = np.empty(n_in, dtype=flat.dtype)
    m = 0
    for i in range(flat.size):
        v = flat[i]
        if t_lo <= v <= t_hi:
            values[m] = v
            m += 1
    values.sort()
    return True, float(values[n_in - (k - n_hi)])


@njit(nogil=True, cache=True)
def kurtosis(data: np.ndarray) -> float:
    """Non-excess kurtosis ``mean((x-mu)**4) / sigma**4`` (population sigma; Gaussian = 3)."""
    flat = data.ravel()
    n = flat.size
    total = 0.0
    for i in range(n):
        total += flat[i]
    mean = total / n
    m2 = 0.0
    m4 = 0.0
    for i in range(n):
        d = flat[i] - mean
        d2 = d * d
        m2 += d2
        m4 += d2 * d2
    m2 /= n
    m4 /= n
    if m2 == 0.0:
        return 0.0
    return m4 / (m2 * m2)


@njit(nogil=True, cache=True)
def kurtosis_and_bracket(flat: np.ndarray, k: int, t_lo: float, t_hi: float) -> tuple[float, bool, int, np.ndarray]:
    """:func:`kurtosis` of ``flat`` and the values bracketing its k-th largest, in two passes over the map.

    The kurtosis is summed in the same order as :func:`kurtosis` (the same value to the
    last bit).  Returns ``(kurtosis, ok, n_hi, values)``: ``ok`` when the k-th largest
    lies in ``[t_lo, t_hi]``; then it is the ``(k - n_hi)``-th largest of ``values``
    (unsorted), ``n_hi`` being the count above ``t_hi``.
    """
    n = flat.size
    total = 0.0
    n_hi = 0
    n_in = 0
    for i in range(n):
        v = flat[i]
        total += v
        if v > t_hi:
            n_hi += 1
        elif v >= t_lo:
            n_in += 1
    mean = total / n
    ok = n_hi < k <= n_hi + n_in
    values = np.empty(n_in if ok else 0, dtype=flat.dtype)
    c = 0
    m2 = 0.0
    m4 = 0.0
    for i in range(n):
        v = flat[i]
        d = v - mean
        d2 = d * d
        m2 += d2
        m4 += d2 * d2
        if ok and t_lo <= v <= t_hi:
            values[c] = v
            c += 1
    m2 /= n
    m4 /= n
    kurt = 0.0 if m2 == 0.0 else m4 / (m2 * m2)
    return kurt, ok, n_hi, values


@njit(nogil=True, cache=True)
def region_measures(data: np.ndarray, threshold: float, needed: float, max_take: int) -> tuple[int, int, int]:
    """Labelling, choice of the largest regions and their surfaces in one call (``regions.region_measures``)."""
    members, member_labels, sizes = label_members(data, threshold)
    n_regions = sizes.size - 1
    if n_regions == 0:
        return 0, 0, 0
    order = np.argsort(-sizes[1:], kind="mergesort") + 1  # stable: ties in label order
    volumes = np.cumsum(sizes[order])
    n_take = np.searchsorted(volumes, needed, side="left") + 1
    n_take = min(n_take, max_take, order.size)
    chosen = order[:n_take].astype(np.int64)
    if n_take < 127:
        stamp8 = np.full(data.size, -1, dtype=np.int8)
        result = surfaces(data.shape, members, member_labels, chosen, sizes, stamp8)
    else:
        stamp32 = np.full(data.size, -1, dtype=np.int32)
        result = surfaces(data.shape, members, member_labels, chosen, sizes, stamp32)
    return n_regions, int(result.sum()), int(volumes[n_take - 1])
