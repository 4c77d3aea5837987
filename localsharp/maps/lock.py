"""One run per output: a lock file that works on local disks and on NFS/Lustre.

A run takes the lock by creating ``<path>`` whole and at once: its content (pid, host, the
machine's boot id, the process's start time, the command, a random token) is written to a
temporary file in the same directory, flushed to disk, and hard-linked to ``<path>``;
``link`` fails if the name exists, atomically, on every POSIX file system including NFS
(``flock`` is not reliable there).  While the run lasts a thread touches the file every
:data:`HEARTBEAT_S` seconds; the lock is removed when the run ends, whatever the reason.

A lock file left by a run that is gone is taken over, with a one-line warning:

* on the same machine (same host name, boot id and pid namespace), when its process no longer
  exists (or the pid now belongs to a process started later);
* from another machine, when it has not been touched for :data:`STALE_S` seconds (its
  age is measured with the file server's clock, so clocks that disagree do not matter).

Otherwise :class:`~localsharp.errors.LockHeld` is raised, naming the holder.  A takeover is
itself serialised by a short-lived ``<path>.takeover`` file, so two runs that find the same
stale lock never both take it, and a live lock is never removed.

Locks are re-entrant within a process (the command line takes the lock of its output
directory before the engine takes it again for the run store).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import LockHeld, OutputError
from .atomic import sync_directory

log = logging.getLogger("localsharp.lock")

#: Seconds between two touches of a held lock file.
HEARTBEAT_S = 30.0
#: A lock of another machine untouched for this long is stale (ten missed heartbeats).
STALE_S = 300.0
#: A takeover file older than this is left over from a run killed in the middle of a takeover.
TAKEOVER_STALE_S = 60.0

_HELD: dict[str, "RunLock"] = {}
_HELD_GUARD = threading.Lock()


def lock_path(store: str | os.PathLike) -> Path:
    """The lock file of a run store: ``<store>.lock`` beside it (it outlives a replaced store)."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


class RunLock:
    """The lock file at ``path`` (see the module notes); use :meth:`acquire` / :meth:`release`, or ``with``."""

    def __init__(self, path: str | os.PathLike, command: str = "localsharp") -> None:
        self.path = Path(os.path.abspath(path))
        self.command = command
        self.token = secrets.token_hex(8)
        self.depth = 0
        self.owner = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ public
    def acquire(self) -> "RunLock":
        """Take the lock (re-entrant in this process); raises LockHeld naming the holder."""
        with _HELD_GUARD:
            held = _HELD.get(str(self.path))
            if held is not None and held.owner == os.getpid():
                held.depth += 1
                return held
            self._take()
            self.depth, self.owner = 1, os.getpid()
            _HELD[str(self.path)] = self
        self._start_heartbeat()
        return self

    def release(self) -> None:
        """Give the lock back (removes the file when the outermost holder releases it)."""
        with _HELD_GUARD:
            held = _HELD.get(str(self.path))
            if held is None:
                return
            held.depth -= 1
            if held.depth > 0:
                return
            del _HELD[str(self.path)]
        held._stop.set()
        if held._thread is not None:
            held._thread.join(timeout=5)
        try:
            if (read_lock(held.path) or {}).get("token") == held.token:
                held.path.unlink()
        except OSError:  # the directory is gone or read-only now: nothing to remove
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ---------------------------------------------------------- the lock
    def _content(self) -> dict[str, Any]:
        if not hasattr(self, "_info"):
            now = time.time()
            self._info = {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": _boot_id(),
                          "pid_namespace": _pid_namespace(),
                          "process_start": _process_start(os.getpid()), "command": self.command,
                          "started": datetime.fromtimestamp(now, timezone.utc).astimezone().strftime(
                              "%Y-%m-%d %H:%M:%S %Z"),
                          "started_unix": now, "token": self.token}
        return self._info

    def _take(self) -> None:
        for _ in range(20):
            if _create_whole(self.path, self._content()):
                return
            holder = read_lock(self.path)
            if holder is None:
                if not self.path.exists():
                    continue  # released meanwhile: try again
                holder = {}
            reason = _gone(self.path, holder)
            if reason is None:
                raise LockHeld(f"{self.path}: another run is using this output ({describe(holder)}); "
                               "wait for it to end, or choose another output directory")
            if _take_over(self.path, holder):
                log.warning("%s: taking over the lock of a run that is gone (%s; %s)", self.path,
                            describe(holder), reason)
            else:
                time.sleep(0.05)
        raise LockHeld(f"{self.path}: could not take the lock (other runs keep taking it); try again")

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="localsharp-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:  # the directory went away or became read-only: the run will say so itself
                return


def describe(holder: dict[str, Any]) -> str:
    """The holder of a lock in words: pid, host, command, start time."""
    if not holder:
        return "unreadable lock file"
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, {holder.get('command', 'localsharp')}, "
            f"started {holder.get('started', '?')}")


def read_lock(path: Path) -> dict[str, Any] | None:
    """The content of a lock file; None when there is none, {} when it cannot be read."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _create_whole(path: Path, content: dict[str, Any]) -> bool:
    """Create ``path`` with ``content`` atomically (write a temporary file, fsync, hard link); False if it exists."""
    directory = path.parent
    tmp = directory / f".{path.name}.{content['token']}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        raise OutputError(f"{directory}: the output directory does not exist") from None
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the lock file of the run there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(content, handle)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            # NFS may report an error for a link that was made (the reply was lost): the link count tells
            if os.stat(tmp).st_nlink != 2:
                raise OutputError(f"{path}: cannot create the lock file ({exc.strerror})") from None
        sync_directory(directory)
        return True
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def _gone(path: Path, holder: dict[str, Any]) -> str | None:
    """Why the holder of the lock at ``path`` is gone (the lock is stale), or None while it may run."""
    if (holder.get("host") == socket.gethostname() and holder.get("boot_id") == _boot_id()
            and holder.get("pid_namespace") == _pid_namespace()):  # its pid means a process we can see
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return "its lock file is unreadable" if _age(path) > TAKEOVER_STALE_S else None
        if not _alive(pid):
            return f"process {pid} no longer exists"
        started = _process_start(pid)
        if started is not None and holder.get("process_start") not in (None, started):
            return f"pid {pid} now belongs to another process"
        return None
    age = _age(path)
    if age > STALE_S:
        return f"its lock file was last touched {age:.0f} s ago"
    return None


def _take_over(path: Path, holder: dict[str, Any]) -> bool:
    """Remove the stale lock ``holder`` at ``path`` unless it changed meanwhile; only one run at a time does."""
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        if _age(guard) > TAKEOVER_STALE_S:  # left by a run killed during its takeover
            try:
                guard.unlink()
            except OSError:
                pass
        return False
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot write there ({exc.strerror})") from None
    os.close(fd)
    try:
        if read_lock(path) == holder:  # still the stale one (not a fresh lock taken meanwhile)
            path.unlink()
            return True
        return False
    except FileNotFoundError:
        return False
    finally:
        try:
            guard.unlink()
        except OSError:
            pass


def _age(path: Path) -> float:
    """Seconds since ``path`` was last modified, by the clock of the file system that holds it."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return 0.0
    return max(0.0, _fs_now(path.parent) - mtime)


def _fs_now(directory: Path) -> float:
    """The file server's current time: the mtime of a file created now (the local clock if none can be)."""
    probe = directory / f".localsharp-clock.{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        try:
            probe.unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _process_start(pid: int) -> int | None:
    """Start time of process ``pid`` (clock ticks since boot, /proc), None where unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str | None:
    """The pid namespace of this process (containers on one machine have their own)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
