from __future__ import annotations

import json
from pathlib import Path

import pytest

from review.auth import load_reviewers, reviewer_for, same_origin
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
