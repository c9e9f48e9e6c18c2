"""Export identity: a fingerprint over everything that shapes an export file.

An export file is a function of its render's bytes, its placement's spec (size, byte cap, safe
zone), the overlay texts and their locale, the logo's bytes, the overlay style (the bytes of the
fonts that draw the texts included),
the crop, the approval its Content Credentials name, the encoder with its settings and library
versions, and the C2PA signing (the certificate chain, algorithm, c2pa and brandbatch versions). Each of these
*parts* is digested on its own; the fingerprint is the digest of the parts. The manifest row of
a file keeps both (``export_fingerprint`` and ``export_inputs``), and the file's XMP carries the
fingerprint, so a rerun can tell whether a file is still current and, if not, why.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from importlib import metadata

from PIL import features

from exports.credentials import Credential
from exports.encode import encoder_identity
from exports.overlay import OverlayStyle
from exports.placements import Placement
from exports.provenance import brandbatch_version
from exports.typeset import choose_face

# In the order a reason lists them ("copy changed, logo changed").
PARTS = ("render", "size", "cap", "safe zone", "copy", "logo", "overlay style", "crop", "approval", "encoder",
         "signing")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def item_identity(item: object) -> str:
    """A digest of every field of an export item (``exports.stage.ExportItem``: renders, approval,
    copy, placements, overlay, upscaler): items with the same identity export the same files."""
    return sha256_hex(json.dumps(dataclasses.asdict(item), sort_keys=True, default=str).encode("utf-8"))


def _digest(value: object) -> str:
    return sha256_hex(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8"))[:16]


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """A file's sha256, cached per process by (path, mtime, size): fonts recur in every file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Raises ``OSError`` if the file cannot be read."""
    stat = os.stat(path)
    return _file_sha256(os.fspath(path), stat.st_mtime_ns, stat.st_size)


def overlay_identity(style: OverlayStyle, texts: Sequence[str], locale: str) -> dict[str, object]:
    """The style's settings with its font file as the file's sha256 (a font edited in place
    changes the drawing), the font that draws each text (the style's own or one of its script's
    fallback chain, ``exports.typeset``) as its file's sha256, and the shaping libraries'
    versions. Raises ``OSError`` if a font cannot be read."""
    faces = []
    for text in texts:
        face = choose_face(text, style.font, style.weight, locale)[0] if text.strip() else None
        faces.append(None if face is None else [file_sha256(face.path), face.index, face.variable, face.language])
    return {**dataclasses.asdict(style), "font": file_sha256(style.font), "faces": faces,
            "shaping": [features.version(name) for name in ("raqm", "fribidi", "harfbuzz")]}


@functools.lru_cache(maxsize=8)
def signing_identity(credential: Credential) -> dict[str, object]:
    """What decides a file's C2PA manifest besides its content: who signs (the certificate chain,
    which names the key), how, and the c2pa and brandbatch versions (the claim generator)."""
    return {"certs": sha256_hex(credential.certs), "alg": credential.alg, "tsa_url": credential.tsa_url,
            "c2pa": metadata.version("c2pa-python"), "brandbatch": brandbatch_version()}


PIXEL_PARTS = ("render", "size", "safe zone", "copy", "logo", "overlay style", "crop")  # what the pixels follow


def pixel_parts(*, job_key: str, render_sha256: str, placement: Placement, upscaler: str | None = None,
                texts: Sequence[str] | None, logo_sha256: str | None, overlay: Mapping[str, object] | None,
                crop: Sequence[float] | None) -> dict[str, str]:
    """The digests of the parts that decide a file's pixels (``PIXEL_PARTS``): two files with the
    same ones show the same picture in any format (review previews are keyed by them)."""
    values = {
        # the source: the render, or the render upscaled by ``upscaler`` (its tag; absent when the
        # model did not run, so fingerprints made before upscalers existed stay the same)
        "render": [job_key, render_sha256] + ([upscaler] if upscaler else []),
        "size": [placement.width, placement.height],
        "safe zone": dataclasses.astuple(placement.safe_zone),
        "copy": list(texts) if texts is not None else None,
        "logo": logo_sha256,
        "overlay style": overlay,
        "crop": [round(x, 6) for x in crop] if crop is not None else "saliency",
    }
    return {name: _digest(values[name]) for name in PIXEL_PARTS}


def fingerprint_parts(*, job_key: str, render_sha256: str, placement: Placement, fmt: str, upscaler: str | None = None,
                      texts: Sequence[str] | None, logo_sha256: str | None, overlay: Mapping[str, object] | None,
                      crop: Sequence[float] | None, approval: Sequence[str], credential: Credential) -> dict[str, str]:
    """A short digest per part (see ``PARTS``). ``texts``, ``logo_sha256`` and ``overlay`` are
    None for what is not drawn (overlays off, no text, no logo); ``crop`` is the crop box in the
    render, None when it follows the render's saliency (a function of the render's bytes)."""
    pixels = pixel_parts(job_key=job_key, render_sha256=render_sha256, placement=placement, upscaler=upscaler,
                         texts=texts, logo_sha256=logo_sha256, overlay=overlay, crop=crop)
    values = {"cap": placement.max_bytes, "approval": list(approval), "encoder": encoder_identity(fmt),
              "signing": signing_identity(credential)}
    return {name: pixels[name] if name in pixels else _digest(values[name]) for name in PARTS}


def export_fingerprint(parts: Mapping[str, str]) -> str:
    """The fingerprint of a file made from ``parts`` (64 hex digits)."""
    return sha256_hex(json.dumps(dict(parts), sort_keys=True).encode("utf-8"))


def changed_parts(parts: Mapping[str, str], previous: Mapping[str, str]) -> str:
    """Why a file made from ``previous`` parts is stale: ``"copy changed, logo changed"``."""
    return ", ".join(f"{name} changed" for name in PARTS if parts.get(name) != previous.get(name))
