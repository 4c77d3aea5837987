"""The printed trial table and the score plot show what the search tried, also when the input was kept."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from localsharp.report.plots import plot_score_vs_b, score_figure
from localsharp.report.summary import print_table, searched_trials


def _summary(*, kept: bool, methods: tuple[str, ...] = ("b_iso_to_d_cut",)) -> dict:
    """A summary like ``SharpenResult.summary()`` gives for a search whose pick may have been discarded."""
    b_orig = 60.0
    trials = [{"method": m, "b_iso": b, "b_sharpen": b_orig - b, "surface_area": 3.0 - 0.001 * b,
               "normalized_regions": 0.01, "n_regions": 50, "adjusted_sa": 2.5 - ((b - 40.0) / 100.0) ** 2,
               "kurtosis": 20.0} for m in methods for b in map(float, range(-100, 301, 20))]
    choice = {"method": methods[0], "b_sharpen": 20.0, "target_b_iso": 40.0, "score": 2.5}
    return {"mode": "model_free", "method": "no_sharpening" if kept else methods[0],
            "b_sharpen": 0.0 if kept else 20.0, "target_b_iso": None if kept else 40.0,
            "discarded_as_worse": kept, "search_choice": choice, "trials": trials, "resolution": 3.0,
            "d_min": 2.5, "b_iso_input": b_orig, "b_iso_output": b_orig, "d_cut": 3.0, "k_sharpen": 10.0,
            "b_blur_hires": 200.0, "solvent_fraction": 0.8, "box_solvent_fraction": 0.7, "region_weight": 30.0,
            "signal_to_noise": 2.0, "score": {"input": {"adjusted_sa": 2.6}, "output": {"adjusted_sa": 2.6}},
            "applicable": {"value": not kept, "reason": "test"}, "b_iso_analysis_box": b_orig,
            "b_sharpen_within_noise": [0.0, 40.0], "target": "adjusted_sa", "warnings": [], "timings_s": {}}


def _table(summary: dict) -> str:
    out = io.StringIO()
    print_table(summary, {}, out=out)
    return out.getvalue()


def test_the_table_lists_the_search_when_the_input_was_kept() -> None:
    text = _table(_summary(kept=True))
    rows = [line for line in text.splitlines() if line.strip().endswith("20.00")]
    assert len(rows) == 21  # every grid trial, although the final method is no_sharpening
    marked = [line for line in rows if "*" in line]
    assert len(marked) == 1 and "   40.0" in marked[0]  # the search's pick, target B 40
    assert "input map scored higher and was kept" in text


def test_the_table_marks_the_pick_and_names_methods_when_several_were_searched() -> None:
    text = _table(_summary(kept=False, methods=("b_iso_to_d_cut", "b_iso")))
    rows = [line for line in text.splitlines() if line.rstrip().endswith(("b_iso", "b_iso_to_d_cut"))
            and "trials:" not in line and "mode" not in line]
    assert len(rows) == 42
    assert [line for line in rows if "*" in line] == [r for r in rows if "*" in r and r.endswith("b_iso_to_d_cut")]
    assert "was kept" not in text


def test_searched_trials_leave_out_fixed_and_shell_methods() -> None:
    summary = _summary(kept=False)
    summary["trials"].append({"method": "no_sharpening", "b_iso": None, "b_sharpen": 0.0})
    summary["trials"].append({"method": "resolution_dependent", "b_iso": 12.0, "b_sharpen": 0.0})
    assert list(searched_trials(summary)) == ["b_iso_to_d_cut"]


@pytest.mark.parametrize("kept", [False, True])
def test_the_score_plot_draws_the_curve_and_the_pick(tmp_path: Path, kept: bool) -> None:
    fig, axes = figure = score_figure()
    plot_score_vs_b(_summary(kept=kept), tmp_path / "score.png", figure)
    curves = [line for line in axes[2].get_lines() if len(line.get_xdata()) > 2]
    assert len(curves) == 1 and list(curves[0].get_xdata()) == list(range(-100, 301, 20))
    picks = [line for line in axes[2].get_lines() if len(set(line.get_xdata())) == 1]
    assert picks and picks[0].get_xdata()[0] == 40.0
    assert ("input kept" in axes[0].get_title()) is kept
    assert (tmp_path / "score.png").stat().st_size > 2000


@pytest.mark.slow
@pytest.mark.shared
def test_a_run_that_keeps_the_input_still_reports_its_search(rdrp_map: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    """RdRp: no sharpening scores above the input, which is kept; the table still shows the 21-point search."""
    from localsharp.cli import main

    rc = main(["sharpen", str(rdrp_map), "--resolution", "2.9", "--output-dir", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "no_sharpening" in text and "was kept" in text
    assert sum(1 for line in text.splitlines() if line.startswith("         ") and line.strip()[:1] in "*-0123456789") >= 21


# ------------------------------------------------ the table says what was applied
def _bracket_holds_the_shown_value(text: str) -> None:
    """Wherever a b_sharpen is followed by its bracket, the bracket holds that value."""
    import re

    found = 0
    for match in re.finditer(r"(-?\d+\.\d)[^\n(]*\(?[^\n]*?score within its noise for (-?\d+\.\d) \.\.\. (-?\d+\.\d)", text):
        line = text[text.rfind("\n", 0, match.start()) + 1:text.find("\n", match.end())]
        shown = re.findall(r"b_sharpen (-?\d+\.\d)", line) or [line.split()[2]]
        value, low, high = float(shown[-1]), float(match.group(2)), float(match.group(3))
        assert low - 0.05 <= value <= high + 0.05, line
        found += 1
    assert found, text


def test_a_kept_input_names_the_search_pick_its_bracket_belongs_to() -> None:
    summary = _summary(kept=True)
    summary["b_sharpen_within_noise"] = [5.0, 35.0]  # around the pick (20), not around the applied 0
    text = _table(summary)
    line = next(l for l in text.splitlines() if l.strip().startswith("b_sharpen (Å²)"))
    assert "input kept" in line and "pick was b_iso_to_d_cut b_sharpen 20.0" in line
    _bracket_holds_the_shown_value(line)
    assert "d_cut (Å) / k_sharpen / b_blur_hires  - (no sharpening applied)" in text


def test_an_applied_b_sharpen_sits_inside_its_bracket() -> None:
    _bracket_holds_the_shown_value(_table(_summary(kept=False)))


def test_the_trial_header_says_the_pick_comes_from_the_smoothed_curve() -> None:
    text = _table(_summary(kept=False))
    assert "* = the pick: the maximum of the smoothed score curve" in text


def test_an_unmeasured_b_iso_is_said_in_words() -> None:
    summary = _summary(kept=True)
    summary.update(b_iso_input=None, b_iso_output=None)
    line = next(l for l in _table(summary).splitlines() if "B_iso input -> output" in l)
    assert " - " not in line and line.rstrip()[-1] != "-" and "not measured" in line


def test_scale_factor_modes_show_their_factors_and_nothing_they_did_not_use() -> None:
    summary = _summary(kept=False)
    summary.update(mode="half_map", method="half_map_sharpening", b_sharpen=52.5, equivalent_b_sharpen=52.5,
                   target_b_iso=None, trials=[], search_choice=None, b_sharpen_within_noise=None,
                   shells=[{"d": 20.0}, {"d": 3.0}], box={"reason": "automatic molecule mask"},
                   shell_scale={"equivalent_b_fit_A": [20.0, 3.2]})
    text = _table(summary)
    assert "equivalent b_sharpen (Å²)   52.5" in text and "from 20.0 to 3.20 Å" in text
    assert "2 shells, centres 20.0 ... 3.00 Å" in text
    for unused in ("region weight", "target B_iso", "signal-to-noise", "adjusted SA", "d_cut", "  b_sharpen (Å²)"):
        assert unused not in text, unused


def test_the_output_values_row_says_whether_the_map_was_rescaled() -> None:
    summary = _summary(kept=False)
    summary["values"] = {"input": {"mean": 0.0123, "sd": 0.0456}, "output": {"mean": -1e-9, "sd": 1.0},
                         "rescaled": True}
    assert "rescaled to mean 0, SD 1 (the input: mean 0.0123, SD 0.0456)" in _table(summary)
    summary["values"]["rescaled"] = False
    assert "the input's (kept unchanged): mean 0.0123, SD 0.0456" in _table(summary)
