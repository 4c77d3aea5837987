"""Shrinkage of local boxes toward the overall sharpening: the rule, the evidence a box records, the run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from localsharp.config import LocalOptions
from localsharp.engine import local_sharpen
from localsharp.maps.density import DensityMap
from localsharp.maps.mrc import read_map
from localsharp.sharpening.functions import Sharpening
from localsharp.sharpening.local_box import BoxOutcome, analyse_box, render_box
from localsharp.sharpening.shrinkage import WIDEN, shrink, shrunk_b_sharpen

DATA = Path(__file__).resolve().parent / "data"
HAEMOGLOBIN = DATA / "emd3488_haemoglobin" / "map.mrc"
RESOLUTION = 3.2
LOCAL = LocalOptions(box_size=32, stride=16, chunk=32)


def _row(b: float, span, method: str = "b_iso_to_d_cut") -> dict:
    sharpening = Sharpening(method=method, b_sharpen=b, k_sharpen=10.0, b_blur_hires=0.0, b_iso_target=50.0 - b)
    return BoxOutcome("sharpened", "test", sharpening, 50.0, 0.4, 1.0, 5.0, 0.1, span).to_dict() | {"index": 3}


@pytest.fixture(scope="module")
def crop() -> DensityMap:
    whole = read_map(HAEMOGLOBIN)
    return DensityMap(data=whole.data[18:82, 20:80, 22:78], voxel_size=whole.voxel_size, nstart=(22, 20, 18),
                      cell_grid=whole.cell_grid)


# ------------------------------------------------------------- the rule
@pytest.mark.parametrize("b, span, widen, expected", [
    (45.0, (30.0, 60.0), 1.0, 30.0),      # the plateau's end nearest the overall sharpening
    (45.0, (30.0, 60.0), 2.0, 15.0),      # widened around the pick
    (45.0, (30.0, 60.0), 0.0, 45.0),      # no shrinkage
    (20.0, (-10.0, 50.0), 1.0, 0.0),      # the plateau holds 0: keep the overall sharpening
    (-40.0, (-55.0, -25.0), 1.0, 0.0),    # a box never blurs the overall map, however sure its score
    (-40.0, (-55.0, -25.0), 3.0, 0.0),
    (-40.0, None, 1.0, 0.0),
    (-40.0, (-55.0, -25.0), 0.0, -40.0),  # no shrinkage (--no-shrink): the pick as found, blur included
    (45.0, None, 1.0, 45.0),              # no evidence of the curve's width: the pick is kept
])
def test_the_applied_b_sharpen_is_the_point_of_the_widened_plateau_nearest_zero(b, span, widen, expected) -> None:
    assert shrunk_b_sharpen(b, span, widen) == pytest.approx(expected)


def test_shrink_moves_the_sharpening_and_leaves_the_recorded_row_alone() -> None:
    row = _row(45.0, (30.0, 60.0))
    before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in row.items()}
    out = shrink(row, widen=1.0)
    assert row == before
    assert out["sharpening"]["b_sharpen"] == pytest.approx(30.0)
    assert out["sharpening"]["b_iso_target"] == pytest.approx(20.0)  # 50 - 30: the target moves with it
    assert out["b_sharpen_searched"] == 45.0 and out["b_sharpen_applied"] == pytest.approx(30.0)
    assert out["index"] == 3 and out["status"] == "sharpened"
    assert BoxOutcome.from_dict(out).sharpening.b_sharpen == pytest.approx(30.0)


def test_a_box_shrunk_to_zero_is_rendered_as_the_overall_map(crop: DensityMap) -> None:
    out = shrink(_row(20.0, (-10.0, 50.0)))
    assert out["sharpening"]["method"] == "no_sharpening" and out["b_sharpen_applied"] == 0.0
    assert out["status"] == "unsharpened" and "kept at the overall sharpening" in out["reason"]
    assert out["sharpening"]["b_blur_hires"] == 0.0  # the box job's settings are kept
    box = np.ascontiguousarray(crop.data[10:50, 10:50, 8:48])
    rendered = render_box(box, crop.voxel_size_zyx, RESOLUTION, BoxOutcome.from_dict(out))
    assert np.array_equal(rendered, box.astype(np.float32))


@pytest.mark.parametrize("row", [
    BoxOutcome("skipped", "solvent").to_dict(),
    BoxOutcome("unsharpened", "kept", Sharpening(method="no_sharpening", b_sharpen=0.0, k_sharpen=0.0)).to_dict(),
    _row(45.0, None),
])
def test_rows_without_a_b_type_sharpening_or_a_plateau_are_rendered_as_recorded(row) -> None:
    out = shrink(row)
    assert out["sharpening"] == row["sharpening"]
    assert out["b_sharpen_applied"] == (None if row["sharpening"] is None else row["sharpening"]["b_sharpen"])


def test_the_default_rule_shrinks() -> None:
    assert WIDEN > 0
    assert abs(shrink(_row(45.0, (30.0, 60.0)))["b_sharpen_applied"]) < 45.0


# ------------------------------------------------------------- the evidence a box records
@pytest.mark.slow
def test_a_box_records_its_score_noise_and_the_b_sharpen_within_it(crop: DensityMap) -> None:
    box = np.ascontiguousarray(crop.data[10:50, 10:50, 8:48])
    outcome = analyse_box(box, crop.voxel_size_zyx, RESOLUTION, 0.5, discard_if_worse=False)
    assert outcome.status == "sharpened"
    low, high = outcome.b_sharpen_within_noise
    assert low <= outcome.sharpening.b_sharpen <= high
    assert outcome.score_noise > 0
    again = BoxOutcome.from_dict(outcome.to_dict())
    assert again == outcome


def test_rows_recorded_without_the_new_fields_still_load() -> None:
    old = {"status": "sharpened", "reason": "r", "sharpening": Sharpening(b_sharpen=12.0).to_dict(),
           "b_iso_start": 40.0, "solvent_fraction": 0.5, "score": 1.0, "signal_to_noise": 4.0}
    outcome = BoxOutcome.from_dict(old)
    assert outcome.b_sharpen_within_noise is None and np.isnan(outcome.score_noise)
    assert shrink(old)["b_sharpen_applied"] == 12.0


# ------------------------------------------------------------- the run
@pytest.mark.slow
def test_a_run_renders_and_reports_the_shrunk_boxes(crop: DensityMap, tmp_path: Path) -> None:
    on = local_sharpen(crop, RESOLUTION, local=LOCAL, store=tmp_path / "on")
    off = local_sharpen(crop, RESOLUTION, local=dataclasses.replace(LOCAL, shrink=False),
                        store=tmp_path / "off")
    rows_on = {r["index"]: r for r in on.boxes if r["status"] != "skipped"}
    rows_off = {r["index"]: r for r in off.boxes if r["status"] != "skipped"}
    assert rows_on.keys() == rows_off.keys() and rows_on
    moved = 0
    for index, row in rows_on.items():
        recorded = rows_off[index]
        # without shrinkage every box applies its pick; with it, the table holds what was applied and
        # the search's pick beside it
        assert recorded["b_sharpen_applied"] == recorded["b_sharpen_searched"] == pytest.approx(
            recorded["sharpening"]["b_sharpen"])
        assert row["b_sharpen_searched"] == pytest.approx(recorded["sharpening"]["b_sharpen"])
        if recorded["sharpening"]["method"] in ("b_iso", "b_iso_to_d_cut"):
            expected = shrunk_b_sharpen(recorded["sharpening"]["b_sharpen"], recorded["b_sharpen_within_noise"])
            assert row["b_sharpen_applied"] == pytest.approx(expected)
            assert row["sharpening"]["b_sharpen"] == pytest.approx(expected)
            assert row["status"] == ("sharpened" if expected != 0.0 else "unsharpened")
            moved += expected != recorded["sharpening"]["b_sharpen"]
    assert moved > 0, "no box of the test map was shrunk; the test map does not exercise the rule"
    assert not np.array_equal(on.map.compute().data, off.map.compute().data)


@pytest.mark.slow
def test_the_b_sharpen_map_blends_the_applied_b_sharpen_like_the_map(crop: DensityMap, tmp_path: Path) -> None:
    result = local_sharpen(crop, RESOLUTION, local=LOCAL, store=tmp_path / "run")
    b_map = result.b_sharpen_map.compute()
    applied = [r["b_sharpen_applied"] for r in result.boxes if r["status"] != "skipped"]
    assert b_map.shape_xyz == crop.shape_xyz and b_map.origin == crop.origin and b_map.nstart == crop.nstart
    assert min(0.0, min(applied)) - 1e-3 <= b_map.data.min() and b_map.data.max() <= max(0.0, max(applied)) + 1e-3
    assert np.any(b_map.data != 0) == any(b != 0 for b in applied)
    if any(b != 0 for b in applied):  # the box of the largest |b| pulls the map that way near its centre
        peak = max(applied, key=abs)
        assert np.max(np.abs(b_map.data)) > 0.3 * abs(peak)


@pytest.mark.slow
def test_the_cli_writes_the_b_sharpen_map_with_the_input_header(crop: DensityMap, tmp_path: Path) -> None:
    from localsharp.cli import main
    from localsharp.maps.mrc import write_map

    write_map(tmp_path / "in.mrc", crop)
    out = tmp_path / "out"
    assert main(["local", str(tmp_path / "in.mrc"), "--resolution", str(RESOLUTION), "--box-size", "32",
                 "--stride", "16", "--chunk", "32", "--in-process", "--output-dir", str(out), "--quiet"]) == 0
    # read with mrcfile: every box of this crop picks a blur and keeps the overall sharpening, so the b_sharpen
    # map is all 0 (a constant map, which read_map refuses as an input)
    import mrcfile

    fields = ("nx", "ny", "nz", "nxstart", "nystart", "nzstart", "mx", "my", "mz", "cella", "mapc", "mapr", "maps",
              "origin")
    with mrcfile.open(out / "local_b_sharpen_map.ccp4") as written, \
            mrcfile.open(out / "local_sharpened_map.ccp4") as sharpened:
        for field in fields:
            assert np.asarray(written.header[field]).tolist() == np.asarray(sharpened.header[field]).tolist(), field
        assert np.isfinite(np.asarray(written.data)).all()


def test_a_blurring_box_is_rendered_as_the_overall_map(crop: DensityMap) -> None:
    out = shrink(_row(-40.0, (-55.0, -25.0)))
    assert out["sharpening"]["method"] == "no_sharpening" and out["b_sharpen_applied"] == 0.0
    assert out["b_sharpen_searched"] == -40.0 and "never blurs the overall map" in out["reason"]
    box = np.ascontiguousarray(crop.data[10:50, 10:50, 8:48])
    rendered = render_box(box, crop.voxel_size_zyx, RESOLUTION, BoxOutcome.from_dict(out))
    assert np.array_equal(rendered, box.astype(np.float32))


@pytest.mark.parametrize("b, span", [(12.0, [12.0, 20.0]), (7.25, [7.25, 7.25])])
def test_a_pick_at_the_edge_of_its_plateau_nearest_0_is_rendered_as_recorded(b: float, span: list[float]) -> None:
    # the plateau's end nearest 0 is the pick itself: nothing to shrink, the row is the recorded one
    row = {"index": 5, "status": "sharpened", "reason": "best score", "b_sharpen_within_noise": span,
           "sharpening": {"method": "b_iso_to_d_cut", "b_sharpen": b, "k_sharpen": 10.0, "b_iso_target": 0.1}}
    out = shrink(row)
    assert out["b_sharpen_applied"] == out["b_sharpen_searched"] == b
    assert {k: v for k, v in out.items() if k not in ("b_sharpen_applied", "b_sharpen_searched")} == row


# ------------------------------------------------------------- when the overall sharpening blurs the map
def test_every_box_keeps_an_overall_sharpening_that_blurs_the_map() -> None:
    row = _row(45.0, (30.0, 60.0)) | {"overall_blurs": True}
    out = shrink(row)
    assert out["sharpening"]["method"] == "no_sharpening" and out["b_sharpen_applied"] == 0.0
    assert out["b_sharpen_searched"] == 45.0 and "overall sharpening blurs the map" in out["reason"]
    assert shrink(row, widen=0.0)["b_sharpen_applied"] == 45.0  # --no-shrink: the pick as found
    assert shrink(_row(45.0, (30.0, 60.0)))["b_sharpen_applied"] == pytest.approx(30.0)


def test_a_run_whose_overall_sharpening_blurs_records_it_in_every_box_row() -> None:
    from localsharp.engine.local.run import overall_blurs
    from localsharp.engine.local.tasks import BoxJob, outcome_row
    from localsharp.sharpening.search import SearchConfig

    assert overall_blurs({"method": "b_iso_to_d_cut", "b_sharpen": -25.9})
    assert not overall_blurs({"method": "b_iso_to_d_cut", "b_sharpen": 82.2})
    assert not overall_blurs({"method": "no_sharpening", "b_sharpen": 0.0})
    outcome = BoxOutcome.from_dict(_row(45.0, (30.0, 60.0)))
    job = BoxJob("", 3.2, (1.0, 1.0, 1.0), SearchConfig(), True, 0.833, 10.0, overall_blurs=True)
    assert outcome_row(job, 7, outcome)["overall_blurs"] is True and outcome_row(job, 7, outcome)["index"] == 7
    plain = dataclasses.replace(job, overall_blurs=False)
    assert "overall_blurs" not in outcome_row(plain, 7, outcome)
