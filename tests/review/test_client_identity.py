"""The review app believes nothing a request says about who sends it: login throttling counts
the TCP peer whatever the headers (X-Forwarded-For only from configured proxies), and logout
ends the session on the server, so a kept copy of the cookie is worthless."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from tests.review.review_factories import FakeClock
from tests.review.test_app import ORIGIN, REVIEWERS, app_for, csrf_of, items, login  # noqa: F401 (fixture)

from review.app import create_app, server_config
from review.auth import LoginThrottle
from review.queue import Item

# Every header some proxy or CDN uses to name the client; a client can send any of them itself.
SPOOFS = [
    {"x-forwarded-for": "198.51.100.{n}"},
    {"x-forwarded-for": "198.51.100.{n}, 127.0.0.1"},
    {"x-real-ip": "198.51.100.{n}"},
    {"forwarded": "for=198.51.100.{n};proto=https"},
    {"true-client-ip": "198.51.100.{n}"},
    {"cf-connecting-ip": "198.51.100.{n}"},
    {"x-client-ip": "198.51.100.{n}"},
    {"x-cluster-client-ip": "198.51.100.{n}"},
]


def _guesses(post, csrf: str, spoof: dict[str, str], count: int) -> list[int]:
    return [post("/login", data={"token": f"guess-{n:016d}", "csrf": csrf},
                 headers={**ORIGIN, **{k: v.format(n=n) for k, v in spoof.items()}}).status_code
            for n in range(count)]


@pytest.mark.parametrize("spoof", SPOOFS, ids=[next(iter(s)) + str(i) for i, s in enumerate(SPOOFS)])
def test_headers_neither_spread_nor_reset_the_throttle(out: Path, items: list[Item], spoof: dict) -> None:
    throttle = LoginThrottle(limit=3, window=60, clock=FakeClock())
    app = create_app(str(out), reviewers=REVIEWERS, allowed_hosts=["testserver"], login_throttle=throttle)
    with TestClient(app, follow_redirects=False, client=("203.0.113.7", 5000)) as attacker:
        assert _guesses(attacker.post, csrf_of(attacker), spoof, 5) == [401, 401, 401, 429, 429]
        attacker.cookies.clear()  # a fresh session does not reset it either
        csrf = csrf_of(attacker)
        assert attacker.post("/login", data={"token": REVIEWERS["dana"], "csrf": csrf},
                             headers={**ORIGIN, **{k: v.format(n=99) for k, v in spoof.items()}}).status_code == 429


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_served_app_counts_the_peer_not_x_forwarded_for(out: Path, items: list[Item]) -> None:
    """Through uvicorn as ``brandbatch review`` runs it: uvicorn's own proxy-header support would
    believe X-Forwarded-For from any local client and give each guess a new address."""
    import uvicorn

    throttle = LoginThrottle(limit=3, window=60)
    port = _free_port()
    app = create_app(str(out), reviewers=REVIEWERS, allowed_hosts=["127.0.0.1"], login_throttle=throttle)
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        with httpx.Client(base_url=base, follow_redirects=False) as client:
            page = client.get("/login")
            csrf = page.text.split('<meta name="csrf" content="', 1)[1].split('"', 1)[0]
            statuses = [client.post("/login", data={"token": f"guess-{n:016d}", "csrf": csrf},
                                    headers={"origin": base, "x-forwarded-for": f"198.51.100.{n}"}).status_code
                        for n in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_trusted_proxies_name_the_client_and_only_they(out: Path, items: list[Item]) -> None:
    throttle = LoginThrottle(limit=2, window=60, clock=FakeClock())
    app = create_app(str(out), reviewers=REVIEWERS, allowed_hosts=["testserver"], login_throttle=throttle,
                     trusted_proxies=["10.0.0.1"])
    with TestClient(app, follow_redirects=False, client=("10.0.0.1", 5000)) as proxy:
        csrf = csrf_of(proxy)
        # Behind the proxy, each client address has its own count...
        assert _guesses(proxy.post, csrf, {"x-forwarded-for": "192.0.2.{n}"}, 3) == [401, 401, 401]
        # ... and what the client itself wrote further left does not count: 192.0.2.50 is the peer the
        # proxy saw, whatever comes before it.
        assert _guesses(proxy.post, csrf, {"x-forwarded-for": "203.0.113.{n}, 192.0.2.50"}, 3) == [401, 401, 429]
    with TestClient(app, follow_redirects=False, client=("192.0.2.77", 5000)) as direct:  # not a proxy
        assert _guesses(direct.post, csrf_of(direct), {"x-forwarded-for": "192.0.2.{n}"}, 3) == [401, 401, 429]


def test_logout_ends_the_session_on_the_server(out: Path, items: list[Item]) -> None:
    with app_for(out) as client:
        csrf = login(client)
        kept = dict(client.cookies)  # what a stolen or cached cookie would be
        assert client.get(f"/i/{items[0].id}").status_code == 200
        assert client.post("/logout", data={"csrf": csrf}, headers=ORIGIN).status_code == 303
    with app_for(out) as replay:
        replay.cookies.update(kept)
        assert replay.get(f"/i/{items[0].id}").status_code == 303  # to the login page
        assert replay.post(f"/i/{items[0].id}/decide", json={"decision": "approve", "version": 1},
                           headers={**ORIGIN, "x-csrf-token": csrf, "accept": "application/json"}).status_code == 401


def test_each_login_is_its_own_session(out: Path, items: list[Item]) -> None:
    with app_for(out) as laptop, app_for(out) as phone:
        csrf = login(laptop)
        login(phone)
        laptop.post("/logout", data={"csrf": csrf}, headers=ORIGIN)
        assert laptop.get("/").status_code == 303
        assert phone.get("/").status_code == 200  # logging out on one device leaves the other
