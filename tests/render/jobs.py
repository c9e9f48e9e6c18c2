"""Tiny render jobs: 64 px, few steps, so the whole directory runs in seconds on CPU."""

from __future__ import annotations

from plan.jobs import RenderJob, derive_seed

FAMILIES = ("sd", "sdxl", "sd3", "flux")
FAMILY_MODELS = {family: f"brandbatch/tiny-{family}" for family in FAMILIES}


def make_job(i: int, family: str = "sd", *, width: int = 64, height: int = 64, scheduler: str = "euler",
             steps: int = 3, model_id: str | None = None, revision: str | None = "builtin-1") -> RenderJob:
    return RenderJob(
        campaign="test", row_key=f"row-{i}", row=i, variant=0, aspect="1:1", width=width, height=height,
        prompt=f"a red hiking boot number {i} on a rock", negative_prompt="blurry, watermark",
        model_id=model_id or FAMILY_MODELS[family], model_revision=revision, model_family=family,
        scheduler=scheduler, steps=steps, guidance=5.0, seed=derive_seed("test", f"row-{i}", 0, "acme@2"),
        style="acme", style_version=2,
    )
