"""Shared fixtures: paths to the real maps, shipped and shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
SHARED = Path(os.environ.get("LOCALSHARP_SHARED", TESTS.parent.parent / "shared")) / "data"
#: CI sets LOCALSHARP_REQUIRE_SHARED=1 so tests needing ../shared fail instead of skipping.
REQUIRE_SHARED = os.environ.get("LOCALSHARP_REQUIRE_SHARED") == "1"


def shared_path(*parts: str) -> Path:
    """Path to a file in ../shared/data; skip (or fail in CI) when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if REQUIRE_SHARED:
            pytest.fail(f"{path} is required in CI (LOCALSHARP_REQUIRE_SHARED=1) but missing")
        pytest.skip(f"{path} not present: the large real maps live in ../shared/data beside the checkout")
    return path


@pytest.fixture
def emd3488_map() -> Path:
    return DATA / "emd3488_haemoglobin" / "map.mrc"


@pytest.fixture
def emd3488_model() -> Path:
    return DATA / "emd3488_haemoglobin" / "model_5ni1.cif"


@pytest.fixture
def spike_map() -> Path:
    return DATA / "emd21457_spike_ntd" / "map_segment.mrc"


@pytest.fixture
def spike_model() -> Path:
    return DATA / "emd21457_spike_ntd" / "model_6vyb_ntd.pdb"


@pytest.fixture
def rdrp_map() -> Path:
    return shared_path("emd11007_rdrp", "map_crop192.mrc")


@pytest.fixture
def rdrp_model() -> Path:
    return shared_path("emd11007_rdrp", "model_6yyt_chainC_rna.pdb")
