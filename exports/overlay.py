"""Headline, call-to-action and logo composited inside a placement's safe zone.

Layout: the safe area (canvas minus the placement's safe-zone insets, minus a margin) is split
into regions; wide banners (aspect >= 3) put logo | headline | CTA side by side, other shapes put
the headline on top and logo + CTA button at the bottom; right-to-left text mirrors the layout
and the alignment. Text is set in the font of its script's fallback chain (``exports.typeset``:
raqm shaping, per-locale language), wraps at word boundaries (between characters in CJK, at
U+200B or grapheme clusters in Thai) and shrinks until it fits its region; what cannot fit even
at the placement's minimum legible size (``min_text_px``), or has a glyph no font of its chain
has, is not drawn and is reported; so is a logo that would be drawn below ``min_logo_px``.
Logos get a region of their own aspect ratio. The export stage holds an item with any such
problem for review instead of shipping it with shrunk or dropped text. Text colour is whichever of the style's light/dark colours contrasts more with the
pixels behind it; below WCAG's 4.5:1 a translucent scrim is laid under the text first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from exports.placements import Placement
from exports.typeset import FACES, Face, SharedMemo, choose_face, load_chains, load_font, main_script, wrap
from plan.errors import Problem

if TYPE_CHECKING:
    from plan.planner import CampaignPlan

DEFAULT_FONT = Path(__file__).with_name("fonts") / "Geist-VariableFont_wght.ttf"
MIN_FONT_PX = 9  # never smaller, on any placement
TEXT_SHARE = 0.02  # default minimum text size: this share of the placement's shorter side
MIN_LOGO_PX = 16
LOGO_SHARE = 0.04  # default minimum logo height: this share of the shorter side
MIN_CONTRAST = 4.5  # WCAG 2.x AA for normal text
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class OverlayStyle:
    """How overlays look; a style's ``overlay:`` keys set these. The defaults are neutral (no
    brand's colours): bundled Geist, white/near-black text, a charcoal CTA button."""

    font: Path = DEFAULT_FONT
    weight: int = 700  # for variable fonts
    light_colour: Colour = (255, 255, 255)
    dark_colour: Colour = (20, 20, 28)
    cta_colour: Colour = (38, 38, 44)  # CTA button (charcoal)
    align: str = "left"  # left, center, right
    margin: float = 0.04  # of the shorter side, inside the safe area

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> OverlayStyle:
        """From a style's ``overlay:`` keys as stored in assets.json (colours '#RRGGBB', font an
        absolute path); keys left out keep the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown overlay keys {unknown}; allowed: {', '.join(sorted(known))}")
        values: dict[str, object] = {}
        for key, value in settings.items():
            if key.endswith("_colour"):
                value = tuple(int(str(value)[i:i + 2], 16) for i in (1, 3, 5))
            elif key == "font":
                value = Path(str(value))
            values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def contains(self, other: Box) -> bool:
        return (self.left <= other.left and self.top <= other.top
                and other.right <= self.right and other.bottom <= self.bottom)


@dataclass(frozen=True)
class Element:
    """One drawn (or skipped) overlay: the region it was given and the box it actually covers."""

    role: str  # headline, cta, logo
    region: Box
    box: Box | None  # None: skipped (see ``problem``)
    lines: tuple[str, ...] = ()
    font_px: int = 0
    contrast: float = 0.0
    scrim: bool = False
    problem: str = ""


@dataclass
class Layout:
    safe_area: Box
    elements: list[Element] = field(default_factory=list)


def safe_area(placement: Placement, margin: float) -> Box:
    zone = placement.safe_zone
    pad = round(margin * min(placement.width, placement.height))
    return Box(zone.left + pad, zone.top + pad,
               placement.width - zone.right - pad, placement.height - zone.bottom - pad)


def min_text_px(placement: Placement) -> int:
    """The smallest text drawn on ``placement``: its ``min_text_px``, else 2 % of its shorter side."""
    return placement.min_text_px or max(MIN_FONT_PX, round(TEXT_SHARE * min(placement.width, placement.height)))


def min_logo_px(placement: Placement) -> int:
    """The smallest logo height drawn on ``placement``: its ``min_logo_px``, else 4 % of its shorter side."""
    return placement.min_logo_px or max(MIN_LOGO_PX, round(LOGO_SHARE * min(placement.width, placement.height)))


def _regions(area: Box, logo_aspect: float | None) -> dict[str, Box]:
    """Regions of the safe area; the logo's is as wide as its aspect ratio needs (capped)."""
    has_logo = logo_aspect is not None
    gap = max(2, round(0.04 * min(area.width, area.height)))
    if area.width >= 3 * area.height:  # banner: [logo] headline cta
        logo_w = round(min(area.height * logo_aspect, 0.3 * area.width)) if has_logo else 0
        cta_w = round(0.28 * area.width)
        head_left = area.left + logo_w + (gap if has_logo else 0)
        return {
            "logo": Box(area.left, area.top, area.left + logo_w, area.bottom),
            "headline": Box(head_left, area.top, area.right - cta_w - gap, area.bottom),
            "cta": Box(area.right - cta_w, area.top, area.right, area.bottom),
        }
    head_h = round(0.32 * area.height)
    band_h = round(0.14 * area.height)
    band_top = area.bottom - band_h
    logo_w = round(min(band_h * logo_aspect, 0.45 * area.width)) if has_logo else 0
    return {
        "headline": Box(area.left, area.top, area.right, area.top + head_h),
        "logo": Box(area.left, band_top, area.left + logo_w, area.bottom),
        "cta": Box(area.left + logo_w + (gap if has_logo else 0), band_top, area.right, area.bottom),
    }


def fit_text(text: str, style: OverlayStyle, width: int, height: int, max_px: int | None = None,
             locale: str = "", min_px: int = MIN_FONT_PX) -> tuple[ImageFont.FreeTypeFont, tuple[str, ...], int, int] | None:
    """The largest font size (binary search) at which ``text`` wraps into width x height:
    (font, lines, text width, text height), or None if it does not fit at ``min_px`` or
    no font of its chain has all its glyphs. Memoised per process (``_FITS``): a campaign's
    texts recur across placements, and the warnings of a placement repeat its drawing's fits."""
    fit = _FITS(text, style, width, height, max_px, locale, min_px)
    if fit is None:
        return None
    face, size, lines, text_w, text_h = fit
    return load_font(face, style.weight, size), lines, text_w, text_h


def _fit_text(text: str, style: OverlayStyle, width: int, height: int, max_px: int | None, locale: str,
              min_px: int) -> tuple[Face, int, tuple[str, ...], int, int] | None:
    """``fit_text``'s fit as plain data: (face, size, lines, text width, text height)."""
    face = choose_face(text, style.font, style.weight, locale)[0]
    if face is None:
        return None
    best = None
    lo, hi = min_px, max(min_px, min(max_px or height, height))
    while lo <= hi:
        size = (lo + hi) // 2
        font = load_font(face, style.weight, size)
        lines = wrap(text, face, font, width)
        if lines:
            line_h = _line_height(font)
            text_w = max(_ink_width(font, line, face) for line in lines)
            text_h = line_h * len(lines)
            if text_h <= height and text_w <= width:
                best, lo = (face, size, tuple(lines), text_w, text_h), size + 1
                continue
        hi = size - 1
    return best


_FITS: SharedMemo[tuple[Face, int, tuple[str, ...], int, int] | None] = SharedMemo(_fit_text, 1024)


def text_layouts() -> dict[str, dict[tuple, object]]:
    """The text layouts this process has made (fonts chosen, fits), as plain data for another
    process's ``learn_text_layouts``: an export's worker starts with its caller's."""
    return {"faces": FACES.known(), "fits": _FITS.known()}


def learn_text_layouts(layouts: Mapping[str, Mapping[tuple, object]]) -> None:
    """Take the layouts another process made (``text_layouts``) as if made here: the same
    arguments give the same layout in every process (same code, same font files)."""
    FACES.learn(layouts.get("faces", {}))  # type: ignore[arg-type]
    _FITS.learn(layouts.get("fits", {}))  # type: ignore[arg-type]


def _line_height(font: ImageFont.FreeTypeFont) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


def _shaping(face: Face) -> dict:
    return {"direction": face.direction, "language": face.language or None}


def _ink_width(font: ImageFont.FreeTypeFont, line: str, face: Face) -> int:
    left, _, right, _ = font.getbbox(line, **_shaping(face))
    return max(right, round(font.getlength(line, **_shaping(face)))) - min(left, 0)


def _linear(c: np.ndarray) -> np.ndarray:
    c = c / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_LINEAR = _linear(np.arange(256, dtype=np.float64))
_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of 8-bit sRGB pixels (..., 3)."""
    return _LINEAR[rgb.astype(np.uint8)] @ _WEIGHTS


def contrast_ratio(a: float, b: float) -> float:
    high, low = max(a, b), min(a, b)
    return (high + 0.05) / (low + 0.05)


def _best_colour(background: np.ndarray, style: OverlayStyle) -> tuple[Colour, float]:
    """The colour (light or dark) whose worst-case contrast over the background pixels is higher."""
    step = max(1, int(np.sqrt(background.shape[0] * background.shape[1] / 40_000)))  # sample <= ~40k pixels
    lum = _luminance(background[::step, ::step].reshape(-1, 3))
    lo, hi = (float(v) for v in np.percentile(lum, (5, 95)))
    options = []
    for colour in (style.light_colour, style.dark_colour):
        text_lum = float(_luminance(np.array(colour)))
        options.append((min(contrast_ratio(text_lum, lo), contrast_ratio(text_lum, hi)), colour))
    ratio, colour = max(options)
    return colour, ratio


def _aligned_left(region: Box, width: int, align: str) -> int:
    if align == "center":
        return region.left + (region.width - width) // 2
    if align == "right":
        return region.right - width
    return region.left


def _fit_in_region(role: str, text: str, region: Box, style: OverlayStyle, locale: str = "",
                   min_px: int = MIN_FONT_PX
                   ) -> tuple[tuple[ImageFont.FreeTypeFont, tuple[str, ...], int, int] | None, int, str]:
    """(fitted text or None, padding, problem) for ``text`` in ``region``; the CTA is a button."""
    button = role == "cta"
    pad = max(2, round(0.18 * region.height)) if button else max(1, round(0.03 * min(region.width, region.height)))
    face, no_font = choose_face(text, style.font, style.weight, locale)
    if face is None:
        return None, pad, f"{role} {text!r}: {no_font}"
    fitted = fit_text(text, style, region.width - 2 * pad, region.height - 2 * pad, locale=locale, min_px=min_px)
    problem = "" if fitted else (f"{role} {text!r} does not fit {region.width}x{region.height} px at {min_px} px "
                                 "(the placement's minimum legible size)")
    return fitted, pad, problem


_MIRRORED = {"left": "right", "right": "left", "center": "center"}


def _draw_text(canvas: Image.Image, role: str, text: str, region: Box, style: OverlayStyle,
               locale: str = "", min_px: int = MIN_FONT_PX) -> Element:
    fitted, pad, problem = _fit_in_region(role, text, region, style, locale, min_px)
    if fitted is None:
        return Element(role, region, None, problem=problem)
    face = choose_face(text, style.font, style.weight, locale)[0]
    align = _MIRRORED[style.align] if face.rtl else style.align
    button = role == "cta"
    font, lines, text_w, text_h = fitted
    box_w, box_h = text_w + 2 * pad, text_h + 2 * pad
    left = _aligned_left(region, box_w, align)
    top = region.top + (region.height - box_h) // 2 if button else region.top
    box = Box(left, top, left + box_w, top + box_h)
    draw = ImageDraw.Draw(canvas, "RGBA")
    scrim = False
    if button:
        draw.rounded_rectangle((box.left, box.top, box.right - 1, box.bottom - 1), radius=pad, fill=style.cta_colour)
    background = np.asarray(canvas.crop((box.left, box.top, box.right, box.bottom)))
    colour, ratio = _best_colour(background, style)
    if ratio < MIN_CONTRAST:
        scrim = True
        shade = style.dark_colour if colour == style.light_colour else style.light_colour
        draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), fill=(*shade, 190))
        colour, ratio = _best_colour(np.asarray(canvas.crop((box.left, box.top, box.right, box.bottom))), style)
    line_h = _line_height(font)
    for i, line in enumerate(lines):
        x = _aligned_left(Box(box.left + pad, 0, box.right - pad, 0), _ink_width(font, line, face), align)
        draw.text((x - min(font.getbbox(line, **_shaping(face))[0], 0), box.top + pad + i * line_h), line,
                  font=font, fill=colour, **_shaping(face))
    return Element(role, region, box, lines, font.size, round(ratio, 2), scrim)


def _logo_size(logo_size: tuple[int, int], region: Box) -> tuple[int, int]:
    scale = min(region.width / logo_size[0], region.height / logo_size[1])
    return max(1, int(logo_size[0] * scale)), max(1, int(logo_size[1] * scale))


def _logo_problem(logo_size: tuple[int, int], region: Box, minimum: int) -> str:
    if region.width < 1 or region.height < 1:
        return "logo: no room for it"
    height = _logo_size(logo_size, region)[1]
    return "" if height >= minimum else (f"logo would be {height} px tall, below the placement's minimum legible "
                                         f"{minimum} px")


def _draw_logo(canvas: Image.Image, logo: Image.Image, region: Box, minimum: int) -> Element:
    problem = _logo_problem(logo.size, region, minimum)
    if problem:
        return Element("logo", region, None, problem=problem)
    size = _logo_size(logo.size, region)
    resized = logo.convert("RGBA").resize(size, Image.Resampling.LANCZOS)
    left, top = region.left, region.top + (region.height - size[1]) // 2
    canvas.paste(resized, (left, top), resized)
    return Element("logo", region, Box(left, top, left + size[0], top + size[1]))


def _layout_regions(area: Box, logo_size: tuple[int, int] | None, headline: str, cta: str) -> dict[str, Box]:
    """``_regions``, mirrored left-right when the texts are written right to left."""
    regions = _regions(area, logo_size[0] / logo_size[1] if logo_size else None)
    if main_script(f"{headline} {cta}") not in load_chains().rtl:
        return regions
    edge = area.left + area.right
    return {role: Box(edge - box.right, box.top, edge - box.left, box.bottom) for role, box in regions.items()}


def apply_overlays(image: Image.Image, placement: Placement, *, headline: str = "", cta: str = "",
                   logo: Image.Image | None = None, style: OverlayStyle = OverlayStyle(),
                   locale: str = "", in_place: bool = False) -> tuple[Image.Image, Layout]:
    """A copy of ``image`` (already at the placement's size) with the overlays drawn, and where
    each one went. Every drawn box lies inside the safe area. ``locale`` (BCP 47) picks the
    shaping language and, for CJK, the regional glyph forms. An element with a ``problem``
    (too small to be legible, no font) is not drawn. ``in_place``: draw on ``image`` itself when
    it is RGB (a caller that no longer needs it saves copying its pixels)."""
    if image.size != (placement.width, placement.height):
        raise ValueError(f"image is {image.size[0]}x{image.size[1]} but placement {placement.id} is "
                         f"{placement.width}x{placement.height}")
    canvas = image if in_place and image.mode == "RGB" else image.convert("RGB")
    area = safe_area(placement, style.margin)
    layout = Layout(area)
    regions = _layout_regions(area, logo.size if logo is not None else None, headline, cta)
    if logo is not None:
        layout.elements.append(_draw_logo(canvas, logo, regions["logo"], min_logo_px(placement)))
    for role, text in (("headline", headline), ("cta", cta)):
        if text.strip():
            layout.elements.append(_draw_text(canvas, role, " ".join(text.split()), regions[role], style, locale,
                                              min_text_px(placement)))
    return canvas, layout


def overlay_problems(placement: Placement, *, headline: str = "", cta: str = "",
                     logo_size: tuple[int, int] | None = None, style: OverlayStyle = OverlayStyle(),
                     locale: str = "") -> list[str]:
    """The problems ``apply_overlays`` would report, without an image (they depend only on the
    texts, the font, the logo's size and the placement), in the same order. Any of them holds
    the file for review."""
    regions = _layout_regions(safe_area(placement, style.margin), logo_size, headline, cta)
    problems = []
    if logo_size is not None:
        problems.append(_logo_problem(logo_size, regions["logo"], min_logo_px(placement)))
    for role, text in (("headline", headline), ("cta", cta)):
        if text.strip():
            problems.append(_fit_in_region(role, " ".join(text.split()), regions[role], style, locale,
                                           min_text_px(placement))[2])
    return [p for p in problems if p]


def sheet_text_problems(plan: CampaignPlan, styles_dir: Path) -> list[Problem]:
    """A ``SHEET:ROW:COLUMN`` problem for each headline or CTA with a character that no font of
    its script's chain has (it would be a tofu box): ``brandbatch validate`` and ``run`` list them."""
    problems = []
    for row in plan.rows:
        overlay = row.style.overlay
        font = Path(styles_dir) / row.style.name / overlay.font if overlay.font else DEFAULT_FONT
        weight = overlay.weight or OverlayStyle.weight
        for role in ("headline", "cta"):
            text = " ".join(row.cells.get(role, "").split())
            try:
                face, why = choose_face(text, font, weight, row.cells.get("locale", "")) if text else (True, "")
            except OSError as exc:  # the style's font file is broken
                face, why = None, str(exc)
            if face is None:
                problems.append(Problem(str(plan.sheet), why, row.row, role, code="text_unrenderable"))
    return problems
