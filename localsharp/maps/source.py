"""A map on disk, read by region: :class:`MapSource`.

Opening a :class:`MapSource` reads and validates the header only; voxels are
read on demand, one region at a time (:meth:`MapSource.read`), through a
memory map that each process opens once.  The object holds the path and the
header fields, never voxels, so it pickles cheaply to Dask workers.

Supported inputs: MRC/CCP4 files (any axis order, the modes
:func:`~localsharp.maps.mrc.read_map` accepts), zarr v3 arrays and OME-Zarr
images (:mod:`.omezarr`).  A gzipped MRC file is accepted too, but cannot be
memory-mapped: its first :meth:`~MapSource.read` in a process decompresses
the whole map into memory (fine for small maps; decompress big ones first).
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError
from . import mrc_header as mh
from .density import DensityMap

Int3 = tuple[int, int, int]
Vec3 = tuple[float, float, float]
Bounds = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class MapSource:
    """Header and location of a map; voxels are read by region.

    Build with :meth:`open`.  Attributes other than those documented below
    describe the file layout and are private to this module.

    Attributes
    ----------
    path : str
        The file (MRC) or directory (zarr, OME-Zarr) opened.
    kind : str
        ``"mrc"``, ``"zarr"`` or ``"ome-zarr"``.
    shape : tuple of int
        Map shape ``(nz, ny, nx)``, the shape of ``DensityMap.data``.
    geometry : dict
        The keyword arguments (all but ``data``) of the :class:`DensityMap`
        that :func:`~localsharp.maps.mrc.read_map` would return.
    """

    path: str
    kind: str
    shape: Int3
    geometry: dict[str, Any] = field(hash=False, repr=False)
    offset: int = 0
    dtype: str = "<f4"
    file_shape: Int3 = (0, 0, 0)
    perm: Int3 = (0, 1, 2)
    gz: bool = False
    array_path: str = ""

    # ------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike) -> "MapSource":
        """Read and check the header of an MRC/CCP4 file, zarr v3 array or OME-Zarr image.

        Raises
        ------
        InputFileError
            As :func:`~localsharp.maps.mrc.read_map` does for a bad header or
            size (no voxel is read, so NaN or constant maps are not detected
            here: see :mod:`.checks`).
        """
        path = Path(path)
        if path.is_dir():
            from .omezarr import open_zarr_source  # zarr is imported only for zarr inputs

            return open_zarr_source(path)
        return _open_mrc(path)

    # ---------------------------------------------------------- properties
    @property
    def voxel_size(self) -> Vec3:
        """Voxel edge lengths (Å, x, y, z)."""
        return self.geometry["voxel_size"]

    @property
    def voxel_size_zyx(self) -> Vec3:
        """Voxel edge lengths in array-axis order ``(z, y, x)``."""
        return tuple(reversed(self.voxel_size))  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        """Size of the whole map as float32."""
        return int(np.prod(self.shape, dtype=np.int64)) * 4

    # ------------------------------------------------------------- reading
    def read(self, bounds: Bounds | None = None) -> np.ndarray:
        """Voxels of a region as a C-contiguous float32 array indexed ``[z, y, x]``.

        Parameters
        ----------
        bounds : ((z0, z1), (y0, y1), (x0, x1)), optional
            Half-open index ranges of the region; default the whole map.

        Returns
        -------
        numpy.ndarray
            Equal bit for bit to ``read_map(path).data[z0:z1, y0:y1, x0:x1]``;
            a new, writable array owned by the caller.
        """
        slices = self._slices(bounds)
        if self.kind == "mrc":
            mapping, raw = _file_voxels(self)
            file_slices = [slice(None)] * 3
            for zyx_axis, file_axis in enumerate(self.perm):
                file_slices[file_axis] = slices[zyx_axis]
            # always a copy: the caller owns a writable array, never a view of the mapped file
            block = np.array(np.transpose(raw[tuple(file_slices)], self.perm), dtype=np.float32, order="C")
            if mapping is not None and block.size:
                _release(mapping, self, file_slices)
            return block
        block = np.asarray(_zarr_array(self.array_path)[slices])
        return np.require(block.astype(np.float32, copy=False), requirements=["C", "W", "O"])

    def _slices(self, bounds: Bounds | None) -> tuple[slice, slice, slice]:
        if bounds is None:
            return (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2]))
        if len(bounds) != 3:
            raise ValueError(f"bounds need three (start, stop) pairs, got {bounds!r}")
        slices = []
        for (start, stop), n in zip(bounds, self.shape):
            start, stop = int(start), int(stop)
            if not 0 <= start <= stop <= n:
                raise ValueError(f"bounds {bounds!r} leave the map of shape {self.shape}")
            slices.append(slice(start, stop))
        return tuple(slices)  # type: ignore[return-value]

    def like(self, data: np.ndarray) -> DensityMap:
        """A :class:`DensityMap` of ``data`` (shape :attr:`shape`) with this map's header geometry."""
        data = np.asarray(data)
        if data.shape != self.shape:
            raise ValueError(f"data shape {data.shape} differs from map shape {self.shape}")
        return DensityMap(data=data, **copy.deepcopy(self.geometry))

    def density(self) -> DensityMap:
        """The whole map, value-checked (NaN/Inf, constant): for maps that fit in memory."""
        if self.kind == "mrc":
            from .mrc import read_map

            return read_map(self.path)
        from .checks import chunk_report, combine_reports

        data = self.read()
        combine_reports(self.path, [chunk_report(data)])
        return self.like(data)

    def identity(self) -> dict[str, Any]:
        """What identifies the input: size, modification time and SHA-256 of its header bytes.

        For an MRC file the header bytes are the 1024-byte header and the
        extended header; for a zarr array or OME-Zarr image they are its
        ``zarr.json`` metadata files (size and time are then their total and
        latest; chunk files are not looked at).
        """
        if self.kind == "mrc":
            stat = os.stat(self.path)
            digest = hashlib.sha256(_mrc_header_bytes(self))
            return {"path": self.path, "kind": self.kind, "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns, "header_sha256": digest.hexdigest()}
        from .omezarr import metadata_identity

        return {"path": self.path, "kind": self.kind, **metadata_identity(Path(self.path))}


def geometry_of(template: Any) -> tuple[dict[str, Any], Int3]:
    """Header geometry (:attr:`MapSource.geometry`'s form, a copy) and ``(z, y, x)`` shape of a map.

    ``template`` is a :class:`MapSource` or a :class:`DensityMap`.
    """
    if isinstance(template, MapSource):
        return copy.deepcopy(template.geometry), template.shape
    if isinstance(template, DensityMap):
        names = ("voxel_size", "origin", "nstart", "cell_grid", "cell_angles", "axis_order", "space_group",
                 "header_extras")
        return {name: copy.deepcopy(getattr(template, name)) for name in names}, template.shape
    raise TypeError(f"expected a MapSource or a DensityMap, got {type(template).__name__}")


def header_density(template: Any) -> DensityMap:
    """A one-voxel :class:`DensityMap` carrying ``template``'s header geometry (for headers and positions)."""
    geometry, _ = geometry_of(template)
    return DensityMap(data=np.zeros((1, 1, 1), np.float32), **geometry)


# ------------------------------------------------------------------ MRC files
def _open_mrc(path: Path) -> MapSource:
    mh.check_regular_file(path)
    gz = mh.is_gzip(path)
    header = mh.parse_header(path, mh.read_raw_header(path, gz))
    mh.check_size(path, header, gz)
    fields = mh.density_fields(path, header, mh.header_labels(header), mh.read_extended_header(path, header, gz))
    file_shape = (int(header.nz), int(header.ny), int(header.nx))
    perm = tuple(mh.zyx_permutation(header))
    return MapSource(
        path=str(path), kind="mrc", shape=tuple(file_shape[a] for a in perm),  # type: ignore[arg-type]
        geometry=fields, offset=mh.HEADER_BYTES + int(header.nsymbt), dtype=mh.voxel_dtype(header).str,
        file_shape=file_shape, perm=perm, gz=gz,  # type: ignore[arg-type]
    )


def _mrc_header_bytes(source: MapSource) -> bytes:
    opener = gzip.open if source.gz else open
    with opener(source.path, "rb") as fh:
        return fh.read(source.offset)


def _file_voxels(source: MapSource) -> tuple[mmap.mmap | None, np.ndarray]:
    """The file's voxels ``[section, row, column]`` and their mapping (``None`` for a decompressed copy).

    Both are cached per process; the key holds inode and mtime, so a file
    replaced since (as our writers replace files) is mapped afresh.
    """
    try:
        stat = os.stat(source.path)
    except OSError as exc:
        raise InputFileError(source.path, f"cannot read the file ({exc.strerror})") from None
    key = (source.path, stat.st_ino, stat.st_mtime_ns, stat.st_size, source.offset, source.dtype,
           source.file_shape)
    if source.gz:
        return None, _decompressed(*key)
    return _memory_map(*key)


@functools.lru_cache(maxsize=16)
def _memory_map(path: str, _ino: int, _mtime: int, size: int, offset: int, dtype: str,
                shape: Int3) -> tuple[mmap.mmap, np.ndarray]:
    count = int(np.prod(shape, dtype=np.int64))
    expected = offset + count * np.dtype(dtype).itemsize
    if size != expected:
        raise InputFileError(path, f"file changed since it was opened: {size} bytes, expected {expected}")
    with open(path, "rb") as fh:
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    voxels = np.frombuffer(mapping, dtype=np.dtype(dtype), count=count, offset=offset).reshape(shape)
    return mapping, voxels


def _release(mapping: mmap.mmap, source: MapSource, file_slices: list[slice]) -> None:
    """Drop the pages of the sections just read from this process's resident memory.

    Pages of a mapped file count in the process's RSS (which Dask's memory
    manager watches) until the system reclaims them; ``MADV_DONTNEED`` on a
    read-only file mapping unmaps them at once (the data stay in the page
    cache; a later read maps them again).
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:
        return
    _, rows, columns = source.file_shape
    itemsize = np.dtype(source.dtype).itemsize
    sections = file_slices[0]
    start = source.offset + sections.start * rows * columns * itemsize
    stop = source.offset + sections.stop * rows * columns * itemsize
    start -= start % mmap.PAGESIZE
    try:
        mapping.madvise(advice, start, min(stop, len(mapping)) - start)
    except (OSError, ValueError):
        pass


@functools.lru_cache(maxsize=2)
def _decompressed(path: str, _ino: int, _mtime: int, _size: int, offset: int, dtype: str,
                  shape: Int3) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    try:
        with gzip.open(path, "rb") as fh:
            fh.seek(offset)
            data = np.frombuffer(fh.read(count * np.dtype(dtype).itemsize), dtype=np.dtype(dtype))
    except (OSError, EOFError) as exc:
        raise InputFileError(path, f"cannot read map data ({exc})") from None
    if data.size != count:
        raise InputFileError(path, "file is truncated: fewer voxels than its header says")
    return data.reshape(shape)


# ----------------------------------------------------------------- zarr arrays
@functools.lru_cache(maxsize=16)
def _zarr_array(array_path: str) -> Any:
    import zarr

    return zarr.open_array(array_path, mode="r")
