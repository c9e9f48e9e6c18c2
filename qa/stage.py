"""The QA stage: read each render from the store, run the checks, decide, write ``qa/<job_key>.json``.

Fail closed: a check that raises sends the render to review (``check_error:<check>``); a
render that is missing or cannot be decoded never passes; a job whose style is unknown goes
to review. Results come back in job order and are byte-identical for the same renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from plan.jobs import RenderJob
from plan.styles import Style
from store.base import Store
from qa.checks import TECHNICAL_CHECKS, Check
from qa.image import RenderImage, qa_key, render_key
from qa.verdicts import Finding, QAResult, decide


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _load(job: RenderJob, store: Store) -> tuple[RenderImage | None, Finding | None]:
    """The decoded render, or the finding that explains why there is none."""
    key = render_key(job.key)
    try:
        data = store.get(key)
    except Exception as exc:  # absent, or the store cannot give it: nobody has looked at it
        return None, Finding(review=("render_missing",), details={"render": f"{key}: {_error_text(exc)}"})
    try:
        return RenderImage.from_bytes(data), None
    except Exception as exc:  # any decoder error: the bytes are not a usable image
        return None, Finding(fail=("render_undecodable",), details={"render": f"{key}: {_error_text(exc)}"})


def check_render(job: RenderJob, img: RenderImage, style: Style,
                 checks: Mapping[str, Check] = TECHNICAL_CHECKS) -> tuple[dict[str, Finding], list[str], dict[str, str]]:
    """Run per-render checks; returns findings by check, names of checks that raised, and
    their error messages (as result details)."""
    findings: dict[str, Finding] = {}
    errors: list[str] = []
    messages: dict[str, str] = {}
    for name, check in checks.items():
        try:
            findings[name] = check(img, job, style)
        except Exception as exc:  # fail closed: a broken check sends the render to review
            errors.append(name)
            messages[f"error:{name}"] = _error_text(exc)
    return findings, errors, messages


def qa_job(job: RenderJob, store: Store, style: Style | None, checks: Mapping[str, Check] = TECHNICAL_CHECKS) -> QAResult:
    """QA of one render, not yet written to the store."""
    if style is None:
        ref = f"{job.style}@{job.style_version}"
        return decide(job.key, {"style": Finding(review=("style_unknown",), details={"style": ref})})
    img, problem = _load(job, store)
    if img is None:
        return decide(job.key, {"render": problem})
    findings, errors, messages = check_render(job, img, style, checks)
    findings["errors"] = Finding(details=messages)
    return decide(job.key, findings, errors, sample_rate=style.qa.review_sample_rate)


def run_qa(jobs: Sequence[RenderJob], store: Store, styles_by_ref: Mapping[str, Style]) -> list[QAResult]:
    """QA every job's render; writes ``qa/<job_key>.json`` for each and returns results in job order."""
    results = [qa_job(job, store, styles_by_ref.get(f"{job.style}@{job.style_version}")) for job in jobs]
    for result in results:
        store.put(qa_key(result.job_key), result.to_json(), content_type="application/json", overwrite=True)
    return results
