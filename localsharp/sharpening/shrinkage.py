"""Shrinkage of a local box's sharpening toward the overall sharpening (docs/methods.md, local sharpening).

A local box is cut from the overall-sharpened map, so its search is relative to
the overall sharpening: ``b_sharpen = 0`` keeps it.  A 40³ box holds few
regions and its score curve is noisy, so the b_sharpen its search picks scatters
from box to box even where the true B does not change; rendering every box at
its pick makes the map worse than the overall sharpening alone.

:func:`shrink` maps a box's recorded outcome row to the row to render: the box
departs from the overall sharpening only as far as its own evidence requires.
The evidence is the range of b_sharpen whose smoothed score is within the
score curve's noise of the optimum (``b_sharpen_within_noise``, the plateau),
widened by :data:`WIDEN`: the applied b_sharpen is the value of that range
nearest to 0 (0 itself when the range holds 0).  A box whose curve is sharp
and whose optimum lies far from 0 keeps its pick; a box whose curve is flat or
noisy falls back to the overall sharpening.  Rows without a plateau (recorded
before it was stored) are rendered as recorded, but for the floor below.

A box never blurs the overall map: an applied b_sharpen below 0 becomes 0.
The adjusted surface area rewards blurring noise away, and a box holds more
noise for its signal than the whole molecule: in the solvent around a sparse
or noisy molecule boxes find "confident" blurs that the plateau cannot shrink
away (around a haemoglobin chain in a 60 Å-padded box 345 of 392 boxes still
blurred after it: picks −44 … −72 Å², S/N 11–20, plateaus 46–75 Å² wide).  How far the map as a whole may be
blurred is decided once, by the overall pass and its least-blur rule
(:mod:`.region`).  On the 10 sparse phantoms of ``benchmarks/quality_sparse.py``
the floor, with the render scale of :func:`~.local_box.band_scale`, took the
worst local − global from −0.054 to −0.0024; with the reference's render
scale it raised local − global on 4 of the 10 B-gradient phantoms below (by up
to 0.0037) and lowered none (``benchmarks/local_render_rules.py``;
docs/methods.md, local sharpening).

When the overall sharpening itself blurs the map (its least-blur rule found
that the whole map's score prefers a blur significantly over anything less
blurred, :mod:`.region`), every box keeps the overall sharpening: a box holds
less signal than the whole map, so its preference for less blur (boxes of a
single NTD at noise 2 sharpened a −25.9 Å² overall map back by a median
12.6 Å², with score gains of 1–2 × their curve's noise) goes against the
better-measured evidence of the whole map.  The box rows record it
(``overall_blurs``).

The rule is a pure function of the row and run-wide constants, so every
render task applies it on its own and the map does not depend on the number
of workers.

How the rule was chosen (``benchmarks/quality_local.py``, CC to the B = 0
model within 3 Å of atoms, local − global; ``benchmarks/results/quality_local.json``):
on four TUNE phantoms (B 20 → 200 Å² from centre to rim; haemoglobin single and
8 copies, spike NTD, 4 copies of the RdRp part) widen 0 (no shrinkage), 0.5, 1,
1.5, 2, 3 gave a mean of +0.0048, +0.0080, +0.0084, +0.0069, +0.0040, +0.0009
and a worst case of −0.0037, −0.0020, −0.0006, 0, 0, 0; widen 1 has the
best mean with a worst case inside 0.002, and beat the rules without the
plateau (all b_sharpen × 0.5: +0.0070, worst −0.0020; b·τ²/(τ² + σ²) with σ
half the plateau width, τ 20 / 40 Å²: +0.0060 / +0.0074, worst −0.0010 /
−0.0018).  On six CHECK phantoms (other seeds, noise 0.5–2, another
haemoglobin model, 8 spike copies) widen 1 gave a mean of +0.0078, worst 0; on
the real maps (never used for the choice) EMD-3488 −0.0010 (−0.0055 without
shrinkage), EMD-21457 0 (−0.0034), EMD-11007 crop +0.0023 (−0.0101).
"""

from __future__ import annotations

from typing import Any

#: Factor widening the plateau around the box's pick before the value nearest 0 is taken
#: (0: no shrinkage; 1: the plateau as the search measured it).
WIDEN = 1.0


def shrunk_b_sharpen(b_sharpen: float, within_noise: tuple[float, float] | list[float] | None,
                     widen: float = WIDEN) -> float:
    """The b_sharpen to apply: the point nearest 0 of the widened plateau around ``b_sharpen``, never below 0.

    Parameters
    ----------
    b_sharpen : float
        The box's pick (Å², relative to the overall sharpening).
    within_noise : (low, high) or None
        b_sharpen range the box's score cannot tell from its pick; None: no evidence of
        its width, the pick is kept (a blurring pick becomes 0).
    widen : float
        The range becomes ``[b − widen·(b − low), b + widen·(high − b)]`` (> 0); 0: no
        shrinkage at all, the pick is returned as it is (blurs included: ``--no-shrink``).

    Returns
    -------
    float
    """
    if widen <= 0:
        return float(b_sharpen)
    if within_noise is None:
        return max(0.0, float(b_sharpen))
    low, high = float(within_noise[0]), float(within_noise[1])
    low = b_sharpen - widen * max(0.0, b_sharpen - low)
    high = b_sharpen + widen * max(0.0, high - b_sharpen)
    return max(0.0, float(min(max(0.0, low), high)))


def shrink(row: dict[str, Any], widen: float | None = None) -> dict[str, Any]:
    """The outcome row to render for a box's recorded ``row`` (:meth:`BoxOutcome.to_dict` form).

    Only B-type sharpenings (a ``b_sharpen`` with a plateau) are changed: their
    ``b_sharpen`` becomes :func:`shrunk_b_sharpen` (0 when the row says the overall
    sharpening blurs the map: ``overall_blurs``), and a box shrunk to 0 is
    rendered unsharpened (the overall map's voxels; status ``"unsharpened"``,
    the reason says why).  The returned row is a new
    dict; it carries ``b_sharpen_applied`` (None for a box without a sharpening)
    and ``b_sharpen_searched``.  ``row`` is not modified.
    """
    widen = WIDEN if widen is None else float(widen)
    out = dict(row)
    sharpening = row.get("sharpening")
    if sharpening is None:
        out["b_sharpen_searched"] = out["b_sharpen_applied"] = None
        return out
    b = float(sharpening.get("b_sharpen") or 0.0)
    pick = row.get("b_sharpen_pick")  # the search's pick, when its least-blur rule moved it to ``b``
    out["b_sharpen_searched"] = b if pick is None else float(pick)
    if sharpening.get("method") not in ("b_iso", "b_iso_to_d_cut"):
        out["b_sharpen_applied"] = b if sharpening.get("method") != "no_sharpening" else 0.0
        return out
    held = widen > 0 and bool(row.get("overall_blurs"))
    applied = 0.0 if held else shrunk_b_sharpen(b, row.get("b_sharpen_within_noise"), widen)
    out["b_sharpen_applied"] = applied
    if applied == b:
        return out
    if applied == 0.0:
        out["sharpening"] = {**sharpening, "method": "no_sharpening", "b_sharpen": 0.0, "k_sharpen": 0.0,
                             "b_iso_target": None}
        out["status"] = "unsharpened"
        why = ("the overall sharpening blurs the map, and then every box keeps it" if held
               else f"the pick b_sharpen {b:.1f} blurs it, and a box never blurs the overall map" if b < 0
               else f"b_sharpen {b:.1f} is within the score's noise of 0")
        out["reason"] = f"{row.get('reason', '')}; kept at the overall sharpening: {why}"
    else:
        target = sharpening.get("b_iso_target")
        moved = None if target is None else float(target) + b - applied
        out["sharpening"] = {**sharpening, "b_sharpen": applied, "b_iso_target": moved}
        out["reason"] = f"{row.get('reason', '')}; applied b_sharpen {applied:.1f}, the value nearest 0 within " \
                        f"the score's noise of the pick {b:.1f}"
    return out


def applied_row(row: dict[str, Any], shrunk: bool = True) -> dict[str, Any]:
    """The row of what a box's render applies, for every report of the run (table, centres, report, --only-box).

    With ``shrunk`` (the model-free mode, unless shrinkage is off) it is :func:`shrink`'s row,
    otherwise the recorded row; either way with ``b_sharpen_searched`` (the search's pick, or the
    scale factors' equivalent B) and ``b_sharpen_applied`` (what the render applies).  The render
    tasks render exactly this row, so a report built from it says what the map got.
    """
    return shrink(row, None if shrunk else 0.0)
