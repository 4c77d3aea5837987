"""Writing an MRC/CCP4 map slab by slab from an array that is never held whole.

:func:`write_map_streamed` copies any ``[z, y, x]`` array that supports
slicing (a zarr array, a numpy array or memory map) into a map file, a few
sections of the *file's* slowest axis at a time, so memory is bounded by the
slab size.  The header is that :func:`~localsharp.maps.mrc.write_map` writes
for the template's geometry; DMIN/DMAX/DMEAN/RMS are accumulated while
streaming.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
from mrcfile.dtypes import HEADER_DTYPE

from .atomic import atomic_path, sync_directory
from .mrc import WRITE_CHUNK, _fill_header
from .source import geometry_of, header_density

#: Default bytes of float32 voxels per slab.
SLAB_BYTES = 64 * 2**20


def _slab_sections(array: Any, section_axis: int, section_bytes: int, slab_bytes: int) -> int:
    """Sections per slab: within ``slab_bytes``, a multiple of the array's chunk along that axis if one fits."""
    fit = max(1, slab_bytes // max(1, section_bytes))
    chunks = getattr(array, "chunks", None)
    if isinstance(chunks, tuple) and len(chunks) == 3 and isinstance(chunks[section_axis], int):
        step = int(chunks[section_axis])
        if step <= fit:
            return (fit // step) * step
    return fit


class _Statistics:
    """DMIN, DMAX, DMEAN, RMS accumulated in float64 (as :func:`~localsharp.maps.mrc.data_statistics`)."""

    def __init__(self, shift: float) -> None:
        self.shift, self.total, self.total_sq, self.n = shift, 0.0, 0.0, 0
        self.low, self.high = np.inf, -np.inf

    def add(self, values: np.ndarray) -> None:
        flat = values.reshape(-1)
        for start in range(0, flat.size, WRITE_CHUNK):
            part = flat[start:start + WRITE_CHUNK].astype(np.float64)
            self.low, self.high = min(self.low, float(part.min())), max(self.high, float(part.max()))
            part -= self.shift
            self.total += float(part.sum())
            self.total_sq += float(np.dot(part, part))
        self.n += flat.size

    def result(self) -> tuple[float, float, float, float]:
        n = max(1, self.n)
        mean = self.total / n
        return self.low, self.high, self.shift + mean, float(np.sqrt(max(0.0, self.total_sq / n - mean * mean)))


def _first_voxels_mean(array: Any, shape: tuple[int, int, int]) -> float:
    """Mean of the first :data:`WRITE_CHUNK` voxels in ``[z, y, x]`` order (the shift data_statistics uses)."""
    plane = shape[1] * shape[2]
    planes = min(shape[0], -(-WRITE_CHUNK // max(1, plane)))
    head = np.ascontiguousarray(array[0:planes], dtype=np.float32).reshape(-1)[:WRITE_CHUNK]
    return float(head.mean(dtype=np.float64)) if head.size else 0.0


def write_map_streamed(path: str | os.PathLike, array: Any, template: Any, *, label: str | None = None,
                       slab_bytes: int = SLAB_BYTES, overwrite: bool = False) -> Path:
    """Write ``array`` as an uncompressed MRC/CCP4 map with ``template``'s header, slab by slab.

    Parameters
    ----------
    path : str or path-like
        Destination (not ``.gz``: use :func:`~localsharp.maps.mrc.write_map`).
    array : array-like
        Voxels indexed ``[z, y, x]`` with the template's shape; anything that
        ``array[z0:z1, y0:y1, x0:x1]`` turns into numbers (zarr, numpy, memmap).
    template : DensityMap or MapSource
        Header geometry: axis order, NSTART, ORIGIN, cell, labels, extended header.
    label : str, optional
        Extra header label, as in :func:`~localsharp.maps.mrc.write_map`.
    slab_bytes : int
        Bound on the float32 bytes read from ``array`` and written at a time
        (at least one section is written at a time).
    overwrite : bool
        Replace an existing file; otherwise an existing path is an error.

    Returns
    -------
    pathlib.Path
        The path written: a temporary file in the same directory, synced to
        disk and renamed into place, so a reader never sees a partial map.
    """
    path = Path(path)
    if path.suffix == ".gz":
        raise ValueError(f"{path}: streamed writing does not compress; use write_map for .gz outputs")
    header_map, shape = header_density(template), geometry_of(template)[1]
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"array shape {tuple(array.shape)} differs from the template's shape {tuple(shape)}")
    mapc, mapr, maps = header_map.axis_order
    to_file = [3 - s for s in (maps, mapr, mapc)]  # [z, y, x] axes giving file (section, row, column)
    file_shape = tuple(shape[a] for a in to_file)
    section_axis = to_file[0]
    step = _slab_sections(array, section_axis, file_shape[1] * file_shape[2] * 4, slab_bytes)
    extended = header_map.header_extras.get("extended_header", b"")
    stats = _Statistics(_first_voxels_mean(array, shape))
    with atomic_path(path, overwrite=overwrite) as tmp:
        data_offset = _create(tmp, file_shape, header_map, label, extended)
        with open(tmp, "r+b") as fh:
            for start in range(0, file_shape[0], step):
                index = [slice(None)] * 3
                index[section_axis] = slice(start, min(start + step, file_shape[0]))
                slab = np.ascontiguousarray(np.transpose(np.asarray(array[tuple(index)], np.float32), to_file))
                fh.seek(data_offset + start * file_shape[1] * file_shape[2] * 4)
                fh.write(slab.data)  # plain writes: no mapped pages of the output in this process's RSS
                stats.add(slab)
                del slab
            _patch_statistics(fh, stats.result())
            fh.flush()
            os.fsync(fh.fileno())
    sync_directory(path.parent)
    return path


def _create(tmp: Path, file_shape: tuple[int, ...], header_map: Any, label: str | None, extended: bytes) -> int:
    """Create the (sparse) map file with its final header but statistics; return the data offset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header_ext = np.frombuffer(extended, dtype=np.uint8) if extended else None
        with mrcfile.new_mmap(tmp, shape=file_shape, mrc_mode=2, overwrite=True,
                              extended_header=header_ext) as mrc:
            _fill_header(mrc, header_map, label)
            if mrc.data.dtype != np.dtype(np.float32):  # mrcfile writes native order, as do we
                raise RuntimeError(f"unexpected data type {mrc.data.dtype} of a new map")
            return HEADER_DTYPE.itemsize + int(mrc.header.nsymbt)


def _patch_statistics(fh: Any, values: tuple[float, float, float, float]) -> None:
    """Set DMIN, DMAX, DMEAN and RMS in the header of the open map file ``fh``."""
    fh.seek(0)
    header = np.frombuffer(fh.read(HEADER_DTYPE.itemsize), dtype=HEADER_DTYPE).copy()
    header["dmin"], header["dmax"], header["dmean"], header["rms"] = values
    fh.seek(0)
    fh.write(header.tobytes())
