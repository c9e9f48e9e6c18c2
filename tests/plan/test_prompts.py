from __future__ import annotations

from pathlib import Path

import pytest

from plan.prompts import PromptError, find_banned_terms, render_prompt


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "plain.j2").write_text("{{ product }} in {{ scene }}", encoding="utf-8")
    (tmp_path / "attr.j2").write_text("{{ product|attr('__class__') }}", encoding="utf-8")
    (tmp_path / "mro.j2").write_text("{{ product.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")
    (tmp_path / "fmt.j2").write_text("{{ '{0.__class__}'.format(product) }}", encoding="utf-8")
    return tmp_path


def test_cell_values_are_data_not_templates(templates: Path) -> None:
    text = render_prompt(templates, "plain.j2", {"product": "{{ ''.__class__ }}", "scene": "{% for x in y %}"})
    assert text == "{{ ''.__class__ }} in {% for x in y %}"


@pytest.mark.parametrize("name", ["attr.j2", "mro.j2", "fmt.j2"])
def test_template_side_escapes_raise(templates: Path, name: str) -> None:
    with pytest.raises(PromptError, match="unsafe|undefined|failed"):
        render_prompt(templates, name, {"product": "bag"})


def test_missing_variable_names_the_column(templates: Path) -> None:
    with pytest.raises(PromptError) as err:
        render_prompt(templates, "plain.j2", {"product": "bag"})
    assert err.value.column == "scene"


@pytest.mark.parametrize(
    "text",
    [
        "a gun on a table",
        "a GUN on a table",
        "a g\u200bun on a table",          # zero-width space
        "a g\u00adun",                       # soft hyphen
        "a ｇｕｎ on a table",               # fullwidth
        "a \u0261un",                        # Latin script g (U+0261)
        "a g\u1d1cn",                        # small capital u
        "a gun\u2060 shop",                  # word joiner
        "a g\u0443n",                        # Cyrillic у looks like y: not u, must NOT match
    ],
)
def test_banned_term_variants(text: str) -> None:
    expected = "\u0443" not in text
    assert bool(find_banned_terms(text, ["gun"])) is expected


def test_homoglyph_banned_term() -> None:
    assert find_banned_terms("\u0441\u0435lebrity portrait", ["celebrity"]) == ["celebrity"]  # Cyrillic с, е
    assert find_banned_terms("a nude beach", ["nude"]) == ["nude"]
    assert find_banned_terms("n\u03c5de", ["nude"]) == ["nude"]  # Greek upsilon
    assert find_banned_terms("a guns", ["gun"]) == []  # whole words only
    assert find_banned_terms("free  gift inside", ["free gift"]) == ["free gift"]
    assert find_banned_terms("g0n", ["gun"]) == []
    assert find_banned_terms("cur3", ["cure"]) == ["cure"]
