"""``localsharp phantom-capsid``: a large capsid-like phantom map (copies of a model on a sphere, at random or
placed by a point group)."""

from __future__ import annotations

import argparse
import logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``phantom-capsid`` options to ``parser``."""
    parser.description = (
        "Make a capsid phantom: a cubic map of --size voxels with copies of MODEL in random orientations "
        "on a sphere of radius --radius-fraction × size (hollow inside, solvent in the corners), atomic B "
        "rising with height from --b-min to --b-max, white noise at the level where half maps would cross "
        "FSC 0.143 at --resolution on the equator, then all blurred by --b-blur. With --symmetry, one copy "
        "is placed by every operator of the point group about the map centre (voxel size // 2): 60 for I, "
        "24 for O, 14 for D7; B then rises with the distance from the centre, so the signal stays "
        "symmetric (the noise is not). Computed and written in z slabs (memory ≈ a few slabs), so 1024³ "
        "works on a small machine. Writes MAP (float32 MRC) and MAP with suffix .json (parameters, every "
        "copy's centre, rotation and B, and the group's operators). Half maps: the same command with "
        "other --noise-seed values."
    )
    parser.add_argument("model", metavar="MODEL", help="atomic model of one copy (PDB or mmCIF, optionally .gz)")
    parser.add_argument("--output", required=True, metavar="MAP", help="map file to write (.mrc)")
    parser.add_argument("--size", type=int, default=512, metavar="N",
                        help="edge of the cubic map in voxels (default 512)")
    parser.add_argument("--voxel", type=float, default=1.1, metavar="Å",
                        help="voxel size in Å (default 1.1)")
    parser.add_argument("--radius-fraction", type=float, default=0.4, metavar="F",
                        help="radius of the copies' sphere as a fraction of --size (default 0.4)")
    parser.add_argument("--symmetry", metavar="GROUP",
                        help="place the copies by this point group: C<n>, D<n>, T, O, I, or RELION's I1-I4")
    parser.add_argument("--symmetry-orientation", metavar="NAME",
                        help="orientation of --symmetry: for I one of 222 (default: two-folds along x, y, z), 222r, "
                             "2n5, 2n5r, n25, n25r, 2n3, 2n3r; for T 222 (default) or z3")
    parser.add_argument("--chain", metavar="ID", help="use only this chain of MODEL as the protomer")
    parser.add_argument("--copies", type=int, metavar="N",
                        help="number of random copies (default: from --coverage; not with --symmetry)")
    parser.add_argument("--coverage", type=float, default=1.5, metavar="F",
                        help="copies' footprint discs / sphere area when --copies is not given (default 1.5)")
    parser.add_argument("--b-min", type=float, default=20.0, metavar="B",
                        help="copy B at the bottom pole; with --symmetry atom B at the innermost atom, Å² (default 20)")
    parser.add_argument("--b-max", type=float, default=120.0, metavar="B",
                        help="copy B at the top pole; with --symmetry atom B at the outermost atom, Å² (default 120)")
    parser.add_argument("--b-blur", type=float, default=40.0, metavar="B",
                        help="Gaussian blur of the whole map (signal and noise), Å² (default 40)")
    parser.add_argument("--resolution", type=float, default=3.5, metavar="Å",
                        help="noise level: half maps would cross FSC 0.143 here on the equator, Å (default 3.5)")
    parser.add_argument("--noise", type=float, default=1.0, metavar="F",
                        help="multiplier of the noise sd (default 1; 0 = none)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the orientations and the noise (default 0)")
    parser.add_argument("--noise-seed", type=int, metavar="N",
                        help="seed of the noise alone (default --seed): other values give the same signal with "
                             "independent noise, e.g. half maps")
    parser.add_argument("--symmetric-noise", action="store_true",
                        help="with --symmetry: average the noise over the group (same spectrum), as in a reconstruction "
                             "made with imposed symmetry (size ≤ 640)")
    parser.add_argument("--model-output", metavar="MODEL",
                        help="also write every copy as placed, atomic B = 0 (.cif or .pdb): the model to compare a "
                             "sharpened map with (localsharp evaluate)")
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
        resolution=args.resolution, noise=args.noise, seed=args.seed, noise_seed=args.noise_seed,
        symmetry=args.symmetry, orientation=args.symmetry_orientation, chain=args.chain, slab=args.slab,
        overwrite=args.overwrite, progress=lambda done, total: log.info("planes %d / %d written", done, total),
        model_output=args.model_output, symmetric_noise=args.symmetric_noise,
    )
    s = result.summary
    layout = f"{s['symmetry']['name']} about the centre" if "symmetry" in s else "random"
    noise_seed = f", noise seed {args.noise_seed}" if args.noise_seed is not None else ""
    noise_seed += " (symmetric)" if args.symmetric_noise else ""
    print(f"capsid phantom {args.size}³ × {args.voxel} Å: {s['n_copies']} copies ({layout}; {s['n_atoms']} atoms) "
          f"on radius {s['radius_A']:.1f} Å, B {args.b_min}→{args.b_max} Å² + blur {args.b_blur} Å², "
          f"noise sd {s['noise_sigma']:.4g}, seed {args.seed}{noise_seed}; protein {100 * s['protein_volume_fraction']:.1f} % "
          f"of the box")
    print(f"  map  {result.map_path}\n  json {result.json_path}")
    if args.model_output:
        print(f"  model {args.model_output} (every copy, B = 0)")
    return 0
