"""One API: every sharpening function is exported from ``localsharp`` and takes ``resolution`` alike."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

import localsharp
from localsharp.errors import ConfigError, InputFileError

DATA = Path(__file__).resolve().parent / "data"
SPIKE = DATA / "emd21457_spike_ntd"
FUNCTIONS = {"global_sharpen": 1, "half_map_sharpen": 3, "model_sharpen": 2, "local_sharpen": 1}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_resolution_follows_the_map_inputs_everywhere(name: str) -> None:
    """The map input(s), then ``resolution`` (positional or keyword), then keyword-only options."""
    function = getattr(localsharp, name)
    params = list(inspect.signature(function).parameters.values())
    n_inputs = FUNCTIONS[name]
    assert params[n_inputs].name == "resolution"
    assert params[n_inputs].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params[:n_inputs])
    rest = [p for p in params[n_inputs + 1:] if p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), [p.name for p in rest]
    assert name in localsharp.__all__


def test_positional_and_keyword_resolution_give_the_same_map() -> None:
    density = localsharp.read_map(SPIKE / "map_segment.mrc")
    by_position = localsharp.global_sharpen(density, 3.2)
    by_keyword = localsharp.global_sharpen(density, resolution=3.2)
    assert np.array_equal(by_position.map.data, by_keyword.map.data)
    model = localsharp.model_sharpen(density, SPIKE / "model_6vyb_ntd.pdb", resolution=3.2)
    assert model.mode == "model" and model.map.shape == density.shape


def test_a_client_passed_where_the_resolution_goes_is_refused_clearly() -> None:
    class FakeClient:  # what an old call local_sharpen(map, client, resolution=R) passes second
        pass

    density = localsharp.read_map(SPIKE / "map_segment.mrc")
    with pytest.raises(ConfigError, match="client=client"):
        localsharp.local_sharpen(density, FakeClient())  # type: ignore[arg-type]


def test_every_mode_refuses_an_already_sharpened_map(tmp_path: Path) -> None:
    """The limitation check runs in the half-map and model modes too, not only model-free."""
    density = localsharp.read_map(SPIKE / "map_segment.mrc")
    sharpened = localsharp.global_sharpen(density, 3.2, b_sharpen=20.0)
    path = localsharp.write_map(tmp_path / "sharpened.mrc", sharpened.map, label="localsharp model_free: b_iso b_sharpen 20.0")
    with pytest.raises(InputFileError, match="already sharpened"):
        localsharp.global_sharpen(path, 3.2)
    with pytest.raises(InputFileError, match="already sharpened"):
        localsharp.model_sharpen(path, SPIKE / "model_6vyb_ntd.pdb", 3.2)
    with pytest.raises(InputFileError, match="already sharpened"):
        localsharp.half_map_sharpen(path, path, path, 3.2)
    forced = localsharp.model_sharpen(path, SPIKE / "model_6vyb_ntd.pdb", 3.2, ignore_map_limitations=True)
    assert forced.mode == "model"


def test_every_mode_warns_about_a_closely_masked_map() -> None:
    density = localsharp.read_map(SPIKE / "map_segment.mrc")  # a segment: 76 % of voxels are exactly 0
    model = localsharp.model_sharpen(density, SPIKE / "model_6vyb_ntd.pdb", 3.2)
    assert any("closely masked" in w for w in model.warnings)
    assert any("closely masked" in w for w in localsharp.global_sharpen(density, 3.2).warnings)
