"""Reference images: image-to-image from a reference and a style reference through the tiny
IP-Adapter (a real diffusers load path: CLIP image encoder + image_proj + ip_adapter weights)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.render.jobs import make_job

from render.devices import device_settings
from render.registry import ModelError, load_pipeline, pipeline_for
from render.stage import check_pixels, encode_png
from render.tiny import ensure_tiny_ip_adapter


def reference_image(seed: int = 0, size: tuple[int, int] = (80, 96)):
    from PIL import Image

    return Image.fromarray((np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype("uint8"))


def render(pipe, job, **kwargs) -> bytes:
    import torch

    out = pipe(prompt=[job.prompt], negative_prompt=[job.negative_prompt], height=job.height, width=job.width,
               num_inference_steps=job.steps, guidance_scale=job.guidance, output_type="np",
               generator=[torch.Generator("cpu").manual_seed(job.seed)], **kwargs).images
    pixels, failure = check_pixels(job.key, out[0])
    assert failure is None
    return encode_png(pixels)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_tiny_ip_adapter_loads_through_diffusers_and_steers_deterministically(family):
    settings = device_settings("cpu", batch_invariant=True)
    job = make_job(1, family)
    weights = ensure_tiny_ip_adapter(f"brandbatch/tiny-ip-adapter-{family}")
    assert weights.name == "ip-adapter.safetensors" and (weights.parent / "image_encoder" / "config.json").is_file()
    ip = (f"brandbatch/tiny-ip-adapter-{family}", "builtin-1")
    base = render(pipeline_for(job.model_id, job.model_revision, family, "euler", settings), job)
    steered = pipeline_for(job.model_id, job.model_revision, family, "euler", settings, ip_adapter=(*ip, 0.6))
    assert type(steered.image_encoder).__name__ == "CLIPVisionModelWithProjection"
    first = render(steered, job, ip_adapter_image=reference_image())
    assert render(steered, job, ip_adapter_image=reference_image()) == first  # same inputs, same bytes
    assert first != base  # the reference steered the render
    assert render(steered, job, ip_adapter_image=reference_image(seed=1)) != first  # another reference
    off = pipeline_for(job.model_id, job.model_revision, family, "euler", settings, ip_adapter=(*ip, 0.0))
    assert render(off, job, ip_adapter_image=reference_image()) == base  # scale 0: the reference adds nothing
    assert load_pipeline(job.model_id, job.model_revision, settings) is not load_pipeline(
        job.model_id, job.model_revision, settings, (), (*ip, 0.6))  # the base pipeline is never mutated


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_image_to_image_from_a_reference_is_deterministic_and_follows_strength(family):
    settings = device_settings("cpu", batch_invariant=True)
    job = make_job(1, family, steps=4)
    pipe = pipeline_for(job.model_id, job.model_revision, family, "euler", settings, image_to_image=True)
    assert type(pipe).__name__.endswith("Img2ImgPipeline")
    ref = reference_image().resize((job.width, job.height))
    weak = render(pipe, job, image=[ref], strength=0.3)
    assert render(pipe, job, image=[ref], strength=0.3) == weak
    assert render(pipe, job, image=[ref], strength=0.9) != weak
    assert render(pipe, job, image=[reference_image(seed=1).resize((job.width, job.height))], strength=0.3) != weak


def test_a_pinned_ip_adapter_file_that_changed_is_refused_before_loading(tmp_path):
    import shutil

    source = ensure_tiny_ip_adapter("brandbatch/tiny-ip-adapter-sd")
    copy = tmp_path / "ip" / "ip-adapter_sd15.safetensors"
    shutil.copytree(source.parent, copy.parent)
    shutil.move(copy.parent / source.name, copy)
    settings = device_settings("cpu", batch_invariant=True)
    with pytest.raises(ModelError) as err:
        pipeline_for("brandbatch/tiny-sd", "builtin-1", "sd", "euler", settings, ip_adapter=(str(copy), "0" * 64, 0.6))
    assert str(copy) in str(err.value) and "0" * 64 in str(err.value)
    import hashlib

    sha = hashlib.sha256(copy.read_bytes()).hexdigest()
    pipe = pipeline_for("brandbatch/tiny-sd", "builtin-1", "sd", "euler", settings, ip_adapter=(str(copy), sha, 0.6))
    assert pipe.image_encoder is not None  # the same file, pinned right, loads from its folder


def test_families_without_an_image_to_image_pipeline_are_refused():
    settings = device_settings("cpu", batch_invariant=True)
    with pytest.raises(ModelError) as err:
        pipeline_for("brandbatch/tiny-sd-inpaint", "builtin-1", "sd", "euler", settings, image_to_image=True)
    assert "StableDiffusionInpaintPipeline" in str(err.value) and "StableDiffusionPipeline" in str(err.value)


def plan_sheet(tmp_path, repo, rows: str):
    from plan.planner import PlanSettings, plan_campaign
    from plan.sheet import read_sheet

    sheet = tmp_path / "sheet.csv"
    sheet.write_text("asset_id,style,product,room,placements,reference_image\n" + rows, encoding="utf-8")
    settings = PlanSettings(styles_dir=repo / "styles", templates_dir=repo / "templates" / "prompts",
                            placements={"meta.feed.portrait": (1080, 1350)})
    plan = plan_campaign(read_sheet(sheet), settings)
    assert plan.problems == []
    return plan


def test_reference_rows_render_offline_deterministically_and_a_changed_reference_rerenders_only_its_rows(
        tmp_path, repo):
    """nordic@2 end to end (brand LoRA + image-to-image + IP-Adapter on the tiny SDXL): the same
    inputs give the same bytes; a new reference rerenders exactly its row."""
    from plan.uploads import store_inputs
    from store.keys import render_key
    from store.local import LocalStore

    from render.stage import render_missing

    reference_image(seed=3).save(tmp_path / "a.png")
    reference_image(seed=4).save(tmp_path / "b.png")
    rows = ("a,nordic@2,a sofa,living room,meta.feed.portrait,a.png\nb,nordic@2,a lamp,bedroom,meta.feed.portrait,b.png\n"
            "c,nordic@2,a rug,hallway,meta.feed.portrait,\n")
    plan = plan_sheet(tmp_path, repo, rows)
    stores = [LocalStore(tmp_path / "one"), LocalStore(tmp_path / "two")]
    for store in stores:
        store_inputs(store, plan.rows)
        load_pipeline.cache_clear()
        report = render_missing(plan.jobs, store)
        assert report.failed == [] and len(report.rendered) == len(plan.jobs) == 3
        assert load_pipeline.cache_info().misses == 1  # one build: tiny SDXL + LoRA + IP-Adapter
    renders = [{j.row_key: s.get(render_key(j.key)) for j in plan.jobs} for s in stores]
    assert renders[0] == renders[1]
    assert len(set(renders[0].values())) == 3

    reference_image(seed=5).save(tmp_path / "a.png")
    replanned = plan_sheet(tmp_path, repo, rows)
    store_inputs(stores[0], replanned.rows)
    again = render_missing(replanned.jobs, stores[0])
    assert again.rendered == [j.key for j in replanned.jobs if j.row_key == "a"]
    assert sorted(again.cached) == sorted(j.key for j in replanned.jobs if j.row_key != "a")


def test_a_reference_missing_from_the_store_fails_only_its_jobs(tmp_path, repo):
    from store.local import LocalStore

    from render.stage import render_missing

    reference_image().save(tmp_path / "a.png")
    plan = plan_sheet(tmp_path, repo, "a,nordic@2,a sofa,living room,meta.feed.portrait,a.png\n"
                                      "b,nordic@1,a lamp,bedroom,meta.feed.portrait,\n")
    report = render_missing(plan.jobs, LocalStore(tmp_path / "out"))  # planning's store_inputs never ran
    assert [(f.job_key, f.reason) for f in report.failed] == [(plan.jobs[0].key, "input_missing")]
    assert "reference_image" in report.failed[0].message
    assert report.rendered == [plan.jobs[1].key]


def test_structure_reference_steers_through_the_tiny_controlnet_deterministically(tmp_path):
    """The reference's Canny edges drive the tiny ControlNet (diffusers' ControlNet pipelines, with
    and without image-to-image) through render_missing: same inputs, same bytes; the scale and the
    reference's structure change the pixels."""
    import hashlib
    import io
    from dataclasses import replace

    from store.keys import input_key, render_key
    from store.local import LocalStore

    from render.stage import render_missing

    store = LocalStore(tmp_path / "out")
    shas = []
    for box in ((8, 8, 40, 40), (24, 30, 60, 56)):  # shapes in different places: different edges
        buf = io.BytesIO()
        shapes = reference_image(0, (64, 64))
        shapes.paste((250, 250, 250), box)
        shapes.save(buf, format="PNG")
        shas.append(hashlib.sha256(buf.getvalue()).hexdigest())
        store.put(input_key(shas[-1]), buf.getvalue())

    def job(sha, scale, strength=None):
        return replace(make_job(1), input_images=(("reference_image", sha),), reference_strength=strength,
                       controlnet=("brandbatch/tiny-controlnet-sd", "builtin-1", scale))

    jobs = [job(shas[0], 1.0), job(shas[0], 0.0), job(shas[1], 1.0), job(shas[0], 1.0, 0.6), job(shas[1], 1.0, 0.6)]
    assert len({j.key for j in jobs}) == len(jobs)
    load_pipeline.cache_clear()
    report = render_missing(jobs, store)
    assert report.failed == [] and load_pipeline.cache_info().misses == 1  # one base, the ControlNet beside it
    pngs = [store.get(render_key(j.key)) for j in jobs]
    assert len(set(pngs)) == len(jobs)
    again = LocalStore(tmp_path / "again")
    for sha in shas:
        again.put(input_key(sha), store.get(input_key(sha)))
    assert render_missing(jobs, again).failed == []
    assert [again.get(render_key(j.key)) for j in jobs] == pngs


def test_edge_map_is_the_fitted_references_canny_edges():
    from render.reference import edge_map

    from PIL import Image

    flat = edge_map(Image.new("RGB", (80, 40), "#808080"), 32, 32)
    assert flat.size == (32, 32) and flat.mode == "RGB" and flat.getextrema() == ((0, 0),) * 3
    square = Image.new("RGB", (64, 64), "black")
    square.paste((255, 255, 255), (16, 16, 48, 48))
    edges = np.asarray(edge_map(square, 64, 64).convert("L"))
    assert set(np.unique(edges)) == {0, 255} and edges[32, 32] == 0 and edges[:, 14:19].max() == 255


def test_a_pinned_controlnet_folder_is_checked_before_loading(tmp_path):
    import hashlib
    import shutil

    from render.registry import load_controlnet
    from render.tiny import ensure_tiny_controlnet

    folder = tmp_path / "sd-canny"
    shutil.copytree(ensure_tiny_controlnet("brandbatch/tiny-controlnet-sd"), folder)
    settings = device_settings("cpu", batch_invariant=True)
    with pytest.raises(ModelError) as err:
        pipeline_for("brandbatch/tiny-sd", "builtin-1", "sd", "euler", settings, controlnet=(str(folder), "0" * 64))
    assert str(folder / "diffusion_pytorch_model.safetensors") in str(err.value) and "0" * 64 in str(err.value)
    sha = hashlib.sha256((folder / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()
    view = pipeline_for("brandbatch/tiny-sd", "builtin-1", "sd", "euler", settings, controlnet=(str(folder), sha))
    assert type(view).__name__ == "StableDiffusionControlNetPipeline"
    assert view.controlnet is load_controlnet(str(folder), sha, settings)  # loaded once
