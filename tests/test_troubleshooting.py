"""docs/troubleshooting.md lists every error message the command line prints for a user mistake, and every one
is real: each row's example is run and must end with exactly that message (exit status 2, no traceback,
nothing left behind).  A message the code can raise that the table lacks fails the completeness test.

The table's rows are read from the document, so a row added there is tested without touching this
file.  In a message, ``…`` stands for any text (file names, numbers).  The examples run in a fresh
directory holding the files of :mod:`troubleshooting_files`; ``localsharp local`` examples that name
no cluster option run ``--in-process`` (the message is the same, no cluster is started).
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from localsharp.cli import COMMANDS, main
from localsharp.engine.cluster.slurm import have_jobqueue

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "troubleshooting.md"
BEGIN, END = "<!-- error table: begin -->", "<!-- error table: end -->"
#: Options that pick a cluster: a `local` example with none of them runs in this process.
CLUSTER_FLAGS = ("--workers", "--scheduler-file", "--scheduler-address", "--cluster", "--memory-limit", "--in-process",
                 "--jobs", "--adapt", "--wait-workers", "--cores", "--processes", "--memory", "--walltime", "--queue",
                 "--account", "--interface")
#: Messages of the code that no user mistake at the command line produces, with why (the completeness test
#: skips them): checks of the Python API, a file changed or removed while it is read, states the command line
#: prevents earlier.  Keyed by a fragment of the message's text.
NOT_FROM_THE_COMMAND_LINE = {
    "call local_sharpen(map, resolution": "the API's positional-argument check",
    "give either options= or keyword options": "the API's options check",
    "unknown option(s)": "the API's keyword options",
    "give half maps or a model for local sharpening": "the API (the command line refuses --half-maps with --model first)",
    "half maps: give exactly two": "the API (argparse takes exactly two)",
    "model mask radius must be positive": "the API (no command-line option sets it)",
    "model completeness must lie in": "the API (no command-line option sets it)",
    "mask radius must be positive, got": "the API (evaluate's --mask-radius is checked first)",
    "blur must be zero or positive": "an internal model-map check",
    "unknown sharpening method": "argparse offers only the known methods",
    "unknown sharpening target": "argparse offers only the known targets",
    "unknown region_weight_method": "argparse offers only the known rules",
    "needs half maps or a model and cannot be searched here": "argparse offers only searchable methods",
    "needs a shell scale-factor table": "an internal check of a Sharpening",
    "no searchable sharpening method was given": "argparse offers only searchable methods",
    "file changed since it was opened": "a file rewritten while the run reads it",
    "cannot read the file to checksum it": "a file removed while the run reads it",
    "already exists; use --overwrite (overwrite=True)": "the writers' check; the command line checks every output "
                                                         "first (except phantom-capsid, listed)",
    "cannot write there": "a directory made unwritable during the run (its writability is checked first)",
    "the segmentation box (box_in_auto_sharpen": "local takes no segmentation-box options",
    "a run store already exists; resume it with --resume": "listed (local_run.zarr left by --only-box)",
    "there is no run to resume here": "the API; the command line says `there is no run to resume there` first",
    "`sbatch --test-only` did not answer within": "a SLURM controller that does not answer",
    "no Fourier coefficient near resolution": "a phantom box smaller than its resolution: refused earlier",
    "the signal has no power at resolution": "a phantom of a model with no atoms: refused earlier",
    "resolution must be positive, got": "listed for evaluate (the model-map check behind it is the same)",
    "localsharp attributes describe shape": "an OME-Zarr image whose array was replaced by another shape",
    "unsupported OME-Zarr coordinate transformation": "listed",
    "only {index.size} Fourier terms lie between": "listed",
    "only {n_kept} Fourier terms lie between": "the distributed overall pass of a map too small for it",
    "file holds no 3-D map data": "mrcfile reads every valid header as 3-D",
    "SLURM refuses the worker job": "needs a SLURM cluster: described under the table (tests/test_deploy_slurm.py)",
    "no Dask worker connected within": "needs a SLURM cluster: described under the table",
    "no input: give a map, or two half maps": "the API (the command line's own message is listed)",
    "cannot be read: {exc.strerror": "the model's checksum after the model was read: a file removed meanwhile",
    "file is truncated: fewer voxels than its header says": "the header's size check refuses such a file first",
    "MTZ holds no reflections": "gemmi refuses an MTZ without reflections first (`not a readable MTZ file`)",
    "unknown layout": "argparse offers only the known layouts",
    "unknown noise reference": "argparse offers only box and molecule",
    "a search needs one solvent fraction per spectrum": "an internal check of the search's inputs",
    "blur-gain must be a number above 1": "the API (no command-line option sets it; tests/test_region.py)",
    "symmetry mates must be": "argparse offers only the known rules",
    "is a group with its orientation: give no orientation": "the API (a PointGroup given with an orientation): "
                                                            "tests/test_local_symmetry.py",
    "unknown point group family": "the API's point_group (a name is parsed first): tests/test_symmetry_groups.py",
    "O has one orientation here": "the API's point_group (`symmetry O takes no orientation` is said first): "
                                  "tests/test_symmetry_groups.py",
    "the recorded operators of": "a run store whose symmetry record holds operators this version does not make "
                                 "(no option writes them): tests/test_local_symmetry.py",
    "the output directory does not exist": "the output directory is made and checked before the lock is taken "
                                           "(removed in between): tests/test_faults.py",
    "cannot create the lock file of the run there": "the output directory is checked writable before the lock is "
                                                    "taken (made read-only in between): tests/test_faults.py",
    "cannot create the lock file ({exc.strerror})": "a file system that refuses the lock's hard link (described "
                                                    "under Disks and shared file systems): tests/test_faults.py",
}
#: Messages built by a helper function: the fragment of the helper's text the table must hold.
BUILT_BY_A_HELPER = {"_outside_message": "model lies outside the map"}


@dataclass(frozen=True)
class Row:
    message: str
    example: str
    remedy: str

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.example)
        assert words[0] == "localsharp", self.example
        argv = words[1:]
        if argv and argv[0] == "local" and not any(w.split("=")[0] in CLUSTER_FLAGS for w in argv):
            argv.append("--in-process")
        return argv

    @property
    def prefix(self) -> str:
        command = self.argv[0] if self.argv and self.argv[0] in COMMANDS else None
        return f"localsharp {command}: error: " if command else "localsharp: error: "

    def pattern(self) -> re.Pattern:
        return re.compile(re.escape(self.prefix) + ".*".join(re.escape(part) for part in self.message.split("…")) + "$")


def table_rows(text: str | None = None) -> list[Row]:
    """The rows of the error table of docs/troubleshooting.md."""
    text = DOC.read_text() if text is None else text
    if BEGIN not in text:
        return []
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))] if line.startswith("|") else []
        if len(cells) != 3 or cells[0] in ("message", "---") or not cells[1]:
            continue  # the header, and the rows naming a group
        message, example = (c.strip("`").strip() for c in cells[:2])
        rows.append(Row(message.replace("\\|", "|"), example.replace("\\|", "|"), cells[2]))
    return rows


ROWS = table_rows()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from troubleshooting_files import make_files

    return make_files(tmp_path_factory.mktemp("troubleshooting_files"))


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.slow
@pytest.mark.parametrize("row", ROWS, ids=[r.message[:60] for r in ROWS])
def test_every_message_in_the_table_is_what_its_example_prints(row: Row, files: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if "not seen as root" in row.remedy and os.geteuid() == 0:
        pytest.skip("root reads and writes every file: the permission message cannot be produced here")
    if "needs SLURM" in row.remedy and shutil.which("sbatch") is None:
        pytest.skip("a SLURM controller is needed for this message (tests/test_deploy_slurm.py)")
    if "without sbatch" in row.remedy and (shutil.which("sbatch") is not None or not have_jobqueue()):
        pytest.skip("sbatch is on PATH here, or dask-jobqueue is missing (its own message comes first)")
    if "dask-jobqueue is not installed" in row.message:
        monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed: find_spec and import fail
    from troubleshooting_files import place

    work = tmp_path / "work"
    shutil.copytree(files, work, symlinks=True)
    place(work, row.example)  # a run store records where its input lies: made again here
    monkeypatch.chdir(work)
    before = _listing(work)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main(row.argv)
    lines = err.getvalue().strip().splitlines()
    assert status == 2, f"{row.example}: exit status {status}\n{err.getvalue()}"
    assert "Traceback" not in err.getvalue()
    assert lines and row.pattern().match(lines[-1]), f"{row.example}\n  printed:  {lines[-1] if lines else ''}\n" \
                                                     f"  expected: {row.prefix}{row.message}"
    # a run that had started shows its progress lines first; nothing else comes before the message
    command = row.argv[0] if row.argv and row.argv[0] in COMMANDS else None
    for line in lines[:-1]:
        assert command and f"localsharp {command}: " in line and "error" not in line, lines
    assert out.getvalue() == ""
    assert _listing(work) == before, f"{row.example} left {sorted(_listing(work) - before)}"


def test_the_table_has_rows_and_each_example_names_a_command() -> None:
    assert len(ROWS) > 100
    for row in ROWS:
        assert row.example.startswith("localsharp"), row
        assert row.remedy, row


def _raised_messages() -> list[tuple[str, str]]:
    """(place, constant text of the message) of every user error the package raises."""
    names = {"ConfigError", "InputFileError", "OutputError"}
    trees = {path: ast.parse(path.read_text()) for path in sorted((ROOT / "localsharp").rglob("*.py"))}
    constants = {node.targets[0].id: node.value for tree in trees.values() for node in ast.walk(tree)
                 if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in names and node.exc.args):
                continue
            message = node.exc.args[-1]
            if isinstance(message, ast.Name):  # a module constant (INSTALL_HINT, MISSING_RESOLUTION)
                assert message.id in constants, f"{path}:{node.lineno}: constant {message.id} not found"
                message = constants[message.id]
            found.append((f"{path.relative_to(ROOT)}:{node.lineno}", _text(message)))
    return found


def _text(node: ast.AST) -> str:
    """The message with its variable parts as ``{…}`` (string constants, f-strings, + and implicit joins)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"
                       for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return "{" + ast.unparse(node) + "}"


def _fragments(text: str) -> list[str]:
    """The constant stretches of a message, longest first (at least 8 characters)."""
    while re.search(r"\{[^{}]*\}", text):  # innermost first: a variable part may hold an f-string of its own
        text = re.sub(r"\{[^{}]*\}", "\0", text)
    parts = [p.strip(" ;:,.()") for p in text.split("\0")]
    return sorted((p for p in parts if len(p) >= 8), key=len, reverse=True)


@pytest.mark.slow
def test_every_message_the_code_raises_is_in_the_table_or_marked_as_not_from_the_command_line() -> None:
    documented = " ".join(row.message for row in ROWS)
    missing = []
    for place, text in _raised_messages():
        if any(key in text for key in NOT_FROM_THE_COMMAND_LINE):
            continue
        helper = next((v for k, v in BUILT_BY_A_HELPER.items() if k in text), None)
        fragments = [helper] if helper else _fragments(text)
        if not fragments or not any(f in documented for f in fragments[:1]):
            missing.append(f"{place}: {text}")
    assert not missing, "messages missing from docs/troubleshooting.md:\n" + "\n".join(missing)
