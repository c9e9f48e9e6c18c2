"""Prefect artifact keys of a campaign's metrics; progress updates posted in the background."""

from __future__ import annotations

import threading

import pytest

from flows import metrics


def test_artifact_keys_are_lowercase_digits_and_dashes():
    assert metrics.artifact_key("metrics", "Spring_Launch 2026") == "metrics-spring-launch-2026"
    assert metrics.artifact_key("qa", "__") == "qa-campaign"


def test_latest_only_posts_in_the_background_the_newest_value_last():
    """The renderer's progress updates never wait for the server: ``put`` returns while a post is
    under way, values not posted yet give way to newer ones, ``flush`` waits for the last."""
    gate, posted = threading.Event(), []

    def post(value: int) -> None:
        gate.wait(5)
        posted.append(value)

    poster = metrics.LatestOnly(post)
    for value in range(5):
        poster.put(value)  # the first post waits at the gate
    assert posted == []
    gate.set()
    poster.flush()
    assert posted[-1] == 4 and posted == sorted(posted) and len(posted) <= 2
    poster.put(5)
    poster.flush()
    assert posted[-1] == 5


def test_latest_only_raises_a_failed_post_at_flush_once():
    def post(value: int) -> None:
        if value < 0:
            raise ConnectionError(f"server gone at {value}")

    poster = metrics.LatestOnly(post)
    poster.put(-1)
    with pytest.raises(ConnectionError, match="server gone at -1"):
        poster.flush()
    poster.put(1)
    poster.flush()
