"""``localsharp evaluate``: map–model correlation of a map against a B = 0 model map."""

from __future__ import annotations

import argparse
import json

from ..evaluate import evaluate_map
from ..maps.mrc import read_map


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser``."""
    parser.description = (
        "Correlate a map with the model map (electron form factors, every B = 0); both are low-pass "
        "filtered at the resolution. Prints a JSON dict with cc_mask (voxels near atoms) and cc_box."
    )
    parser.add_argument("map", metavar="MAP", help="map to evaluate (MRC/CCP4, optionally .gz)")
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="atomic model in the map's frame (PDB or mmCIF, optionally .gz)")
    parser.add_argument("--resolution", required=True, type=float, metavar="R",
                        help="resolution in Å; both maps are low-pass filtered (hard cutoff) here")
    parser.add_argument("--mask-radius", type=float, default=3.0, metavar="Å",
                        help="voxels within this distance of an atom form the mask for cc_mask (default 3)")


def run(args: argparse.Namespace) -> int:
    """Evaluate the map and print the result as JSON; returns the exit status."""
    density = read_map(args.map)
    result = evaluate_map(density, args.model, args.resolution, mask_radius=args.mask_radius)
    print(json.dumps({"map": str(args.map), "model": str(args.model), **result}, indent=2))
    return 0
