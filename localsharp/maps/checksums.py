"""Checksums of everything a run writes: sealed JSON records, checked zarr arrays, output files.

* **Records** (:func:`seal`, :func:`unseal`): a JSON record is stored as
  ``{"sha256": …, "value": …}``, the digest taken over the value's canonical JSON
  (sorted keys, no spaces), so a record that was truncated, overwritten or edited
  is known as such when read.
* **Arrays** (:func:`create_array`, :func:`open_for_writing`): zarr v3 arrays whose
  codec chain ends with the core ``crc32c`` codec (after zstd, as zarr's default), so
  zarr verifies every chunk it reads, and that write every chunk (also those equal to
  the fill value), so a chunk file that is missing is damage, not zeros.
  :func:`damaged_chunks` checks chunk files without decoding them (the CRC32C of a
  chunk's bytes against the four bytes it ends with).
* **Outputs** (:func:`file_sha256`, :func:`zarr_digest`, :func:`output_checksums`,
  :func:`verify_checksums`): the SHA-256 of each output file, and for a zarr image
  the SHA-256 of its manifest (every file's path and size, its metadata whole, each
  chunk's CRC32C), with every chunk's CRC32C checked again when verifying.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from itertools import product
from pathlib import Path
from typing import Any

#: Per-array write configuration: every chunk is written, also one equal to the fill value.
WRITE_CONFIG = {"write_empty_chunks": True}
#: Key of a file's SHA-256 in a summary's ``checksums``; of a zarr image's manifest digest.
FILE_KEY, ZARR_KEY = "sha256", "zarr_manifest_sha256"
_BLOCK = 1 << 20


class DamagedRecord(ValueError):
    """A sealed record whose content does not match its checksum (or is not a sealed record)."""


# ----------------------------------------------------------------- records
def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (what a record's checksum is taken over)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def seal(value: Any) -> str:
    """The text of a sealed record holding ``value``."""
    return json.dumps({"sha256": hashlib.sha256(canonical(value)).hexdigest(), "value": value}, allow_nan=False)


def unseal(text: str | bytes) -> Any:
    """The value of a sealed record; raises :class:`DamagedRecord` saying what is wrong."""
    try:
        record = json.loads(text)
    except ValueError:
        raise DamagedRecord("not valid JSON (truncated or overwritten)") from None
    if not isinstance(record, dict) or set(record) != {"sha256", "value"}:
        raise DamagedRecord("not a sealed record")
    if hashlib.sha256(canonical(record["value"])).hexdigest() != record["sha256"]:
        raise DamagedRecord("its content does not match its checksum")
    return record["value"]


# ------------------------------------------------------------------ arrays
def checked_compressors() -> list[Any]:
    """zarr's default compressor (zstd, level 0) followed by the core crc32c codec."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=0, checksum=False), Crc32cCodec()]


def create_array(parent: Any, name: str, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str,
                 fill_value: Any = 0, overwrite: bool = False, **kwargs: Any) -> Any:
    """Create a checked array ``name`` in the zarr group ``parent`` (a group or its path); return it, writable."""
    import zarr

    group = zarr.open_group(str(parent), mode="a") if isinstance(parent, (str, os.PathLike)) else parent
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value,
                              compressors=checked_compressors(), config=WRITE_CONFIG, overwrite=overwrite, **kwargs)


def open_for_writing(path: str | os.PathLike) -> Any:
    """An existing zarr array opened to write, every chunk written (see :data:`WRITE_CONFIG`)."""
    import zarr

    return zarr.open_array(str(path), mode="r+").with_config(WRITE_CONFIG)


def _metadata(array_dir: Path) -> dict[str, Any]:
    return json.loads((array_dir / "zarr.json").read_text())


def has_crc(array_dir: str | os.PathLike) -> bool:
    """Whether the array's chunks end with a CRC32C (its last codec is ``crc32c``)."""
    try:
        codecs = _metadata(Path(array_dir)).get("codecs", [])
    except (OSError, ValueError):
        return False
    return bool(codecs) and codecs[-1].get("name") == "crc32c"


def chunk_grid(array_dir: str | os.PathLike) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The array's chunk counts and chunk shape, from its metadata."""
    meta = _metadata(Path(array_dir))
    chunks = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    counts = tuple(-(-int(n) // int(c)) for n, c in zip(meta["shape"], chunks))
    return counts, chunks


def chunk_path(array_dir: str | os.PathLike, index: Iterable[int]) -> Path:
    """The file of chunk ``index`` (zarr v3 default key encoding, ``c/i/j/k``)."""
    return Path(array_dir, "c", *map(str, index))


def chunk_problem(path: Path) -> str | None:
    """What is wrong with one chunk file of a crc32c array (None when its CRC32C matches)."""
    import google_crc32c

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if len(data) < 4:
        return "truncated"
    if google_crc32c.value(data[:-4]) != int.from_bytes(data[-4:], "little"):
        return "checksum mismatch"
    return None


def damaged_chunks(array_dir: str | os.PathLike, indices: Iterable[tuple[int, ...]] | None = None
                   ) -> list[tuple[tuple[int, ...], str]]:
    """Chunks of a crc32c array (all of them, or ``indices``) that are missing or fail their CRC32C."""
    if indices is None:
        counts, _ = chunk_grid(array_dir)
        indices = product(*(range(n) for n in counts))
    damaged = []
    for index in indices:
        problem = chunk_problem(chunk_path(array_dir, index))
        if problem is not None:
            damaged.append((tuple(int(i) for i in index), problem))
    return damaged


def chunks_within(array_dir: str | os.PathLike, bounds: tuple[tuple[int, int], ...]) -> Iterator[tuple[int, ...]]:
    """Indices of the array's chunks that overlap ``bounds`` (voxel ranges per axis)."""
    _, chunks = chunk_grid(array_dir)
    return product(*(range(a // c, -(-b // c)) for (a, b), c in zip(bounds, chunks)))


# ----------------------------------------------------------------- outputs
def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def zarr_digest(root: str | os.PathLike, verify: bool = False) -> str:
    """SHA-256 of a zarr tree's manifest: each file's relative path and size, metadata files whole, and
    the CRC32C each chunk of a crc32c array ends with (a chunk is read whole only when ``verify``: then a
    chunk that fails its CRC32C raises :class:`DamagedRecord` naming it)."""
    root = Path(root)
    digest = hashlib.sha256()
    checked: dict[Path, bool] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        array_dir = _array_of(path, root)
        if array_dir is not None and checked.setdefault(array_dir, has_crc(array_dir)):
            if verify:
                problem = chunk_problem(path)
                if problem is not None:
                    raise DamagedRecord(f"{rel}: {problem}")
            with open(path, "rb") as handle:
                handle.seek(max(0, size - 4))
                digest.update(handle.read(4))
        else:
            digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def _array_of(path: Path, root: Path) -> Path | None:
    """The array directory a chunk file belongs to (its nearest ancestor ``.../c/...`` with a zarr.json)."""
    if path.name == "zarr.json":
        return None
    parts = path.relative_to(root).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "c":
            candidate = root.joinpath(*parts[:i])
            if (candidate / "zarr.json").is_file():
                return candidate
    return None


def output_checksums(files: dict[str, Path]) -> dict[str, dict[str, str]]:
    """``{name: {"sha256": …}}`` (or ``{"zarr_manifest_sha256": …}`` for a zarr directory) of each file,
    read from ``files[name]`` (e.g. the temporary path a file is staged at)."""
    out: dict[str, dict[str, str]] = {}
    for name, path in files.items():
        out[name] = {ZARR_KEY: zarr_digest(path)} if Path(path).is_dir() else {FILE_KEY: file_sha256(path)}
    return out


def verify_checksums(directory: str | os.PathLike, checksums: dict[str, dict[str, str]],
                     source: str = "the summary") -> list[tuple[str, str]]:
    """``(name, problem)`` for every file of ``checksums`` in ``directory`` that is missing or no longer
    matches (``source``, where the checksums come from, is named in the problem)."""
    problems = []
    for name, recorded in checksums.items():
        path = Path(directory) / name
        if not path.exists():
            problems.append((name, f"missing ({source} lists it)"))
            continue
        try:
            if ZARR_KEY in recorded:
                same = zarr_digest(path, verify=True) == recorded[ZARR_KEY]
            else:
                same = file_sha256(path) == recorded.get(FILE_KEY)
        except DamagedRecord as exc:
            problems.append((name, f"chunk {exc}: it changed after it was written"))
            continue
        except OSError as exc:
            problems.append((name, f"unreadable ({exc.strerror})"))
            continue
        if not same:
            problems.append((name, f"does not match the checksum in {source}: it changed after it was written"))
    return problems
