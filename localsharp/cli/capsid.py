"""``localsharp phantom-capsid``: a large capsid-like phantom map (copies of a model on a sphere)."""

from __future__ import annotations

import argparse
import logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``phantom-capsid`` options to ``parser``."""
    parser.description = (
        "Make a capsid phantom: a cubic map of --size voxels with copies of MODEL in random orientations "
        "on a sphere of radius --radius-fraction × size (hollow inside, solvent in the corners), atomic B "
        "rising with height from --b-min to --b-max, white noise at the level where half maps would cross "
        "FSC 0.143 at --resolution on the equator, then all blurred by --b-blur. Computed and written in "
        "z slabs (memory ≈ a few slabs), so 1024³ works on a small machine. Writes MAP (float32 MRC) and MAP with suffix .json (parameters "
        "and every copy's centre, rotation and B)."
    )
    parser.add_argument("model", metavar="MODEL", help="atomic model of one copy (PDB or mmCIF, optionally .gz)")
    parser.add_argument("--output", required=True, metavar="MAP", help="map file to write (.mrc)")
    parser.add_argument("--size", type=int, default=512, metavar="N",
                        help="edge of the cubic map in voxels (default 512)")
    parser.add_argument("--voxel", type=float, default=1.1, metavar="Å",
                        help="voxel size in Å (default 1.1)")
    parser.add_argument("--radius-fraction", type=float, default=0.4, metavar="F",
                        help="radius of the copies' sphere as a fraction of --size (default 0.4)")
    parser.add_argument("--copies", type=int, metavar="N",
                        help="number of copies (default: from --coverage)")
    parser.add_argument("--coverage", type=float, default=1.5, metavar="F",
                        help="copies' footprint discs / sphere area when --copies is not given (default 1.5)")
    parser.add_argument("--b-min", type=float, default=20.0, metavar="B",
                        help="copy B at the bottom pole, Å² (default 20)")
    parser.add_argument("--b-max", type=float, default=120.0, metavar="B",
                        help="copy B at the top pole, Å² (default 120)")
    parser.add_argument("--b-blur", type=float, default=40.0, metavar="B",
                        help="Gaussian blur of the whole map (signal and noise), Å² (default 40)")
    parser.add_argument("--resolution", type=float, default=3.5, metavar="Å",
                        help="noise level: half maps would cross FSC 0.143 here on the equator, Å (default 3.5)")
    parser.add_argument("--noise", type=float, default=1.0, metavar="F",
                        help="multiplier of the noise sd (default 1; 0 = none)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the orientations and the noise (default 0)")
    parser.add_argument("--slab", type=int, default=32, metavar="N",
                        help="z planes computed at a time (default 32)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    """Make the phantom and print a one-line summary; returns the exit status."""
    from ..capsid import capsid_phantom

    log = logging.getLogger("localsharp.capsid")
    result = capsid_phantom(
        args.model, args.output, size=args.size, voxel=args.voxel, radius_fraction=args.radius_fraction,
        copies=args.copies, coverage=args.coverage, b_min=args.b_min, b_max=args.b_max, b_blur=args.b_blur,
        resolution=args.resolution, noise=args.noise, seed=args.seed, slab=args.slab, overwrite=args.overwrite,
        progress=lambda done, total: log.info("planes %d / %d written", done, total),
    )
    s = result.summary
    print(f"capsid phantom {args.size}³ × {args.voxel} Å: {s['n_copies']} copies ({s['n_atoms']} atoms) on radius "
          f"{s['radius_A']:.1f} Å, B {args.b_min}→{args.b_max} Å² + blur {args.b_blur} Å², "
          f"noise sd {s['noise_sigma']:.4g}, seed {args.seed}")
    print(f"  map  {result.map_path}\n  json {result.json_path}")
    return 0
