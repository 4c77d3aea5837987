"""``localsharp sharpen``: global automatic sharpening with all outputs."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..api import global_sharpen, load_map, progress
from ..config import SharpenOptions
from ..errors import ConfigError, InputFileError, is_disk_fault
from ..maps.lock import RunLock
from . import MISSING_RESOLUTION
from .cluster_args import check_one_cluster
from ..report.plot_process import PlotProcess
from ..report.outputs import planned_outputs, prepare_output_dir, remove_if_unused, write_outputs
from ..report.summary import print_table, sha256, versions
from ..sharpening.functions import METHODS
from ..sharpening.score import ScoreParams
from ..sharpening.search import TARGETS, SearchConfig

log = logging.getLogger(__name__)
#: The lock file of a run in its output directory (removed when the run ends).
LOCK_FILE = "sharpen.lock"
#: Where the outputs go unless --output-dir says otherwise (``local`` uses localsharp_local).
DEFAULT_OUTPUT_DIR = "localsharp_sharpen"
SEARCH_METHODS = tuple(m for m in METHODS if m not in ("half_map_sharpening", "model_sharpening"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sharpen`` options to ``parser``."""
    parser.description = ("Sharpen a map by maximising the adjusted surface area (or kurtosis) over a family of "
                          "sharpening functions, or with half-map or model-based scale factors.")
    parser.add_argument("map", nargs="?", metavar="MAP", help="MRC/CCP4 map (.mrc/.map/.ccp4, optionally .gz)")
    io = parser.add_argument_group("input and output")
    io.add_argument("--resolution", type=float, metavar="Å", help="nominal resolution (required; optional for MTZ input, whose d_min is the default)")
    io.add_argument("--mtz", metavar="FILE", help="MTZ map coefficients instead of MAP (crystallographic maps)")
    io.add_argument("--labels", metavar="F,PHI", help="MTZ amplitude,phase labels (default: auto-detect)")
    io.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, metavar="DIR",
                    help=f"directory for the outputs, created if needed (default {DEFAULT_OUTPUT_DIR})")
    io.add_argument("--overwrite", action="store_true", help="replace existing output files")
    io.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    method = parser.add_argument_group("sharpening search")
    method.add_argument("--methods", nargs="+", choices=SEARCH_METHODS, metavar="METHOD",
                        help=f"methods to search (default b_iso_to_d_cut); choices: {', '.join(SEARCH_METHODS)}")
    method.add_argument("--target", choices=TARGETS, default="adjusted_sa", help="score to maximise")
    # developer option (comparisons with the reference engine): hidden from --help
    method.add_argument("--reference-quirks", action="store_true", help=argparse.SUPPRESS)
    method.add_argument("--search-b-min", type=float, default=-100.0, metavar="B",
                        help="lowest target map B of the grid, Å² (default -100; the map's own B if lower)")
    method.add_argument("--search-b-max", type=float, default=300.0, metavar="B",
                        help="highest target map B of the grid, Å² (default 300; the map's own B if higher)")
    method.add_argument("--search-b-n", type=int, default=21, metavar="N",
                        help="number of grid points (default 21)")
    method.add_argument("--region-weight", type=float, default=40.0, metavar="W",
                        help="region weight (calibrated automatically unless --no-adjust-region-weight)")
    method.add_argument("--no-adjust-region-weight", action="store_true",
                        help="use --region-weight as given (no three-point calibration)")
    method.add_argument("--region-weight-method", choices=("delta_ratio", "initial_ratio", "b_iso"),
                        default="delta_ratio", help="region-weight calibration rule (default delta_ratio)")
    method.add_argument("--region-weight-factor", type=float, default=1.0, metavar="F",
                        help="multiplier of the calibrated region weight (default 1)")
    method.add_argument("--fraction-occupied", type=float, default=0.20, metavar="F",
                        help="fraction of the molecular volume inside the scoring contour (default 0.20)")
    method.add_argument("--sa-percent", type=float, default=30.0, metavar="P",
                        help="percent of the contoured volume whose largest regions give the surface area "
                             "(default 30)")
    method.add_argument("--max-regions-to-test", type=int, default=30, metavar="N",
                        help="at most N + 1 regions enter the surface area (default 30)")
    method.add_argument("--low-resolution-gain", type=float, default=1.5, metavar="G",
                        help="at 5 Å or worse, search only b_sharpen whose amplitude gain at the resolution is "
                             "at most G (default 1.5); the map's own B is unreliable there")
    method.add_argument("--keep-blur", action="store_true",
                        help="apply a blurring pick (b_sharpen < 0) as found; by default the least blur within "
                             "the score's noise of it is applied (the reference keeps the pick)")
    method.add_argument("--signal-min", type=float, default=3.0, metavar="S",
                        help="score-curve signal-to-noise below which a method's optimum counts as "
                             "undetermined (default 3)")
    method.add_argument("--optimize-d-cut", action="store_true", help="refine d_cut around the grid optimum")
    method.add_argument("--optimize-k-sharpen", action="store_true", help="refine k_sharpen around the grid optimum")
    method.add_argument("--optimize-b-blur-hires", action="store_true", help="refine b_blur_hires")
    method.add_argument("--no-peak-fit", action="store_true", help="keep the best grid point (no smoothing of the score curve)")
    method.add_argument("--discard-if-worse", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the input map when it scores higher than the best sharpened map "
                             "(--no-discard-if-worse keeps the sharpened map; default on)")
    method.add_argument("--keep-if-worse", action="store_false", dest="discard_if_worse", help=argparse.SUPPRESS)
    method.add_argument("--ignore-map-limitations", action="store_true",
                        help="sharpen a map whose header says it is already sharpened (refused by default)")
    fixed = parser.add_argument_group("explicit sharpening (no search)")
    fixed.add_argument("--b-sharpen", type=float, metavar="B", help="apply this B (Å², > 0 sharpens)")
    fixed.add_argument("--b-iso", type=float, metavar="B", help="sharpen to this overall map B (Å²)")
    fixed.add_argument("--resolution-dependent-b", type=float, nargs=3, metavar=("B0", "B1", "B2"),
                       help="apply B(s) = B0 + B1·s + B2·s² (Å², s = 1/d in Å⁻¹)")
    fixed.add_argument("--k-sharpen", type=float, metavar="K", help="transition steepness at d_cut (default 10)")
    fixed.add_argument("--d-cut", type=float, metavar="Å", help="transition resolution (default: resolution)")
    fixed.add_argument("--b-blur-hires", type=float, metavar="B", help="blurring beyond d_cut (default 200)")
    comp = parser.add_argument_group("composition and analysis box")
    comp.add_argument("--solvent-content", type=float, metavar="F", help="solvent fraction (0-1) or percentage (default: estimated from the map)")
    comp.add_argument("--molecular-mass", type=float, metavar="KDA", help="molecular mass in kDa (default: estimated from the map)")
    comp.add_argument("--sequence", metavar="FILE", help="sequence file (FASTA or plain one-letter)")
    comp.add_argument("--copies", type=int, default=1, metavar="N", help="copies of the sequence (default 1)")
    comp.add_argument("--no-density-select", action="store_true", help="analyse the whole map, not a box")
    comp.add_argument("--max-box-fraction", type=float, default=0.5, metavar="F",
                      help="largest fraction of the map the density box may hold; beyond it (a hollow or "
                           "spread-out map) --molecule-boxes are analysed (default 0.5)")
    comp.add_argument("--molecule-boxes", type=int, metavar="N",
                      help="analyse up to N --box-size boxes where the molecule is densest when the density "
                           "box is too large (default: as many as 160^3 voxels hold); 0 analyses the whole map")
    comp.add_argument("--d-min-ratio", type=float, default=0.833, metavar="R",
                      help="Fourier terms are used to R x resolution (default 0.833)")
    comp.add_argument("--box-center", type=float, nargs=3, metavar=("X", "Y", "Z"), help="analysis box centre (Å)")
    comp.add_argument("--box-size", type=int, nargs=3, default=(40, 40, 40), metavar=("NX", "NY", "NZ"),
                      help="size of a centred analysis box (voxels, default 40 40 40)")
    comp.add_argument("--box-in-auto-sharpen", action="store_true",
                      help="analyse a --box-size box around the largest segmented region (not the density box)")
    comp.add_argument("--use-weak-density", action="store_true",
                      help="centre that box on a weaker region (implies --box-in-auto-sharpen)")
    comp.add_argument("--no-soft-mask", action="store_true",
                      help="cut centred boxes without buffer and soft edge")
    comp.add_argument("--no-remove-aniso", action="store_true", help="keep the map's anisotropy")
    other = parser.add_argument_group("half-map and model-based sharpening")
    other.add_argument("--half-maps", nargs=2, metavar=("H1", "H2"), help="two half maps (MAP optional)")
    other.add_argument("--mask", metavar="FILE", help="mask for the half-map FSC (default: automatic)")
    other.add_argument("--model", metavar="FILE", help="atomic model (PDB/mmCIF) for model-based sharpening")
    other.add_argument("--model-rms", type=float, metavar="Å", help="assumed model error (default resolution/4)")
    cluster = parser.add_argument_group("cluster (model-free sharpening of maps too big for one process)")
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="run on a LocalCluster of N single-threaded worker processes: the map is sharpened "
                              "in one of them when it fits its memory, else slab by slab across them")
    cluster.add_argument("--scheduler-file", metavar="FILE", help="run on the Dask scheduler of this file instead")


def _options(args: argparse.Namespace, resolution: float) -> SharpenOptions:
    search_kw: dict[str, Any] = dict(
        target=args.target, reference_quirks=args.reference_quirks, search_b_min=args.search_b_min,
        search_b_max=args.search_b_max, search_b_n=args.search_b_n, region_weight=args.region_weight,
        adjust_region_weight=not args.no_adjust_region_weight, optimize_d_cut=args.optimize_d_cut,
        optimize_k_sharpen=args.optimize_k_sharpen, optimize_b_blur_hires=args.optimize_b_blur_hires,
        peak_fit=not args.no_peak_fit, region_weight_method=args.region_weight_method,
        region_weight_factor=args.region_weight_factor, signal_min=args.signal_min,
        low_resolution_gain=args.low_resolution_gain, least_blur=not args.keep_blur,
        score=ScoreParams(fraction_occupied=args.fraction_occupied, sa_percent=args.sa_percent,
                          max_regions_to_test=args.max_regions_to_test))
    if args.methods:
        search_kw["methods"] = tuple(args.methods)
    for name in ("k_sharpen", "d_cut", "b_blur_hires"):
        if getattr(args, name) is not None:
            search_kw[name] = getattr(args, name)
    sequence = None
    if args.sequence:
        try:
            sequence = Path(args.sequence).read_text()
        except OSError as exc:
            raise InputFileError(args.sequence, f"cannot read sequence file ({exc.strerror})") from None
    return SharpenOptions(
        resolution=resolution, search=SearchConfig(**search_kw), remove_aniso=not args.no_remove_aniso,
        solvent_content=args.solvent_content, molecular_mass=args.molecular_mass, sequence=sequence,
        copies=args.copies, density_select=not args.no_density_select, max_box_fraction=args.max_box_fraction,
        molecule_boxes=args.molecule_boxes,
        d_min_ratio=args.d_min_ratio,
        box_center=tuple(args.box_center) if args.box_center else None, box_size=tuple(args.box_size),
        box_in_auto_sharpen=args.box_in_auto_sharpen, use_weak_density=args.use_weak_density,
        soft_mask=not args.no_soft_mask,
        b_sharpen=args.b_sharpen, b_iso=args.b_iso,
        resolution_dependent_b=tuple(args.resolution_dependent_b) if args.resolution_dependent_b else None,
        discard_if_worse=args.discard_if_worse, ignore_map_limitations=args.ignore_map_limitations)


def _check_inputs(args: argparse.Namespace) -> None:
    sources = [x for x in (args.map, args.mtz) if x]
    if args.map and args.mtz:
        raise ConfigError("give either MAP or --mtz, not both")
    if not sources and not args.half_maps:
        raise ConfigError("no input: give MAP, --mtz FILE or --half-maps H1 H2")
    if args.model and args.half_maps:
        raise ConfigError("give either --model or --half-maps, not both")
    if args.labels and not args.mtz:
        raise ConfigError("--labels only applies to --mtz input")
    if args.resolution is None and not args.mtz:
        raise ConfigError(MISSING_RESOLUTION)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    check_one_cluster({name for name in ("workers", "scheduler_file") if getattr(args, name) is not None})


def _labels(args: argparse.Namespace) -> tuple[str, str] | None:
    if not args.labels:
        return None
    parts = [p.strip() for p in args.labels.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--labels must be two comma-separated column labels, got {args.labels!r}")
    return parts[0], parts[1]


def _start_checksums(files: list[str]) -> Callable[[], dict[str, str]]:
    """Start hashing ``files`` in a daemon thread; the returned function waits for the digests."""
    result: dict[str, Any] = {"digests": {}}

    def work() -> None:
        for f in files:
            try:
                result["digests"][str(f)] = sha256(f)
            except OSError as exc:
                result["error"] = (f, exc)
                return

    thread = threading.Thread(target=work, name="localsharp-sha256", daemon=True)
    thread.start()

    def wait() -> dict[str, str]:
        thread.join()
        if "error" in result:
            path, exc = result["error"]
            raise InputFileError(path, f"cannot read the file to checksum it ({exc.strerror or exc})")
        return result["digests"]

    return wait


def _sharpen(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Load the input(s), run the requested mode; return the result and the input description."""
    labels = _labels(args)
    source = args.mtz or args.map
    # checksums of the inputs, read in a thread while the map is sharpened (hashlib releases the GIL)
    checksums = _start_checksums([f for f in [source, *(args.half_maps or []), args.model, args.mask, args.sequence]
                                  if f])
    density = None
    resolution = args.resolution
    if source:
        density, mtz_d_min = load_map(source, mtz_labels=labels)
        if resolution is None:
            resolution = mtz_d_min
    opts = _options(args, resolution)
    inputs: dict[str, Any] = {"map": str(source) if source else f"mean of half maps {args.half_maps[0]}, {args.half_maps[1]}"}
    if args.half_maps:
        from ..modes import half_map_sharpen

        result = half_map_sharpen(density, args.half_maps[0], args.half_maps[1], resolution, options=opts,
                                  mask=args.mask)
        inputs["half_maps"] = list(args.half_maps)
    elif args.model:
        from ..modes import model_sharpen

        result = model_sharpen(density, args.model, resolution, options=opts, model_rms=args.model_rms)
        inputs["model"] = args.model
    elif getattr(args, "workers", None) or getattr(args, "scheduler_file", None):
        result = _sharpen_on_cluster(args, density if args.mtz else source, resolution, opts)
    else:
        result = global_sharpen(density, resolution, options=opts, name=str(source))
    inputs["sha256"] = checksums()
    inputs["geometry"] = result.map.geometry()
    return result, inputs


def _sharpen_on_cluster(args: argparse.Namespace, source: Any, resolution: float, opts: SharpenOptions) -> Any:
    """``global_sharpen`` on a Dask cluster (``--workers`` / ``--scheduler-file``); the client is closed after."""
    from ..engine.cluster.client import make_client

    client = make_client(workers=args.workers, scheduler_file=args.scheduler_file,
                         verbose=getattr(args, "verbose", False))
    try:
        return global_sharpen(source, resolution, options=opts, name=str(args.map or args.mtz), client=client)
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and args.workers:
            cluster.close()


class _StderrLines(logging.Handler):
    """Progress lines on whatever ``sys.stderr`` is when they are emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"localsharp sharpen: {record.getMessage()}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Sharpen, write every output atomically, print the table; returns the exit status."""
    t0 = time.perf_counter()
    _check_inputs(args)
    handler = None
    if not args.quiet and not getattr(args, "verbose", False):
        handler = _StderrLines()
        progress.addHandler(handler)
        progress.setLevel(logging.INFO)
        progress.propagate = False
    try:
        return _run(args, t0)
    finally:
        if handler is not None:
            progress.removeHandler(handler)
            progress.propagate = True


def _run(args: argparse.Namespace, t0: float) -> int:
    scale_factors = bool(args.half_maps or args.model)  # no search: no score plot, a shell plot instead
    paths = planned_outputs(args.output_dir, with_shells=scale_factors, with_search=not scale_factors)
    created = prepare_output_dir(args.output_dir, paths, args.overwrite)
    # matplotlib's import and font loading run in a helper process beside the computation
    # (console_main starts it before the imports and closes it; otherwise it is ours to close)
    given = getattr(args, "plotter", None)
    plotter = given or PlotProcess()
    try:
        # one run at a time writes into a directory (a second one is refused, naming the first)
        with RunLock(Path(args.output_dir) / LOCK_FILE, "localsharp sharpen"):
            return _sharpen_and_write(args, t0, paths, plotter)
    except OSError as exc:
        remove_if_unused(args.output_dir, created)  # a failed run leaves no trace
        if not is_disk_fault(exc):
            raise
        from .faults import disk_fault

        raise disk_fault(exc, Path(args.output_dir), resumable=False, needed=getattr(args, "output_bytes", None)
                         ) from None
    except BaseException:
        remove_if_unused(args.output_dir, created)  # a failed run leaves no trace
        raise
    finally:
        if given is None:
            plotter.close()


def _sharpen_and_write(args: argparse.Namespace, t0: float, paths: dict[str, Path], plotter: PlotProcess) -> int:
    result, inputs = _sharpen(args)
    args.output_bytes = 3 * (1024 + 4 * result.map.data.size)  # two maps and about as much of coefficients
    summary = result.summary()
    summary["input"] = inputs
    summary["input_sha256"] = next(iter(inputs["sha256"].values()), None)
    summary["versions"] = versions()
    summary["command"] = sys.argv
    t_write = time.perf_counter()
    progress.info("writing %d output files", len(paths))
    written = write_outputs(result, summary, paths, overwrite=args.overwrite, plotter=plotter)
    summary["timings_s"]["write"] = round(time.perf_counter() - t_write, 4)
    summary["timings_s"]["total"] = round(time.perf_counter() - t0, 4)
    if not args.quiet:
        print_table(summary, written)
    return 0
