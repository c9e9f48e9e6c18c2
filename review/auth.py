"""Reviewer tokens and request checks for the review app: who is asking, and is the POST ours.

Tokens come from ``$BRANDBATCH_REVIEWERS_FILE`` (YAML or JSON mapping name -> token) or
``$BRANDBATCH_REVIEWER_TOKENS`` ("name:token,name:token"). They are compared with
``hmac.compare_digest``; the session keeps the reviewer's name and an HMAC fingerprint of the
token, so changing or removing a token ends that reviewer's sessions. :class:`LoginThrottle`
limits failed logins per client address (brute force).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import yaml

from review.queue import ReviewError
from settings import load_settings, variable

FILE_ENV, TOKENS_ENV = variable("reviewers_file"), variable("reviewer_tokens")
MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@ -]{0,99}$")


def _checked(tokens: Mapping[object, object], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, token in tokens.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ReviewError(f"{where}: reviewer name must be 1-100 letters, digits, '._@ -' but is {name!r}")
        if name == "qa-auto" or name == "brandbatch":
            raise ReviewError(f"{where}: reviewer name {name!r} is reserved for the pipeline")
        if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
            raise ReviewError(f"{where}: token of reviewer {name!r} must be a string of at least "
                              f"{MIN_TOKEN_CHARS} characters")
        out[name] = token
    if len(set(out.values())) != len(out):
        raise ReviewError(f"{where}: two reviewers share a token; each needs their own")
    return out


def load_reviewers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """name -> token from the reviewers file, else the tokens variable; error if neither.
    ``env``: where the settings come from (default: this process's environment)."""
    settings = load_settings(env)
    if settings.reviewers_file:
        path = settings.reviewers_file
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
        except (OSError, yaml.YAMLError) as exc:
            raise ReviewError(f"{FILE_ENV}={path}: cannot read reviewers: {exc}") from None
        if not isinstance(data, dict) or not data:
            raise ReviewError(f"{path}: must be a mapping of reviewer name -> token (YAML or JSON)")
        return _checked(data, str(path))
    if settings.reviewer_tokens:
        pairs: dict[str, str] = {}
        for part in settings.reviewer_tokens.split(","):
            name, sep, token = part.strip().partition(":")
            if not sep:
                raise ReviewError(f"{TOKENS_ENV}: entries must be name:token, but one is {name!r}")
            pairs[name.strip()] = token.strip()
        return _checked(pairs, TOKENS_ENV)
    raise ReviewError(f"no reviewers configured: set {FILE_ENV} (YAML/JSON name -> token) "
                      f"or {TOKENS_ENV} ('name:token,...')")


def reviewer_for(token: str, reviewers: Mapping[str, str]) -> str | None:
    """The reviewer whose token this is; every token is compared in constant time."""
    found = None
    for name, expected in reviewers.items():
        if hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
            found = name
    return found


def token_fingerprint(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def same_origin(origin: str | None, referer: str | None, own: str) -> bool:
    """True if the request says it comes from this site: its Origin, or else its Referer,
    has our scheme://host:port. Neither header present is refused."""
    claimed = origin if origin and origin != "null" else None
    if claimed is None and referer:
        parts = urlsplit(referer)
        claimed = f"{parts.scheme}://{parts.netloc}"
    return claimed is not None and hmac.compare_digest(claimed.lower(), own.lower())


class LoginThrottle:
    """At most ``limit`` failed logins per client address in any ``window`` seconds.

    After that every login from the address (right token or not) is refused until the
    oldest failure in the window is ``window`` seconds old: :meth:`retry_after` says how many
    seconds are left. A good login clears the address's failures. Per process, in memory:
    a restart forgets them. At most ``max_clients`` addresses are tracked (the least recently
    failing is forgotten first), so a flood of addresses cannot exhaust memory.
    """

    def __init__(self, limit: int = 5, window: float = 60.0, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"login throttle needs limit >= 1 and window > 0 but got {limit}, {window}")
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` may try again; 0 when it may now."""
        with self._lock:
            failures = self._recent(client)
            if failures is None or len(failures) < self.limit:
                return 0
            return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def failed(self, client: str) -> None:
        with self._lock:
            failures = self._recent(client)
            if failures is None:
                failures = self._failures[client] = deque()
            failures.append(self.clock())
            self._failures.move_to_end(client)
            while len(failures) > self.limit:
                failures.popleft()
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures
