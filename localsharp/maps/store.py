"""The on-disk store of a local-sharpening run (zarr v3 arrays + JSON records).

Layout of ``<store>/``::

    overall/   zarr array: the overall-sharpened map M0 (float32, z, y, x)
    molecule/  zarr array: 1 where the local variance says molecule (uint8), for box solvent fractions
    boxes/     zarr array: each box's sharpened core (box index, z, y, x), one chunk per box
    output/    zarr array: the blended local map (written chunk by chunk)
    run.json   what the run is (input checksum, options, geometry); resume refuses a different run
    records/   small JSON records written atomically by the driver: boxes.json (per-box outcome),
               chunks.json (output chunks written), overall.json (the overall sharpening)

Arrays are chunked on the output chunk grid so that every chunk has exactly
one writer.  Arrays pickle as their path, so workers open them themselves.
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
        for name in ("overall", "output"):
            group.create_array(name, shape=shape, chunks=chunks, dtype="float32", fill_value=0.0)
        group.create_array("molecule", shape=shape, chunks=chunks, dtype="uint8", fill_value=0)
        store = cls(path)
        (path / RECORDS).mkdir()
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
    def ensure_boxes(self, n_boxes: int, core_shape: tuple[int, int, int]) -> None:
        """Create the ``boxes`` array (one chunk per box) unless it exists with this shape."""
        path = self.path / "boxes"
        shape = (n_boxes, *core_shape)
        if path.exists():
            if tuple(zarr.open_array(str(path), mode="r").shape) == shape:
                return
            raise OutputError(f"{self.path}: its boxes array does not match this run's box grid; "
                              "use --overwrite to start afresh")
        zarr.open_group(str(self.path), mode="a").create_array("boxes", shape=shape, chunks=(1, *core_shape),
                                                               dtype="float32", fill_value=0.0)

    def array(self, name: str, mode: str = "r") -> zarr.Array:
        """One of the store's arrays (``overall``, ``molecule``, ``boxes``, ``output``), opened once."""
        key = (name, mode)
        if key not in self._arrays:
            self._arrays[key] = zarr.open_array(str(self.path / name), mode=mode)
        return self._arrays[key]

    def read(self, name: str, bounds: tuple[tuple[int, int], ...]) -> np.ndarray:
        """Values of array ``name`` on ``bounds``."""
        return np.asarray(self.array(name)[tuple(slice(a, b) for a, b in bounds)])

    def write(self, name: str, bounds: tuple[tuple[int, int], ...], values: np.ndarray) -> None:
        """Write ``values`` on ``bounds`` of array ``name`` (callers own whole chunks)."""
        self.array(name, mode="r+")[tuple(slice(a, b) for a, b in bounds)] = values

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

    @staticmethod
    def _write_json(path: Path, value: Any) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(value, handle, indent=1, allow_nan=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
