from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.review.review_factories import FakeClock

from review.auth import LoginThrottle, load_reviewers, reviewer_for, same_origin
from review.queue import ReviewError

DANA, LEE = "d" * 16, "l" * 20


def test_tokens_from_the_environment() -> None:
    env = {"BRANDBATCH_REVIEWER_TOKENS": f"dana:{DANA}, lee:{LEE}"}
    reviewers = load_reviewers(env)
    assert reviewers == {"dana": DANA, "lee": LEE}
    assert reviewer_for(LEE, reviewers) == "lee" and reviewer_for(LEE[:-1], reviewers) is None


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_tokens_from_a_file_win(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"reviewers.{suffix}"
    path.write_text(json.dumps({"dana": DANA}) if suffix == "json" else f"dana: {DANA}\n")
    env = {"BRANDBATCH_REVIEWERS_FILE": str(path), "BRANDBATCH_REVIEWER_TOKENS": f"lee:{LEE}"}
    assert load_reviewers(env) == {"dana": DANA}


@pytest.mark.parametrize(("env", "message"), [
    ({}, "no reviewers configured: set BRANDBATCH_REVIEWERS_FILE"),
    ({"BRANDBATCH_REVIEWER_TOKENS": "dana"}, "entries must be name:token, but one is 'dana'"),
    ({"BRANDBATCH_REVIEWER_TOKENS": "dana:short"}, "token of reviewer 'dana' must be a string of at least 16"),
    ({"BRANDBATCH_REVIEWER_TOKENS": f"dana:{DANA},lee:{DANA}"}, "two reviewers share a token"),
    ({"BRANDBATCH_REVIEWER_TOKENS": f"qa-auto:{DANA}"}, "'qa-auto' is reserved"),
    ({"BRANDBATCH_REVIEWER_TOKENS": f"<b>:{DANA}"}, "reviewer name must be 1-100 letters"),
    ({"BRANDBATCH_REVIEWERS_FILE": "/nonexistent/reviewers.yaml"}, "cannot read reviewers"),
])
def test_bad_reviewer_config_says_what_is_wrong(env: dict, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        load_reviewers(env)


def test_same_origin() -> None:
    own = "http://127.0.0.1:8765"
    assert same_origin(own, None, own)
    assert same_origin(None, f"{own}/c/spring-launch", own)
    assert not same_origin("http://127.0.0.1:9999", None, own)
    assert same_origin("null", f"{own}/", own)  # an opaque Origin falls back to the Referer
    assert not same_origin("null", None, own)
    assert not same_origin(None, None, own)
    assert not same_origin("http://evil.example", f"{own}/", own)  # Origin wins over Referer


def test_login_throttle_counts_failures_per_address_in_a_window() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        clock.now += 10
    assert throttle.retry_after("10.0.0.1") == 30  # the first failure (t=1000) leaves the window at 1060
    assert throttle.retry_after("10.0.0.2") == 0  # other addresses are not affected
    clock.now += 29.5
    assert throttle.retry_after("10.0.0.1") == 1
    clock.now += 0.5
    assert throttle.retry_after("10.0.0.1") == 0  # one failure left the window: one more try
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 10
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0


def test_login_throttle_forgets_the_oldest_addresses_first() -> None:
    throttle = LoginThrottle(limit=1, window=60, max_clients=2, clock=FakeClock())
    for client in ("a", "b", "c"):
        throttle.failed(client)
    assert [throttle.retry_after(c) for c in ("a", "b", "c")] == [0, 60, 60]
    with pytest.raises(ValueError, match="limit >= 1 and window > 0"):
        LoginThrottle(limit=0)
