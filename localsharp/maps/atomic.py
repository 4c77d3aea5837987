"""Atomic file creation: write to a temporary name in the destination directory, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to ``path`` (mode 0666 & ~umask).

    Nothing is ever left at ``path`` half-written: on any error the temporary
    file is removed and ``path`` is untouched.

    Raises
    ------
    OutputError
        If ``path`` exists and ``overwrite`` is false, or its directory is not writable.
    """
    with AtomicSet(overwrite=overwrite) as files:
        yield files.stage(path)


class AtomicSet:
    """Write several files all-or-nothing: stage each to a temporary name, rename all at the end.

    Use as a context manager; :meth:`stage` returns the temporary path to write.
    If the block raises, every staged file is removed and no final path is touched.

    Examples
    --------
    >>> with AtomicSet(overwrite=True) as files:  # doctest: +SKIP
    ...     open(files.stage("out/a.json"), "w").write("{}")
    """

    def __init__(self, *, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if path.exists() and not self.overwrite:
            raise OutputError(f"{path}: already exists; use --overwrite (overwrite=True) to replace it")
        directory = path.parent if str(path.parent) else Path(".")
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        except OSError as exc:
            raise OutputError(f"{directory}: cannot write there ({exc.strerror})") from None
        os.close(fd)
        self._staged.append((Path(tmp_name), path))
        return Path(tmp_name)

    def __enter__(self) -> "AtomicSet":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                mode = 0o666 & ~_umask()
                for tmp, _ in self._staged:
                    os.chmod(tmp, mode)
                for tmp, final in self._staged:
                    os.replace(tmp, final)
        finally:
            for tmp, _ in self._staged:
                if tmp.exists():
                    tmp.unlink()


def sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(directory if str(directory) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
