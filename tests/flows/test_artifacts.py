"""Prefect artifact keys of a campaign's metrics."""

from __future__ import annotations

from flows import metrics


def test_artifact_keys_are_lowercase_digits_and_dashes():
    assert metrics.artifact_key("metrics", "Spring_Launch 2026") == "metrics-spring-launch-2026"
    assert metrics.artifact_key("qa", "__") == "qa-campaign"
