"""Prompt rendering in a Jinja2 sandbox, and the banned-terms gate.

Sheet values are passed to templates as data and are never compiled as templates, so
``{{ ''.__class__ }}`` typed into a cell is rendered literally. Templates themselves run in
an immutable sandbox with ``StrictUndefined``: a missing variable is an error, not "".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

# Invisible characters that can hide a banned word ("gu\u200bn"): every format character (Cf:
# zero-width spaces and joiners, soft hyphen, bidi controls, tag characters), every combining
# mark (Mn/Me: "g\u0335un", variation selectors; accents go too, so "gún" reads as "gun"), and
# the blank letters below, which Unicode files as letters.
_HIDDEN_CATEGORIES = ("Cf", "Mn", "Me")
_BLANK_LETTERS = dict.fromkeys(map(ord, "\u115f\u1160\u3164\uffa0\u2800"), None)
# Latin look-alikes from Cyrillic and Greek that NFKC leaves alone (Unicode confusables).
_HOMOGLYPHS = str.maketrans(
    "аеорсухіјѕԁһӏԛԝвкмнтАВЕКМНОРСТХУІЈЅαβεικνορτυχοΑΒΕΖΗΙΚΜΝΟΡΤΥΧɡɑɩʟᴀᴄᴅᴇɢʜɪᴊᴋᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ",
    "aeopcyxijsdhlqwbkmhtabekmhopctxyijsabeiknoptuxoabezhikmnoptyxgailacdeghijkmnoprstuvwyz",
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SPLIT = r"\s,.;:()\[\]\"'"  # what separates tokens
_TOKEN, _HAS_LETTER, _NOT_LETTER = re.compile(f"[^{_SPLIT}]+"), re.compile(r"[a-z]"), re.compile(r"[^a-z]")
_NOT_READ = re.compile(f"[^a-z{_SPLIT}]")  # what a leetspeak reading drops
# Leetspeak, read both ways where a symbol stands for two letters ("k1ll", "1ife"). The tables also
# drop every other ASCII character but a-z and the separators, so an ASCII token (or text, token by
# token) is read in one step.
_LEET = tuple({**{c: None for c in range(128) if _NOT_READ.match(chr(c))}, **str.maketrans("0134578@$!|", letters)}
              for letters in ("oieastbasil", "oleastbasii"))
# Tokens with a character other than a-z (the lookbehind: only from a token's start).
_OTHER_TOKEN = re.compile(f"(?<![^{_SPLIT}])[a-z]*+[^a-z{_SPLIT}][^{_SPLIT}]*")


class PromptError(ValueError):
    """A prompt could not be rendered; ``column`` names the sheet column at fault, if any."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


def normalize_for_matching(text: str) -> str:
    """Compatibility-normalised (fullwidth and styled letters become plain ones), invisible
    characters and combining marks removed, Cyrillic/Greek/small-capital homoglyphs folded to
    Latin, NFKC, casefolded."""
    if text.isascii():  # every step but casefolding changes non-ASCII characters only
        return text.casefold()
    text = unicodedata.normalize("NFKD", text)  # compatibility forms to plain letters, marks split off
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _HIDDEN_CATEGORIES).translate(_BLANK_LETTERS)
    return unicodedata.normalize("NFKC", text.translate(_HOMOGLYPHS)).casefold()


def _words(text: str) -> list[str]:
    """Words of normalized text; digits/symbols inside a word are read as leetspeak."""
    plain = normalize_for_matching(text)
    tokens = [w for w in _TOKEN.findall(plain) if _HAS_LETTER.search(w)]
    return _WORD.findall(plain) + [_leet(w, table) for table in _LEET for w in tokens]


def _leet(token: str, table: dict[int, str]) -> str:
    """A token (with a letter a-z) read with a leetspeak table: letters a-z only."""
    if token.isascii():
        return token if token.isalpha() else token.translate(table)
    return _NOT_LETTER.sub("", token.translate(table))


def find_banned_terms(text: str, banned: Sequence[str]) -> list[str]:
    """The banned terms that ``text`` contains as whole words (or word sequences)."""
    if isinstance(banned, tuple) and len(text) <= _REPEATED_TEXT:
        return list(_banned_in_short_text(text, banned))
    return _banned_in(text, _banned_words(tuple(banned)))


def may_contain_banned_terms(texts: Iterable[str], banned: Sequence[str]) -> bool:
    """False when none of ``texts`` contains a banned term: one look at all of them, for the
    common case (a row without any), before ``find_banned_terms`` looks at each text. A term is
    found only when each of its words is one of a text's words (``_words``); the words of texts
    joined by line breaks are the words of each text (no word, token or Unicode normalisation
    runs across a line break), so this never says False when a text holds a term.

    Most rows do not even hold a term's first word anywhere: not in their normalized text (where
    each of its words is), nor in that text read with each leetspeak table (where the reading of
    each of its tokens is, between the separators that the reading keeps)."""
    joined = "\n".join(texts)
    plain = normalize_for_matching(joined)
    readings = [plain.translate(table) for table in _LEET]
    if not plain.isascii():  # the tables drop ASCII characters only
        readings = [_NOT_READ.sub("", reading) for reading in readings]
    # A word has no line break, so it is in one of the texts if it is in them joined by line breaks.
    if not any(map("\n".join((plain, *readings)).__contains__, _first_words(tuple(banned)))):
        return False
    words = _word_set(joined)
    return any(words.issuperset(term_words) for term_words in _banned_word_lists(tuple(banned)))


@lru_cache(maxsize=64)
def _first_words(banned: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({term_words[0] for term_words in _banned_word_lists(banned)}))


def _word_set(text: str) -> set[str]:
    """``set(_words(text))``, made faster: a token of letters a-z only is one of the words already."""
    plain = normalize_for_matching(text)
    words = set(_WORD.findall(plain))
    words.update(_leet(w, table) for w in set(_OTHER_TOKEN.findall(plain)) if _HAS_LETTER.search(w) for table in _LEET)
    return words


@lru_cache(maxsize=64)
def _banned_word_lists(banned: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(words.split()) for _term, words in _banned_words(banned))


_REPEATED_TEXT = 200  # cells this short (a style ref, a CTA, a scene) repeat down a sheet: results cached


@lru_cache(maxsize=65_536)
def _banned_in_short_text(text: str, banned: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_banned_in(text, _banned_words(banned)))


@lru_cache(maxsize=64)
def _banned_words(banned: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(term, its words as matched) for each banned term that has words."""
    return tuple((term, words) for term in banned if (words := _term_words(term)))


def _banned_in(text: str, terms: Sequence[tuple[str, str]]) -> list[str]:
    joined = _joined_words(text)
    return [term for term, words in terms if words in joined]


@lru_cache(maxsize=65_536)
def _joined_words(text: str) -> str:
    """``text``'s words and leetspeak readings as " w1 w2 ... " (values repeat down a sheet)."""
    return " " + " ".join(_words(text)) + " "


@lru_cache(maxsize=4096)
def _term_words(term: str) -> str:
    """A banned term's words as they appear in ``find_banned_terms``'s joined text ('' if none)."""
    words = _WORD.findall(normalize_for_matching(term))
    return f" {' '.join(words)} " if words else ""


@lru_cache(maxsize=8)
def _environment(template_dir: str) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(Path(template_dir).resolve())),
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render_prompt(template_dir: Path, template_name: str, variables: Mapping[str, object]) -> str:
    """Render ``template_name`` with ``variables`` as plain data; whitespace is collapsed."""
    return render_template(prompt_template(template_dir, template_name), variables)


def prompt_template(template_dir: Path, template_name: str) -> Template:
    """The template (loaded again when its file changed): a plan asks once per style and renders
    it for each row with ``render_template``."""
    try:
        template = _environment(str(template_dir)).get_template(template_name)
    except TemplateError as exc:
        raise _prompt_error(exc, template_name) from None
    if type(template.globals) is not dict:  # noqa: E721 - the same names, a dict instead of a ChainMap
        template.globals = dict(template.globals)  # that each render would copy twice (a fifth of its time)
    return template


def render_template(template: Template, variables: Mapping[str, object]) -> str:
    """``template`` (``prompt_template``) rendered with ``variables`` as plain data; whitespace is collapsed."""
    try:
        text = template.render(**variables)
    except TemplateError as exc:
        raise _prompt_error(exc, template.name) from None
    return " ".join(text.split())


def _prompt_error(exc: TemplateError, template_name: str | None) -> PromptError:
    """Jinja's error as a ``PromptError`` that says what to fix."""
    if isinstance(exc, UndefinedError):
        missing = re.search(r"'([^']+)' is undefined", str(exc))
        column = missing.group(1) if missing else None
        return PromptError(f"required value is empty or the column is missing (template {template_name} "
                           f"uses {column or exc})", column)
    if isinstance(exc, SecurityError):
        return PromptError(f"template {template_name} tried an unsafe operation: {exc}")
    return PromptError(f"template {template_name} failed: {exc}")
