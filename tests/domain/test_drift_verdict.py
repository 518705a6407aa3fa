from __future__ import annotations

import json
import math

import pytest

from loopml.domain.drift import BELOW_LINE, DriftMethod, FeatureDrift, dataset_score
from loopml.domain.errors import InvalidInput


def verdict(column: str, score: float, drifted: bool, threshold: float = 0.1) -> FeatureDrift:
    return FeatureDrift(column, "numeric", 500, DriftMethod.PSI, score, threshold, drifted)


def test_a_column_that_did_not_drift_never_reaches_the_line_however_large_its_effect() -> None:
    noisy = verdict("small_window", 0.5, drifted=False)  # severity 5, but not significant
    assert noisy.severity == pytest.approx(5.0)
    assert noisy.level == BELOW_LINE < 1.0
    assert verdict("quiet", 0.05, drifted=False).level == pytest.approx(0.5)
    assert verdict("moved", 0.3, drifted=True).level == pytest.approx(3.0)


def test_the_window_score_is_the_largest_level_so_one_drifted_column_shows() -> None:
    columns = [verdict(f"c{i}", 0.01, drifted=False) for i in range(24)]
    assert dataset_score(columns) == pytest.approx(0.1)
    columns.append(verdict("shifted", 0.25, drifted=True))
    assert dataset_score(columns) == pytest.approx(2.5)
    assert dataset_score([verdict("noise", 9.0, drifted=False)]) < 1.0
    assert dataset_score([]) == 0.0


def test_a_verdict_round_trips_through_json_with_infinite_and_nan_scores() -> None:
    for score in (math.inf, math.nan, 0.25):
        before = verdict("x", score, drifted=True)
        after = FeatureDrift.from_dict(json.loads(json.dumps(before.to_dict())))
        assert after.column == "x" and after.drifted
        assert (math.isnan(after.score) and math.isnan(score)) or after.score == score


@pytest.mark.parametrize("threshold", [0.0, -1.0, math.inf, math.nan])
def test_a_threshold_must_be_a_positive_number(threshold: float) -> None:
    with pytest.raises(InvalidInput, match="threshold of 'x' must be a positive number"):
        verdict("x", 0.1, drifted=False, threshold=threshold)


def test_a_damaged_stored_verdict_is_named() -> None:
    with pytest.raises(InvalidInput, match="stored drift result is damaged"):
        FeatureDrift.from_dict({"column": "x", "kind": "numeric"})
