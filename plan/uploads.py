"""Uploaded images (a sheet's ``logo``, ``product_image``, ``product_mask``, reference images):
hostile input, checked once, in this one place.

* **Where**: a path relative to the sheet's folder, inside it once symlinks are resolved
  (``plan.styles.file_in_folder``), with an allowed suffix.
* **What**: at most ``MAX_UPLOAD_BYTES``; only PNG, JPEG and WebP are parsed (no other Pillow
  plugin sees the bytes); the pixel count is capped before anything is decoded; Pillow's
  decompression-bomb warning counts as an error; truncated or corrupt files fail instead of
  being used half-decoded (``decode_image``, which logos use too).
* **Rights**: the image's perceptual hash (``imagehash.phash``, 64 bits, of the image flattened
  on white and cropped to its opaque part) is compared with every file in
  ``styles/<brand>/blocked-marks/``; a Hamming distance of at most ``BLOCKED_MARK_DISTANCE``
  refuses the row, naming the matched file (``blocked_mark_match``).
* **Identity**: the sha256 of the bytes goes into the job key and the manifest.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

UPLOAD_COLUMNS = ("logo", "product_image", "product_mask", "reference_image")  # sheet columns that name an image
RENDER_INPUT_COLUMNS = ("product_image", "product_mask", "reference_image")  # those that shape a render: in its job key
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")
UPLOAD_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
# Hamming distance (of 64 bits) between perceptual hashes at or below which an upload is the
# blocked mark. Measured (docs/inputs.md): resized 0, JPEG 2, 2 % crop 4, rotated 2-5 degrees 8-10;
# unrelated images 24-34; a 10 % crop 30 (not caught).
BLOCKED_MARK_DISTANCE = 10
BLOCKED_MARKS_FOLDER = "blocked-marks"


class UploadError(ValueError):
    """An image that cannot be used; the message names the file and why."""


class BlockedMarkError(UploadError):
    """An image that matches one of the brand's blocked marks; the message names the mark's file."""


def decode_image(label: str, data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> Image.Image:
    """``data`` fully decoded as RGBA; ``label`` names it in errors ("logo styles/acme/logo.png")."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as image:
                pixels = image.width * image.height
                if pixels > max_pixels:
                    raise UploadError(f"{label} is {image.width}x{image.height} = {pixels} pixels; "
                                      f"at most {max_pixels} are allowed")
                image.load()
                return image.convert("RGBA")
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError(f"{label} is not a {', '.join(UPLOAD_FORMATS)} image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(f"{label} is refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated, corrupt, unreadable
        raise UploadError(f"{label} cannot be decoded: {exc}") from None


@dataclass(frozen=True)
class Upload:
    """A checked upload: where it is and what the checks need, not its pixels (a plan of many
    rows holds one per cell)."""

    column: str
    path: Path
    sha256: str  # of the bytes
    size: tuple[int, int]
    alpha: tuple[int, int]  # lowest and highest alpha (255, 255: opaque)


def read_upload(value: str, folder: Path, column: str) -> Upload:
    """The image a sheet cell names (``value``, relative to the sheet's ``folder``), read and
    decoded under the rules above. Raises ``UploadError`` naming the file."""
    from plan.styles import file_in_folder

    if problem := file_in_folder(value, UPLOAD_SUFFIXES, folder):
        raise UploadError(f"{problem} (the sheet's folder) but is {value!r}")
    path = (Path(folder) / value).resolve()
    stat = path.stat()
    if stat.st_size > MAX_UPLOAD_BYTES:
        raise UploadError(f"{value} is {stat.st_size} bytes; the cap for images is {MAX_UPLOAD_BYTES}")
    sha256, size, alpha = _read(str(path), stat.st_mtime_ns, stat.st_size, value)
    return Upload(column, path, sha256, size, alpha)


def _read_bytes(path: str, label: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_UPLOAD_BYTES + 1)
    except OSError as exc:
        raise UploadError(f"{label} cannot be read: {exc.strerror or exc}") from None


@lru_cache(maxsize=1024)  # a packshot used by many rows is read and decoded once
def _read(path: str, _mtime_ns: int, _size: int, label: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    data = _read_bytes(path, label)
    image = decode_image(label, data)
    return hashlib.sha256(data).hexdigest(), image.size, image.getchannel("A").getextrema()


@lru_cache(maxsize=1024)  # only where the brand has blocked marks: phash imports scipy's FFT (~0.3 s)
def _upload_mark_hash(path: str, _mtime_ns: int, _size: int, label: str) -> object:
    return _mark_hash(decode_image(label, _read_bytes(path, label)))


def _mark_hash(image: Image.Image):
    """phash of an image flattened on white and cropped to its opaque part."""
    import imagehash

    rgba = image.convert("RGBA")
    box = rgba.getchannel("A").point(lambda a: 255 if a > 0 else 0).getbbox() or (0, 0, *rgba.size)
    flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    return imagehash.phash(flat.crop(box).convert("RGB"))


def blocked_marks(brand_folder: Path) -> tuple[tuple[str, object], ...]:
    """(file name, phash) of every image in ``<brand_folder>/blocked-marks/``; computed again only
    when the folder's listing or a file changes. An unreadable mark raises ``UploadError``."""
    folder = Path(brand_folder) / BLOCKED_MARKS_FOLDER
    if not folder.is_dir():
        return ()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in UPLOAD_SUFFIXES and p.is_file())
    return _mark_hashes(tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files))


@lru_cache(maxsize=16)
def _mark_hashes(files: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, object], ...]:
    out = []
    for path, _mtime, _size in files:
        data = Path(path).read_bytes()
        out.append((Path(path).name, _mark_hash(decode_image(f"blocked mark {path}", data))))
    return tuple(out)


def blocked_mark_match(image: Image.Image | None, marks: tuple[tuple[str, object], ...],
                       digest: object = None) -> tuple[str, int] | None:
    """(file name, distance) of the closest blocked mark within ``BLOCKED_MARK_DISTANCE``, or None;
    ``digest``: the image's mark hash instead of the image."""
    if not marks:
        return None
    digest = _mark_hash(image) if digest is None else digest
    name, distance = min(((n, int(digest - h)) for n, h in marks), key=lambda m: (m[1], m[0]))
    return (name, distance) if distance <= BLOCKED_MARK_DISTANCE else None


def check_upload(value: str, folder: Path, column: str, brand_folder: Path) -> Upload:
    """``read_upload`` plus the rights check against the brand's blocked marks. Raises
    ``UploadError``, ``BlockedMarkError`` for a rights match."""
    upload = read_upload(value, folder, column)
    if not (marks := blocked_marks(brand_folder)):
        return upload
    stat = upload.path.stat()
    digest = _upload_mark_hash(str(upload.path), stat.st_mtime_ns, stat.st_size, value)
    match = blocked_mark_match(None, marks, digest)
    if match:
        name, distance = match
        raise BlockedMarkError(f"{value} matches the blocked mark {BLOCKED_MARKS_FOLDER}/{name} in "
                            f"{brand_folder} (perceptual-hash distance {distance} <= {BLOCKED_MARK_DISTANCE}); "
                            "the brand may not use this image")
    return upload


def store_inputs(store, rows) -> None:
    """Put the images that shape renders (``RENDER_INPUT_COLUMNS``) of planned ``rows`` into the
    store under ``inputs/<sha256>``, once each: render, QA and exports read them from there.
    Raises ``UploadError`` for a file whose bytes changed since the sheet was planned."""
    from store.keys import input_key

    for row in rows:
        for column, upload in row.uploads.items():
            if column not in RENDER_INPUT_COLUMNS or store.exists(key := input_key(upload.sha256)):
                continue
            data = upload.path.read_bytes()
            if hashlib.sha256(data).hexdigest() != upload.sha256:
                raise UploadError(f"{upload.path} changed while the campaign was being planned; run it again")
            store.put(key, data)
