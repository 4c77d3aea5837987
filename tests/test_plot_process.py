"""Plots drawn by the helper process (matplotlib imported beside the computation), with fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from localsharp.report.plot_process import PlotProcess, job

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _summary() -> dict:
    trials = [{"method": "b_iso_to_d_cut", "b_iso": b, "surface_area": 3.0 + 0.001 * b, "normalized_regions": 0.01,
               "adjusted_sa": 3.0 - ((b - 40.0) / 100.0) ** 2} for b in range(-100, 301, 20)]
    return {"method": "b_iso_to_d_cut", "trials": trials, "target_b_iso": 40.0, "resolution": 3.2,
            "amplitudes": {"d": [10.0, 6.0, 4.0, 3.2], "before": [100.0, 30.0, 8.0, 2.0], "after": [100.0, 40.0, 15.0, 5.0]}}


def _jobs(tmp_path: Path) -> list[dict]:
    return [job("plot_score_vs_b", tmp_path / "score.png", _summary()),
            job("plot_amplitudes", tmp_path / "amplitudes.png", _summary())]


def _is_png(path: Path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.slow
def test_the_child_draws_the_plots(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plotter = PlotProcess()
    plotter.submit(_jobs(tmp_path))
    with caplog.at_level(logging.INFO, logger="localsharp.report.plot_process"):
        plotter.finish()
    assert not [r for r in caplog.records if "failed" in r.getMessage()]  # drawn by the child, no fallback
    assert _is_png(tmp_path / "score.png") and _is_png(tmp_path / "amplitudes.png")


@pytest.mark.slow
def test_without_a_child_the_plots_are_drawn_here(tmp_path: Path) -> None:
    plotter = PlotProcess()
    plotter.close()  # e.g. the child could not start or was stopped
    plotter.submit(_jobs(tmp_path))
    plotter.finish()
    assert _is_png(tmp_path / "score.png") and _is_png(tmp_path / "amplitudes.png")


@pytest.mark.slow
def test_an_error_in_a_plot_is_raised_by_the_parent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The child answers ok=false; the parent redraws and raises the real error (no silent missing plot)."""
    broken = _summary()
    del broken["amplitudes"]
    plotter = PlotProcess()
    plotter.submit([job("plot_amplitudes", tmp_path / "amplitudes.png", broken)])
    with caplog.at_level(logging.INFO, logger="localsharp.report.plot_process"), pytest.raises(KeyError):
        plotter.finish()
    assert any("KeyError" in r.getMessage() for r in caplog.records)


def test_unknown_plots_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown plot"):
        job("plot_everything", Path("x.png"), {})



def _pixels(path: Path):
    from matplotlib import image

    return image.imread(path)


@pytest.mark.slow
@pytest.mark.parametrize("plot", ["plot_score_vs_b", "plot_amplitudes"])
def test_a_figure_built_in_advance_draws_the_same_picture(tmp_path: Path, plot: str) -> None:
    """The child builds empty figures while waiting; drawing on one gives the very picture of a fresh one."""
    import numpy as np

    from localsharp.report.plot_process import prepared_figures, render

    fresh, early = tmp_path / "fresh.png", tmp_path / "early.png"
    render([job(plot, fresh, _summary())])
    render([job(plot, early, _summary())], prepared_figures())
    assert _is_png(early)
    assert np.array_equal(_pixels(fresh), _pixels(early))


@pytest.mark.slow
def test_each_prepared_figure_serves_one_job(tmp_path: Path) -> None:
    """A second plot of the same kind gets a new figure (it is not drawn over the first one's)."""
    import numpy as np

    from localsharp.report.plot_process import prepared_figures, render

    paths = [tmp_path / f"score{i}.png" for i in range(2)]
    render([job("plot_score_vs_b", p, _summary()) for p in paths], prepared_figures())
    assert np.array_equal(_pixels(paths[0]), _pixels(paths[1]))
