"""Reference images: a sheet column or a style key, checked as uploads, hashed into job keys."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from PIL import Image

from plan.planner import plan_campaign
from plan.sheet import read_sheet

NORDIC = "asset_id,style,product,room,placements,reference_image\n"


def picture(path: Path, colour: str, size: tuple[int, int] = (64, 48)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path.name


def plan(sheet: Path, settings, styles: Path | None = None):
    return plan_campaign(read_sheet(sheet), dataclasses.replace(settings, styles_dir=styles or settings.styles_dir))


def test_style_and_row_references_go_into_jobs_and_keys(tmp_path, settings, write_sheet):
    picture(tmp_path / "sofa.png", "#4A5859")
    sheet = write_sheet(NORDIC + "a,nordic@2,a sofa,living room,meta.feed.portrait,\n"
                                 "b,nordic@2,a lamp,bedroom,meta.feed.portrait,sofa.png\n"
                                 "c,nordic@1,a rug,hallway,meta.feed.portrait,\n")
    result = plan(sheet, settings)
    assert result.problems == []
    a, b, c = result.jobs
    style_ref, row_ref = a.input_sha256["reference_image"], b.input_sha256["reference_image"]
    assert style_ref != row_ref and "reference_image" not in c.input_sha256
    assert (a.reference_strength, b.reference_strength, c.reference_strength) == (0.75, 0.75, None)
    assert a.ip_adapter == ("brandbatch/tiny-ip-adapter-sdxl", "builtin-1", 0.5) and c.ip_adapter is None
    assert a.adapters[0][1] == b.adapters[0][1] and c.adapters is None

    Image.new("RGB", (64, 48), "#797A7E").save(tmp_path / "sofa.png")  # the row's reference changed
    again = plan(sheet, settings)
    assert [j.key == k.key for j, k in zip(result.jobs, again.jobs)] == [True, False, True]


def test_a_reference_the_style_cannot_use_refuses_the_row(tmp_path, settings, write_sheet):
    picture(tmp_path / "sofa.png", "#4A5859")
    result = plan(write_sheet(NORDIC + "a,nordic@1,a sofa,living room,meta.feed.portrait,sofa.png\n"), settings)
    assert [(p.row, p.column, p.code) for p in result.problems] == [(2, "reference_image", "bad_reference")]
    assert "reference_strength" in result.problems[0].message and "nordic@1" in result.problems[0].message


@pytest.mark.parametrize("make, expected", [
    (lambda d: (d / "ref.png").write_bytes(b"not an image"), "is not a PNG, JPEG, WEBP image"),
    (lambda d: Image.new("RGB", (64, 48)).save(d / "ref.gif"), "must be a"),
    (lambda d: (d / "ref.png").symlink_to("/etc/hostname"), "no such file"),
])
def test_hostile_references_are_refused_per_row(tmp_path, settings, write_sheet, make, expected):
    make(tmp_path)
    name = next(p.name for p in tmp_path.iterdir() if p.name.startswith("ref."))
    sheet = write_sheet(NORDIC + f"a,nordic@2,a sofa,living room,meta.feed.portrait,{name}\n"
                                 "b,nordic@2,a lamp,bedroom,meta.feed.portrait,\n")
    result = plan(sheet, settings)
    assert [(p.row, p.column) for p in result.problems] == [(2, "reference_image")]
    assert expected in result.problems[0].message
    assert [r.asset_id for r in result.rows] == ["b"]


def test_a_reference_matching_a_blocked_mark_is_refused_naming_the_mark(tmp_path, settings, write_sheet, repo):
    styles = tmp_path / "styles"
    shutil.copytree(repo / "styles", styles)
    mark = Image.new("RGB", (64, 64), "white")
    for x in range(0, 64, 16):
        mark.paste((200, 30, 30), (x, 0, x + 8, 64))
    (styles / "nordic" / "blocked-marks").mkdir()
    mark.save(styles / "nordic" / "blocked-marks" / "rival.png")
    mark.resize((96, 96)).save(tmp_path / "ref.png")
    result = plan(write_sheet(NORDIC + "a,nordic@2,a sofa,living room,meta.feed.portrait,ref.png\n"), settings, styles)
    assert [(p.column, p.code) for p in result.problems] == [("reference_image", "blocked_mark")]
    assert "rival.png" in result.problems[0].message


STYLE = """
name: demo
version: 1
owner: me@example.com
status: approved
model: {id: brandbatch/tiny-FAMILY, revision: builtin-1, family: FAMILY}
prompt_template: product_ad.j2
aspect_ratios: ["1:1"]
placements: [meta.feed.square]
"""


@pytest.mark.parametrize("family, extra, expected", [
    ("sd3", "ip_adapter: {path: brandbatch/tiny-ip-adapter-sd}\n", "IP-Adapter support covers the sd, sdxl"),
    ("sd", "ip_adapter: {path: brandbatch/tiny-ip-adapter-sdxl}\n", "is brandbatch/tiny-ip-adapter-sd, not"),
    ("sd", "ip_adapter: {path: ip/ip-adapter_sd15.safetensors}\n", "pinned by sha256"),
    ("sd", "ip_adapter: {path: ip/ip-adapter_sd15.bin, sha256: " + "ab" * 32 + "}\n", ".safetensors"),
    ("sd", "reference_image: ref.png\n", "needs reference_strength (image-to-image), ip_adapter"),
    ("sd", "reference_image: ../ref.png\nreference_strength: 0.5\n", "relative to the folder"),
    ("sd", "reference_strength: 0\n", "greater than 0"),
    ("flux", "structure: {controlnet: brandbatch/tiny-controlnet-sd}\n", "ControlNet structure references cover"),
    ("sd", "structure: {controlnet: brandbatch/tiny-controlnet-sdxl}\n", "is brandbatch/tiny-controlnet-sd, not"),
    ("sd", "structure: {controlnet: cn}\n", "sha256: required for the ControlNet folder"),
    ("sd", "structure: {controlnet: cn, sha256: " + "ab" * 32 + "}\n", "diffusion_pytorch_model.safetensors"),
])
def test_bad_reference_keys_are_refused_naming_the_key(tmp_path, family, extra, expected):
    from plan.errors import InputError
    from plan.styles import load_style_file

    path = tmp_path / "demo" / "v1.yaml"
    picture(tmp_path / "demo" / "ref.png", "#336699")
    path.write_text(STYLE.replace("FAMILY", family) + extra, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_style_file(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_a_structure_reference_puts_the_controlnet_and_its_scale_in_the_jobs(tmp_path, settings, write_sheet, repo):
    styles = tmp_path / "styles"
    shutil.copytree(repo / "styles", styles)
    keys = []
    for scale in (0.5, 1.0):
        (styles / "demo").mkdir(exist_ok=True)
        (styles / "demo" / "v1.yaml").write_text(STYLE.replace("FAMILY", "sd") + "structure: {controlnet: "
                                                 f"brandbatch/tiny-controlnet-sd, scale: {scale}}}\n", encoding="utf-8")
        picture(tmp_path / "ref.png", "#4A5859")
        sheet = write_sheet("asset_id,style,product,scene,reference_image\na,demo@1,a boot,a rock,ref.png\n"
                            "b,demo@1,a tent,a lake,\n")
        result = plan(sheet, settings, styles)
        assert result.problems == []
        a, b = result.jobs
        assert a.controlnet == ("brandbatch/tiny-controlnet-sd", "builtin-1", scale) and a.reference_strength is None
        assert b.controlnet is None and not b.uses_reference  # no reference: a plain text-to-image job
        keys.append(a.key)
    assert keys[0] != keys[1]
