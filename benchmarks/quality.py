"""Quality on the real maps: CC to a B = 0 model map (``localsharp evaluate``) of the input, of our
automatic choice and of the reference engine's choice applied to the same map.

The reference's choice is applied with our own engine as ``b_iso_to_d_cut`` with the reference's
``b_sharpen`` (REFERENCE_ENGINE.md; "passes" uses this reading), and also as the reference's target
B_iso applied with our own B estimate (``b_iso=80``); the script also scans b_sharpen to show the
CC optimum, and bisects the edges of the "pass window": the b_sharpen values whose CC is at least
the reference choice's (how close to the reference a pick must land to meet the acceptance line).
Writes ``benchmarks/results/quality.json``.
"""

from __future__ import annotations

from _common import CASES, available, print_table, write_json


def _edge(cc, inside: float, outside: float, level: float, tol: float = 0.25) -> float:
    """Bisect the b_sharpen between ``inside`` (CC >= level) and ``outside`` (CC < level)."""
    while abs(outside - inside) > tol:
        mid = 0.5 * (inside + outside)
        if cc(mid) >= level:
            inside = mid
        else:
            outside = mid
    return inside


def pass_window(cc, b_ref: float, level: float, scan: dict) -> tuple[float, float]:
    """Interval of b_sharpen around ``b_ref`` whose CC is >= ``level`` (the CC curve is unimodal).

    ``scan`` (b_sharpen → CC, 20 Å² apart) brackets the edges; each is bisected to 0.25 Å².
    """
    lower = max([b for b, v in scan.items() if b < b_ref and v < level], default=b_ref - 100.0)
    upper = min([b for b, v in scan.items() if b > b_ref and v < level], default=b_ref + 100.0)
    return _edge(cc, b_ref, lower, level), _edge(cc, b_ref, upper, level)


def main() -> None:
    import localsharp

    rows, out = [], {}
    for name, case in CASES.items():
        if not available(case):
            print(f"skip {name}: {case['map']} missing")
            continue
        density = localsharp.read_map(case["map"])
        res = case["resolution"]

        def cc(m):
            return localsharp.evaluate_map(m, case["model"], res)["cc_mask"]

        cc_in = cc(density)
        auto = localsharp.global_sharpen(density, res)
        cc_auto = cc(auto.map)
        ref = localsharp.global_sharpen(density, res, b_sharpen=case["ref_b_sharpen"], methods=("b_iso_to_d_cut",))
        cc_ref = cc(ref.map)
        # the other reading of "the reference's choice": its target B_iso applied with our B estimate
        ref_target = localsharp.global_sharpen(density, res, b_iso=case["ref_target_b"], methods=("b_iso_to_d_cut",))
        cc_ref_target = cc(ref_target.map)
        scan = {b: cc(localsharp.global_sharpen(density, res, b_sharpen=b, methods=("b_iso_to_d_cut",)).map)
                for b in range(-80, 121, 20)}
        window = pass_window(lambda b: cc(localsharp.global_sharpen(density, res, b_sharpen=float(b),
                                                                    methods=("b_iso_to_d_cut",)).map),
                             case["ref_b_sharpen"], cc_ref, scan)
        s = auto.sharpening
        ok = cc_auto >= cc_ref and cc_auto >= cc_in - 0.003
        rows.append([name, res, round(cc_in, 4), round(cc_auto, 4), round(cc_ref, 4), round(cc_ref_target, 4), s.method,
                     round(s.b_sharpen, 1), "-" if auto.b_iso_input is None else round(auto.b_iso_input, 1),
                     "-" if auto.b_iso_output is None else round(auto.b_iso_output, 1),
                     f"{window[0]:.1f}..{window[1]:.1f}", "yes" if ok else "NO"])
        out[name] = {"resolution": res, "cc_input": cc_in, "cc_auto": cc_auto, "cc_reference_choice": cc_ref,
                     "cc_reference_target_b_with_our_b_estimate": cc_ref_target,
                     "b_sharpen_for_reference_target_b": ref_target.sharpening.b_sharpen,
                     "reference_b_sharpen": case["ref_b_sharpen"], "reference_target_b": case["ref_target_b"],
                     "method": s.method, "b_sharpen": s.b_sharpen, "target_b_iso": s.b_iso_target,
                     "b_iso_input": auto.b_iso_input, "b_iso_output": auto.b_iso_output,
                     "discarded_as_worse": auto.discarded, "signal_to_noise": auto.signal_to_noise,
                     "cc_scan_b_iso_to_d_cut": scan, "passes": ok,
                     "pass_window_b_sharpen": list(window)}
    print_table(["case", "res", "CC input", "CC ours", "CC ref b_sharpen", "CC ref target B", "method", "b_sharpen",
                 "B in", "B out", "pass window",
                 "ours>=ref & >=input-0.003"], rows)
    write_json("quality.json", {"benchmark": "CC to B=0 model within 3 Å of atoms", "results": out})


if __name__ == "__main__":
    main()
