"""Logos are files from outside (a style's folder, a sheet's ``logo`` column): open them as
hostile input. Only PNG, JPEG and WebP are parsed (no other Pillow plugin sees the bytes), the
pixel count is capped before anything is decoded, Pillow's decompression-bomb warning counts as
an error, and truncated or corrupt files fail instead of being drawn half-decoded.
"""

from __future__ import annotations

from PIL import Image

from plan.uploads import UploadError, decode_image

MAX_LOGO_PIXELS = 4096 * 4096  # a logo is drawn at most a few hundred pixels wide


class LogoError(ValueError):
    """A logo that cannot be used; the message names the file and why."""


def read_logo(path: str) -> bytes:
    """The bytes of the logo file at ``path`` (the export fingerprint hashes exactly the bytes
    that are drawn). Raises ``LogoError`` naming the file."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise LogoError(f"logo {path} does not exist") from None
    except OSError as exc:
        raise LogoError(f"logo {path} cannot be read: {exc.strerror or exc}") from None


def load_logo(path: str, data: bytes) -> Image.Image:
    """The logo ``data`` (read from ``path`` by ``read_logo``), fully decoded, as RGBA
    (``plan.uploads.decode_image``: the rules every uploaded image gets). Raises ``LogoError``
    naming the file."""
    try:
        return decode_image(f"logo {path}", data, MAX_LOGO_PIXELS)
    except UploadError as exc:
        raise LogoError(str(exc)) from None
