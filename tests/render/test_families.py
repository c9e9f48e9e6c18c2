"""Creative families on the tiny models: masters before expansions, master pixels kept exactly,
bit-identical families whatever the batch, order or run, and a master's reroll rerenders its
family only."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image
from tests.render.jobs import make_family

from plan.jobs import reseed
from render.expand import master_box
from render.stage import render_missing
from store.keys import render_key
from store.local import LocalStore


def decoded(store: LocalStore, key: str) -> Image.Image:
    return Image.open(io.BytesIO(store.get(render_key(key)))).convert("RGB")


@pytest.mark.parametrize("family, expand_model", [
    ("sd", "brandbatch/tiny-sd-inpaint"),  # 9-channel inpainting UNet
    ("sd", None),  # the style's own model through StableDiffusionInpaintPipeline
    ("sdxl", "brandbatch/tiny-sdxl-inpaint"),
    ("flux", "brandbatch/tiny-flux-fill"),  # FluxFillPipeline, extra input channels
    ("flux", None),  # FluxInpaintPipeline
])
def test_every_expansion_keeps_the_master_pixels_exactly(tmp_path, family, expand_model):
    jobs = make_family(1, family, expand_model=expand_model)
    store = LocalStore(tmp_path)
    report = render_missing(list(reversed(jobs)), store, batch_size=2)  # expansions given first
    assert report.failed == [] and sorted(report.rendered) == sorted(j.key for j in jobs)
    master = decoded(store, jobs[0].key)
    for job in jobs[1:]:
        image = decoded(store, job.key)
        assert image.size == (job.width, job.height) and image.size != master.size
        left, top, right, bottom = master_box(master, job)
        pixels = np.asarray(image)
        assert np.array_equal(pixels[top:bottom, left:right], np.asarray(master))
        outside = np.ones(pixels.shape[:2], bool)
        outside[top:bottom, left:right] = False
        assert pixels[outside].std() > 5  # the new area was painted, not left flat


def test_family_pixels_do_not_depend_on_batch_size_order_or_rerun(tmp_path):
    jobs = [j for i in range(2) for j in make_family(i, "sd", expand_model="brandbatch/tiny-sd-inpaint")]
    reference = None
    for n, batch_size in enumerate((1, 3)):
        order = list(jobs)
        random.Random(n).shuffle(order)
        store = LocalStore(tmp_path / f"b{batch_size}")
        assert render_missing(order, store, batch_size=batch_size).failed == []
        result = {j.key: store.get(render_key(j.key)) for j in jobs}  # stored PNG bytes
        reference = reference or result
        assert result == reference, f"batch size {batch_size} changed a family's PNG bytes"
    rerun = render_missing(jobs, LocalStore(tmp_path / "b3"), batch_size=3)
    assert rerun.rendered == [] and sorted(rerun.cached) == sorted(j.key for j in jobs)


def test_a_master_reroll_rerenders_exactly_its_family(tmp_path):
    families = [make_family(i, "sd", expand_model="brandbatch/tiny-sd-inpaint") for i in range(2)]
    store = LocalStore(tmp_path)
    assert render_missing([j for f in families for j in f], store, batch_size=4).failed == []
    rerolled = reseed(families[0], 1)
    assert rerolled[0].key != families[0][0].key
    assert all(j.master_key == rerolled[0].key for j in rerolled[1:])
    report = render_missing([j for j in families[1]] + rerolled, store, batch_size=4)
    assert sorted(report.rendered) == sorted(j.key for j in rerolled)
    assert sorted(report.cached) == sorted(j.key for j in families[1])
    new_master = decoded(store, rerolled[0].key)
    for job in rerolled[1:]:
        left, top, right, bottom = master_box(new_master, job)
        assert np.array_equal(np.asarray(decoded(store, job.key))[top:bottom, left:right], np.asarray(new_master))


def test_an_expansion_without_its_master_fails_alone(tmp_path):
    family = make_family(1, "sd")
    broken = make_family(2, "sd")
    broken[0] = type(broken[0]).from_dict({**broken[0].to_dict(), "model_id": "brandbatch/tiny-nope"})
    broken = [broken[0]] + [type(j).from_dict({**j.to_dict(), "master_key": broken[0].key}) for j in broken[1:]]
    report = render_missing(family[1:] + broken, LocalStore(tmp_path), batch_size=2)
    reasons = {f.job_key: f.reason for f in report.failed}
    assert reasons == {family[1].key: "master_missing", family[2].key: "master_missing",
                       broken[0].key: "model_error", broken[1].key: "master_missing",
                       broken[2].key: "master_missing"}
    assert "not in the store" in report.failed[-1].message


def test_the_tiny_sd3_model_cannot_expand_and_says_why(tmp_path):
    family = make_family(1, "sd3")
    report = render_missing(family, LocalStore(tmp_path), batch_size=2)
    assert report.rendered == [family[0].key]
    assert {f.reason for f in report.failed} == {"model_error"}
    assert "StableDiffusion3InpaintPipeline" in report.failed[0].message
