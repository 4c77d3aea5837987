"""The scale benchmark's helpers: /proc readers, process roles, the tree sampler, result parsing."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _proctree as proctree  # noqa: E402
import bench_scale  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")


def test_status_of_this_process():
    mem = proctree.parse_status(Path("/proc/self/status").read_text())
    assert mem["VmRSS"] > 1000  # kB: a Python with numpy loaded
    assert 0 < mem["RssAnon"] <= mem["VmRSS"]
    assert mem["RssAnon"] + mem["RssFile"] + mem["RssShmem"] == mem["VmRSS"]


def test_parent_pid_from_stat_lines():
    assert proctree.parse_stat_ppid(Path("/proc/self/stat").read_text()) == os.getppid()
    assert proctree.parse_stat_ppid("77 (odd (name) x) S 45 77 77 0 -1") == 45


def test_cmdline_parsing():
    assert proctree.parse_cmdline(b"python\0-m\0localsharp\0") == ["python", "-m", "localsharp"]
    own = proctree.parse_cmdline(Path(f"/proc/{os.getpid()}/cmdline").read_bytes())
    assert any("pytest" in arg for arg in own)


def test_roles_of_a_real_tree():
    ctx = multiprocessing.get_context("spawn")
    spawned = ctx.Process(target=time.sleep, args=(20,))
    spawned.start()
    plain = subprocess.Popen(["sleep", "20"])
    try:
        deadline = time.monotonic() + 20
        while "spawn_main" not in Path(f"/proc/{spawned.pid}/cmdline").read_bytes().decode(errors="replace"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        me = os.getpid()
        parent_of = proctree.parents()
        tree = proctree.descendants(me, parent_of)
        assert tree[0] == me and {spawned.pid, plain.pid} <= set(tree)
        cmdlines = {p: proctree.parse_cmdline(Path(f"/proc/{p}/cmdline").read_bytes()) for p in tree}
        assert proctree.classify(me, me, cmdlines, parent_of) == "client"
        assert proctree.classify(spawned.pid, me, cmdlines, parent_of) == "worker"
        assert proctree.classify(plain.pid, me, cmdlines, parent_of) == "other"
        sampler = proctree.TreeSampler(me)
        sampler.sample()
        sampler.sample()
        summary = proctree.memory_summary(sampler)
        assert summary["distinct_worker_pids"] == 1 and summary["n_samples"] == 2
        assert 0 < summary["client_peak_anon_mib"] <= summary["client_peak_rss_mib"] <= summary["tree_peak_rss_mib"]
        assert summary["worker_peak_rss_mib"] > 0
    finally:
        spawned.terminate()
        plain.terminate()
        spawned.join(10)
        plain.wait(10)


def test_nanny_and_worker_of_a_dask_worker_command():
    nanny = ["/usr/bin/python", "/usr/bin/dask", "worker", "tcp://127.0.0.1:8786", "--nthreads", "1"]
    child = ["/usr/bin/python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)"]
    tracker = ["/usr/bin/python", "-c", "from multiprocessing.resource_tracker import main;main(5)"]
    cmdlines = {1: ["sh"], 10: nanny, 11: child, 12: tracker, 20: nanny + ["--no-nanny"]}
    parent_of = {10: 1, 11: 10, 12: 10, 20: 1}
    assert proctree.classify(10, 1, cmdlines, parent_of) == "nanny"
    assert proctree.classify(11, 1, cmdlines, parent_of) == "worker"
    assert proctree.classify(12, 1, cmdlines, parent_of) == "other"
    assert proctree.classify(20, 1, cmdlines, parent_of) == "worker"


def test_box_counts_and_stderr_signs():
    counts = bench_scale.box_counts({"n_boxes": 10, "boxes_by_status": {"sharpened": 6, "unsharpened": 1,
                                                                         "skipped_solvent": 3}})
    assert counts == {"total": 10, "searched": 7, "skipped": 3,
                      "by_status": {"sharpened": 6, "unsharpened": 1, "skipped_solvent": 3}}
    text = ("distributed.nanny - WARNING - Restarting worker\n"
            "distributed.worker.memory - WARNING - Worker is at 81% memory usage. Pausing worker.\n"
            "distributed.nanny - WARNING - Worker process 4242 was killed by signal 9\n"
            "localsharp local: warning: Worker process still alive after 4.0 seconds, killing\n"
            "all fine\n")
    signs = bench_scale.stderr_signs(text)
    assert signs["restarting"]["lines"] == 1 and signs["paused"]["lines"] == 1 and signs["memory"]["lines"] == 1
    assert signs["KilledWorker"]["lines"] == 0
    killed = "distributed.nanny - WARNING - Worker process 4242 was killed by signal 9"
    assert signs["worker_process"]["examples"] == [killed]
    assert signs["killed_at_shutdown"]["lines"] == 1


def test_tree_size_excludes_the_final_map(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "c0").write_bytes(b"x" * 100)
    (tmp_path / "map.ccp4").write_bytes(b"y" * 1000)
    total, allocated, count = bench_scale.tree_size(tmp_path)
    assert (total, count) == (1100, 2) and allocated >= 1100
    total, allocated, count = bench_scale.tree_size(tmp_path, {tmp_path / "map.ccp4"})
    assert (total, count) == (100, 1) and allocated >= 100
