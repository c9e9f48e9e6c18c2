"""Ad placement presets: ``exports/platforms.yaml`` plus an optional user file, validated on load.

Each placement says the exact pixel size to export (or, ``any_size``, the largest), the
platform's minimum size and byte cap, the upload formats it accepts (JPEG/PNG), the safe zone to
keep free of overlays, the source of those numbers and the date they were checked against it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from plan.errors import InputError, Problem, did_you_mean
from plan.names import DEVICE_NAMES

PRESETS = Path(__file__).with_name("platforms.yaml")
# libyaml's safe loader where PyYAML was built with it (the wheels are): the same documents, 7x faster
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
UPLOAD_FORMATS = ("jpeg", "png")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")

Pixels = Annotated[int, Field(ge=1, le=16384)]
Inset = Annotated[int, Field(ge=0, le=16384)]


@dataclass(frozen=True)
class SafeZone:
    """Insets in pixels from each edge that overlays (text, logos) must stay out of."""

    top: int = 0
    right: int = 0
    bottom: int = 0
    left: int = 0


@dataclass(frozen=True)
class Placement:
    id: str
    platform: str
    name: str
    width: int
    height: int
    min_width: int | None
    min_height: int | None
    max_bytes: int | None  # None: the platform states no cap
    upload_formats: tuple[str, ...]  # "jpeg" / "png", preferred first
    safe_zone: SafeZone
    source: str
    checked: dt.date  # when the numbers were last compared with ``source``
    any_size: bool = False  # the file keeps the render's size and aspect, within width x height
    min_text_px: int | None = None  # smallest legible overlay text; None: exports.overlay's default
    min_logo_px: int | None = None  # smallest legible logo height; None: exports.overlay's default

    @property
    def aspect(self) -> float:
        return self.width / self.height


class _SafeZoneModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    top: Inset = 0
    right: Inset = 0
    bottom: Inset = 0
    left: Inset = 0


def _not_a_device(pid: str) -> str:
    if DEVICE_NAMES.fullmatch(pid):  # the id names the export folder: the asset-id rules (plan.names)
        raise ValueError(f"{pid!r} is a reserved device name on Windows; choose another")
    return pid


class _PlacementModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: Annotated[str, Field(pattern=_ID.pattern), AfterValidator(_not_a_device)]
    platform: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    width: Pixels
    height: Pixels
    min_width: Pixels | None = None
    min_height: Pixels | None = None
    max_bytes: Annotated[int, Field(ge=1024)] | None = None
    upload_formats: Annotated[list[Literal["jpeg", "png"]], Field(min_length=1)]
    safe_zone: _SafeZoneModel = _SafeZoneModel()
    source: Annotated[str, Field(min_length=1)]
    checked: Annotated[dt.date, Field(strict=False)]  # YAML date or "YYYY-MM-DD"
    any_size: bool = False
    min_text_px: Annotated[int, Field(ge=6, le=512)] | None = None
    min_logo_px: Annotated[int, Field(ge=6, le=4096)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> _PlacementModel:
        if self.min_width and self.width < self.min_width:
            raise ValueError(f"width {self.width} is below min_width {self.min_width}")
        if self.min_height and self.height < self.min_height:
            raise ValueError(f"height {self.height} is below min_height {self.min_height}")
        zone = self.safe_zone
        if zone.left + zone.right >= self.width or zone.top + zone.bottom >= self.height:
            raise ValueError(f"safe_zone {zone.model_dump()} leaves no room in {self.width}x{self.height}")
        return self

    def to_placement(self) -> Placement:
        return Placement(
            id=self.id, platform=self.platform, name=self.name, width=self.width, height=self.height,
            min_width=self.min_width, min_height=self.min_height, max_bytes=self.max_bytes,
            upload_formats=tuple(dict.fromkeys(self.upload_formats)), safe_zone=SafeZone(**self.safe_zone.model_dump()),
            source=self.source, checked=self.checked, any_size=self.any_size, min_text_px=self.min_text_px,
            min_logo_px=self.min_logo_px,
        )


def _read_entries(path: Path) -> list[tuple[int, dict]]:
    """(index, raw mapping) for each entry under ``placements:``; structural problems raise."""
    where = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except FileNotFoundError:
        raise InputError([Problem(where, "placements file not found", code="file_not_found")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(where, f"not valid YAML: {exc}", code="bad_yaml")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("placements"), list):
        raise InputError([Problem(where, "must be a mapping with a 'placements:' list of presets",
                                  code="bad_placements")])
    problems, entries = [], []
    for index, raw in enumerate(data["placements"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            problems.append(Problem(where, f"placements[{index}]: must be a mapping with a string 'id' but is {raw!r}",
                                    code="bad_placements"))
        else:
            entries.append((index, raw))
    if problems:
        raise InputError(problems)
    return entries


def _problem(path: Path, index: int, pid: str, error: dict) -> Problem:
    loc = ".".join(str(part) for part in error["loc"])
    key = f"placements[{index}] ({pid})" + (f".{loc}" if loc else "")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return Problem(str(path), f"{key}: required key is missing", code="bad_placements")
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_PlacementModel.model_fields) if "." not in loc else "top, right, bottom, left"
        return Problem(str(path), f"{key}: unknown key (allowed: {allowed})", code="bad_placements")
    return Problem(str(path), f"{key}: {message} but is {error['input']!r}", code="bad_placements")


def load_placements(extra: Path | None = None) -> dict[str, Placement]:
    """The bundled presets, with ``extra`` (a YAML file of the same shape) merged over them.

    An ``extra`` entry whose id already exists overrides only the keys it sets; a new id must
    set every required key. Every problem in every file is reported at once (``InputError``).
    """
    merged: dict[str, tuple[Path, int, dict]] = {}
    for path in (PRESETS, *([Path(extra)] if extra else [])):
        for index, raw in _read_entries(path):
            base = merged.get(raw["id"], (path, index, {}))[2]
            merged[raw["id"]] = (path, index, {**base, **raw})
    problems, placements = [], {}
    for pid, (path, index, raw) in merged.items():
        try:
            placements[pid] = _PlacementModel.model_validate(raw).to_placement()
        except ValidationError as exc:
            problems.extend(_problem(path, index, pid, error) for error in exc.errors())
    if problems:
        raise InputError(problems)
    return placements


def sized_for(placement: Placement, size: tuple[int, int]) -> Placement:
    """The placement as exported from a render of ``size``: an ``any_size`` placement takes the
    render's size, scaled down (never up) to fit its width x height; others are unchanged."""
    if not placement.any_size:
        return placement
    scale = min(1.0, placement.width / size[0], placement.height / size[1])
    return dataclasses.replace(placement, width=max(1, round(size[0] * scale)),
                               height=max(1, round(size[1] * scale)))


def unknown_placement(pid: str, known: Iterable[str]) -> str:
    """The message for a placement id that is not a preset, with the closest ids."""
    return f"unknown placement {pid!r}{did_you_mean(pid, known)}; `brandbatch placements list` shows the ids"


def platform_key(placement: Placement) -> str:
    """The short platform name users filter by: the id's first part (meta, google, tiktok, ...)."""
    return placement.id.split(".", 1)[0]


def select(placements: Mapping[str, Placement], platform: str | None = None) -> list[Placement]:
    """The presets of ``platform`` (the id's first part, or a part of the platform's name, any
    case; None: all), sorted by id. Raises ``ValueError`` naming the platforms if none match."""
    chosen = sorted(placements.values(), key=lambda p: p.id)
    if platform is None:
        return chosen
    wanted = platform.strip().lower()
    chosen = [p for p in chosen if wanted and (platform_key(p) == wanted or wanted in p.platform.lower())]
    if not chosen:
        keys = sorted({platform_key(p) for p in placements.values()})
        raise ValueError(f"no placements for platform {platform!r}{did_you_mean(wanted, keys)}; platforms: "
                         f"{', '.join(keys)}")
    return chosen


def _size(p: Placement) -> str:
    return f"any up to {p.width}x{p.height}" if p.any_size else f"{p.width}x{p.height}"


def _cap(p: Placement) -> str:
    return "no cap" if p.max_bytes is None else f"{p.max_bytes} bytes"


def summary_line(p: Placement) -> str:
    """One tab-separated line: id, size, byte cap, upload formats, checked date, platform."""
    return "\t".join((p.id, _size(p), _cap(p), ",".join(p.upload_formats), f"checked {p.checked}", p.platform))


def describe(p: Placement) -> str:
    """Every field of a preset, one ``key: value`` line each."""
    zone = p.safe_zone
    minimum = f"{p.min_width or '-'} x {p.min_height or '-'}"
    fields = {
        "id": p.id, "platform": p.platform, "name": p.name, "size": _size(p), "minimum": minimum,
        "max_bytes": _cap(p), "upload_formats": ", ".join(p.upload_formats),
        "safe_zone": f"top {zone.top}, right {zone.right}, bottom {zone.bottom}, left {zone.left} px",
        "source": p.source, "checked": p.checked.isoformat(),
    }
    return "".join(f"{key}: {value}\n" for key, value in fields.items())
