"""The on-disk store of a local-sharpening run (zarr v3 arrays + JSON records).

Layout of ``<store>/``::

    overall/   zarr array: the overall-sharpened map M0 (float32, z, y, x)
    molecule/  zarr array: 1 where the local variance says molecule (uint8), for box solvent fractions
    molecule_counts/  zarr array: molecule voxels per 8³ block (uint16), to skip solvent boxes
    run.json   what the run is (input identity, options, geometry); resume refuses a different run
    records/   small JSON records written atomically (temporary file, fsync, rename):
               overall.json (the overall sharpening), boxes/NNNNNNN.json (the outcomes of one
               search task's boxes, written by that task), mates/NNNNNNN.json (a symmetric run:
               the outcomes the mate boxes of one block took from searched boxes, written by the
               driver), tiles/NNNNNNN.done (an output tile is complete)

Arrays are chunked on the output chunk grid and every chunk has exactly one
writer, so no locks are needed, and a rerun of a task is idempotent.  A task's
record appears only once its work is complete, so an interrupted run (even
one whose client or workers were killed) resumes with what is on disk.
No box's voxels are stored: the render tasks re-render each box from the
overall map and its recorded outcome, and write the blended map into an
OME-Zarr image of its own (by default ``output.ome.zarr`` inside the store).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..errors import OutputError

RUN_FILE = "run.json"
RECORDS = "records"
#: Records of the mate boxes of a symmetric run (one file per block of the box grid).
MATES = "mates"


class RunStore:
    """A local-sharpening store at ``path`` (see the module notes)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._arrays: dict[tuple[str, str], zarr.Array] = {}  # opened once per RunStore object

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, path: str | os.PathLike, run: dict[str, Any], shape: tuple[int, int, int],
               chunks: tuple[int, int, int], *, overwrite: bool = False) -> "RunStore":
        """Make a new store (refusing an existing one unless ``overwrite``)."""
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise OutputError(f"{path}: a run store already exists; resume it with --resume, "
                                  "or replace it with --overwrite")
            shutil.rmtree(path)
        group = zarr.open_group(str(path), mode="w")
        group.create_array("overall", shape=shape, chunks=chunks, dtype="float32", fill_value=0.0)
        group.create_array("molecule", shape=shape, chunks=chunks, dtype="uint8", fill_value=0)
        store = cls(path)
        for directory in (path / RECORDS, path / RECORDS / "boxes", path / RECORDS / "tiles"):
            directory.mkdir()
        store._write_json(path / RUN_FILE, run)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, run: dict[str, Any]) -> "RunStore":
        """Open an existing store for resuming; refuse one made for a different run."""
        path = Path(path)
        try:
            recorded = json.loads((path / RUN_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise OutputError(f"{path}: not a localsharp run store ({exc}); use --overwrite to start afresh") from None
        differs = sorted(k for k in set(run) | set(recorded) if run.get(k) != recorded.get(k))
        if differs:
            raise OutputError(f"{path}: the store holds a different run (differs in {', '.join(differs)}); "
                              "use the same input and options to resume, or --overwrite")
        return cls(path)

    # --------------------------------------------------------------- arrays
    def array(self, name: str, mode: str = "r") -> zarr.Array:
        """One of the store's arrays (``overall``, ``molecule``, ``molecule_counts``), opened once."""
        key = (name, mode)
        if key not in self._arrays:
            self._arrays[key] = zarr.open_array(str(self.path / name), mode=mode)
        return self._arrays[key]

    def add_array(self, name: str, values: np.ndarray) -> None:
        """Store a whole (in-memory) float32 array as ``name``, chunked like ``overall`` (replacing one)."""
        chunks = self.array("overall").chunks
        group = zarr.open_group(str(self.path), mode="r+")
        array = group.create_array(name, shape=values.shape, chunks=chunks, dtype="float32", fill_value=0.0,
                                   overwrite=True)
        array[...] = values
        self._arrays.pop((name, "r"), None)

    def array_names(self) -> set[str]:
        """Names of the arrays in the store."""
        return set(zarr.open_group(str(self.path), mode="r").array_keys())

    def read(self, name: str, bounds: tuple[tuple[int, int], ...]) -> np.ndarray:
        """Values of array ``name`` on ``bounds``."""
        return np.asarray(self.array(name)[tuple(slice(a, b) for a, b in bounds)])

    def write(self, name: str, bounds: tuple[tuple[int, int], ...], values: np.ndarray) -> None:
        """Write ``values`` on ``bounds`` of array ``name`` (callers own whole chunks)."""
        self.array(name, mode="r+")[tuple(slice(a, b) for a, b in bounds)] = values

    def write_counts(self, counts: np.ndarray) -> None:
        """Store the coarse molecule counts (``molecule_counts``, uint16 per 8³ block), replacing any."""
        group = zarr.open_group(str(self.path), mode="a")
        array = group.create_array("molecule_counts", shape=counts.shape, chunks=counts.shape, dtype="uint16",
                                   fill_value=0, overwrite=True)
        array[...] = counts.astype(np.uint16)
        self._arrays.pop(("molecule_counts", "r"), None)

    def counts(self) -> np.ndarray:
        """The coarse molecule counts (small: 1/512 of the map's voxels)."""
        return np.asarray(self.array("molecule_counts")[...])

    # -------------------------------------------------------------- records
    def record(self, name: str, default: Any = None) -> Any:
        """A JSON record, or ``default`` when it was never written."""
        try:
            return json.loads((self.path / RECORDS / f"{name}.json").read_text())
        except FileNotFoundError:
            return default

    def write_record(self, name: str, value: Any) -> None:
        """Replace a JSON record atomically (temporary file, then rename)."""
        self._write_json(self.path / RECORDS / f"{name}.json", value)

    # ------------------------------------------------------- task records
    def write_batch(self, block: int, rows: list[dict[str, Any]]) -> None:
        """Record the outcomes of search task ``block`` (one writer per block)."""
        directory = self.path / RECORDS / "boxes"
        directory.mkdir(exist_ok=True)
        self._write_json(directory / f"{block:07d}.json", rows)

    def read_batch(self, block: int) -> list[dict[str, Any]] | None:
        """The outcomes recorded by search task ``block``, or None when it has not finished."""
        try:
            return json.loads((self.path / RECORDS / "boxes" / f"{block:07d}.json").read_text())
        except FileNotFoundError:
            return None

    def done_batches(self) -> set[int]:
        """Search tasks whose outcomes are recorded."""
        return _recorded_ids(self.path / RECORDS / "boxes", ".json")

    # ------------------------------------------------------- mate records
    def write_mates(self, block: int, rows: list[dict[str, Any]]) -> None:
        """Record the outcomes the mate boxes of ``block`` took from searched boxes (a symmetric run)."""
        directory = self.path / RECORDS / MATES
        directory.mkdir(exist_ok=True)
        self._write_json(directory / f"{block:07d}.json", rows)

    def read_mates(self, block: int) -> list[dict[str, Any]] | None:
        """The mate boxes' rows of ``block``, or None when they are not recorded."""
        try:
            return json.loads((self.path / RECORDS / MATES / f"{block:07d}.json").read_text())
        except FileNotFoundError:
            return None

    def done_mates(self) -> set[int]:
        """Blocks whose mate boxes' rows are recorded."""
        return _recorded_ids(self.path / RECORDS / MATES, ".json")

    def mark_tile(self, tile: int) -> None:
        """Record that output tile ``tile`` is written (after all its chunks)."""
        directory = self.path / RECORDS / "tiles"
        directory.mkdir(exist_ok=True)
        self._write_json(directory / f"{tile:07d}.done", tile)

    def done_tiles(self) -> set[int]:
        """Output tiles recorded as written."""
        return _recorded_ids(self.path / RECORDS / "tiles", ".done")

    def forget_tiles(self) -> None:
        """Drop the tile records (the output image they refer to is gone)."""
        shutil.rmtree(self.path / RECORDS / "tiles", ignore_errors=True)
        (self.path / RECORDS / "tiles").mkdir()

    def size_on_disk(self) -> tuple[int, int]:
        """Bytes and number of files under the store."""
        total, files = 0, 0
        for root, _, names in os.walk(self.path):
            for name in names:
                total += os.path.getsize(os.path.join(root, name))
                files += 1
        return total, files

    @staticmethod
    def _write_json(path: Path, value: Any) -> None:
        """Write ``value`` durably: a temporary file, fsync, rename, fsync of the directory."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(value, handle, indent=None, allow_nan=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _recorded_ids(directory: Path, suffix: str) -> set[int]:
    """Integer names of the finished records in ``directory`` (temporary files ignored)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {int(n[: -len(suffix)]) for n in names if n.endswith(suffix) and not n.startswith(".")}
