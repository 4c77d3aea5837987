"""Exceptions raised by localsharp.

Every error caused by the user's input (a file, an option value) is a
:class:`LocalsharpError`.  The command line prints its message on one line and
exits with status 2; programming errors keep their traceback.
"""

from __future__ import annotations


class LocalsharpError(Exception):
    """Base class for errors caused by user input (files, options)."""


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
