"""Plain HTTP calls to a Prefect server's REST API for tests, retried like Prefect's own client.

Prefect's client (``prefect.client.base``) retries 429, 502 and 503 answers and dropped
connections with exponential backoff and jitter, honouring ``Retry-After``: a busy server (a
loaded CI machine) answers 503 now and then. brandbatch itself only talks to Prefect through that
client; tests that post with plain httpx use this module so they tolerate a busy server the same way.
"""

from __future__ import annotations

import random
import time

import httpx

RETRY_STATUS = frozenset({429, 502, 503, 504})
ATTEMPTS = 6  # Prefect's PREFECT_CLIENT_MAX_RETRIES is 5 retries after the first try
BASE_DELAY = 2.0
JITTER = 0.2  # Prefect's client jitters its backoff by +-20 %


def retry_delay(attempt: int, response: httpx.Response | None) -> float:
    """Seconds to wait before try ``attempt + 1``: the server's Retry-After when it says one,
    else 2 s, 4 s, 8 s, ... with jitter."""
    if response is not None:
        try:
            return max(0.0, float(response.headers.get("Retry-After", "")))
        except ValueError:
            pass
    return BASE_DELAY * 2 ** attempt * random.uniform(1 - JITTER, 1 + JITTER)


def request(method: str, url: str, *, attempts: int = ATTEMPTS, sleep=time.sleep, send=httpx.request,
            **kwargs) -> httpx.Response:
    """``httpx.request`` that retries busy answers (429/502/503/504) and transport errors; the last
    answer (or error) is returned (raised) as it is."""
    kwargs.setdefault("timeout", 10)
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            response = send(method, url, **kwargs)
        except httpx.TransportError:
            if last:
                raise
            response = None
        else:
            if response.status_code not in RETRY_STATUS or last:
                return response
        sleep(retry_delay(attempt, response))
    raise AssertionError("unreachable")


def get_json(url: str, **kwargs):
    response = request("GET", url, **kwargs)
    response.raise_for_status()
    return response.json()


def post_json(url: str, body: dict, **kwargs):
    response = request("POST", url, json=body, **kwargs)
    response.raise_for_status()
    return response.json()
