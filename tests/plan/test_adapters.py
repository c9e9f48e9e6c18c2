"""Styles pin brand models (LoRA adapters) by sha256; jobs carry them into their keys."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from plan.errors import InputError
from plan.planner import plan_campaign
from plan.sheet import read_sheet
from plan.styles import load_style_file

STYLE = """
name: brand
version: 1
owner: me@example.com
status: approved
model: {id: brandbatch/tiny-sd, revision: builtin-1, family: sd, resolution: 128}
prompt_template: product_ad.j2
aspect_ratios: ["1:1"]
placements: [meta.feed.square]
"""


def brand_style(root: Path, adapters: str, data: bytes = b"lora v1") -> Path:
    (root / "brand" / "lora").mkdir(parents=True, exist_ok=True)
    (root / "brand" / "lora" / "house.safetensors").write_bytes(data)
    path = root / "brand" / "v1.yaml"
    path.write_text(STYLE + adapters, encoding="utf-8")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_adapter_hash_mismatch_names_style_file_adapter_and_both_hashes(tmp_path):
    path = brand_style(tmp_path, f"adapters: [{{path: lora/house.safetensors, sha256: {sha(b'lora v1')}, scale: 0.8}}]\n",
                       data=b"lora v2 (retrained, not approved)")
    with pytest.raises(InputError) as err:
        load_style_file(path)
    message = str(err.value)
    assert str(path) in message and "adapters.0" in message
    assert str(tmp_path / "brand" / "lora" / "house.safetensors") in message
    assert sha(b"lora v1") in message and sha(b"lora v2 (retrained, not approved)") in message


@pytest.mark.parametrize("entry, expected", [
    ("{path: lora/house.bin, sha256: " + "ab" * 32 + "}", ".safetensors LoRA file"),
    ("{path: lora/house.safetensors}", "sha256"),
    ("{path: lora/missing.safetensors, sha256: " + "ab" * 32 + "}", "no such file"),
    ("{path: lora/house.safetensors, sha256: " + "ab" * 32 + ", scale: 9}", "less than or equal to 4"),
])
def test_bad_adapter_entries_are_refused(tmp_path, entry, expected):
    with pytest.raises(InputError) as err:
        load_style_file(brand_style(tmp_path, f"adapters: [{entry}]\n"))
    assert expected in str(err.value) and "adapters.0" in str(err.value)


def test_jobs_carry_adapters_and_their_scale_and_hash_are_in_the_key(tmp_path, settings, write_sheet, repo):
    styles = tmp_path / "styles"
    sheet = write_sheet("asset_id,style,product,scene\nboot,brand@1,a boot,a rock\n")
    keys = {}
    for scale in (0.5, 1.0):
        brand_style(styles, f"adapters: [{{path: lora/house.safetensors, sha256: {sha(b'lora v1')}, scale: {scale}}}]\n")
        (styles / "acme").mkdir(exist_ok=True)
        plan = plan_campaign(read_sheet(sheet), dataclasses.replace(settings, styles_dir=styles))
        assert plan.problems == [] and len(plan.jobs) == 1
        job = plan.jobs[0]
        assert job.adapters == ((str((styles / "brand" / "lora" / "house.safetensors").resolve()), sha(b"lora v1"),
                                 scale),)
        keys[scale] = job.key
    assert keys[0.5] != keys[1.0]
    override = plan_campaign(read_sheet(sheet), dataclasses.replace(settings, styles_dir=styles,
                                                                    model_override="brandbatch/tiny-sdxl@builtin-1"))
    assert override.jobs[0].adapters is None  # LoRAs are made for the style's model, not an override


@pytest.mark.parametrize("entry, expected", [
    ("{path: lora/house.safetensors, sha256: SHA, token: brand}", "token"),
    ("{path: lora/house.safetensors, sha256: " + "ab" * 32 + ", token: <brand>}", "has sha256"),
])
def test_embeddings_are_pinned_and_name_a_token(tmp_path, entry, expected):
    with pytest.raises(InputError) as err:
        load_style_file(brand_style(tmp_path, f"embeddings: [{entry.replace('SHA', sha(b'lora v1'))}]\n"))
    assert expected in str(err.value) and "embeddings.0" in str(err.value)


def test_jobs_carry_embeddings_with_their_token_in_the_key(tmp_path, settings, write_sheet):
    styles = tmp_path / "styles"
    entry = f"{{path: lora/house.safetensors, sha256: {sha(b'lora v1')}, token: <house>}}"
    brand_style(styles, f"style_tokens: [<house>]\nembeddings: [{entry}]\n")
    plan = plan_campaign(read_sheet(write_sheet("asset_id,style,product,scene\nboot,brand@1,a boot,a rock\n")),
                         dataclasses.replace(settings, styles_dir=styles))
    assert plan.problems == [] and "<house>" in plan.jobs[0].prompt
    assert plan.jobs[0].embeddings == ((str((styles / "brand" / "lora" / "house.safetensors").resolve()),
                                        sha(b"lora v1"), "<house>"),)
