"""Render jobs as values: derived seeds, canonical JSON, content keys.

``seed = H(campaign, row key, variant, style version, reroll count)`` truncated to 63 bits,
so reordering or adding rows changes no other row's pixels; a reroll bumps the count.
A job key is the sha256 of the job's canonical JSON: identical jobs render once.

Creative families (style ``composition: expand``): an asset variant renders one **master**;
each other aspect ratio is an **expansion** (outpainting of the master) whose job names the
master's key (``master_key``) and whose seed derives from that key and its aspect, so a new
master (a reroll) gives new expansions and nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from functools import cached_property, lru_cache

SEED_BITS = 63


# One encoder each, made once: ``json.dumps`` with options builds a new encoder per call, which
# was a fifth of the time of a job key on a big sheet. Same options, so the same text.
_SEED_JSON = json.JSONEncoder(ensure_ascii=False).encode
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_JSON_STRING = json.encoder.encode_basestring  # what both write for a str (ensure_ascii=False)


def derive_seed(campaign: str, row_key: str, variant: int, style_ref: str, reroll: int = 0) -> int:
    """Deterministic 63-bit seed; independent of row order, batching and machine."""
    # The JSON list ``_SEED_JSON`` writes, item by item (no encoder call per list); strings and ints
    # (the items' types) written here, without a call per item.
    if type(campaign) is type(row_key) is type(style_ref) is str and type(variant) is type(reroll) is int:  # noqa: E721
        payload = (f'["brandbatch-seed-v1", {_JSON_STRING(campaign)}, {_JSON_STRING(row_key)}, {variant!r}, '
                   f'{_JSON_STRING(style_ref)}, {reroll!r}]')
    else:
        payload = (f'["brandbatch-seed-v1", {_seed_item(campaign)}, {_seed_item(row_key)}, {_seed_item(variant)}, '
                   f'{_seed_item(style_ref)}, {_seed_item(reroll)}]')
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def _seed_item(value: object) -> str:
    """``_SEED_JSON(value)``; an int or str (the seed's items) without the encoder's Python layers."""
    if type(value) is int:  # noqa: E721 - bool is JSON true
        return repr(value)
    return _JSON_STRING(value) if type(value) is str else _SEED_JSON(value)  # noqa: E721


def derive_expand_seed(master_key: str, aspect: str) -> int:
    """Seed of an expansion: a function of its master's job key and its target aspect only."""
    payload = json.dumps(["brandbatch-expand-seed-v1", master_key, aspect])
    digest = hashlib.sha256(payload.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


def canonical_json(value: object) -> str:
    return _CANONICAL_JSON(value)


def _json_value(value: object) -> str:
    """``canonical_json(value)``; an int (the common case) without the encoder's call."""
    return repr(value) if type(value) is int else _CANONICAL_JSON(value)  # noqa: E721 - bool is JSON true


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
    # Expansions only (None for masters and independent renders, and then left out of the key,
    # so jobs planned before families existed keep their keys): the master's job key, and the
    # style's focal point (x, y as 0..1) that places the master on the canvas (None: saliency).
    master_key: str | None = None
    expand_focal: tuple[float, float] | None = None
    # Uploaded images (None: none, and left out of the key): (sheet column, sha256 of the bytes)
    # sorted, e.g. (("product_image", "3f..."),); expansions carry their master's.
    input_images: tuple[tuple[str, str], ...] | None = None
    # Packshot placement (None: no product, or an expansion, whose master carries it):
    # (anchor x, anchor y, height, shadow) from the style's ``product`` for this aspect.
    product: tuple[float, float, float, bool] | None = None
    # Brand models (None: none, and left out of the key): (LoRA file, sha256, scale) in the style's
    # order; the key holds hashes and scales, not paths (a moved file renders the same).
    adapters: tuple[tuple[str, str, float], ...] | None = None
    embeddings: tuple[tuple[str, str, str], ...] | None = None  # textual inversions: (file, sha256, token)
    # References (None: none; the image itself is ``input_images``' ``reference_image``):
    # image-to-image strength, and the style reference's IP-Adapter as (file or tiny id, sha256
    # or revision, scale), whose key part is its hash and scale.
    reference_strength: float | None = None
    ip_adapter: tuple[str, str, float] | None = None
    controlnet: tuple[str, str, float] | None = None  # structure reference: (ControlNet, sha256 or revision, scale)

    def __post_init__(self) -> None:  # from JSON: lists
        if self.expand_focal is not None and not isinstance(self.expand_focal, tuple):
            object.__setattr__(self, "expand_focal", tuple(self.expand_focal))
        if self.adapters is not None:
            object.__setattr__(self, "adapters", tuple(tuple(a) for a in self.adapters))
        if self.embeddings is not None:
            object.__setattr__(self, "embeddings", tuple(tuple(e) for e in self.embeddings))
        if self.input_images is not None and not isinstance(self.input_images, tuple):
            object.__setattr__(self, "input_images", tuple(tuple(pair) for pair in self.input_images))
        if self.product is not None and not isinstance(self.product, tuple):
            object.__setattr__(self, "product", tuple(self.product))
        if self.ip_adapter is not None and not isinstance(self.ip_adapter, tuple):
            object.__setattr__(self, "ip_adapter", tuple(self.ip_adapter))
        if self.controlnet is not None and not isinstance(self.controlnet, tuple):
            object.__setattr__(self, "controlnet", tuple(self.controlnet))

    @property
    def input_sha256(self) -> dict[str, str]:
        """Sheet column -> sha256 of the uploaded image it named."""
        return dict(self.input_images or ())

    @property
    def needs_inpaint(self) -> bool:
        """Expansions and packshot renders call an inpainting pipeline."""
        return self.is_expansion or self.product is not None

    @property
    def uses_reference(self) -> bool:
        """Renders from (``reference_strength``) or steered by (``ip_adapter``, ``controlnet``) its reference."""
        return self.reference_strength is not None or self.ip_adapter is not None or self.controlnet is not None

    @property
    def is_expansion(self) -> bool:
        return self.master_key is not None

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _FIELDS}  # plain values only: no deep copy

    @classmethod
    def from_dict(cls, data: dict) -> RenderJob:
        return cls(**{k: v for k, v in data.items() if k in _FIELDS})

    @cached_property
    def key(self) -> str:
        """sha256 of the canonical JSON of the job (the ``row`` number excluded: it is
        where the row sat in the sheet, which must not change what is rendered)."""
        return _key({name: _key_part(name, getattr(self, name)) or "" for name in _KEY_ORDER})

    @property
    def build(self) -> tuple:
        """What the pipeline is built from: the model, its adapters, IP-Adapter and ControlNet (``render.registry``)."""
        return (self.model_id, self.model_revision, self.adapters or (), self.embeddings or (), self.ip_adapter,
                self.controlnet[:2] if self.controlnet else None)

    @property
    def prompt_sha256(self) -> str:
        return sha256_text(self.prompt)

    @property
    def group(self) -> tuple:
        """Jobs with the same group can share one pipeline call (batch)."""
        return (*self.build, self.model_family, self.width, self.height, self.scheduler, self.steps,
                self.guidance, self.is_expansion, self.needs_inpaint, self.reference_strength, self.controlnet,
                self.input_sha256.get("reference_image") if self.ip_adapter else None)  # one IP image a call


_FIELDS = tuple(f.name for f in fields(RenderJob))
_OPTIONAL_FIELDS = frozenset(("master_key", "expand_focal", "adapters", "embeddings", "input_images", "product",
                              "reference_strength", "ip_adapter", "controlnet"))
_FIELDS_AND_KEY = (*_FIELDS, "key")
_FIELD_NAMES = frozenset(_FIELDS)
_KEY_ORDER = tuple(sorted(_FIELDS))  # canonical JSON sorts its keys
_DEFAULTS = {f.name: f.default for f in fields(RenderJob)}  # MISSING for the fields every job names


@lru_cache(maxsize=4096)  # most values repeat from job to job (aspects, sizes, models, the style's settings)
def _key_part(name: str, value: object) -> str | None:
    """Field ``name``'s ``"name":value`` in its job key's canonical JSON, or None when the key
    leaves it out (``row``, and an optional field that is None). Brand models, the IP-Adapter and
    the ControlNet count by their hash and scale, not their path (a moved file renders the same)."""
    if name == "row" or (value is None and name in _OPTIONAL_FIELDS):
        return None
    if name == "adapters":
        value = [[sha256, scale] for _path, sha256, scale in value]
    elif name == "embeddings":
        value = [[sha256, token] for _path, sha256, token in value]
    elif name in ("ip_adapter", "controlnet"):
        value = list(value[1:])
    return f'"{name}":{_json_value(value)}'  # field names are plain ASCII: JSON strings as they are


def _key(parts: dict[str, str]) -> str:
    """sha256 of the canonical JSON object (keys sorted, no spaces) made of ``parts``: a part per
    field in ``_KEY_ORDER``, '' for those the key leaves out."""
    return sha256_text("{" + ",".join(filter(None, parts.values())) + "}")


class JobMaker:
    """Makes jobs that share most of their values (a style's, a row's): those are given once
    (``sharing`` adds more) and encoded for the key once, and each job names only the fields it
    sets itself. The same jobs and keys as ``RenderJob(...)``; values are given as a job holds
    them (tuples, not JSON lists)."""

    def __init__(self, **shared: object) -> None:
        _check_names(shared)
        self._values = {**_DEFAULTS, **shared}  # every field, in field order (so jobs share their dict keys)
        self._parts = dict.fromkeys(_KEY_ORDER, "")  # in key order: no sorting per job
        self._parts.update(_parts({name: value for name, value in self._values.items() if value is not MISSING}))
        self._needed = frozenset(name for name, value in self._values.items() if value is MISSING)

    def sharing(self, **more: object) -> JobMaker:
        """A maker whose jobs also share ``more``."""
        _check_names(more)
        maker = object.__new__(JobMaker)
        maker._values = {**self._values, **more}
        maker._parts = {**self._parts, **_parts(more)}
        maker._needed = self._needed - more.keys()
        return maker

    def job(self, **own: object) -> RenderJob:
        values, key = self._made(own)
        job = object.__new__(RenderJob)
        # One by one, in field order, so the job shares its dict's keys with every job (half the memory);
        # updating the empty dict from a dict would copy that dict's keys instead.
        job.__dict__.update(values.items())
        job.__dict__["key"] = key  # what the cached ``key`` property computes
        return job

    def values(self, **own: object) -> tuple:
        """``job_values(self.job(**own))``, without making the job."""
        values, key = self._made(own)
        return (*values.values(), key)

    def _made(self, own: dict[str, object]) -> tuple[dict[str, object], str]:
        """A job's field values, in field order, and its key."""
        values = {**self._values, **own}
        if len(values) != len(_FIELDS):
            _check_names(own)
        if not self._needed <= own.keys():
            raise TypeError(f"a job needs {', '.join(sorted(self._needed - own.keys()))}")
        parts = self._parts.copy()
        for name, value in own.items():
            parts[name] = _key_part(name, value) or ""
        return values, _key(parts)


def job_values(job: RenderJob) -> tuple:
    """The job's field values and key (``job_from_values`` makes the job again): cheaper to send to
    another process than the job."""
    values = job.__dict__
    return (*map(values.__getitem__, _FIELDS), job.key)


def job_from_values(values: tuple) -> RenderJob:
    job = object.__new__(RenderJob)
    job.__dict__.update(zip(_FIELDS_AND_KEY, values))  # one by one: the job shares its dict's keys (``JobMaker.job``)
    return job


def _parts(values: Mapping[str, object]) -> dict[str, str]:
    """The ``_key_part`` of each of ``values``, '' for those the key leaves out."""
    return {name: _key_part(name, value) or "" for name, value in values.items()}


def _check_names(values: Mapping[str, object]) -> None:
    if not values.keys() <= _FIELD_NAMES:
        raise TypeError(f"a job has no field {', '.join(sorted(values.keys() - _FIELD_NAMES))}")


def reseed(jobs: Sequence[RenderJob], reroll: int) -> list[RenderJob]:
    """The jobs of one asset variant at reroll count ``reroll``, in the order given: masters and
    independent renders get the seed derived for that count; each expansion follows its master
    (the master's new key, and the seed derived from it)."""
    masters = {job.key: replace(job, reroll=reroll, seed=derive_seed(
        job.campaign, job.row_key, job.variant, f"{job.style}@{job.style_version}", reroll))
        for job in jobs if not job.is_expansion}
    out = []
    for job in jobs:
        if not job.is_expansion:
            out.append(masters[job.key])
            continue
        if job.master_key not in masters:
            raise ValueError(f"expansion {job.key} ({job.row_key} v{job.variant} {job.aspect}) has no master "
                             f"among the variant's jobs (master key {job.master_key})")
        master = masters[job.master_key]
        out.append(replace(job, reroll=reroll, master_key=master.key, seed=derive_expand_seed(master.key, job.aspect)))
    return out
