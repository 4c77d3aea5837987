"""One line for a run stopped by its disk: no space, no permission, a read-only or vanished directory.

:func:`disk_fault` turns the ``OSError`` of a write (raised in this process or on a Dask
worker) into a :class:`~localsharp.errors.RunFault` (exit status 74) whose message names the
path, the space needed where it is known, and what to do next.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from ..errors import RunFault

#: What an errno means for the user.
WHAT = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system", errno.ENOENT: "no longer exists (removed during the run?)",
        errno.ENOTDIR: "no longer a directory", errno.ESTALE: "removed on the file server (stale file handle)",
        errno.EIO: "input/output error of the disk", errno.EFBIG: "file too large (a file size limit)"}
#: What to do about it, before "… and run again".
REMEDY = {errno.ENOSPC: "free space", errno.EDQUOT: "free space (or raise the quota)",
          errno.EACCES: "make it writable", errno.EPERM: "make it writable", errno.EROFS: "make it writable",
          errno.EIO: "check the disk", errno.EFBIG: "raise the limit"}
MIB = 2**20


def disk_fault(exc: OSError, directory: Path, *, resumable: bool, needed: int | None = None,
               resume_hint: str = "run the same command with --resume to continue") -> RunFault:
    """The one-line fault of ``exc`` for a run writing into ``directory``.

    ``resumable``: whether the work done so far is kept (then ``resume_hint`` is given);
    ``needed``: bytes the run still has to write (said with the free space on a full disk).
    """
    path = _shown_path(exc.filename, directory)
    what = WHAT.get(exc.errno, exc.strerror or str(exc))
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and needed is not None:
        what += f" (about {_mib(needed)} more needed to finish, {_mib(free_bytes(path))} free)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ESTALE) and not resumable:
        return RunFault(f"{path}: {what}; nothing of the run is left: run the same command again")
    remedy = REMEDY.get(exc.errno, "fix it")
    if resumable:
        return RunFault(f"{path}: {what}; {remedy} and {resume_hint}")
    return RunFault(f"{path}: {what}; nothing was kept: {remedy} and run the same command again")


def free_bytes(path: Path) -> int:
    """Free bytes on the file system of ``path`` (or of its nearest existing ancestor)."""
    for candidate in [path, *path.parents]:
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 0


def _mib(n: int) -> str:
    return f"{n / MIB:.0f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB"


def _shown_path(filename: object, directory: Path) -> Path:
    """The path to name: the file of the error (its directory for a temporary file), or the first missing
    directory on its way; ``directory`` when the error names none."""
    if not filename:
        return directory
    path = Path(os.fsdecode(filename))  # type: ignore[arg-type]
    if path.name.startswith("."):  # a temporary file: name the directory it was written in
        path = path.parent
    if not path.exists():
        missing = path
        for parent in path.parents:
            if parent.exists():
                return missing
            missing = parent
    return path
