"""Reading and writing MRC/CCP4 maps (the only module that knows the file's axis order).

The header is parsed and validated by :mod:`.mrc_header` *before* any voxel
is read: a header whose sizes disagree with the file length is refused, so a
corrupt or lying header never makes us allocate memory for data that is not
there.  Region reads without loading the map: :mod:`.source`.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import mrcfile
import numpy as np

from ..errors import InputFileError
from .atomic import atomic_path
from .density import DensityMap
from .mrc_header import (  # noqa: F401  (re-exported: the header API lived here first)
    HEADER_BYTES as _HEADER_BYTES,
    MAX_VOXELS,
    SUPPORTED_MODES,
    check_regular_file,
    check_size as _check_size,
    density_fields,
    is_gzip as _is_gzip,
    parse_header as _parse_header,
    read_raw_header as _read_raw_header,
    voxel_dtype,
    zyx_permutation,
)


#: Voxels checked at a time by :func:`_check_values` (no map-sized boolean temporary).
CHECK_CHUNK = 1 << 24


def _check_values(path: Path, data: np.ndarray) -> None:
    flat = data.reshape(-1)
    bad, low, high = 0, np.inf, -np.inf
    for start in range(0, flat.size, CHECK_CHUNK):
        part = flat[start:start + CHECK_CHUNK]
        finite = np.isfinite(part)
        n_finite = int(np.count_nonzero(finite))
        bad += part.size - n_finite
        if n_finite:
            values = part if n_finite == part.size else part[finite]
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    if bad:
        raise InputFileError(path, f"map holds {bad} NaN or infinite values")
    if low == high:
        raise InputFileError(path, f"map is constant (every voxel is {float(flat[0])}); nothing to sharpen")


#: Uncompressed maps at least this big are memory-mapped instead of read (see :func:`read_map`).
MMAP_MIN_BYTES = 256 * 2**20


def _mapped_voxels(path: Path, header: np.recarray) -> np.ndarray:
    """The voxels of an uncompressed map as a read-only memory map, in file order ``[section, row, column]``.

    The header has been validated (:func:`_check_size`), so the file holds exactly these bytes.
    """
    shape = (int(header.nz), int(header.ny), int(header.nx))
    return np.memmap(path, dtype=voxel_dtype(header), mode="r", offset=_HEADER_BYTES + int(header.nsymbt),
                     shape=shape)


def read_map(path: str | os.PathLike, *, mmap: bool | None = None) -> DensityMap:
    """Read an MRC/CCP4 map (optionally gzipped) into a :class:`DensityMap`.

    Parameters
    ----------
    path : str or path-like
        ``.mrc``, ``.map``, ``.ccp4``, optionally ``.gz``-compressed.
    mmap : bool, optional
        Memory-map the voxels of an uncompressed file instead of reading them.
        Default: for files of :data:`MMAP_MIN_BYTES` or more.  A float32 map in
        x, y, z axis order then costs no memory of its own: its pages are
        read from the file when used and the system may drop them again (a
        1000³ map is 4 GB).  The data are read-only either way.  Other modes
        and axis orders are converted into memory from the map, without a
        second raw copy.  A mapped file must not be truncated or rewritten in
        place by another program while the map is in use (replacing it by a
        new file, as every localsharp writer does, is safe).

    Returns
    -------
    DensityMap
        Data transposed to ``[z, y, x]`` and converted to float32; the header
        geometry (voxel size, ORIGIN, NSTART, cell, axis order, space group,
        labels) is kept so that :func:`write_map` reproduces it.

    Raises
    ------
    InputFileError
        If the file is missing, not an MRC map, truncated, of an unsupported
        mode, or holds NaN/Inf or constant values.
    """
    path = Path(path)
    check_regular_file(path)
    gz = _is_gzip(path)
    header = _parse_header(path, _read_raw_header(path, gz))
    _check_size(path, header, gz)
    fields = density_fields(path, header, [], b"")  # validates the voxel size before any voxel is read
    if mmap is None:
        mmap = not gz and path.stat().st_size >= MMAP_MIN_BYTES
    mapped = bool(mmap) and not gz
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with mrcfile.open(path, mode="r", permissive=True, header_only=mapped) as mrc:
                raw = _mapped_voxels(path, header) if mapped else np.asarray(mrc.data)
                extended = bytes(np.asarray(mrc.extended_header).tobytes())
                labels = [bytes(lbl) for lbl in mrc.header.label[: int(mrc.header.nlabl)]]
        except (OSError, ValueError, EOFError) as exc:
            raise InputFileError(path, f"cannot read map data ({exc})") from None
    if raw is None or raw.ndim not in (2, 3):
        raise InputFileError(path, "file holds no 3-D map data")
    if raw.ndim == 2:
        raw = raw[np.newaxis]
    data = np.ascontiguousarray(np.transpose(raw, zyx_permutation(header)), dtype=np.float32)
    if not mapped:
        data.flags.writeable = False  # as for a mapped file: the input is never modified
    _check_values(path, data)
    fields["header_extras"].update(labels=labels, extended_header=extended)
    return DensityMap(data=data, **fields)


def _cell_lengths_for_header(density: DensityMap) -> tuple[float, float, float]:
    """Cell lengths to write: the original float32 values when geometry is unchanged."""
    extras = density.header_extras
    if extras.get("voxel_size") == density.voxel_size and extras.get("cell_grid") == density.cell_grid:
        return extras["cella"]
    return density.cell_lengths


def _fill_header(mrc: mrcfile.mrcfile.MrcFile, density: DensityMap, label: str | None) -> None:
    header = mrc.header
    mapc, mapr, maps = density.axis_order
    header.mapc, header.mapr, header.maps = mapc, mapr, maps
    header.nxstart = density.nstart[mapc - 1]
    header.nystart = density.nstart[mapr - 1]
    header.nzstart = density.nstart[maps - 1]
    header.mx, header.my, header.mz = density.cell_grid
    header.cella = _cell_lengths_for_header(density)
    header.cellb = density.cell_angles
    header.origin = density.origin
    header.ispg = density.space_group
    extras = density.header_extras
    if "exttyp" in extras:
        header.exttyp = extras["exttyp"]
    if "nversion" in extras:
        header.nversion = extras["nversion"]
    labels = list(extras.get("labels", []))
    if label:
        labels = labels[:9] + [label.encode("ascii", "replace")[:80]]
    header.label[:] = b""
    for i, text in enumerate(labels[:10]):
        header.label[i] = text
    header.nlabl = min(len(labels), 10)


def _file_layout(density: DensityMap) -> np.ndarray:
    """A view of the voxels in the file layout ``[section, row, column]`` given by ``density.axis_order``."""
    mapc, mapr, maps = density.axis_order
    return np.transpose(density.data, [3 - s for s in (maps, mapr, mapc)])


def file_array(density: DensityMap) -> np.ndarray:
    """Voxel array in the file layout given by ``density.axis_order`` (C-contiguous)."""
    return np.ascontiguousarray(_file_layout(density))


def write_map(
    path: str | os.PathLike, density: DensityMap, *, overwrite: bool = False, label: str | None = None
) -> Path:
    """Write a map atomically, preserving its header geometry exactly.

    The map is written to a temporary file in the destination directory and
    renamed into place, so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or path-like
        Destination (``.gz`` suffix → gzip-compressed).
    density : DensityMap
        Map to write; data are stored as float32 (mode 2) in the map's own
        axis order.
    overwrite : bool
        Replace an existing file; otherwise an existing path is an error.
    label : str, optional
        Extra header label recording what produced the file.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    compression = "gzip" if path.suffix == ".gz" else None
    extended = density.header_extras.get("extended_header", b"")
    with atomic_path(path, overwrite=overwrite) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if compression or density.data.nbytes < WRITE_MAPPED_MIN:
                with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
                    mrc.set_data(file_array(density))  # also sets the header's data statistics
                    if extended:
                        mrc.set_extended_header(np.frombuffer(extended, dtype=np.uint8))
                    _fill_header(mrc, density, label)
            else:
                _write_mapped(tmp, density, label, extended)
    return path


def write_map_like(path: str | os.PathLike, density: DensityMap, written: str | os.PathLike, *,
                   overwrite: bool = False, label: str | None = None) -> Path:
    """Write ``density`` by copying ``written``, a file :func:`write_map` made of the same voxels.

    Only the header geometry is rewritten (e.g. the origin-shifted copy of a
    map): the kernel copies the data block, which at 1000³ saves rewriting
    4 GB from memory and recomputing its statistics.  The file is byte for
    byte what :func:`write_map` would write.  Falls back to :func:`write_map`
    for compressed paths.  Atomic like :func:`write_map`.

    Parameters
    ----------
    path : str or path-like
        Destination.
    density : DensityMap
        The map to describe; its voxels (shape, axis order, values) must be
        those stored in ``written``; only its header fields may differ.
    written : str or path-like
        An uncompressed map written by :func:`write_map` from the same voxels.
    overwrite, label
        As in :func:`write_map`.
    """
    path = Path(path)
    if path.suffix == ".gz" or _is_gzip(Path(written)):
        return write_map(path, density, overwrite=overwrite, label=label)
    with atomic_path(path, overwrite=overwrite) as tmp:
        shutil.copyfile(written, tmp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.mmap(tmp, mode="r+") as mrc:  # the data block stays untouched on disk
                stored = (int(mrc.header.nz), int(mrc.header.ny), int(mrc.header.nx))
                if stored != _file_layout(density).shape or int(mrc.header.mode) != 2:
                    raise ValueError(f"{written} does not hold this map's voxels (shape or mode differs)")
                _fill_header(mrc, density, label)
    return path


#: Voxels copied into a memory-mapped output at a time by :func:`_write_mapped`.
WRITE_CHUNK = 1 << 22
#: Plain maps of at least this many bytes are written by :func:`_write_mapped` (smaller ones by
#: mrcfile, whose copy costs little and which is ~20 ms faster on a 4 MB map).
WRITE_MAPPED_MIN = 64 * 2**20


def _write_mapped(tmp: Path, density: DensityMap, label: str | None, extended: bytes) -> None:
    """Write an uncompressed map through a memory map, a few sections at a time.

    No copy of the map is made (``mrcfile``'s ``set_data`` copies it and its
    statistics make map-sized temporaries); DMIN/DMAX/DMEAN/RMS are
    accumulated chunk by chunk (:func:`data_statistics`).
    """
    layout = _file_layout(density)
    header_ext = np.frombuffer(extended, dtype=np.uint8) if extended else None
    with mrcfile.new_mmap(tmp, shape=layout.shape, mrc_mode=2, overwrite=True,
                          extended_header=header_ext) as mrc:
        step = max(1, WRITE_CHUNK // max(1, layout.shape[1] * layout.shape[2]))
        for start in range(0, layout.shape[0], step):
            mrc.data[start:start + step] = layout[start:start + step]
        dmin, dmax, dmean, rms = data_statistics(density.data)
        mrc.header.dmin, mrc.header.dmax = dmin, dmax
        mrc.header.dmean, mrc.header.rms = dmean, rms
        _fill_header(mrc, density, label)


def data_statistics(data: np.ndarray) -> tuple[float, float, float, float]:
    """``(min, max, mean, rms)`` of a map, rms about the mean (MRC's RMS), in float64 chunks.

    Sums are taken about the first chunk's mean, so a large offset does not
    cost precision; no map-sized temporary is made.
    """
    flat = data.reshape(-1)
    shift = float(flat[:WRITE_CHUNK].mean(dtype=np.float64)) if flat.size else 0.0
    total = total_sq = 0.0
    low, high = np.inf, -np.inf
    for start in range(0, flat.size, WRITE_CHUNK):
        part = flat[start:start + WRITE_CHUNK].astype(np.float64)
        low, high = min(low, float(part.min())), max(high, float(part.max()))
        part -= shift
        total += float(part.sum())
        total_sq += float(np.dot(part, part))
    n = max(1, flat.size)
    mean = total / n
    return low, high, shift + mean, float(np.sqrt(max(0.0, total_sq / n - mean * mean)))
