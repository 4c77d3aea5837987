"""Memory of a process tree from /proc: readers, roles (client / nanny / worker / other) and a sampler.

Linux only.  ``VmRSS`` counts every resident page, including the pages of memory-mapped files
(reclaimable: the kernel can drop them and read them again); ``RssAnon`` counts anonymous pages
only (heap, arrays), which is what a process really holds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
#: /proc/PID/status fields kept (values in kB).
STATUS_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def parse_status(text: str) -> dict[str, int]:
    """The memory fields (kB) of a /proc/PID/status text; absent fields are left out."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            out[key] = int(value.split()[0])
    return out


def rss_anon_mb(pid: int) -> float:
    """``RssAnon`` of a running process (MB), 0 when it cannot be read."""
    try:
        return parse_status(Path(f"/proc/{pid}/status").read_text()).get("RssAnon", 0) / 1024.0
    except OSError:
        return 0.0


def parse_stat_ppid(text: str) -> int:
    """Parent pid from a /proc/PID/stat line (the command name may hold spaces and parentheses)."""
    return int(text[text.rindex(")") + 2:].split()[1])


def parse_cmdline(raw: bytes) -> list[str]:
    """Arguments of a /proc/PID/cmdline (NUL-separated)."""
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _read(path: Path, binary: bool = False) -> str | bytes | None:
    try:
        return path.read_bytes() if binary else path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):  # the process ended meanwhile
        return None


def parents() -> dict[int, int]:
    """pid -> parent pid of every process visible in /proc now."""
    out = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            text = _read(PROC / entry.name / "stat")
            if text:
                out[int(entry.name)] = parse_stat_ppid(text)  # type: ignore[arg-type]
    return out


def descendants(root: int, parent_of: dict[int, int]) -> list[int]:
    """``root`` and all its descendants (children of children...), root first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_of.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return tree


def _is_nanny_command(args: list[str]) -> bool:
    text = " ".join(args)
    return "dask worker" in text or "dask-worker" in text or "distributed.cli.dask_worker" in text


def _is_spawned(args: list[str]) -> bool:
    text = " ".join(args)
    return "spawn_main" in text or "--multiprocessing-fork" in text or "forkserver" in text


def classify(pid: int, root: int, cmdlines: dict[int, list[str]], parent_of: dict[int, int]) -> str:
    """Role of ``pid`` in the tree of ``root``: ``client``, ``nanny``, ``worker`` or ``other``.

    The root is the client.  A ``dask worker`` command line is a nanny when it has spawned
    children (its worker process), else a worker (``--no-nanny``).  A multiprocessing spawn
    child of the client or of a nanny is a Dask worker process (a LocalCluster's nannies run
    inside the client); the resource tracker and anything else is ``other``.
    """
    if pid == root:
        return "client"
    args = cmdlines.get(pid, [])
    if "resource_tracker" in " ".join(args):
        return "other"
    if _is_nanny_command(args):
        spawned = any(_is_spawned(cmdlines.get(c, [])) for c, p in parent_of.items() if p == pid)
        return "nanny" if spawned else "worker"
    parent = parent_of.get(pid)
    if _is_spawned(args) and (parent == root or _is_nanny_command(cmdlines.get(parent, []))):
        return "worker"
    return "other"


@dataclass
class ProcessRecord:
    """Peaks (kB) of one process over the samples it was seen in."""

    pid: int
    role: str
    cmdline: list[str]
    first_s: float
    last_s: float = 0.0
    peak_rss_kb: int = 0
    peak_anon_kb: int = 0
    peak_file_kb: int = 0
    samples: int = 0

    def as_dict(self) -> dict:
        return {"pid": self.pid, "role": self.role, "cmdline": " ".join(self.cmdline)[:200],
                "seen_s": [round(self.first_s, 2), round(self.last_s, 2)], "samples": self.samples,
                "peak_rss_mib": round(self.peak_rss_kb / 1024, 1), "peak_anon_mib": round(self.peak_anon_kb / 1024, 1),
                "peak_file_mib": round(self.peak_file_kb / 1024, 1)}


@dataclass
class TreeSampler:
    """Sample the memory of ``root``'s process tree; call :meth:`sample` every interval."""

    root: int
    t0: float = field(default_factory=time.monotonic)
    records: dict[int, ProcessRecord] = field(default_factory=dict)
    peak_tree_rss_kb: int = 0
    peak_tree_anon_kb: int = 0
    n_samples: int = 0

    def sample(self) -> None:
        parent_of = parents()
        if self.root not in parent_of:
            return
        tree = descendants(self.root, parent_of)
        cmdlines = {pid: parse_cmdline(_read(PROC / str(pid) / "cmdline", binary=True) or b"") for pid in tree}
        now = time.monotonic() - self.t0
        total_rss = total_anon = 0
        for pid in tree:
            text = _read(PROC / str(pid) / "status")
            if not text:
                continue
            mem = parse_status(text)  # type: ignore[arg-type]
            record = self.records.get(pid)
            role = classify(pid, self.root, cmdlines, parent_of)
            if record is None:
                record = self.records[pid] = ProcessRecord(pid, role, cmdlines.get(pid, []), now)
            elif record.role == "other" and role != "other":
                record.role = role  # e.g. a nanny recognised once its worker has been spawned
            record.last_s, record.samples = now, record.samples + 1
            record.peak_rss_kb = max(record.peak_rss_kb, mem.get("VmRSS", 0))
            record.peak_anon_kb = max(record.peak_anon_kb, mem.get("RssAnon", 0))
            record.peak_file_kb = max(record.peak_file_kb, mem.get("RssFile", 0))
            total_rss += mem.get("VmRSS", 0)
            total_anon += mem.get("RssAnon", 0)
        self.peak_tree_rss_kb = max(self.peak_tree_rss_kb, total_rss)
        self.peak_tree_anon_kb = max(self.peak_tree_anon_kb, total_anon)
        self.n_samples += 1

    def by_role(self, role: str) -> list[ProcessRecord]:
        return [r for r in self.records.values() if r.role == role]


def memory_summary(sampler: TreeSampler) -> dict:
    """Peaks in MiB: client, worker maximum and each worker, tree totals, distinct worker pids."""
    def mib(kb: int) -> float:
        return round(kb / 1024, 1)

    client = sampler.records.get(sampler.root)
    workers = sorted(sampler.by_role("worker"), key=lambda r: r.first_s)
    return {
        "client_peak_rss_mib": mib(client.peak_rss_kb) if client else None,
        "client_peak_anon_mib": mib(client.peak_anon_kb) if client else None,
        "worker_peak_rss_mib": mib(max((w.peak_rss_kb for w in workers), default=0)),
        "worker_peak_anon_mib": mib(max((w.peak_anon_kb for w in workers), default=0)),
        "tree_peak_rss_mib": mib(sampler.peak_tree_rss_kb),
        "tree_peak_anon_mib": mib(sampler.peak_tree_anon_kb),
        "distinct_worker_pids": len(workers),
        "n_samples": sampler.n_samples,
        "processes": [r.as_dict() for r in sorted(sampler.records.values(), key=lambda r: r.first_s)],
    }


def machine() -> dict:
    """``nproc`` (CPUs this process may use), total RAM (GiB) and the host name."""
    total_kb = 0
    for line in (_read(PROC / "meminfo") or "").splitlines():  # type: ignore[union-attr]
        if line.startswith("MemTotal:"):
            total_kb = int(line.split()[1])
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
            "ram_gib": round(total_kb / 2**20, 2), "host": os.uname().nodename}
