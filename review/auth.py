"""Reviewer tokens and request checks for the review app: who is asking, and is the POST ours.

Tokens come from ``$BRANDBATCH_REVIEWERS_FILE`` (YAML or JSON mapping name -> token) or
``$BRANDBATCH_REVIEWER_TOKENS`` ("name:token,name:token"). They are compared with
``hmac.compare_digest``; the session keeps the reviewer's name and an HMAC fingerprint of the
token, so changing or removing a token ends that reviewer's sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from review.queue import ReviewError

FILE_ENV = "BRANDBATCH_REVIEWERS_FILE"
TOKENS_ENV = "BRANDBATCH_REVIEWER_TOKENS"
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
    """name -> token from the reviewers file, else the tokens variable; error if neither."""
    env = os.environ if env is None else env
    if env.get(FILE_ENV):
        path = Path(env[FILE_ENV])
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML reads JSON too
        except (OSError, yaml.YAMLError) as exc:
            raise ReviewError(f"{FILE_ENV}={path}: cannot read reviewers: {exc}") from None
        if not isinstance(data, dict) or not data:
            raise ReviewError(f"{path}: must be a mapping of reviewer name -> token (YAML or JSON)")
        return _checked(data, str(path))
    if env.get(TOKENS_ENV):
        pairs: dict[str, str] = {}
        for part in env[TOKENS_ENV].split(","):
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
