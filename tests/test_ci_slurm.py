"""``.ci/slurm`` (run by ``.ci/run``): CI fails when the loopback SLURM cluster cannot start.

The script is run from a scratch copy of the checkout's layout in which ``deploy/slurm/up.sh`` fails
or succeeds on purpose and ``tests/test_deploy_slurm.py`` is a one-line test, so that its decisions
are checked without a cluster (the real deploy tests run in CI after the real ``up.sh``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_VAR = "LOCALSHARP_CI_SKIP_SLURM"


def _layout(tmp_path: Path, up_status: int) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "slurm", tmp_path / ".ci" / "slurm")
    deploy = tmp_path / "deploy" / "slurm"
    deploy.mkdir(parents=True)
    (deploy / "up.sh").write_text(f"echo 'up.sh: cannot start' >&2\nexit {up_status}\n")
    (deploy / "down.sh").write_text("echo down >> \"$(dirname \"$0\")/down.log\"\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_deploy_slurm.py").write_text(
        "import os\n\ndef test_asked_for():\n    assert os.environ['LOCALSHARP_SLURM'] == '1'\n")
    os.chmod(tmp_path, 0o755)
    for path in tmp_path.rglob("*"):
        os.chmod(path, 0o755)
    return tmp_path


def _run(root: Path, env: dict[str, str], user: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["bash", str(root / ".ci" / "slurm")]
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    clean = {k: v for k, v in os.environ.items() if k not in (SKIP_VAR, "LOCALSHARP_SLURM")}
    return subprocess.run(cmd, env={**clean, **env}, capture_output=True, text=True, cwd=root)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="checks the rule for a root machine")


@needs_root
@pytest.mark.parametrize("env", [{}, {SKIP_VAR: "1"}], ids=["plain", "opt-out ignored on root"])
def test_a_root_machine_whose_slurm_cannot_start_fails_ci(tmp_path: Path, env: dict[str, str]) -> None:
    root = _layout(tmp_path, up_status=1)
    done = _run(root, env)
    assert done.returncode == 1
    assert "ERROR: the loopback SLURM cluster could not be started" in done.stderr
    assert SKIP_VAR in done.stderr  # the log names the opt-out
    assert "passed" not in done.stdout
    assert (root / "deploy" / "slurm" / "down.log").read_text().count("down") == 1  # cleaned up what started


@needs_root
@pytest.mark.slow
def test_when_slurm_starts_the_deploy_tests_run_mandatory_and_the_cluster_is_stopped(tmp_path: Path) -> None:
    root = _layout(tmp_path, up_status=0)
    done = _run(root, {})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert (root / "deploy" / "slurm" / "down.log").read_text().count("down") == 1


@needs_root
def test_a_machine_without_root_may_opt_out_by_name_and_the_log_says_so(tmp_path: Path) -> None:
    if shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run the script as another user")
    import tempfile

    root = _layout(Path(tempfile.mkdtemp(prefix="ci_slurm_")), up_status=1)  # readable by another user
    try:
        done = _run(root, {SKIP_VAR: "1"}, user="nobody")
        without = _run(root, {}, user="nobody")  # without the opt-out, a machine without root fails too
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert f"{SKIP_VAR}=1 on a machine without root" in done.stderr and "NOT run" in done.stderr
    assert without.returncode == 1 and "could not be started" in without.stderr
