"""Value checks and checksums of a map computed chunk by chunk (pure functions, no I/O, no Dask).

Each chunk of a map gives a small report (:func:`chunk_report`); the reports,
in chunk order, are combined into the same verdict
:func:`~localsharp.maps.mrc.read_map` gives for the whole map (NaN/Inf and
constant maps refused, same messages) and into one digest of the voxels
(:func:`combine_reports`).  No step holds more than one chunk.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterable

import numpy as np

from ..errors import InputFileError


def chunk_report(values: np.ndarray) -> dict[str, Any]:
    """Summary of one chunk of voxels.

    Parameters
    ----------
    values : numpy.ndarray
        The chunk (any shape); converted to float32 in C order.

    Returns
    -------
    dict
        ``size``, ``n_nonfinite`` (NaN or infinite voxels), ``min`` and
        ``max`` over the finite voxels (``None`` when there are none) and
        ``sha256``, the hex digest of the float32 bytes in C order.
    """
    data = np.ascontiguousarray(values, dtype=np.float32)
    finite = np.isfinite(data)
    n_finite = int(np.count_nonzero(finite))
    low = high = None
    if n_finite:
        kept = data if n_finite == data.size else data[finite]
        low, high = float(kept.min()), float(kept.max())
    return {
        "size": int(data.size),
        "n_nonfinite": int(data.size - n_finite),
        "min": low,
        "max": high,
        "sha256": hashlib.sha256(data.data).hexdigest(),
    }


def combine_reports(path: str | os.PathLike, reports: Iterable[dict[str, Any]]) -> str:
    """Check a whole map from its chunk reports and return the digest of its voxels.

    Parameters
    ----------
    path : str or path-like
        The map's file, named in the error.
    reports : iterable of dict
        :func:`chunk_report` of every chunk, in a fixed chunk order.

    Returns
    -------
    str
        Hex SHA-256 of the chunk digests (as bytes) in the order given: the
        same chunking and order always give the same digest.

    Raises
    ------
    InputFileError
        If the map holds NaN or infinite values, or is constant (the
        messages of :func:`~localsharp.maps.mrc.read_map`).
    """
    digest = hashlib.sha256()
    bad, low, high, count = 0, np.inf, -np.inf, 0
    for report in reports:
        count += 1
        digest.update(bytes.fromhex(report["sha256"]))
        bad += int(report["n_nonfinite"])
        if report["min"] is not None:
            low, high = min(low, report["min"]), max(high, report["max"])
    if count == 0:
        raise ValueError("combine_reports needs at least one chunk report")
    if bad:
        raise InputFileError(path, f"map holds {bad} NaN or infinite values")
    if low == high:
        raise InputFileError(path, f"map is constant (every voxel is {float(low)}); nothing to sharpen")
    return digest.hexdigest()
