"""Template injection from cells and templates, and banned terms hidden from a naive match."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from plan.planner import plan_campaign
from plan.prompts import PromptError, find_banned_terms, render_prompt
from plan.sheet import read_sheet

SSTI = [
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{{ config }}{{ self }}{{ lipsum.__globals__ }}",
    "{% include '/etc/passwd' %}",
    "${7*7} #{7*7} <%= 7*7 %>",
]


def test_ssti_in_cells_is_rendered_as_literal_text(tmp_path, settings_):
    text = io.StringIO()
    csv.writer(text).writerows([["asset_id", "style", "product", "scene"]]
                               + [[f"s-{i}", "acme@2", payload, "a meadow"] for i, payload in enumerate(SSTI)])
    path = tmp_path / "ssti.csv"
    path.write_text(text.getvalue(), encoding="utf-8")
    plan = plan_campaign(read_sheet(path), settings_)
    assert plan.problems == []
    for row, payload in zip(plan.rows, SSTI, strict=True):
        assert row.prompt.startswith(f"{payload} in a meadow,")


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "inner").mkdir()
    hostile = {
        "globals.j2": "{{ cycler.__init__.__globals__.os.popen('echo pwned').read() }}",
        "mro.j2": "{{ product.__class__.__mro__[1].__subclasses__() }}",
        "attr.j2": "{{ product|attr('__class__')|attr('__mro__') }}",
        "format.j2": "{{ '{0.__class__.__mro__}'.format(product) }}",
        "mutate.j2": "{% set xs = [1] %}{{ xs.append(2) }}{{ xs }}",
        "include.j2": "{% include '../secret.j2' %}",
        "inner/up.j2": "{% include '../../secret.j2' %}",
    }
    for name, text in hostile.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path.parent / "secret.j2").write_text("TOP-SECRET", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("name", ["globals.j2", "mro.j2", "attr.j2", "format.j2", "mutate.j2", "include.j2",
                                  "inner/up.j2"])
def test_template_side_escapes_are_stopped_by_the_sandbox(templates, name):
    with pytest.raises(PromptError) as err:
        render_prompt(templates, name, {"product": "bag"})
    assert "pwned" not in str(err.value) and "TOP-SECRET" not in str(err.value)


# Terms with digits or outside Latin script are not rescued by the leetspeak reading (which drops
# every non-letter inside a word), so they show that each normalisation step is needed.
BANNED = ["gun", "kill", "nude", "celebrity", "free gift", "ak47", "\u8d4c\u573a"]  # 赌场 (casino)
HIDDEN = {
    "zero-width space": "a g\u200bun",
    "zero-width joiner": "a gu\u200dn",
    "word joiner": "a g\u2060un",
    "soft hyphen": "a gu\u00adn",
    "bidi override": "a g\u202eun",
    "tag character": "a g\U000e0041un",
    "variation selector": "a g\ufe0fun",
    "combining overlay": "a g\u0335u\u0336n",
    "hangul filler": "a g\u3164un",
    "fullwidth": "a ｇｕｎ",
    "mathematical bold": "a \U0001d420\U0001d42e\U0001d427",
    "cyrillic": "\u0441\u0435lebrity portrait",     # с е
    "greek": "n\u03c5de",                            # υ
    "small capitals": "a \u0262\u1d1c\u0274",        # ɢ ᴜ ɴ
    "leet digits": "k1ll",
    "leet 1 as l": "ki11",
    "leet symbols": "cele8r!ty",
    "leet mixed with homoglyph": "n\u03c5d3",
    "two words, zero-width between": "free\u200b gift",
    "casefold": "FrEe GiFt",
    "zero-width in a term with digits": "an ak\u200d47",
    "soft hyphen in a term with digits": "ak\u00ad47 rifle",
    "zero-width in a CJK term": "\u8d4c\u200b\u573a",
    "hangul filler in a CJK term": "\u8d4c\u3164\u573a",
    "combining mark in a CJK term": "\u8d4c\u0301\u573a",
    "fullwidth digits": "\uff41\uff4b\uff14\uff17",
}


@pytest.mark.parametrize("text", list(HIDDEN.values()), ids=list(HIDDEN))
def test_hidden_banned_terms_are_found(text):
    assert find_banned_terms(text, BANNED), text


ORDINARY = ["gunther's bakery", "begun", "shotgun wedding", "a gunny sack", "Essex coast", "skill", "killer whale",
            "nudes palette",  # 'nudes' is not 'nude' (whole words)
            "the 4x4 truck", "b2b sale", "celebrate", "free gifts", "über cool", "gown", "g u n"]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_words_do_not_trigger(text):
    assert find_banned_terms(text, BANNED + ["sex"]) == []


def test_a_hidden_term_refuses_its_row_through_the_planner(tmp_path, settings_):
    path = tmp_path / "b.csv"
    path.write_text("asset_id,style,product,scene\nok-1,acme@2,a tent,a meadow\n"
                    "bad-3,acme@2,a t\u0435nt,a g\u200bun range\nok-9,acme@2,a lamp,a study\n", encoding="utf-8")
    plan = plan_campaign(read_sheet(path), settings_)
    assert [(p.row, p.column) for p in plan.problems] == [(3, "scene")] and "'gun'" in str(plan.problems[0])
    assert [r.asset_id for r in plan.rows] == ["ok-1", "ok-9"]
