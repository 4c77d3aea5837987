"""Local render rules: re-render recorded local runs with one part of the rule changed at a time.

A local run's box searches are recorded in its store; the blend pass (render + shrinkage) is a pure
function of those rows, so a rule is measured by removing the store's output and resuming (no new
search).  Factors:

* render scale (``--scales``): ``ref`` (the reference's: the box's mean and SD), ``band`` (the
  soft-edged box's in-band power), ``masked`` (the soft-edged box's SD, band and beyond), ``mb``
  (in-band power times SD(box)/SD(soft-edged box): localsharp's rule), ``refband`` (the SD of the box
  low-passed to the band), ``refmm``, ``geo<a>``, ``mgeo<a>``, ``cap<c>``, ``mcap<c>`` (hybrids);
* shrinkage (``--rules``): ``D`` (the plateau rule without the no-blur floor), ``F`` (with the floor),
  ``G<k>`` / ``FG<k>`` (a box departs from the overall sharpening only when its smoothed score gain at
  the pick over b_sharpen 0 exceeds k x the curve's noise), ``Z`` (every box at 0: the overall map).

Usage::

    python benchmarks/local_render_rules.py search NAME[,NAME]          # record a store (with score curves)
    python benchmarks/local_render_rules.py NAMES SCALES RULES [LOG]     # re-render, one JSON line per render
    python benchmarks/local_render_rules.py table LOG [LOG ...]          # local - global per case
    python benchmarks/local_render_rules.py collect LOG [LOG ...]        # write results/local_render_rules.json
    python benchmarks/local_render_rules.py edge NAME RESOLUTION          # the render scale's soft-edge factor

NAMES: quality_sparse.py phantoms (cached in ``$LOCALSHARP_BENCH_CACHE``), quality_local.py phantoms
(``ph_*``, made in WORK/ql), ``fa`` (the fixed-answer phantom), real maps (``_common.CASES``, and
``quality_sparse.EXTRA_CASES`` under ``$LOCALSHARP_EXTRA_DATA``).  Stores live in ``$LOCALSHARP_RULES_WORK``
(default /tmp/localsharp-rules).  Runs in this process (no cluster): one core.
"""
import json, os, shutil, sys, time
from pathlib import Path
import numpy as np
WT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, WT); sys.path.insert(0, WT + "/benchmarks")
os.environ.setdefault("LOCALSHARP_FFT_WORKERS", "1")
import localsharp
from localsharp.config import LocalOptions
from localsharp.engine.local import tasks as T
from localsharp.sharpening import local_box as LB, shrinkage
from localsharp.sharpening.curve import smoothed_curve
from localsharp.sharpening.search_types import PEAK_BANDWIDTH_STEPS
from quality_modes import CachedEvaluator
import quality_sparse as QS
from _common import CASES

ROOT = Path(os.environ.get("LOCALSHARP_RULES_WORK", "/tmp/localsharp-rules"))


def case(name):
    if name == "fa":
        import fixed_answers as FA
        from localsharp.phantom import phantom
        out = ROOT / "fa" / "phantom"
        if not (out / "phantom.json").exists():
            spec = {k: v for k, v in FA.PHANTOM.items() if k != "model"}
            phantom(FA.PHANTOM["model"], out, overwrite=True, **spec)
        return localsharp.read_map(out / "full_map.mrc"), out / "model_b0.cif", FA.PHANTOM["resolution"]
    if name in QS.PHANTOMS:
        mp, model, res = QS.make_phantom(name)
        return localsharp.read_map(mp), model, res
    if name.startswith("ph_"):
        import quality_local as QL
        from localsharp.phantom import phantom
        d = ROOT / "ql" / name
        if not (d / "phantom.json").exists():
            model, copies, seed, noise, _ = QL.PHANTOMS[name]
            phantom(QL.assembly(model, copies), d, voxel=1.0, resolution=QL.RESOLUTION, noise=noise, seed=seed,
                    b_core=20.0, b_edge=200.0, overwrite=True)
        return localsharp.read_map(d / "full_map.mrc"), d / "model_b0.cif", 3.5
    if name in CASES:
        c = CASES[name]
        return localsharp.read_map(c["map"]), Path(c["model"]), float(c["resolution"])
    folder, m, mod, res = QS.EXTRA_CASES[name]
    e = Path(os.environ.get("LOCALSHARP_EXTRA_DATA", "/work/extra_data")) / folder
    return localsharp.read_map(e / m), e / mod, res


# ---------------------------------------------------------------- render scales
ORIG = LB._apply
SCALE = ["ref"]


def _band_ratio(spectrum, f):
    power = np.abs(spectrum.coeffs).astype(np.float64) ** 2 * spectrum.weight
    after = float(np.dot(power, np.square(f, dtype=np.float64)))
    before = float(power.sum())
    return float(np.sqrt(before / after)) if after > 0 and before > 0 else 1.0


def _band_sd(values, spectrum):
    from localsharp.kernels import fourier
    full = fourier.to_coefficients(np.ascontiguousarray(values, dtype=np.float32)).ravel()
    c = full[spectrum.index]
    # the same normalisation as M: render of these coefficients
    import dataclasses
    m = dataclasses.replace(spectrum, coeffs=c.astype(np.complex64)).render(None, sigma_scaled=False, workers=1)
    return float(m.std())


def _apply_x(values, spectrum, mask, sharpening, unscaled=None, factors=None, inside=None):
    kind = SCALE[0]
    if inside is not None:
        raise RuntimeError("ball path not covered")
    f = LB._shared_factors(sharpening, spectrum) if factors is None else factors
    M = spectrum.render(f, sigma_scaled=False, workers=1) if unscaled is None else unscaled
    M = M - np.float32(M.mean())
    sdM = float(M.std())
    vm = values if mask is None else values * mask
    r_ref = float(values.std()) / sdM if sdM > 0 else 1.0
    r_band = _band_ratio(spectrum, f)
    r_mask = float(vm.std()) / sdM if sdM > 0 else 1.0
    base = float(vm.mean())
    if kind == "ref":  # main's rule before this change: the box's mean and SD
        r, base = r_ref, float(values.mean())
    elif kind == "band":
        r = r_band
    elif kind == "refmm":  # reference scale, masked mean
        r = r_ref
    elif kind == "masked":  # all the power of the soft-edged box (band and beyond)
        r = r_mask
    elif kind == "mb":  # band power times the mask term SD(v)/SD(v m)
        r = r_band * float(values.std()) / float(vm.std())
    elif kind.startswith("mbp"):  # band * (mask term)^a
        a = float(kind[3:]); r = r_band * (float(values.std()) / float(vm.std())) ** a
    elif kind == "refband":  # target SD: the unmasked box low-passed to the band
        r = float(_band_sd(values, spectrum)) / sdM
    elif kind.startswith("geo"):  # band * (ref/band)^a
        a = float(kind[3:]); r = r_band * (r_ref / r_band) ** a
    elif kind.startswith("mgeo"):  # band * (masked/band)^a
        a = float(kind[4:]); r = r_band * (r_mask / r_band) ** a
    elif kind.startswith("cap"):  # ref capped at c x band
        c = float(kind[3:]); r = min(r_ref, c * r_band)
    elif kind.startswith("mcap"):
        c = float(kind[4:]); r = min(r_mask, c * r_band)
    else:
        raise ValueError(kind)
    out = M * np.float32(r) + np.float32(base)
    if mask is None:
        return out.astype(np.float32)
    return (out * mask + values * (1.0 - mask)).astype(np.float32)


LB._apply = _apply_x


# ---------------------------------------------------------------- rules
def with_b(row, b):
    out = shrinkage.shrink(row, widen=0.0)
    s = row.get("sharpening")
    if not s or s.get("method") not in ("b_iso", "b_iso_to_d_cut"):
        return out
    if b == 0.0:
        out["sharpening"] = {**s, "method": "no_sharpening", "b_sharpen": 0.0, "k_sharpen": 0.0, "b_iso_target": None}
        out["status"] = "unsharpened"
    else:
        out["sharpening"] = {**s, "b_sharpen": float(b)}
    out["b_sharpen_applied"] = float(b)
    return out


def gain_noise(row):
    c = row.get("curve")
    if not c:
        return None
    b = np.array(c["b_sharpen"]); y = np.array(c["score"])
    tgt = c["b_orig"] - b
    x, v = smoothed_curve(tgt, y, PEAK_BANDWIDTH_STEPS * float(np.median(np.abs(np.diff(tgt)))))
    i0 = int(np.argmin(np.abs(x - c["b_orig"])))
    return float(v.max() - v[i0]), float(c["noise"])


def plateau(row, widen=1.0):
    """The plateau shrinkage alone (no floor, no hold): the point nearest 0 of the widened plateau."""
    out = shrinkage.shrink(row, widen=0.0)
    s, span = row.get("sharpening"), row.get("b_sharpen_within_noise")
    if not s or s.get("method") not in ("b_iso", "b_iso_to_d_cut") or span is None:
        return out
    b = float(s["b_sharpen"])
    low = b - widen * max(0.0, b - float(span[0]))
    high = b + widen * max(0.0, float(span[1]) - b)
    applied = float(min(max(0.0, low), high))
    return out if applied == b else with_b(row, applied)


def make_rule(name):
    """D: the plateau shrinkage without the no-blur floor; F: + no-blur floor; H<rule>: see below; G<k>: + gate k x noise (noise at floor -> no evidence);
    FG<k>: both; Z: all boxes at 0 (= overall map)."""
    if name == "Z":
        return lambda row: with_b(row, 0.0)
    if name.startswith("H"):  # H<rule>: <rule>, and every box at 0 when the overall sharpening blurs the map
        inner = make_rule(name[1:])
        return lambda row: with_b(row, 0.0) if OVERALL_BLURS[0] else inner(row)
    floor = name.startswith("F")
    k = float(name.split("G")[1]) if "G" in name else None

    def rule(row):
        d = plateau(row)
        b = d.get("b_sharpen_applied")
        s = row.get("sharpening")
        if b is None or not s or s.get("method") not in ("b_iso", "b_iso_to_d_cut") or b == 0.0:
            return d
        if floor and b < 0:
            return with_b(row, 0.0)
        if k is not None:
            gn = gain_noise(row)
            if gn is not None:
                gain, noise = gn
                if noise <= 1e-9 or gain <= k * noise:
                    return with_b(row, 0.0)
        return d
    return rule


OVERALL_BLURS = [False]


def rerender(name, scales, rules, log):
    from localsharp.maps.store import RunStore
    density, model, res = case(name)
    cc = CachedEvaluator(density, model, res)
    store = ROOT / "stores" / name
    overall = RunStore(store).record("overall")
    OVERALL_BLURS[0] = overall["method"] in ("b_iso", "b_iso_to_d_cut") and float(overall["b_sharpen"] or 0) < 0
    for scale in scales:
        SCALE[0] = scale
        for rname in rules:
            if rname == "Z" and scale != scales[0]:
                continue
            rule = make_rule(rname)
            T.applied_row = lambda row, shrunk=True, rule=rule: rule(row) if shrunk else shrinkage.applied_row(row, False)
            t = time.perf_counter()
            try:
                shutil.rmtree(store / "output.ome.zarr", ignore_errors=True)
                again = localsharp.local_sharpen(density, res, store=store, local=LocalOptions(symmetry_mates="nearest"), resume=True)
                value = cc(again.map.compute())
            finally:
                T.applied_row = shrinkage.applied_row
            rec = {"case": name, "scale": scale if rname != "Z" else "-", "rule": rname, "cc": value,
                   "t": time.perf_counter() - t}
            print(json.dumps(rec), flush=True)
            with open(log, "a") as fh:
                fh.write(json.dumps(rec) + "\n")


def _search_row(job, box, arrays, molecule, atoms=None):
    sf = 1.0 - float(molecule.mean())
    outcome, spectrum, mask, result, _ = LB._analyse(arrays["data"], job.voxel_zyx, job.resolution, sf, job.search,
                                                     job.soft_edge, job.d_min_ratio, job.discard_if_worse,
                                                     keep_map=False)
    row = {"index": box.index, **outcome.to_dict()}
    if result is not None:
        m = next((m for m in result.methods if m.method == "b_iso_to_d_cut"), None)
        if m is not None:
            tr = m.trials
            row["curve"] = {"b_orig": result.b_iso_original, "b_sharpen": [t.sharpening.b_sharpen for t in tr],
                            "score": [t.score(result.target, result.region_weight) for t in tr],
                            "noise": m.noise, "sn": m.signal_to_noise}
    return row


def search(name):
    density, model, res = case(name)
    store = ROOT / "stores" / name
    orig = T._search_row
    T._search_row = _search_row
    t = time.perf_counter()
    try:
        r = localsharp.local_sharpen(density, res, store=store, local=LocalOptions(symmetry_mates="nearest"),
                                     overwrite=True)
    finally:
        T._search_row = orig
    cc = CachedEvaluator(density, model, res)
    print(name, "local", cc(r.map.compute()), r.overall.get("b_sharpen"), time.perf_counter() - t, flush=True)


def table(logs):
    """Print local - global (global: rule Z, else quality_sparse.json's cc_rule) per scale/rule and case."""
    SPARSE = "ico_7A ico_7A_m shell_n1 shell_7A fil_n1 fil_n1_m single_n2 single_n2_m singlehb_n1 singlehb_7A".split()
    BGRAD = "ph_hb_s0_n1 ph_hb8_s0_n1 ph_spike_s0_n1 ph_rdrp4_s0_n1 ph_hb_s1_n2 ph_hb_s2_n05 ph_hb8_s1_n2 ph_5me2_s1_n1 ph_spike8_s2_n1 ph_rdrp_s1_n05".split()
    REAL = "emd3488 emd21457 emd11007 emd1997 emd5168".split()
    GLOBAL_SPARSE = {k: v["cc_rule"] for k, v in json.load(open(Path(WT) / "benchmarks/results/quality_sparse.json"))["cases"].items()}
    cc = {}; Z = {}
    for f in logs:
        for l in open(f):
            d = json.loads(l)
            if d["rule"] == "Z": Z[d["case"]] = d["cc"]
            else: cc[(d["case"], d["scale"], d["rule"])] = d["cc"]
    combos = sorted({(s, r) for _, s, r in cc})
    def g(c): return Z.get(c, GLOBAL_SPARSE.get(c))
    for label, names in (("sparse", SPARSE), ("bgrad", BGRAD), ("real", REAL), ("fixed-answer phantom", ["fa"])):
        names = [n for n in names if any(k[0] == n for k in cc)]
        if not names: continue
        print(f"== {label}: local - global (global from rule Z)")
        print("%-14s" % "scale/rule" + "".join("%9s" % n[:9] for n in names) + "   mean    min  npass")
        for s, r in combos:
            ds = [cc.get((n, s, r)) for n in names]
            if all(x is None for x in ds): continue
            row = [None if x is None else x - g(n) for x, n in zip(ds, names)]
            have = [x for x in row if x is not None]
            print("%-14s" % f"{s}/{r}" + "".join("%9s" % ("" if x is None else f"{x:+.4f}") for x in row)
                  + f" {sum(have)/len(have):+.4f} {min(have):+.4f} {sum(x >= -0.002 for x in have)}/{len(have)}")
        print("%-14s" % "global" + "".join("%9.4f" % g(n) for n in names))



def edge_terms(name, resolution, box_size=40, stride=20):
    """Per searched box of a recorded run (default box size and stride): SD(box)/SD(box·m), the render
    scale's soft-edge factor; printed with its rank correlations with the box core's distance from the
    map centre and with SD(core)/SD(box)."""
    import glob
    import zarr
    from scipy.stats import spearmanr
    from localsharp.kernels.masks import box_edge_mask
    from localsharp.maps.store import RunStore
    from localsharp.tiling.boxes import BoxGrid
    path = ROOT / "stores" / name
    overall = RunStore(path).record("overall")
    data = np.asarray(zarr.open_array(str(path / "overall"), mode="r")[...])
    voxel = float(case(name)[0].voxel_size[0])
    region = tuple(tuple(b) for b in overall["molecule_bounds_zyx"])
    grid = BoxGrid.build(data.shape, box_size, stride, int(round(1.5 * resolution / voxel)), region)
    rows = []
    for f in sorted(glob.glob(str(path / "records" / "boxes" / "*.json"))):
        rows += json.load(open(f))["value"]
    centre = (np.array(data.shape) - 1) / 2
    out = []
    for r in rows:
        if r["status"] == "skipped":
            continue
        box = grid.box(r["index"])
        v = data[tuple(slice(a, b) for a, b in box.outer)].astype(np.float64)
        m = box_edge_mask(v.shape, (voxel,) * 3, resolution)
        core = data[tuple(slice(a, b) for a, b in box.core)]
        out.append((v.std() / (v * m).std(), np.linalg.norm(np.array([(a + b) / 2 for a, b in box.core]) - centre),
                    core.std() / v.std()))
    a = np.array(out)
    print(name, "boxes", len(a), "SD(box)/SD(box m) 10/50/90 %", np.percentile(a[:, 0], [10, 50, 90]).round(3),
          "rank with distance from centre", round(float(spearmanr(a[:, 0], a[:, 1]).statistic), 2),
          "rank with SD(core)/SD(box)", round(float(spearmanr(a[:, 0], a[:, 2]).statistic), 2))


if __name__ == "__main__" and sys.argv[1] == "edge":
    edge_terms(sys.argv[2], float(sys.argv[3]))
    sys.exit()


def collect(logs):
    """Write the renders of ``logs`` (the last of each case/scale/rule) to benchmarks/results/local_render_rules.json."""
    from _common import write_json
    records = {}
    for f in logs:
        for line in open(f):
            d = json.loads(line)
            records[(d["case"], d["scale"], d["rule"])] = {k: d[k] for k in ("case", "scale", "rule", "cc")}
    write_json("local_render_rules.json", {
        "benchmark": "local CC (localsharp evaluate's cc_mask) of recorded local runs re-rendered with a render "
                     "scale and a shrinkage rule (see benchmarks/local_render_rules.py); rule Z = the overall map",
        "records": list(records.values())})


if __name__ == "__main__" and sys.argv[1] == "collect":
    collect(sys.argv[2:])
    sys.exit()

if __name__ == "__main__" and sys.argv[1] == "table":
    table(sys.argv[2:])
    sys.exit()

if __name__ == "__main__" and sys.argv[1] == "search":
    for n in sys.argv[2].split(","):
        search(n)
    sys.exit()

if __name__ == "__main__":
    names, scales, rules = (a.split(",") for a in sys.argv[1:4])
    log = sys.argv[4] if len(sys.argv) > 4 else str(ROOT / "log.jsonl")
    for n in names:
        rerender(n, scales, rules, log)
