"""Diagnostic plots (matplotlib, Agg backend), each written to a given open path.

* :func:`plot_score_vs_b` — surface area, normalised regions and adjusted SA
  against target B (the paper's Fig. 3).
* :func:`plot_amplitudes` — mean amplitude against resolution before and after
  sharpening (the paper's Fig. 4).
* :func:`plot_fsc` — half-map FSC, CC* and scale factors per shell.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .summary import searched_trials

_lock = threading.Lock()


def _pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend, imported on first use (it costs ~0.5 s)."""
    with _lock:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


def warm_up() -> None:
    """Import matplotlib and load its fonts (run in a background thread while computing)."""
    plt = _pyplot()
    with _lock:
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.set_xlabel("warm up")
        fig.canvas.draw()
        plt.close(fig)


#: A fixed title height: matplotlib's automatic one measures every axis's tight bounding box
#: (≈ 40 % of a plot's drawing time).
TITLE_Y = 1.01


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.93, hspace=0.12)
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)


#: Panels of the score plot: summary key of each trial row and the axis label.
SCORE_PANELS = (("surface_area", "surface area / volume"), ("normalized_regions", "regions / target voxels"),
                ("adjusted_sa", "adjusted SA"))


def score_figure() -> tuple[Any, Any]:
    """The empty score plot (figure and its three axes), ready for :func:`plot_score_vs_b`.

    The plot process builds it while the run computes (about 10 ms of the
    ~125 ms the two plots take; rendering the PNG is the rest).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(6, 7), sharex=True)
    for ax, (_, label) in zip(axes, SCORE_PANELS):
        ax.set_ylabel(label)
    axes[-1].set_xlabel("target B_iso of the map (Å²)")
    return fig, axes


def plot_score_vs_b(summary: dict[str, Any], path: Path, figure: tuple[Any, Any] | None = None) -> None:
    """Scores of every searched B-type method against target B (on ``figure`` if given).

    The search's pick is marked (dashed line), with the b_sharpen range its
    score cannot tell apart (shaded).  When the input map was kept because the
    whole input map scored higher than the whole sharpened map, the title says
    so (those whole-map scores are not on the scale of these box trials).
    """
    groups = searched_trials(summary)  # the same rows as the printed table
    fig, axes = figure if figure is not None else score_figure()
    choice = summary.get("search_choice") or {}
    for method, trials in groups.items():
        b = [t["b_iso"] for t in trials]
        for ax, (key, _) in zip(axes, SCORE_PANELS):
            ax.plot(b, [t[key] if t[key] is not None else float("nan") for t in trials], "o-", ms=3, label=method)
    if groups:
        if choice.get("target_b_iso") is not None:
            for ax in axes:
                ax.axvline(choice["target_b_iso"], color="tab:red", lw=1, ls="--")
        span, b0 = summary.get("b_sharpen_within_noise"), summary.get("b_iso_analysis_box")
        if span and b0 is not None:  # target B the score cannot tell from its optimum
            for ax in axes:
                ax.axvspan(b0 - span[1], b0 - span[0], color="tab:red", alpha=0.08, lw=0)
        if len(groups) > 1:
            axes[2].legend(loc="lower center", fontsize="small")
    else:
        axes[1].text(0.5, 0.5, "no search was run (fixed sharpening or scale factors)", ha="center",
                     transform=axes[1].transAxes)
    title = summary["method"]
    if summary.get("discarded_as_worse") and choice:
        title = f"{choice['method']}; input kept"
    axes[0].set_title(f"score vs B ({title})", y=TITLE_Y)
    _save(fig, path)


def amplitude_figure() -> tuple[Any, Any]:
    """The empty amplitude plot (figure and axes, log y), ready for :func:`plot_amplitudes`."""
    plt = _pyplot()
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.LogFormatter())  # plain labels: mathtext costs ~0.3 s
    ax.yaxis.set_minor_locator(ticker.NullLocator())  # dozens of unlabelled log ticks: ~1/3 of the drawing
    ax.set_xlabel("1/d (Å⁻¹)")
    ax.set_ylabel("mean |F| (arbitrary units)")
    return fig, ax


def plot_amplitudes(summary: dict[str, Any], path: Path, figure: tuple[Any, Any] | None = None) -> None:
    """Mean amplitude per shell before and after sharpening (log scale; on ``figure`` if given)."""
    amps = summary["amplitudes"]
    s = [1.0 / d for d in amps["d"]]
    fig, ax = figure if figure is not None else amplitude_figure()
    ax.plot(s, amps["before"], "o-", ms=3, label="input (anisotropy removed)")
    ax.plot(s, amps["after"], "o-", ms=3, label="sharpened")
    ax.axvline(1.0 / summary["resolution"], color="grey", lw=1, ls="--", label="resolution")
    ax.legend(loc="lower left")  # the curves start high on the left and fall; "best" costs a search
    ax.set_title("amplitude fall-off", y=TITLE_Y)
    _save(fig, path)


#: Builders of the empty figure of each plot that takes one (see :func:`score_figure`).
FIGURES = {"plot_score_vs_b": score_figure, "plot_amplitudes": amplitude_figure}


def plot_fsc(shells: list[dict[str, Any]], path: Path, resolution: float) -> None:
    """FSC, CC* (or model CC) and scale factor per shell."""
    s = [1.0 / row["d"] for row in shells]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("fsc", "cc_star", "cc", "cc_corrected", "scale"):
        if shells and key in shells[0]:
            ax.plot(s, [row[key] for row in shells], "o-", ms=3, label=key)
    ax.axhline(0.143, color="grey", lw=0.8, ls=":")
    ax.axvline(1.0 / resolution, color="grey", lw=1, ls="--")
    ax.set_xlabel("1/d (Å⁻¹)")
    ax.legend()
    ax.set_title("shell statistics", y=TITLE_Y)
    _save(fig, path)
