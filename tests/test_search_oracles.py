"""Oracles for the search's refinement paths (docs/methods.md, search): the coordinate refinement of one
parameter, the b-type refinement cycle and the L-BFGS refinement of the resolution-dependent B, run on a
score that is a known function of the sharpening parameters, so where the maximum lies is known.

The map measures are not what is tested here (they have their own tests): a trial's kurtosis is set to
the known score, and the search target is the kurtosis."""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pytest

from localsharp.sharpening.functions import Sharpening
from localsharp.sharpening.score import MapMeasures
from localsharp.sharpening.search import _refine_b_type, _refine_parameter, _refine_resolution_dependent
from localsharp.sharpening.search_types import SearchConfig, Trial


class KnownScore:
    """Measures sharpenings by a known score (the trial's kurtosis) and counts what was measured."""

    def __init__(self, score: Callable[[Sharpening], float]) -> None:
        self.score = score
        self.measured: list[Sharpening] = []

    def measure(self, sharpenings: Iterable[Sharpening]) -> list[Trial]:
        out = []
        for s in sharpenings:
            self.measured.append(s)
            out.append(Trial(s, MapMeasures(surface_area=1.0, normalized_regions=0.0, n_regions=1,
                                            kurtosis=float(self.score(s)), threshold=0.0)))
        return out


B_ORIG = 100.0


def _start(b_target: float, k: float = 10.0) -> Sharpening:
    return Sharpening(method="b_iso_to_d_cut", b_sharpen=B_ORIG - b_target, k_sharpen=k, d_cut=3.0,
                      b_blur_hires=200.0, b_iso_target=b_target)


def _target(s: Sharpening) -> float:
    return B_ORIG - s.b_sharpen


def test_refining_one_parameter_walks_down_to_a_maximum_below_the_start() -> None:
    scorer = KnownScore(lambda s: -(_target(s) - 37.3) ** 2)
    start = scorer.measure([_start(80.0)])[0]
    best = _refine_parameter(scorer, start, _target, lambda s, v: s.replace(b_sharpen=B_ORIG - v, b_iso_target=v),
                             10.0, None, "kurtosis", 0.0)
    # 11 values 30…130 (step 10): 40; then step 5 around 40: 35; step 2.5 around 35: 37.5; step 1.25: no better
    assert _target(best.sharpening) == pytest.approx(37.5)
    assert {round(_target(s), 6) for s in scorer.measured} >= {30.0, 40.0, 130.0, 15.0, 65.0, 22.5, 47.5}


def test_refining_one_parameter_stops_at_its_floor() -> None:
    scorer = KnownScore(lambda s: -(s.k_sharpen - 0.1) ** 2)  # the maximum lies below the floor 0.5
    start = scorer.measure([_start(50.0, k=6.0)])[0]
    best = _refine_parameter(scorer, start, lambda s: s.k_sharpen, lambda s, v: s.replace(k_sharpen=v),
                             2.5, 0.5, "kurtosis", 0.0)
    assert best.sharpening.k_sharpen == pytest.approx(0.5)
    assert min(s.k_sharpen for s in scorer.measured) == pytest.approx(0.5)  # never a value below the floor


def test_b_type_refinement_finds_the_maximum_in_b_and_k_sharpen() -> None:
    scorer = KnownScore(lambda s: -(_target(s) - 37.3) ** 2 - (s.k_sharpen - 4.0) ** 2)
    start = scorer.measure([_start(80.0, k=10.0)])[0]
    config = SearchConfig(target="kurtosis", refine_b_iso=True, optimize_k_sharpen=True)
    best = _refine_b_type(scorer, start, B_ORIG, 10.0, config, 0.0)
    # k: 10 → 5 (step 2.5) → 3.75 (step 1.25) → no better at step 0.625; B target as above: 37.5
    assert best.sharpening.k_sharpen == pytest.approx(3.75)
    assert _target(best.sharpening) == pytest.approx(37.5)
    assert best.sharpening.b_iso_target == pytest.approx(37.5)
    # without a refinement asked for, the start is kept and nothing is measured
    quiet = KnownScore(scorer.score)
    assert _refine_b_type(quiet, start, B_ORIG, 10.0, SearchConfig(target="kurtosis"), 0.0) is start
    assert quiet.measured == []


def _rd(s: Sharpening) -> np.ndarray:
    return np.asarray(s.resolution_dependent_b, dtype=float)


def test_resolution_dependent_refinement_reaches_a_maximum_inside_the_restraints() -> None:
    optimum = np.array([30.0, 10.0, -20.0])  # b1 <= b0 and b2 <= 0: no restraint acts
    scorer = KnownScore(lambda s: -0.01 * float(np.sum((_rd(s) - optimum) ** 2)))
    start = scorer.measure([Sharpening(method="resolution_dependent", resolution_dependent_b=(0.0, 0.0, 0.0))])[0]
    best = _refine_resolution_dependent(scorer, start, SearchConfig(target="kurtosis"), 0.0)
    assert np.abs(_rd(best.sharpening) - optimum).max() < 1.0
    assert best.score("kurtosis", 0.0) > start.score("kurtosis", 0.0)


def test_resolution_dependent_refinement_obeys_its_restraints() -> None:
    # the score alone would take b1 to +30 > b0 = 0 and b2 to +20 > 0: the restraints (100 per Å) hold them
    optimum = np.array([0.0, 30.0, 20.0])
    scorer = KnownScore(lambda s: -0.01 * float(np.sum((_rd(s) - optimum) ** 2)))
    start = scorer.measure([Sharpening(method="resolution_dependent", resolution_dependent_b=(0.0, -5.0, -5.0))])[0]
    best = _refine_resolution_dependent(scorer, start, SearchConfig(target="kurtosis"), 0.0)
    b0, b1, b2 = _rd(best.sharpening)
    assert b1 - b0 < 0.5 and b2 < 0.5
    assert best.score("kurtosis", 0.0) > start.score("kurtosis", 0.0)
