from __future__ import annotations

from pathlib import Path

import pytest

from plan.errors import InputError
from plan.styles import StyleLibrary, load_style_file, parse_style_ref


def _write(root: Path, name: str, version: int, text: str) -> Path:
    path = root / name / f"v{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
name: demo
version: 1
owner: me@example.com
status: approved
model: {id: brandbatch/tiny-sd, revision: builtin-1, family: sd, resolution: 128}
prompt_template: product_ad.j2
aspect_ratios: ["1:1"]
placements: [meta.feed.square]
"""


def test_repo_styles_all_load(repo: Path) -> None:
    library = StyleLibrary(repo / "styles")
    assert library.names() == ["acme", "nordic"]
    assert library.versions("acme") == [1, 2, 3, 4]
    for name in library.names():
        for version in library.versions(name):
            style = library.get(name, version)
            assert style.ref == f"{name}@{version}"


def test_good_style_loads(tmp_path: Path) -> None:
    style = load_style_file(_write(tmp_path, "demo", 1, GOOD))
    assert style.status == "approved" and style.steps == 25 and style.qa.review_sample_rate == 0.02


def test_bad_aspect_names_file_key_value_and_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, "demo", 1, GOOD.replace('["1:1"]', '["1:1", "3:5"]'))
    with pytest.raises(InputError) as err:
        load_style_file(path)
    message = str(err.value)
    assert str(path) in message and "aspect_ratios.1" in message and "'3:5'" in message and "1.91:1" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("status: approved", "status: live"), "status"),
        (("status: approved", "status: deprecated"), "deprecation date"),
        (("steps: 25\n", ""), None),
        (("owner: me@example.com\n", ""), "owner: required key is missing"),
        (("name: demo", "name: other"), "must match its folder"),
        (("version: 1", "version: 2"), "must match the file name"),
        (("placements:", "colour: red\nplacements:"), "colour: unknown key"),
    ],
)
def test_style_errors(tmp_path: Path, change: tuple[str, str], expected: str | None) -> None:
    path = _write(tmp_path, "demo", 1, GOOD.replace(*change))
    if expected is None:
        load_style_file(path)
        return
    with pytest.raises(InputError, match=expected):
        load_style_file(path)


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "demo", 1, "!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_style_file(path)


def test_palette_must_be_hex(tmp_path: Path) -> None:
    path = _write(tmp_path, "demo", 1, GOOD + "palette: ['#12345G']\n")
    with pytest.raises(InputError, match="#RRGGBB"):
        load_style_file(path)


@pytest.mark.parametrize("text", ["acme", "acme@", "acme@0", "Acme@1", "acme@v2", "../x@1"])
def test_style_ref_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="name@version"):
        parse_style_ref(text)
