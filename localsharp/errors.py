"""Exceptions raised by localsharp.

Every error caused by the user's input (a file, an option value) is a
:class:`LocalsharpError`.  The command line prints its message on one line and
exits with its ``exit_status``: 2 for a user mistake, :data:`EXIT_FAULT` (74, ``EX_IOERR``
of sysexits.h) for a :class:`RunFault` — a run stopped by its disk or its store, not by
the command; programming errors keep their traceback (status 1).
"""

from __future__ import annotations

import errno


#: Exit status of a run stopped by a disk fault or a damaged store (sysexits.h ``EX_IOERR``).
EXIT_FAULT = 74


class LocalsharpError(Exception):
    """Base class for errors caused by user input (files, options)."""

    #: Exit status of the command line for this error.
    exit_status = 2


class InputFileError(LocalsharpError, ValueError):
    """An input file is missing, unreadable, malformed or holds unusable data."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LocalsharpError, ValueError):
    """An option has a value that cannot be used."""


class OutputError(LocalsharpError, OSError):
    """An output cannot be written (exists, directory not writable...)."""


class LockHeld(OutputError):
    """Another run holds the output directory (its lock file names the process)."""


class RunFault(LocalsharpError):
    """The run could not go on for a reason outside the command: no space, no permission, a read-only
    or vanished directory, a store damaged while the run read it.  The message says whether
    ``--resume`` continues."""

    exit_status = EXIT_FAULT


class StoreDamaged(RunFault):
    """A record or chunk of a run store does not match its checksum (or is missing) when a task reads
    it; ``--resume`` checks the store and computes the damaged parts again."""


#: errno values of an OSError that is a fault of the disk or directory written (not of the program).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT,
                         errno.ESTALE, errno.EIO, errno.ENOTDIR, errno.EFBIG})


def is_disk_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a damaged store or an OSError of the file system (no space, no permission,
    read-only, vanished, I/O error) rather than a failure of the computation."""
    return isinstance(exc, StoreDamaged) or (isinstance(exc, OSError) and not isinstance(exc, LocalsharpError)
                                             and exc.errno in DISK_ERRNOS)
