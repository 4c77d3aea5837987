"""Model-based sharpening of the bundled EMD-3488 map with its deposited model 5NI1.

Run from the repository root: ``python examples/03_model_based.py``.
"""

from pathlib import Path

import localsharp

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "tests/data/emd3488_haemoglobin/map.mrc"
MODEL = ROOT / "tests/data/emd3488_haemoglobin/model_5ni1.cif"

result = localsharp.model_sharpen(MAP, MODEL, 3.2)
print(f"model-based: CC {localsharp.evaluate_map(result.map, MODEL, 3.2)['cc_mask']:.4f}")
auto = localsharp.global_sharpen(MAP, 3.2)
print(f"model-free:  CC {localsharp.evaluate_map(auto.map, MODEL, 3.2)['cc_mask']:.4f}")
