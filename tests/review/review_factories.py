"""Real render jobs (derived seeds) and QA results for the review tests."""

from __future__ import annotations

from plan.jobs import RenderJob, derive_seed
from qa.verdicts import QAResult

CAMPAIGN = "spring-launch"
BACKENDS = ["sqlite", "postgresql"]  # review queue databases the queue tests run on
SIZES = {"1:1": (128, 128), "9:16": (72, 128)}


def make_jobs(asset_id: str, variant: int = 0, *, row: int = 2, prompt: str | None = None,
              aspects: tuple[str, ...] = ("1:1", "9:16"), reroll: int = 0) -> list[RenderJob]:
    seed = derive_seed(CAMPAIGN, asset_id, variant, "acme@2", reroll)
    return [RenderJob(
        campaign=CAMPAIGN, row_key=asset_id, row=row, variant=variant, aspect=aspect, width=SIZES[aspect][0],
        height=SIZES[aspect][1], prompt=prompt or f"a photo of {asset_id}", negative_prompt="blurry",
        model_id="brandbatch/tiny-sd", model_revision="builtin-1", model_family="sd", scheduler="euler", steps=2,
        guidance=6.0, seed=seed, style="acme", style_version=2, reroll=reroll) for aspect in aspects]


def results_for(jobs: list[RenderJob], verdict: str = "review", reasons: tuple[str, ...] = ("sampled",)) -> dict[str, QAResult]:
    return {j.key: QAResult(j.key, verdict, () if verdict == "pass" else reasons, {"clip_score": 0.25})
            for j in jobs}


class FakeClock:
    """A clock a test moves by hand (``clock.now += 10``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
