"""MRC/CCP4 header parsing and validation (no voxel is read here).

The header is validated *before* any voxel is read: a header whose sizes
disagree with the file length is refused, so a corrupt or lying header never
makes us allocate memory for data that is not there.  :func:`density_fields`
turns a parsed header into the geometry fields of a
:class:`~localsharp.maps.density.DensityMap`, shared by
:func:`~localsharp.maps.mrc.read_map` and :class:`~localsharp.maps.source.MapSource`.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from ..errors import InputFileError

#: MRC modes we accept and the numpy type of their voxels.
SUPPORTED_MODES = {0: np.int8, 1: np.int16, 2: np.float32, 6: np.uint16, 12: np.float16}
#: Refuse headers announcing more voxels than this (2**34 = 64 GB of float32).
MAX_VOXELS = 2**34
HEADER_BYTES = 1024


def check_regular_file(path: Path) -> None:
    """Raise :class:`InputFileError` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise InputFileError(path, "no such file")
    if not path.is_file():
        raise InputFileError(path, "not a regular file")


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def read_raw_header(path: Path, gz: bool) -> bytes:
    """The first 1024 bytes of the (decompressed) file."""
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(HEADER_BYTES)
    except (OSError, EOFError) as exc:
        raise InputFileError(path, f"cannot read the file ({exc})") from None
    if len(raw) < HEADER_BYTES:
        raise InputFileError(
            path, f"not an MRC/CCP4 map: {len(raw)} bytes, shorter than the 1024-byte header"
        )
    return raw


def parse_header(path: Path, raw: bytes) -> np.recarray:
    """Interpret the 1024 header bytes, choosing the byte order that makes sense."""
    for order in ("<", ">"):
        header = np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order)).view(np.recarray)[0]
        dims = (int(header.nx), int(header.ny), int(header.nz))
        axes = sorted((int(header.mapc), int(header.mapr), int(header.maps)))
        if all(0 < n < 2**24 for n in dims) and axes == [1, 2, 3]:
            return header
    raise InputFileError(
        path,
        "not an MRC/CCP4 map: header has no valid sizes (NX, NY, NZ) and axis order "
        "(MAPC, MAPR, MAPS) in either byte order",
    )


def expected_bytes(path: Path, header: np.recarray) -> int:
    """Bytes the header implies: header, extended header and voxels (checks mode and limits)."""
    mode = int(header.mode)
    if mode not in SUPPORTED_MODES:
        raise InputFileError(
            path,
            f"unsupported MRC data mode {mode}; supported modes are 0 (int8), 1 (int16), "
            "2 (float32), 6 (uint16) and 12 (float16)",
        )
    n_voxels = int(header.nx) * int(header.ny) * int(header.nz)
    if n_voxels > MAX_VOXELS:
        raise InputFileError(path, f"header announces {n_voxels} voxels, more than the limit {MAX_VOXELS}")
    nsymbt = int(header.nsymbt)
    if nsymbt < 0:
        raise InputFileError(path, f"negative extended-header size NSYMBT={nsymbt}")
    itemsize = np.dtype(SUPPORTED_MODES[mode]).itemsize
    return HEADER_BYTES + nsymbt + n_voxels * itemsize


def _actual_bytes(path: Path, gz: bool) -> int:
    if not gz:
        return path.stat().st_size
    # gzip's trailer stores the uncompressed size modulo 2**32 (ISIZE).
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return int.from_bytes(fh.read(4), "little")


def check_size(path: Path, header: np.recarray, gz: bool) -> None:
    """Refuse a file whose length disagrees with its header."""
    expected = expected_bytes(path, header)
    actual = _actual_bytes(path, gz)
    if gz:
        expected %= 2**32
    if actual != expected:
        dims = f"{int(header.nx)}x{int(header.ny)}x{int(header.nz)}"
        described = f"header (NX x NY x NZ = {dims}, mode {int(header.mode)}, NSYMBT {int(header.nsymbt)})"
        if gz:  # the size comes from the gzip trailer: a truncated .gz ends in arbitrary bytes there
            raise InputFileError(path, f"gzip file does not hold the map its {described} describes: it says "
                                       f"{actual} bytes uncompressed, the header implies {expected}; the .gz file "
                                       "is truncated or damaged")
        what = "truncated" if actual < expected else "longer than its header says"
        raise InputFileError(path, f"file is {what}: {described} implies {expected} bytes of map, found {actual}")


def file_axes(header: np.recarray) -> tuple[int, int, int]:
    """Spatial axis (1=x, 2=y, 3=z) of the file array's axes (section, row, column)."""
    return (int(header.maps), int(header.mapr), int(header.mapc))


def zyx_permutation(header: np.recarray) -> list[int]:
    """Axes of the file array ``[section, row, column]`` that hold z, y and x."""
    axes = file_axes(header)
    return [axes.index(3), axes.index(2), axes.index(1)]


def voxel_dtype(header: np.recarray) -> np.dtype:
    """Numpy type of the stored voxels, in the byte order :func:`parse_header` found."""
    byte_order = header.dtype.fields["mode"][0].byteorder
    return np.dtype(SUPPORTED_MODES[int(header.mode)]).newbyteorder(byte_order)


def voxel_size(path: Path, header: np.recarray) -> tuple[float, float, float]:
    """Voxel size (Å, x, y, z) = cell lengths over the cell grid."""
    cell = (float(header.cella.x), float(header.cella.y), float(header.cella.z))
    grid = (int(header.mx), int(header.my), int(header.mz))
    if any(g <= 0 for g in grid) or any(not np.isfinite(c) or c <= 0 for c in cell):
        raise InputFileError(
            path,
            f"cannot derive the voxel size: cell lengths {cell} Å and cell grid (MX, MY, MZ) = {grid} "
            "must all be positive",
        )
    return tuple(c / g for c, g in zip(cell, grid))  # type: ignore[return-value]


def header_labels(header: np.recarray) -> list[bytes]:
    """The header's text labels (``NLABL`` of them, at most 10)."""
    count = max(0, min(int(header.nlabl), 10))
    return [bytes(label) for label in header.label[:count]]


def read_extended_header(path: Path, header: np.recarray, gz: bool) -> bytes:
    """The ``NSYMBT`` bytes following the main header."""
    nsymbt = int(header.nsymbt)
    if nsymbt <= 0:
        return b""
    opener = gzip.open if gz else open
    with opener(path, "rb") as fh:
        fh.seek(HEADER_BYTES)
        return fh.read(nsymbt)


def density_fields(path: Path, header: np.recarray, labels: list[bytes], extended: bytes) -> dict[str, Any]:
    """Keyword arguments of :class:`DensityMap` (all but ``data``) given by a header.

    Per-axis values are mapped from the file's column/row/section order to
    x, y, z; ``header_extras`` keeps what :func:`~localsharp.maps.mrc.write_map`
    needs to reproduce the header exactly.
    """
    voxel = voxel_size(path, header)
    starts_crs = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    axis_order = (int(header.mapc), int(header.mapr), int(header.maps))
    nstart = [0, 0, 0]
    for crs_index, spatial in enumerate(axis_order):
        nstart[spatial - 1] = starts_crs[crs_index]
    cell_grid = (int(header.mx), int(header.my), int(header.mz))
    return {
        "voxel_size": voxel,
        "origin": (float(header.origin.x), float(header.origin.y), float(header.origin.z)),
        "nstart": tuple(nstart),
        "cell_grid": cell_grid,
        "cell_angles": (float(header.cellb.alpha), float(header.cellb.beta), float(header.cellb.gamma)),
        "axis_order": axis_order,
        "space_group": int(header.ispg),
        "header_extras": {
            "labels": list(labels),
            "exttyp": bytes(header.exttyp),
            "nversion": int(header.nversion),
            "extended_header": bytes(extended),
            "cella": (float(header.cella.x), float(header.cella.y), float(header.cella.z)),
            "voxel_size": voxel,
            "cell_grid": cell_grid,
        },
    }
