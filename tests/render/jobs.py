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


def make_family(i: int, family: str = "sd", *, expand_model: str | None = None, reroll: int = 0,
                aspects: tuple[str, ...] = ("9:16", "1.91:1"), steps: int = 2) -> list[RenderJob]:
    """A creative family: a 64 px master at 1:1 and one expansion per aspect, as the planner
    makes them (``plan.planner.jobs_for_row``)."""
    from plan.jobs import derive_expand_seed
    from plan.resolution import expand_size

    scheduler = "flow_euler" if family in ("sd3", "flux") else "euler"
    master = make_job(i, family, scheduler=scheduler, steps=steps)
    master = RenderJob.from_dict({**master.to_dict(), "variant": 1, "reroll": reroll,
                                  "seed": derive_seed("test", f"row-{i}", 1, "acme@2", reroll)})
    jobs = [master]
    for aspect in aspects:
        width, height = expand_size((master.width, master.height), aspect, family, 64)
        jobs.append(RenderJob.from_dict({
            **master.to_dict(), "aspect": aspect, "width": width, "height": height,
            "model_id": expand_model or master.model_id, "seed": derive_expand_seed(master.key, aspect),
            "master_key": master.key}))
    return jobs
