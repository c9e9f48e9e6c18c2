"""Verdict logic: uncertainty band, deterministic spot-check sample, fail > review > pass."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from qa.verdicts import Finding, QAResult, band, decide, in_spot_check

KEYS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(10_000)]


@pytest.mark.parametrize(("score", "expected"), [(0.10, "fail"), (0.17, "uncertain"), (0.20, "uncertain"),
                                                 (0.23, "pass"), (0.50, "pass"), (math.nan, "uncertain")])
def test_band_higher_is_better(score, expected):
    assert band(score, 0.20, 0.03) == expected


@pytest.mark.parametrize(("score", "expected"), [(0.9, "fail"), (0.55, "uncertain"), (0.45, "uncertain"),
                                                 (0.40, "pass"), (math.nan, "uncertain")])
def test_band_lower_is_better(score, expected):
    assert band(score, 0.5, 0.1, higher_is_better=False) == expected


@pytest.mark.parametrize("rate", [0.01, 0.03, 0.05])
def test_spot_check_sample_is_close_to_the_rate_and_the_same_keys_every_time(rate):
    picked = [k for k in KEYS if in_spot_check(k, rate)]
    assert abs(len(picked) / len(KEYS) - rate) < 0.006
    assert picked == [k for k in KEYS if in_spot_check(k, rate)]
    assert not any(in_spot_check(k, 0.0) for k in KEYS)


def test_sampled_render_goes_to_review_only_when_it_would_pass():
    key = next(k for k in KEYS if in_spot_check(k, 0.05))
    assert decide(key, {"x": Finding()}, sample_rate=0.05) == QAResult(key, "review", ("sampled",), {}, {})
    assert decide(key, {"x": Finding(fail=("blank",))}, sample_rate=0.05).verdict == "fail"
    assert decide(key, {"x": Finding()}, sample_rate=0.0).verdict == "pass"


def test_fail_wins_over_review_and_errors_fail_closed_to_review():
    result = decide("k", {"a": Finding(review=("clip_uncertain",)), "b": Finding(fail=("blank",), scores={"s": 1})})
    assert result.verdict == "fail" and result.reasons == ("blank", "clip_uncertain") and result.scores == {"s": 1.0}
    errored = decide("k", {"a": Finding()}, errors=["palette"])
    assert errored.verdict == "review" and errored.reasons == ("check_error:palette",)


def test_result_json_is_deterministic_and_round_trips():
    result = QAResult("k", "review", ("sampled",), {"b": 1 / 3, "a": math.nan}, {"z": "1", "y": "2"})
    data = result.to_json()
    assert data == QAResult("k", "review", ("sampled",), {"a": math.nan, "b": 1 / 3}, {"y": "2", "z": "1"}).to_json()
    assert b'"a": null' in data and b'"b": 0.333333' in data
    back = QAResult.from_dict(json.loads(data))
    assert back.verdict == "review" and math.isnan(back.scores["a"]) and back.details == {"y": "2", "z": "1"}
