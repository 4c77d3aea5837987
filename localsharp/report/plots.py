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


def plot_score_vs_b(summary: dict[str, Any], path: Path) -> None:
    """Scores of the trials of the chosen method against target B."""
    trials = [t for t in summary.get("trials", []) if t.get("method") == summary["method"] and t["b_iso"] is not None]
    trials.sort(key=lambda t: t["b_iso"])
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(6, 7), sharex=True)
    if trials:
        b = [t["b_iso"] for t in trials]
        for ax, key, label in zip(axes, ("surface_area", "normalized_regions", "adjusted_sa"),
                                  ("surface area / volume", "regions / target voxels", "adjusted SA")):
            ax.plot(b, [t[key] if t[key] is not None else float("nan") for t in trials], "o-", ms=3)
            ax.set_ylabel(label)
            if summary.get("target_b_iso") is not None:
                ax.axvline(summary["target_b_iso"], color="tab:red", lw=1, ls="--")
            span, b0 = summary.get("b_sharpen_within_noise"), summary.get("b_iso_analysis_box")
            if span and b0 is not None:  # target B the score cannot tell from its optimum
                ax.axvspan(b0 - span[1], b0 - span[0], color="tab:red", alpha=0.08, lw=0)
        axes[-1].set_xlabel("target B_iso of the map (Å²)")
    else:
        axes[1].text(0.5, 0.5, "no search was run (fixed sharpening or scale factors)", ha="center",
                     transform=axes[1].transAxes)
    axes[0].set_title(f"score vs B ({summary['method']})", y=TITLE_Y)
    _save(fig, path)


def plot_amplitudes(summary: dict[str, Any], path: Path) -> None:
    """Mean amplitude per shell before and after sharpening (log scale)."""
    amps = summary["amplitudes"]
    s = [1.0 / d for d in amps["d"]]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(s, amps["before"], "o-", ms=3, label="input (anisotropy removed)")
    ax.semilogy(s, amps["after"], "o-", ms=3, label="sharpened")
    ax.axvline(1.0 / summary["resolution"], color="grey", lw=1, ls="--", label="resolution")
    from matplotlib import ticker

    ax.yaxis.set_major_formatter(ticker.LogFormatter())  # plain labels: mathtext costs ~0.3 s
    ax.yaxis.set_minor_locator(ticker.NullLocator())  # dozens of unlabelled log ticks: ~1/3 of the drawing
    ax.set_xlabel("1/d (Å⁻¹)")
    ax.set_ylabel("mean |F| (arbitrary units)")
    ax.legend(loc="lower left")  # the curves start high on the left and fall; "best" costs a search
    ax.set_title("amplitude fall-off", y=TITLE_Y)
    _save(fig, path)


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
