"""Global automatic sharpening of the bundled EMD-3488 map, then its quality against the model.

Run from the repository root: ``python examples/01_global.py``.
"""

from pathlib import Path

import localsharp

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "tests/data/emd3488_haemoglobin/map.mrc"
MODEL = ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif"

result = localsharp.global_sharpen(MAP, 3.2)
s = result.sharpening
print(f"method {s.method}, b_sharpen {s.b_sharpen:.1f} Å², B_iso {result.b_iso_input:.1f} -> {result.b_iso_output:.1f} Å²")
print(f"signal-to-noise of the score curve {result.signal_to_noise:.1f}; applicable: {result.applicable}")
for name, density in (("input", localsharp.read_map(MAP)), ("sharpened", result.map)):
    cc = localsharp.evaluate_map(density, MODEL, 3.2)["cc_mask"]
    print(f"CC to the B = 0 model within 3 Å of atoms, {name}: {cc:.4f}")
