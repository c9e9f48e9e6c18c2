"""Render jobs as values: derived seeds, canonical JSON, content keys.

``seed = H(campaign, row key, variant, style version, reroll count)`` truncated to 63 bits,
so reordering or adding rows changes no other row's pixels; a reroll bumps the count.
A job key is the sha256 of the job's canonical JSON: identical jobs render once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from functools import cached_property

SEED_BITS = 63


def derive_seed(campaign: str, row_key: str, variant: int, style_ref: str, reroll: int = 0) -> int:
    """Deterministic 63-bit seed; independent of row order, batching and machine."""
    payload = json.dumps(["brandbatch-seed-v1", campaign, row_key, variant, style_ref, reroll], ensure_ascii=False)
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RenderJob:
    """Everything that decides a render's pixels, and where it came from."""

    campaign: str
    row_key: str
    row: int
    variant: int
    aspect: str
    width: int
    height: int
    prompt: str
    negative_prompt: str
    model_id: str
    model_revision: str | None
    model_family: str
    scheduler: str
    steps: int
    guidance: float
    seed: int
    style: str
    style_version: int
    reroll: int = 0

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _FIELDS}  # plain values only: no deep copy

    @classmethod
    def from_dict(cls, data: dict) -> RenderJob:
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})

    @cached_property
    def key(self) -> str:
        """sha256 of the canonical JSON of the job (the ``row`` number excluded: it is
        where the row sat in the sheet, which must not change what is rendered)."""
        return sha256_text(canonical_json({name: getattr(self, name) for name in _KEY_FIELDS}))

    @property
    def prompt_sha256(self) -> str:
        return sha256_text(self.prompt)

    @property
    def group(self) -> tuple:
        """Jobs with the same group can share one pipeline call (batch)."""
        return (self.model_id, self.model_revision, self.model_family, self.width, self.height,
                self.scheduler, self.steps, self.guidance)


_FIELDS = tuple(f.name for f in fields(RenderJob))
_KEY_FIELDS = tuple(name for name in _FIELDS if name != "row")
