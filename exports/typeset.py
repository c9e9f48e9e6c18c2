"""Localised overlay text: which font draws a text (per-script fallback chains in
``exports/font_chains.yaml``), its direction and language for shaping (Pillow's raqm layout:
HarfBuzz + FriBiDi), and where its lines may break (spaces; between CJK characters; U+200B or
grapheme clusters for Thai).

A text is drawn with one font: the style's own, else the first of its script's chain that has
a glyph for every character. A character that no font of the chain has is reported (``Face``
is then None), never drawn as a tofu box.
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import yaml
from PIL import ImageFont, features

CHAINS = Path(__file__).with_name("font_chains.yaml")
ZWSP = "\u200b"
_SCRIPT_PREFIXES = (("LATIN", "latin"), ("CYRILLIC", "cyrillic"), ("GREEK", "greek"), ("ARABIC", "arabic"),
                    ("HEBREW", "hebrew"), ("DEVANAGARI", "devanagari"), ("THAI", "thai"), ("CJK", "cjk"),
                    ("HIRAGANA", "cjk"), ("KATAKANA", "cjk"), ("HANGUL", "cjk"), ("IDEOGRAPHIC", "cjk"),
                    ("FULLWIDTH", "cjk"), ("HALFWIDTH", "cjk"), ("LEFT CORNER", "cjk"), ("RIGHT CORNER", "cjk"))
# Kinsoku: no line starts with these, and none ends with the opening ones.
_NO_LINE_START = set("、。，．・：；？！ー）」』】〉》〕｝～ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ々")
_NO_LINE_END = set("（「『【〈《〔｛")


_Result = TypeVar("_Result")


class SharedMemo(Generic[_Result]):
    """A bounded per-process memo (least recently used out) of a pure function of hashable
    positional arguments whose results are plain data, so that another process can be handed
    what this one has made (``known`` here, ``learn`` there): an export's workers start with the
    text layouts their caller already made instead of making them again (``exports.overlay``)."""

    def __init__(self, function: Callable[..., _Result], size: int) -> None:
        self._function, self._size = function, size
        self._results: OrderedDict[tuple, _Result] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, *args: object) -> _Result:
        with self._lock:
            if args in self._results:
                self._results.move_to_end(args)
                return self._results[args]
        result = self._function(*args)
        self.learn({args: result})
        return result

    def known(self) -> dict[tuple, _Result]:
        """Every result held now, by arguments."""
        with self._lock:
            return dict(self._results)

    def learn(self, results: Mapping[tuple, _Result]) -> None:
        """Hold ``results`` (arguments -> what the function gives for them) as if made here."""
        with self._lock:
            for args, result in results.items():
                self._results[args] = result
                self._results.move_to_end(args)
            while len(self._results) > self._size:
                self._results.popitem(last=False)

    def cache_clear(self) -> None:
        with self._lock:
            self._results.clear()


@dataclass(frozen=True)
class Chains:
    folders: tuple[Path, ...]
    scripts: dict[str, tuple[str, ...]]
    rtl: frozenset[str]
    no_spaces: frozenset[str]
    cjk_faces: dict[str, int]


@functools.lru_cache(maxsize=4)
def load_chains(path: Path = CHAINS) -> Chains:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return Chains(tuple(Path(p) for p in data["folders"]), {k: tuple(v) for k, v in data["scripts"].items()},
                  frozenset(data["rtl"]), frozenset(data["no_spaces"]),
                  {k.lower(): int(v) for k, v in data["cjk_faces"].items()})


@dataclass(frozen=True)
class Face:
    """The font that draws one text, and how to shape it."""

    path: str
    index: int  # face in a collection (.ttc)
    variable: bool  # set the weight axis (the style's own variable font)
    script: str
    rtl: bool
    language: str  # BCP 47 language for HarfBuzz ("" unknown)

    @property
    def direction(self) -> str:
        return "rtl" if self.rtl else "ltr"


def script_of(char: str) -> str | None:
    """The script of a letter (latin, arabic, cjk, ...); None for digits, punctuation, spaces."""
    name = unicodedata.name(char, "")
    return next((script for prefix, script in _SCRIPT_PREFIXES if name.startswith(prefix)), None)


def main_script(text: str) -> str:
    """The most frequent script among the text's letters (latin if it has none)."""
    counts = Counter(s for s in map(script_of, text) if s)
    return max(sorted(counts), key=counts.__getitem__) if counts else "latin"


def _drawn(text: str) -> list[str]:
    """The characters that need a glyph (not spaces, controls or format characters such as ZWSP)."""
    return [c for c in dict.fromkeys(text) if unicodedata.category(c) not in ("Zs", "Cc", "Cf", "Zl", "Zp")]


@functools.lru_cache(maxsize=64)
def _cmap(path: str, index: int) -> frozenset[int]:
    """The code points ``path`` has glyphs for; ``OSError`` if it is not a readable font."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(path, fontNumber=index, lazy=True) as font:
            return frozenset(font.getBestCmap() or ())
    except (TTLibError, ValueError, KeyError, AssertionError) as exc:  # what fontTools raises for a broken file
        raise OSError(f"{path} is not a usable font: {exc}") from None


def _language(locale: str) -> str:
    return locale.split("-", 1)[0].lower() if locale else ""


def _cjk_face(locale: str, chains: Chains) -> int:
    tag = locale.lower()
    while tag:
        if tag in chains.cjk_faces:
            return chains.cjk_faces[tag]
        tag = tag.rpartition("-")[0]
    return 0


def candidates(text: str, own_font: Path, weight: int, locale: str = "", chains: Chains | None = None
               ) -> list[tuple[str, int, bool]]:
    """(path, face index, variable) of the fonts to try for ``text``, in order; missing files left out."""
    chains = chains or load_chains()
    script = main_script(text)
    fonts = [(str(own_font), 0, True)]
    for name in chains.scripts.get(script, ()):
        file = name.format(weight="Bold" if weight >= 600 else "Regular")
        found = next((folder / file for folder in chains.folders if (folder / file).is_file()), None)
        if found:
            fonts.append((str(found), _cjk_face(locale, chains) if found.suffix == ".ttc" else 0, False))
    return fonts


def choose_face(text: str, own_font: Path, weight: int, locale: str = "") -> tuple[Face | None, str]:
    """(the font that has every glyph of ``text``, "") or (None, why not). Memoised per process
    (``FACES``)."""
    return FACES(text, own_font, weight, locale)


def _choose_face(text: str, own_font: Path, weight: int, locale: str) -> tuple[Face | None, str]:
    chains = load_chains()
    script = main_script(text)
    needed = _drawn(text)
    tried = candidates(text, own_font, weight, locale, chains)
    for path, index, variable in tried:
        cmap = _cmap(path, index)
        if all(ord(c) in cmap for c in needed):
            if script not in ("latin", "cyrillic", "greek") and not features.check("raqm"):
                return None, f"{script} text needs Pillow with raqm (libraqm) for shaping"
            return Face(path, index, variable, script, script in chains.rtl, _language(locale)), ""
    missing = next(c for c in needed if not any(ord(c) in _cmap(p, i) for p, i, _ in tried))
    fonts = ", ".join(Path(p).name for p, _, _ in tried)
    wanted = ", ".join(chains.scripts.get(script, ())) or "none"
    return None, (f"glyph {missing!r} (U+{ord(missing):04X} {unicodedata.name(missing, '?')}) is in no font of the "
                  f"{script} chain ({fonts}; chain: {wanted}; `make fonts` installs them)")


FACES: SharedMemo[tuple[Face | None, str]] = SharedMemo(_choose_face, 1024)


@functools.lru_cache(maxsize=256)
def load_font(face: Face, weight: int, size: int) -> ImageFont.FreeTypeFont:
    """``face`` at ``size`` px with raqm layout; a variable font at ``weight``."""
    layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    font = ImageFont.truetype(face.path, size, index=face.index, layout_engine=layout)
    if face.variable:
        try:
            font.set_variation_by_axes([weight])
        except OSError:  # not a variable font
            pass
    return font


def _clusters(text: str) -> list[str]:
    """Grapheme clusters, approximately: a base character with the marks and joiners after it."""
    out: list[str] = []
    for char in text:
        if out and (unicodedata.category(char) in ("Mn", "Mc", "Me") or char in "\u200c\u200d"
                    or out[-1][-1] in "\u200d\u094d"):
            out[-1] += char
        else:
            out.append(char)
    return out


def units(text: str, script: str) -> list[tuple[str, str]]:
    """(glue, piece) pairs a line may break before: words after spaces (glue " "); in CJK every
    character (kinsoku kept: no closing mark starts a line, no opening one ends it); pieces
    between U+200B (glue "")."""
    out: list[tuple[str, str]] = []
    for word in text.split():
        pieces = [p for p in word.split(ZWSP) if p]
        for n, piece in enumerate(pieces):
            glue = " " if out and n == 0 else ""
            if script == "cjk":
                for char in _clusters(piece):
                    previous = out[-1][1][-1] if out else ""
                    attach = out and glue == "" and (char[0] in _NO_LINE_START or previous in _NO_LINE_END or (
                        script_of(char[0]) != "cjk" and script_of(previous) not in ("cjk", None)))
                    if attach:
                        out[-1] = (out[-1][0], out[-1][1] + char)
                    else:
                        out.append((glue, char))
                    glue = ""
            else:
                out.append((glue, piece))
    return out


def wrap(text: str, face: Face, font: ImageFont.FreeTypeFont, width: int) -> list[str] | None:
    """Greedy line breaking at ``units``; a piece wider than ``width`` is split into grapheme
    clusters in scripts written without spaces, else the text does not fit (None)."""
    chains = load_chains()

    def length(line: str) -> float:
        return font.getlength(line, direction=face.direction, language=face.language or None)

    lines: list[str] = []
    for glue, piece in units(text, face.script):
        parts = [(glue, piece)]
        if length(piece) > width:
            if face.script not in chains.no_spaces:
                return None
            parts = [(glue if i == 0 else "", c) for i, c in enumerate(_clusters(piece))]
            if any(length(c) > width for _, c in parts):
                return None
        for part_glue, part in parts:
            if lines and length(lines[-1] + part_glue + part) <= width:
                lines[-1] += part_glue + part
            else:
                lines.append(part)
    return lines
