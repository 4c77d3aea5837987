"""Diagnostic plots (matplotlib, Agg backend), each written to a given open path.

* :func:`plot_score_vs_b` — surface area, normalised regions and adjusted SA
  against target B (the paper's Fig. 3).
* :func:`plot_amplitudes` — mean amplitude against resolution before and after
  sharpening (the paper's Fig. 4).
* :func:`plot_fsc` — half-map FSC (or map–model correlation), CC* and the
  scale factor per shell.

Every line and band has a legend entry; :doc:`docs/plots.md` says how to read them.
"""

from __future__ import annotations

import math
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


def _save(fig: Any, path: Path, top: float = 0.93, bottom: float = 0.12,
          metadata: dict[str, str] | None = None) -> None:
    plt = _pyplot()
    fig.subplots_adjust(left=0.15, right=0.97, bottom=bottom, top=top, hspace=0.12)
    fig.savefig(path, format="png", dpi=90, metadata=metadata)
    plt.close(fig)


#: Panels of the score plot: summary key of each trial row and the axis label.
SCORE_PANELS = (("surface_area", "surface area\n(per contoured volume)"),
                ("normalized_regions", "regions\n(per target voxel)"),
                ("adjusted_sa", "adjusted surface area\n(the score maximised)"))
#: What the x axis of the score plot shows: the table's ``target_B`` column.
SCORE_X_LABEL = "target B_iso of the analysis box (Å²), the table's target_B; b_sharpen = B_iso(input) − target"
#: Plain-text powers of ten for log axes (mathtext costs ~0.3 s): 10⁻², 10⁰, 10³.
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def score_figure() -> tuple[Any, Any]:
    """The empty score plot (figure and its three axes), ready for :func:`plot_score_vs_b`.

    The plot process builds it while the run computes (about 10 ms of the
    ~125 ms the two plots take; rendering the PNG is the rest).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 7.2), sharex=True)
    for ax, (_, label) in zip(axes, SCORE_PANELS):
        ax.set_ylabel(label, fontsize="small")
    axes[-1].set_xlabel(SCORE_X_LABEL, fontsize="small")
    return fig, axes


def plot_score_vs_b(summary: dict[str, Any], path: Path, figure: tuple[Any, Any] | None = None) -> None:
    """Scores of every searched B-type method against target B (on ``figure`` if given).

    One curve per searched method (the rows of the printed trial table), the
    search's pick (dashed red line), the target B range whose score cannot be
    told from the pick's (red band), and the input map itself, b_sharpen 0
    (dotted grey line).  When the input map was kept because the whole input
    map scored higher than the whole sharpened map, the legend and title say so.
    """
    groups = searched_trials(summary)  # the same rows as the printed table
    fig, axes = figure if figure is not None else score_figure()
    choice = summary.get("search_choice") or {}
    kept = bool(summary.get("discarded_as_worse"))
    panels = SCORE_PANELS
    if summary.get("target") == "kurtosis":
        panels = SCORE_PANELS[:2] + (("kurtosis", "kurtosis\n(the score maximised)"),)
        axes[2].set_ylabel(panels[2][1], fontsize="small")
    for method, trials in groups.items():
        b = [t["b_iso"] for t in trials]
        for ax, (key, _) in zip(axes, panels):
            ax.plot(b, [t.get(key) if t.get(key) is not None else float("nan") for t in trials], "o-", ms=3,
                    label=f"trials, method {method}")
    if groups:
        if choice.get("target_b_iso") is not None:
            label = f"search's pick, target B {choice['target_b_iso']:.0f} Å²" + (" (not applied)" if kept else "")
            for ax in axes:
                ax.axvline(choice["target_b_iso"], color="tab:red", lw=1, ls="--", label=label)
        span, b0 = summary.get("b_sharpen_within_noise"), summary.get("b_iso_analysis_box")
        if span and b0 is not None:  # target B the score cannot tell from its optimum
            for ax in axes:
                ax.axvspan(b0 - span[1], b0 - span[0], color="tab:red", alpha=0.08, lw=0,
                           label="score within its noise of the pick")
        if b0 is not None:
            label = f"input map, b_sharpen 0 (B {b0:.0f} Å²)" + (": kept, it scored higher" if kept else "")
            for ax in axes:
                ax.axvline(b0, color="0.4", lw=1.2, ls=":", label=label)
        axes[0].legend(loc="best", fontsize="x-small", framealpha=0.8)
    else:
        axes[1].text(0.5, 0.5, "no search was run (fixed sharpening or scale factors)", ha="center",
                     transform=axes[1].transAxes)
    title = summary["method"]
    if kept and choice:
        title = f"{choice['method']}; input kept"
    axes[0].set_title(f"score vs target B ({title})", y=TITLE_Y)
    _save(fig, path)


def _log_ticks(ax: Any) -> None:
    """Major ticks at powers of ten labelled 10ⁿ in plain text, no minor ticks."""
    from matplotlib import ticker

    ax.yaxis.set_major_locator(ticker.LogLocator(base=10.0, numticks=12))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(
        lambda v, _: "" if v <= 0 else "10" + str(int(round(math.log10(v)))).translate(_SUPERSCRIPT)))
    ax.yaxis.set_minor_locator(ticker.NullLocator())  # dozens of unlabelled log ticks: ~1/3 of the drawing


#: Resolutions (Å) marked on the top axis of the plots against 1/d.
RESOLUTION_TICKS = (20.0, 10.0, 6.0, 5.0, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5)


def _resolution_axis(ax: Any) -> None:
    """A top axis in d (Å) over the bottom one in 1/d."""
    top = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
    low, high = ax.get_xlim()
    top.set_xticks([d for d in RESOLUTION_TICKS if low <= 1.0 / d <= high])
    top.set_xticklabels([f"{d:g}" for d in RESOLUTION_TICKS if low <= 1.0 / d <= high])
    top.set_xlabel("d (Å)", fontsize="small")


def _inverse(x: Any) -> Any:
    import numpy as np

    x = np.asarray(x, dtype=float)
    return np.divide(1.0, x, out=np.full_like(x, np.inf), where=x > 1e-9)


def amplitude_figure() -> tuple[Any, Any]:
    """The empty amplitude plot (figure and axes, log y), ready for :func:`plot_amplitudes`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_yscale("log")
    _log_ticks(ax)
    ax.set_xlabel("1/d (Å⁻¹)")
    ax.set_ylabel("mean |F| in the shell (arbitrary units)")
    return fig, ax


def plot_amplitudes(summary: dict[str, Any], path: Path, figure: tuple[Any, Any] | None = None) -> None:
    """Mean amplitude per shell before and after sharpening (log scale; on ``figure`` if given)."""
    amps = summary["amplitudes"]
    s = [1.0 / d for d in amps["d"]]
    fig, ax = figure if figure is not None else amplitude_figure()
    ax.plot(s, amps["before"], "o-", ms=3, label="input map (anisotropy removed)")
    ax.plot(s, amps["after"], "o-", ms=3, label="output map")
    ax.axvline(1.0 / summary["resolution"], color="grey", lw=1, ls="--",
               label=f"resolution {summary['resolution']:g} Å")
    _log_ticks(ax)
    _resolution_axis(ax)
    ax.legend(loc="lower left", fontsize="small")  # the curves start high on the left and fall
    ax.set_title("mean amplitude per resolution shell, input and output", y=1.14, fontsize="medium")
    _save(fig, path, top=0.82)


#: Builders of the empty figure of each plot that takes one (see :func:`score_figure`).
FIGURES = {"plot_score_vs_b": score_figure, "plot_amplitudes": amplitude_figure}

#: Curves of the shell plot: row key -> legend (half-map rows, then model rows).
SHELL_CURVES = {
    "fsc": "FSC of the two half maps (masked)",
    "fsc_corrected": "FSC after the tail correction (what CC* uses)",
    "cc_star": "CC* = √(2·FSC/(1+FSC)) of the corrected FSC",
    "cc": "map–model correlation (masked)",
    "cc_corrected": "map–model correlation, corrected for model error",
    "scale": "scale factor applied (largest = 1)",
}


def plot_fsc(shells: list[dict[str, Any]], path: Path, resolution: float) -> None:
    """FSC (or map–model correlation), its corrected form, CC* and the scale factor per shell."""
    s = [1.0 / row["d"] for row in shells]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    for key, label in SHELL_CURVES.items():
        if shells and shells[0].get(key) is not None:
            ax.plot(s, [row[key] for row in shells], "o-", ms=3, label=label)
    if shells and "fsc" in shells[0]:  # the threshold belongs to a half-map FSC, not to a map-model CC
        ax.axhline(0.143, color="grey", lw=0.8, ls=":", label="FSC = 0.143")
    ax.axvline(1.0 / resolution, color="grey", lw=1, ls="--", label=f"resolution {resolution:g} Å")
    ax.set_xlabel("1/d (Å⁻¹)")
    ax.set_ylabel("correlation, or relative scale factor")
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.05)
    _resolution_axis(ax)
    ax.legend(loc="upper center", bbox_to_anchor=(0.45, -0.13), ncol=2, fontsize="x-small", frameon=False)
    ax.set_title("per-shell statistics and the scale applied", y=1.14, fontsize="medium")
    _save(fig, path, top=0.84, bottom=0.26)
