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
    assert library.versions("acme") == [1, 2, 3, 4, 5, 6]
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


FAMILY = GOOD.replace('["1:1"]', '["1:1", "9:16"]') + "composition: expand\n"


@pytest.mark.parametrize(("extra", "key", "expected"), [
    ("composition: collage\n", "composition", "'independent' or 'expand'"),
    ('composition: expand\nmaster_aspect: "1.91:1"\n', "master_aspect", "aspect_ratios (1:1, 9:16)"),
    ("composition: expand\nexpand_model: {id: brandbatch/tiny-flux-fill, family: flux}\n", "expand_model",
     "family 'sd'"),
    ("upscaler: {id: weights/esrgan.pth}\n", "upscaler", "sha256: required"),
    ("upscaler: {id: esrgan.bin, sha256: " + "ab" * 32 + "}\n", "upscaler", "brandbatch/tiny-esrgan"),
    ("upscaler: {id: missing.pth, sha256: " + "ab" * 32 + "}\n", "upscaler", "no such weights file"),
    ("max_upscale: 0.5\n", "max_upscale", "greater than or equal to 1"),
])
def test_bad_family_and_upscaler_keys_name_file_key_and_allowed(tmp_path: Path, extra, key, expected) -> None:
    path = _write(tmp_path, "demo", 1, GOOD.replace('["1:1"]', '["1:1", "9:16"]') + extra)
    with pytest.raises(InputError) as err:
        load_style_file(path)
    message = str(err.value)
    assert str(path) in message and f"{key}:" in message and expected in message, message


def test_upscaler_weights_are_pinned_by_sha256(tmp_path: Path) -> None:
    import hashlib

    weights = tmp_path / "demo" / "esrgan.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights v1")
    good = hashlib.sha256(b"weights v1").hexdigest()
    path = _write(tmp_path, "demo", 1, GOOD + f"upscaler: {{id: esrgan.pth, sha256: {good}}}\n")
    assert load_style_file(path).upscaler.path(path.parent) == weights.resolve()
    weights.write_bytes(b"weights v2 (swapped)")
    with pytest.raises(InputError) as err:
        load_style_file(path)
    assert "upscaler: sha256:" in str(err.value) and good in str(err.value)
    assert hashlib.sha256(b"weights v2 (swapped)").hexdigest() in str(err.value)


def test_a_style_without_composition_renders_as_before_and_the_repo_styles_keep_their_mode(tmp_path: Path,
                                                                                          repo: Path) -> None:
    """A file without ``composition`` means what it meant before families existed, so an
    approved style's renders do not change when brandbatch is upgraded."""
    style = load_style_file(_write(tmp_path, "demo", 1, FAMILY.replace("composition: expand\n", "")))
    assert (style.composition, style.master_aspect, style.max_upscale, style.upscaler) == (
        "independent", "1:1", 1.25, None)
    assert load_style_file(_write(tmp_path / "new", "demo", 1, FAMILY)).composition == "expand"
    library = StyleLibrary(repo / "styles")
    assert {v: library.get("acme", v).composition for v in (1, 2, 3, 4, 5)} == {
        1: "independent", 2: "independent", 3: "independent", 4: "independent", 5: "expand"}
    assert library.get("nordic", 1).composition == "independent"


def test_product_placement_per_aspect_and_its_errors(tmp_path: Path) -> None:
    style = load_style_file(_write(tmp_path, "demo", 1, GOOD + (
        "product:\n  anchor: [0.4, 0.6]\n  height: 0.5\n  shadow: false\n  on_fail: reject\n"
        "  aspects:\n    '9:16': {anchor: [0.5, 0.7], height: 0.3}\n")))
    assert style.product.placement("1:1").anchor == (0.4, 0.6) and style.product.placement("1:1").shadow is False
    assert style.product.placement("9:16").height == 0.3 and style.product.max_delta_e == 1.0
    for bad, says in (("product: {anchor: [0.5, 1.5]}", "product.anchor.1: Input should be less than or equal to 1"),
                      ("product: {height: 0}", "product.height: Input should be greater than 0"),
                      ("product: {on_fail: ignore}", "product.on_fail: Input should be 'review' or 'reject'"),
                      ("product: {aspects: {'3:1': {height: 0.5}}}", "product.aspects.'3:1'"),
                      ("product: {size: 2}", "product.size: unknown key")):
        with pytest.raises(InputError) as caught:
            load_style_file(_write(tmp_path / bad[:12].replace(" ", "_"), "demo", 1, GOOD + bad + "\n"))
        assert says in str(caught.value), (bad, str(caught.value))
