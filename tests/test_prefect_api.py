"""The tests' Prefect REST helper retries a busy server like Prefect's client does."""

from __future__ import annotations

import httpx
import pytest

from tests.prefect_api import ATTEMPTS, RETRY_STATUS, request, retry_delay


def _answers(*items):
    """A `send` that returns (or raises) the given items in order and records each call."""
    calls = []

    def send(method, url, **kwargs):
        calls.append((method, url))
        item = items[len(calls) - 1]
        if isinstance(item, Exception):
            raise item
        return httpx.Response(item[0], headers=item[1] if len(item) > 1 else {})

    return send, calls


@pytest.mark.parametrize("status", sorted(RETRY_STATUS))
def test_busy_answers_are_retried_until_one_succeeds(status):
    send, calls = _answers((status,), (status,), (201,))
    slept = []
    assert request("POST", "http://x/api/runs", send=send, sleep=slept.append).status_code == 201
    assert len(calls) == 3 and len(slept) == 2


def test_dropped_connections_are_retried():
    send, calls = _answers(httpx.ConnectError("refused"), (200,))
    assert request("GET", "http://x/api/health", send=send, sleep=lambda s: None).status_code == 200


@pytest.mark.parametrize("status", [200, 400, 404, 409, 422, 500])
def test_other_answers_are_returned_at_once(status):
    send, calls = _answers((status,))
    assert request("GET", "http://x", send=send, sleep=lambda s: None).status_code == status
    assert len(calls) == 1


def test_gives_up_after_the_last_attempt_with_the_last_answer():
    send, calls = _answers(*[(503,)] * ATTEMPTS)
    assert request("GET", "http://x", send=send, sleep=lambda s: None).status_code == 503
    assert len(calls) == ATTEMPTS
    send, calls = _answers(*[httpx.ConnectError("refused")] * ATTEMPTS)
    with pytest.raises(httpx.ConnectError):
        request("GET", "http://x", send=send, sleep=lambda s: None)


def test_backoff_grows_and_honours_retry_after():
    waits = [retry_delay(attempt, None) for attempt in range(4)]
    assert all(1.6 * 2 ** i <= w <= 2.4 * 2 ** i for i, w in enumerate(waits))
    assert retry_delay(3, httpx.Response(503, headers={"Retry-After": "1.5"})) == 1.5
    assert 1.6 <= retry_delay(0, httpx.Response(503, headers={"Retry-After": "soon"})) <= 2.4
