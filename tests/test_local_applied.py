"""Every report of a local run says what the boxes APPLIED: the terminal table, local_summary.json,
local_box_centres.pdb, ``--only-box`` and local_report.png agree box by box."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gemmi
import numpy as np
import pytest
from PIL import Image

from localsharp.cli import main
from localsharp.report.local_report import NUMBERS_KEY

DATA = Path(__file__).resolve().parent / "data"
TOUR_MAP = DATA / "emd3488_haemoglobin" / "map.mrc"


@pytest.fixture(scope="module")
def tour_run(tmp_path_factory: pytest.TempPathFactory):
    """``localsharp local`` on the tour map (in this process): its directory and terminal table."""
    out = tmp_path_factory.mktemp("applied") / "loc"
    capture = tmp_path_factory.mktemp("applied_out") / "stdout.txt"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = main(["local", str(TOUR_MAP), "--resolution", "3.2", "--in-process", "--output-dir", str(out)])
    assert rc == 0
    capture.write_text(buffer.getvalue())
    summary = json.loads((out / "local_summary.json").read_text())
    return out, buffer.getvalue(), summary


def _pdb_b_by_centre(path: Path) -> dict[tuple[float, float, float], tuple[float, float]]:
    structure = gemmi.read_structure(str(path))
    out = {}
    for residue in structure[0][0]:
        atom = residue[0]
        out[tuple(round(v, 2) for v in atom.pos.tolist())] = (atom.b_iso, atom.occ)
    return out


@pytest.mark.slow
def test_summary_pdb_only_box_and_report_agree_on_the_applied_b_sharpen(tour_run, capsys) -> None:
    out, table, summary = tour_run
    rows = [r for r in summary["boxes"] if r["status"] != "skipped"]
    assert rows
    for row in rows:
        applied = row["b_sharpen_applied"]
        # the row's sharpening is the one applied; the search's pick is beside it, named as such
        assert row["sharpening"]["b_sharpen"] == pytest.approx(applied)
        assert row["status"] == ("sharpened" if applied != 0.0 else "unsharpened")
        assert row["b_sharpen_searched"] is not None
    # a box shrunk to the overall sharpening is counted as kept, not sharpened
    assert any(r["b_sharpen_searched"] != 0.0 and r["b_sharpen_applied"] == 0.0 for r in rows), \
        "the tour map no longer has a box shrunk to the overall sharpening: the test proves nothing"
    by_status = {s: sum(r["status"] == s for r in summary["boxes"]) for s in summary["boxes_by_status"]}
    assert by_status == summary["boxes_by_status"]

    # local_box_centres.pdb: B = applied, occupancy by the applied status
    pdb = _pdb_b_by_centre(out / "local_box_centres.pdb")
    for row in rows:
        b, occupancy = pdb[tuple(round(v, 2) for v in row["centre_A"])]
        assert b == pytest.approx(row["b_sharpen_applied"], abs=0.01)
        assert occupancy == {"sharpened": 1.0, "unsharpened": 0.5}[row["status"]]

    # --only-box N prints the same applied value (and the search's pick beside it)
    for row in rows:
        assert main(["local", str(TOUR_MAP), "--resolution", "3.2", "--output-dir", str(out),
                     "--only-box", str(row["index"])]) == 0
        printed = capsys.readouterr().out
        applied = float(re.search(r"b_sharpen applied (-?[\d.]+) Å²", printed).group(1))
        assert applied == pytest.approx(row["b_sharpen_applied"], abs=0.051)
        assert f"status {row['status']}:" in printed
        if row["b_sharpen_searched"] != row["b_sharpen_applied"]:
            searched = float(re.search(r"search's pick (-?[\d.]+) Å²", printed).group(1))
            assert searched == pytest.approx(row["b_sharpen_searched"], abs=0.051)

    # local_report.png: the numbers its histograms show
    shown = json.loads(Image.open(out / "local_report.png").text[NUMBERS_KEY])
    applied = np.array([r["b_sharpen_applied"] for r in rows])
    assert shown["boxes_by_status"] == summary["boxes_by_status"]
    assert shown["n_b_sharpen_applied"] == applied.size
    assert shown["median_b_sharpen_applied"] == pytest.approx(float(np.median(applied)))
    assert shown["mean_b_sharpen_applied"] == pytest.approx(float(applied.mean()))

    # the terminal table: counts by applied status and the applied means
    sharpened = applied[applied != 0.0]
    assert summary["mean_b_sharpen_applied"] == pytest.approx(float(applied.mean()))
    assert summary["mean_b_sharpen_sharpened_boxes"] == (pytest.approx(float(sharpened.mean())) if sharpened.size
                                                         else None)
    line = next(l for l in table.splitlines() if l.strip().startswith("b_sharpen applied"))
    assert f"{applied.mean():.1f} Å² over all {applied.size} analysed" in line
    counts = next(l for l in table.splitlines() if l.strip().startswith("boxes as applied"))
    n_kept = summary["boxes_by_status"].get("unsharpened", 0)
    assert f"{n_kept} kept at the overall sharpening" in counts
    assert f"{summary['boxes_by_status'].get('sharpened', 0)} sharpened" in counts or sharpened.size == 0
