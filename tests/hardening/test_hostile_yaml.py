"""Hostile style files: Python tags, alias bombs, cycles, deep nesting, size, encodings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from plan.errors import InputError
from plan.styles import MAX_STYLE_BYTES, load_style_file
from plan.yaml_safe import MAX_YAML_DEPTH, MAX_YAML_NODES, load_yaml

GOOD = """\
name: demo
version: 1
owner: me@example.com
status: approved
model: {id: brandbatch/tiny-sd, revision: builtin-1, family: sd, resolution: 128}
prompt_template: product_ad.j2
aspect_ratios: ["1:1"]
placements: [meta.feed.square]
"""


def _style(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "demo" / "v1.yaml"
    path.parent.mkdir(exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def test_the_good_style_loads(tmp_path):
    assert load_style_file(_style(tmp_path, GOOD)).owner == "me@example.com"


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.getcwd []",          # would return a str: a valid owner if constructed
    "!!python/object/apply:builtins.str [me]",
    "!!python/name:os.sep",
    "!!python/object/new:builtins.str [me]",
    "!!python/str me",
])
def test_python_tags_are_refused_at_their_line(tmp_path, tag):
    path = _style(tmp_path, GOOD.replace("owner: me@example.com", f"owner: {tag}"))
    with pytest.raises(InputError) as err:
        load_style_file(path)
    (problem,) = err.value.problems
    assert str(problem).startswith(f"{path}: not valid YAML at line 3, column 8: could not determine a constructor "
                                   "for the tag 'tag:yaml.org,2002:python/")


def _laughs(levels: int, fan: int = 10) -> str:
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_quickly_and_named(tmp_path):
    # placements: 10^9 values once expanded, in well under a kilobyte (a9 is an unknown key too:
    # its error message must not expand it either).
    text = GOOD.replace("placements: [meta.feed.square]\n", "") + _laughs(9) + "placements: *a9\n"
    assert len(text) < 1000
    path = _style(tmp_path, text)
    started = time.perf_counter()
    with pytest.raises(InputError, match=f"expands to more than {MAX_YAML_NODES} values"):
        load_style_file(path)
    assert time.perf_counter() - started < 2


def test_a_small_alias_is_fine(tmp_path):
    text = GOOD.replace('aspect_ratios: ["1:1"]', 'aspect_ratios: &ar ["1:1"]') + "banned_terms: *ar\n"
    assert load_style_file(_style(tmp_path, text)).banned_terms == ("1:1",)


def test_alias_cycles_are_refused(tmp_path):
    with pytest.raises(InputError, match=r": an alias refers to a node that contains it \(a cycle\)"):
        load_style_file(_style(tmp_path, GOOD + "style_tokens: &loop [a, *loop]\n"))


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 5000])
def test_deep_nesting_is_refused(tmp_path, depth):
    with pytest.raises(InputError, match=f"nests more than {MAX_YAML_DEPTH} levels"):
        load_style_file(_style(tmp_path, GOOD + "style_tokens: " + "[" * depth + "]" * depth + "\n"))


def test_nesting_at_the_cap_is_parsed():
    assert load_yaml("x: " + "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1), "f") is not None


def test_oversized_style_is_refused_before_parsing(tmp_path):
    path = _style(tmp_path, GOOD + "description: " + "x" * MAX_STYLE_BYTES + "\n")
    with pytest.raises(InputError, match=f"larger than the {MAX_STYLE_BYTES} byte cap"):
        load_style_file(path)


def test_non_utf8_style_names_the_byte(tmp_path):
    path = _style(tmp_path, GOOD.encode() + b"description: caf\xe9\n")
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte \d+\)"):
        load_style_file(path)


def test_hostile_keys_and_huge_values_give_short_one_line_problems(tmp_path):
    text = GOOD + '"evil\\nkey\\u001b[2J": 1\n' + "description: [" + ", ".join(["long" * 50] * 500) + "]\n"
    path = _style(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_style_file(path)
    lines = [str(p) for p in err.value.problems]
    assert len(lines) == 2
    assert all("\n" not in line and "\x1b" not in line and len(line) < len(str(path)) + 400 for line in lines)
    assert any("'evil\\nkey\\x1b[2J': unknown key" in line for line in lines)
