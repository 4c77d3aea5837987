"""The run summary: JSON content (versions, input checksums) and the human-readable table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

PACKAGES = ("localsharp", "numpy", "scipy", "numba", "mrcfile", "gemmi")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that shape the numbers."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Write JSON to an open temporary path (the caller renames it into place)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(content, fh, indent=2, allow_nan=False, default=json_default)
        fh.write("\n")


def jsonable(obj: Any) -> Any:
    """``obj`` with dataclasses turned into dicts and tuples into lists, recursively (for JSON)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def json_default(obj: Any) -> Any:
    """``json`` fallback for numpy values and paths."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def _within_noise(span: list[float] | None) -> str:
    """``"  (score within its noise for lo ... hi)"``: how sharply the score curve fixes b_sharpen."""
    if not span:
        return ""
    return f"  (score within its noise for {span[0]:.1f} ... {span[1]:.1f})"


#: Why a B_iso can be missing: the Wilson fit uses Fourier terms from 11.2 Å to the resolution (and 1.2 Å).
B_ISO_NOT_MEASURED = "not measured (the Wilson fit needs Fourier terms between 11.2 Å and the resolution)"


def _b_iso_text(summary: dict[str, Any]) -> str:
    b_in, b_out = summary.get("b_iso_input"), summary.get("b_iso_output")
    if b_in is None and b_out is None:
        return B_ISO_NOT_MEASURED
    return f"{_fmt(b_in) if b_in is not None else 'not measured'} -> {_fmt(b_out) if b_out is not None else 'not measured'}"


def _b_sharpen_text(summary: dict[str, Any]) -> str:
    """The applied b_sharpen; the search's pick and its bracket beside it when the pick was not applied."""
    applied = _fmt(summary["b_sharpen"])
    span = summary.get("b_sharpen_within_noise")
    choice = summary.get("search_choice") or {}
    if summary.get("discarded_as_worse") and choice:
        text = f"{applied}  (input kept; the search's pick was {choice['method']} b_sharpen {choice['b_sharpen']:.1f}"
        return text + (f", score within its noise for {span[0]:.1f} ... {span[1]:.1f})" if span else ")")
    return applied + _within_noise(span)


def _values_text(summary: dict[str, Any]) -> str:
    values = summary.get("values")
    if not values:
        return "-"
    out, given = values["output"], values["input"]
    if not values["rescaled"]:
        return f"the input's (kept unchanged): mean {given['mean']:.4g}, SD {given['sd']:.4g}"
    return (f"rescaled to mean {round(out['mean'], 3) + 0.0:g}, SD {round(out['sd'], 3):g} (the input: mean "
            f"{given['mean']:.4g}, SD {given['sd']:.4g}); contour levels in SD units carry over")


def _scale_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of the half-map and model modes: what their per-shell factors did (no search, no region weight)."""
    scale = summary.get("shell_scale") or {}
    shells = summary.get("shells") or []
    rows = []
    if shells:
        rows.append(("scale factors", f"{len(shells)} shells, centres {shells[0]['d']:.1f} ... {shells[-1]['d']:.2f} Å; "
                                      f"every Fourier term to d_min {summary['d_min']:.2f} Å is scaled"))
    fit = scale.get("equivalent_b_fit_A")
    rows.append(("equivalent b_sharpen (Å²)", _fmt(summary.get("equivalent_b_sharpen"))
                 + (f"  (the B of exp(B·s²/4) closest to the factors from {fit[0]:.1f} to {fit[1]:.2f} Å; "
                    "reporting only)" if fit else "")))
    if summary.get("box"):
        rows.append(("statistics from", summary["box"]["reason"]))
    return rows


def print_table(summary: dict[str, Any], outputs: dict[str, str], out: TextIO | None = None) -> None:
    """Short human-readable report of a sharpening run (to ``out``, default the current stdout).

    Each row says what the run applied; the half-map and model modes (per-shell factors, no
    search) show their factors' range and equivalent B instead of the search's rows.  Warnings
    are not repeated here: they were logged when they arose (and are in ``summary.json``).
    """
    out = out if out is not None else sys.stdout
    geo = summary.get("input", {}).get("geometry", {})
    shape = "x".join(str(n) for n in geo.get("shape_xyz", []))
    print(f"localsharp sharpen: {summary.get('input', {}).get('map', '?')}  ({shape} voxels, "
          f"resolution {summary['resolution']:.2f} Å, d_min {summary['d_min']:.2f} Å)", file=out)
    rows = [("mode / method", f"{summary['mode']} / {summary['method']}"),
            ("B_iso input -> output (Å²)", _b_iso_text(summary))]
    if summary["mode"] in ("half_map", "model"):
        rows += _scale_rows(summary)
    else:
        none = summary["method"] == "no_sharpening"
        rows += [
            ("b_sharpen (Å²)", _b_sharpen_text(summary)),
            ("target B_iso (Å²)", "- (no sharpening applied)" if none else _fmt(summary["target_b_iso"])),
            ("d_cut (Å) / k_sharpen / b_blur_hires", "- (no sharpening applied)" if none else
             f"{_fmt(summary['d_cut'], '.2f')} / {_fmt(summary['k_sharpen'])} / {_fmt(summary['b_blur_hires'])}"),
            ("solvent fraction (map / box)", f"{summary['solvent_fraction']:.3f} / {summary['box_solvent_fraction']:.3f}"),
            ("region weight", _fmt(summary["region_weight"], ".2f")),
            ("signal-to-noise", _fmt(summary["signal_to_noise"])),
            ("adjusted SA input -> output", f"{_fmt(summary['score']['input']['adjusted_sa'], '.3f')} -> "
                                            f"{_fmt(summary['score']['output']['adjusted_sa'], '.3f')}"),
        ]
    rows += [("output values", _values_text(summary)),
             ("applicable", f"{summary['applicable']['value']} ({summary['applicable']['reason']})")]
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", file=out)
    _print_trials(summary, out)
    for name, path in outputs.items():
        print(f"  wrote {name}: {path}", file=out)
    print(f"  time: {summary['timings_s'].get('total', 0.0):.2f} s", file=out)


def searched_trials(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Trial rows of each searched B-type method (those with a target B), in order of target B."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in summary.get("trials", []):
        if row.get("b_iso") is not None and row.get("method") in ("b_iso", "b_iso_to_d_cut"):
            groups.setdefault(row["method"], []).append(row)
    return {m: sorted(rows, key=lambda r: r["b_iso"]) for m, rows in groups.items()}


def _print_trials(summary: dict[str, Any], out: TextIO) -> None:
    """The trial table of every searched method; ``*`` marks the search's pick (even if the input was kept)."""
    groups = searched_trials(summary)
    choice = summary.get("search_choice") or {}
    if not groups:
        return
    several = len(groups) > 1
    assumed = "" if summary.get("b_iso_input") is not None else \
        f"; target_B from an assumed box B_iso of {_fmt(summary.get('b_iso_analysis_box'))} Å² (not measured)"
    print(f"  trials (* = the pick: the maximum of the smoothed score curve, scored; it can score below a grid "
          f"row{assumed}):", file=out)
    print("          target_B  b_sharpen  surf_area  regions  adjusted_SA  kurtosis" + ("  method" if several else ""),
          file=out)
    for method, rows in groups.items():
        for t in rows:
            picked = method == choice.get("method") and abs(t["b_sharpen"] - choice.get("b_sharpen", float("nan"))) < 1e-9
            print(f"         {'*' if picked else ' '}{_fmt(t['b_iso']):>8} {t['b_sharpen']:10.1f} "
                  f"{t['surface_area']:10.3f} {t['n_regions']:8d} {_fmt(t['adjusted_sa'], '.3f'):>12} "
                  f"{t['kurtosis']:9.2f}" + (f"  {method}" if several else ""), file=out)
    if summary.get("discarded_as_worse"):
        print("         (* the search's best; the input map scored higher and was kept)", file=out)
