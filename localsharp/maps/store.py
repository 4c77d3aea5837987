"""The on-disk store of a local-sharpening run (zarr v3 arrays + sealed JSON records).

Layout of ``<store>/``::

    overall/   zarr array: the overall-sharpened map M0 (float32, z, y, x)
    molecule/  zarr array: 1 where the local variance says molecule (uint8), for box solvent fractions
    molecule_counts/  zarr array: molecule voxels per 8³ block (uint16), to skip solvent boxes
    run.json   what the run is (input identity, options, geometry); resume refuses a different run
    records/   small sealed JSON records written atomically (temporary file, fsync, rename):
               overall.json (the overall sharpening), input.json (the input's checksum),
               boxes/bB-NNNNNNN.json (the outcomes of search task NNNNNNN's boxes with
               ``--task-block B``, written by that task), tiles/tT-NNNNNNN.done (output tile
               NNNNNNN of ``--tile-chunks T`` is complete), mates/bB-NNNNNNN.json (a symmetric run:
               the outcomes the mate boxes of block NNNNNNN took from searched boxes, written by a
               task of the mate pass)

Every record carries the SHA-256 of its content and every array chunk a CRC32C
(:mod:`.checksums`), so a record or chunk damaged on disk is known as such when it is
read; a resumed run checks them all first (:mod:`localsharp.engine.local.resume`).  The
store is made whole under a temporary name and renamed into place, so a store that
exists has its ``run.json``.

Arrays are chunked on the output chunk grid and every chunk has exactly one
writer, so no locks are needed between tasks, and a rerun of a task is idempotent.
A task's record appears only once its work is complete, so an interrupted run (even
one whose client or workers were killed) resumes with what is on disk.
No box's voxels are stored: the render tasks re-render each box from the
overall map and its recorded outcome, and write the blended map into an
OME-Zarr image of its own (by default ``output.ome.zarr`` inside the store).
One run at a time uses a store: the run holds ``<store>.lock`` (:mod:`.lock`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from . import checksums
from ..errors import OutputError

RUN_FILE = "run.json"
RECORDS = "records"
#: The store's layout version, in run.json: a store of another version is refused (``--overwrite``).
STORE_FORMAT = 2
#: Where a run's record files live, and how they are named (B = ``--task-block``, T = ``--tile-chunks``).
BOXES, TILES, MATES = "boxes", "tiles", "mates"


class RunStore:
    """A local-sharpening store at ``path`` (see the module notes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._arrays: dict[tuple[str, str], zarr.Array] = {}  # opened once per RunStore object

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: str | os.PathLike, run: dict[str, Any], shape: tuple[int, int, int],
               chunks: tuple[int, int, int], *, overwrite: bool = False) -> "RunStore":
        """Make a new store (refusing an existing one unless ``overwrite``).

        The store is built under a temporary name beside ``path`` and renamed into place once
        whole, so an interrupted creation leaves nothing at ``path``.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: a run store already exists; resume it with --resume, "
                              "or replace it with --overwrite")
        tmp = path.with_name(f".{path.name}.new-{secrets.token_hex(4)}")
        try:
            group = zarr.open_group(str(tmp), mode="w")
            for name, dtype, fill in (("overall", "float32", 0.0), ("molecule", "uint8", 0)):
                checksums.create_array(group, name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill)
            for directory in (tmp / RECORDS, tmp / RECORDS / BOXES, tmp / RECORDS / TILES):
                directory.mkdir()
            _write_text(tmp / RUN_FILE, checksums.seal({"store_format": STORE_FORMAT, **run}))
            if path.exists():
                shutil.rmtree(path)
            os.rename(tmp, path)
            _fsync_directory(path.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunStore":
        """Open an existing store (its run is :meth:`run`; :mod:`~localsharp.engine.local.resume` compares it)."""
        return cls(path)

    def run(self) -> dict[str, Any]:
        """The run the store was made for (run.json, without the format key).

        Raises OutputError when run.json is missing or damaged, or the store has another format:
        a store that cannot say which run it holds cannot be resumed.
        """
        path = self.path / RUN_FILE
        try:
            text = path.read_text()
        except OSError as exc:
            raise OutputError(f"{self.path}: not a localsharp run store ({RUN_FILE}: {exc.strerror}); "
                              "use --overwrite to start afresh") from None
        try:
            recorded = checksums.unseal(text)
        except checksums.DamagedRecord as exc:
            if '"store_format"' not in text and text.lstrip().startswith("{") and _plain_json(text):
                raise OutputError(f"{self.path}: the run store was made by an older localsharp; "
                                  "use --overwrite to start afresh") from None
            raise OutputError(f"{path}: damaged ({exc}): the store cannot say which run it holds; "
                              "use --overwrite to start afresh") from None
        if recorded.get("store_format") != STORE_FORMAT:
            raise OutputError(f"{self.path}: the run store has format {recorded.get('store_format')} "
                              f"(this localsharp uses {STORE_FORMAT}); use --overwrite to start afresh")
        recorded.pop("store_format")
        return recorded

    # --------------------------------------------------------------- arrays
    def array(self, name: str, mode: str = "r") -> zarr.Array:
        """One of the store's arrays (``overall``, ``molecule``, ``molecule_counts``), opened once."""
        key = (name, mode)
        if key not in self._arrays:
            path = self.path / name
            self._arrays[key] = (checksums.open_for_writing(path) if mode != "r"
                                 else zarr.open_array(str(path), mode=mode))
        return self._arrays[key]

    def add_array(self, name: str, values: np.ndarray) -> None:
        """Store a whole (in-memory) float32 array as ``name``, chunked like ``overall`` (replacing one)."""
        chunks = self.array("overall").chunks
        array = checksums.create_array(self.path, name, shape=values.shape, chunks=chunks, dtype="float32",
                                       fill_value=0.0, overwrite=True)
        array[...] = values
        self._arrays.pop((name, "r"), None)

    def array_names(self) -> set[str]:
        """Names of the arrays in the store."""
        names = set()
        for entry in os.scandir(self.path):
            try:
                if entry.is_dir() and json.loads((Path(entry.path) / "zarr.json").read_text()).get(
                        "node_type") == "array":
                    names.add(entry.name)
            except (OSError, ValueError):
                continue
        return names

    def read(self, name: str, bounds: tuple[tuple[int, int], ...]) -> np.ndarray:
        """Values of array ``name`` on ``bounds``; a chunk that fails its checksum raises StoreDamaged."""
        try:
            return np.asarray(self.array(name)[tuple(slice(a, b) for a, b in bounds)])
        except ValueError as exc:
            if "checksum" not in str(exc):
                raise
            raise damaged_array(self.path / name, bounds) from None

    def write(self, name: str, bounds: tuple[tuple[int, int], ...], values: np.ndarray) -> None:
        """Write ``values`` on ``bounds`` of array ``name`` (callers own whole chunks)."""
        self.array(name, mode="r+")[tuple(slice(a, b) for a, b in bounds)] = values

    def write_counts(self, counts: np.ndarray) -> None:
        """Store the coarse molecule counts (``molecule_counts``, uint16 per 8³ block), replacing any."""
        array = checksums.create_array(self.path, "molecule_counts", shape=counts.shape, chunks=counts.shape,
                                       dtype="uint16", fill_value=0, overwrite=True)
        array[...] = counts.astype(np.uint16)
        self._arrays.pop(("molecule_counts", "r"), None)

    def counts(self) -> np.ndarray:
        """The coarse molecule counts (small: 1/512 of the map's voxels)."""
        return self.read("molecule_counts", tuple((0, n) for n in self.array("molecule_counts").shape))

    # -------------------------------------------------------------- records
    def record(self, name: str, default: Any = None) -> Any:
        """A sealed JSON record, or ``default`` when it was never written; a damaged one raises StoreDamaged."""
        return _read_record(self.path / RECORDS / f"{name}.json", default)

    def write_record(self, name: str, value: Any) -> None:
        """Replace a JSON record atomically (temporary file, fsync, rename)."""
        _write_text(self.path / RECORDS / f"{name}.json", checksums.seal(value))

    def remove_record(self, name: str) -> None:
        """Forget a record (it is computed again)."""
        (self.path / RECORDS / f"{name}.json").unlink(missing_ok=True)

    # ------------------------------------------------------- task records
    def batch_path(self, block: int, task_block: int) -> Path:
        """The record file of search task ``block`` of a run with ``--task-block task_block``."""
        return self.path / RECORDS / BOXES / f"b{int(task_block)}-{int(block):07d}.json"

    def write_batch(self, block: int, rows: list[dict[str, Any]], task_block: int) -> None:
        """Record the outcomes of search task ``block`` (one writer per block)."""
        _write_text(self.batch_path(block, task_block), checksums.seal(rows))

    def read_batch(self, block: int, task_block: int) -> list[dict[str, Any]] | None:
        """The outcomes recorded by search task ``block``, or None when it has not finished."""
        return _read_record(self.batch_path(block, task_block), None)

    def batch_files(self) -> list[tuple[int, int, Path]]:
        """``(task_block, block, path)`` of every box record, whatever its ``--task-block``."""
        return _record_files(self.path / RECORDS / BOXES, ".json")

    def done_batches(self, task_block: int | None = None) -> set[int]:
        """Search tasks whose outcomes are recorded (with ``--task-block task_block``; any when None)."""
        return {b for tb, b, _ in self.batch_files() if task_block is None or tb == task_block}

    # ------------------------------------------------------- mate records
    def mates_path(self, block: int, task_block: int) -> Path:
        """The record of the mate boxes of block ``block`` (a symmetric run, ``--task-block task_block``)."""
        return self.path / RECORDS / MATES / f"b{int(task_block)}-{int(block):07d}.json"

    def write_mates(self, block: int, rows: list[dict[str, Any]], task_block: int) -> None:
        """Record the outcomes the mate boxes of ``block`` took from searched boxes (a symmetric run)."""
        (self.path / RECORDS / MATES).mkdir(exist_ok=True)
        _write_text(self.mates_path(block, task_block), checksums.seal(rows))

    def read_mates(self, block: int, task_block: int) -> list[dict[str, Any]] | None:
        """The mate boxes' rows of ``block``, or None when they are not recorded."""
        return _read_record(self.mates_path(block, task_block), None)

    def mate_files(self) -> list[tuple[int, int, Path]]:
        """``(task_block, block, path)`` of every mate record."""
        return _record_files(self.path / RECORDS / MATES, ".json")

    def done_mates(self, task_block: int | None = None) -> set[int]:
        """Blocks whose mate boxes' rows are recorded (with ``--task-block task_block``; any when None)."""
        return {b for tb, b, _ in self.mate_files() if task_block is None or tb == task_block}

    def tile_path(self, tile: int, tile_chunks: int) -> Path:
        """The record file of output tile ``tile`` of a run with ``--tile-chunks tile_chunks``."""
        return self.path / RECORDS / TILES / f"t{int(tile_chunks)}-{int(tile):07d}.done"

    def mark_tile(self, tile: int, tile_chunks: int) -> None:
        """Record that output tile ``tile`` is written (after all its chunks)."""
        _write_text(self.tile_path(tile, tile_chunks), checksums.seal(int(tile)))

    def tile_files(self) -> list[tuple[int, int, Path]]:
        """``(tile_chunks, tile, path)`` of every tile record."""
        return _record_files(self.path / RECORDS / TILES, ".done")

    def done_tiles(self, tile_chunks: int | None = None) -> set[int]:
        """Output tiles recorded as written (with ``--tile-chunks tile_chunks``; any when None)."""
        return {t for tc, t, _ in self.tile_files() if tile_chunks is None or tc == tile_chunks}

    def forget_tiles(self) -> None:
        """Drop the tile records (the output image they refer to is gone)."""
        shutil.rmtree(self.path / RECORDS / TILES, ignore_errors=True)
        (self.path / RECORDS / TILES).mkdir()

    def size_on_disk(self) -> tuple[int, int]:
        """Bytes and number of files under the store."""
        total, files = 0, 0
        for root, _, names in os.walk(self.path):
            for name in names:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:  # a temporary file renamed meanwhile
                    continue
                files += 1
        return total, files


def read_record(path: Path) -> Any:
    """The value of the sealed record file ``path``; raises StoreDamaged when it is damaged."""
    return _read_record(path, None, missing_is_damage=True)


def _read_record(path: Path, default: Any, missing_is_damage: bool = False) -> Any:
    from ..errors import StoreDamaged

    try:
        text = path.read_text()
    except FileNotFoundError:
        if missing_is_damage:
            raise StoreDamaged(f"{path}: missing") from None
        return default
    except UnicodeDecodeError:
        raise StoreDamaged(f"{path}: damaged record (not text)") from None
    try:
        return checksums.unseal(text)
    except checksums.DamagedRecord as exc:
        raise StoreDamaged(f"{path}: damaged record ({exc})") from None


def damaged_array(array_dir: Path, bounds: tuple[tuple[int, int], ...]) -> Exception:
    """The StoreDamaged error of an array read on ``bounds`` that failed its checksum, naming the chunk."""
    from ..errors import StoreDamaged

    bad = checksums.damaged_chunks(array_dir, checksums.chunks_within(array_dir, bounds))
    where = f"{checksums.chunk_path(array_dir, bad[0][0])}: {bad[0][1]}" if bad else f"{array_dir}: a chunk is damaged"
    return StoreDamaged(f"{where}; run the same command with --resume to compute it again")


def _plain_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` durably: a temporary file, fsync, rename, fsync of the directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record_files(directory: Path, suffix: str) -> list[tuple[int, int, Path]]:
    """``(layout, id, path)`` of the finished record files ``<letter><layout>-<id><suffix>`` in ``directory``
    (temporary files ignored)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not name.endswith(suffix) or name.startswith("."):
            continue
        layout, _, number = name[1: -len(suffix)].partition("-")
        if layout.isdigit() and number.isdigit():
            out.append((int(layout), int(number), directory / name))
    return sorted(out)
