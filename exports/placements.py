"""Ad placement presets: ``exports/platforms.yaml`` plus an optional user file, validated on load.

Each placement says the exact pixel size to export, the platform's minimum size and byte cap,
the upload formats it accepts (JPEG/PNG), the safe zone to keep free of overlays, and the
source of those numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plan.errors import InputError, Problem

PRESETS = Path(__file__).with_name("platforms.yaml")
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

    @property
    def aspect(self) -> float:
        return self.width / self.height


class _SafeZoneModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    top: Inset = 0
    right: Inset = 0
    bottom: Inset = 0
    left: Inset = 0


class _PlacementModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: Annotated[str, Field(pattern=_ID.pattern)]
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
            source=self.source,
        )


def _read_entries(path: Path) -> list[tuple[int, dict]]:
    """(index, raw mapping) for each entry under ``placements:``; structural problems raise."""
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError([Problem(where, "placements file not found")]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(where, f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("placements"), list):
        raise InputError([Problem(where, "must be a mapping with a 'placements:' list of presets")])
    problems, entries = [], []
    for index, raw in enumerate(data["placements"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            problems.append(Problem(where, f"placements[{index}]: must be a mapping with a string 'id' but is {raw!r}"))
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
        return Problem(str(path), f"{key}: required key is missing")
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_PlacementModel.model_fields) if "." not in loc else "top, right, bottom, left"
        return Problem(str(path), f"{key}: unknown key (allowed: {allowed})")
    return Problem(str(path), f"{key}: {message} but is {error['input']!r}")


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
