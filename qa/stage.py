"""The QA stage: read each render from the store, run the checks, decide, write ``qa/<job_key>.json``.

Per render: technical checks and the brand palette (``RENDER_CHECKS``) and a difference hash.
Then, across the campaign: CLIP score and safety (styles that name a CLIP model),
near-duplicates among variants, each expansion against its master (``qa.family``) and each
packshot render against its packshot (``qa.product``). Fail closed: a check that raises sends the render to review
(``check_error:<check>``); a render that is missing or cannot be decoded never passes; a job
whose style is unknown goes to review. Results come back in job order, byte-identical for
the same renders.

Resume: the per-render findings (and the difference hash) are kept in ``qa/checks/<job_key>.json``
with a fingerprint of the style and of the check code, so a rerun decodes and checks only renders
it has not seen; so is a packshot render's product comparison, with the sha256 of the render it
compared (the packshot is in the job key): a rerun compares only renders whose bytes it has not
compared; and so is an expansion's family check, with the sha256s of its master's and its own
render, where the style names no CLIP model (CLIP's similarity is part of it otherwise).
Campaign-wide steps (CLIP with its embedding cache, near-duplicates, verdicts) always run.
Findings of a check that raised are never kept, nor a packshot or master missing from the store.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from functools import cache
from typing import NamedTuple
from pathlib import Path

from plan.jobs import RenderJob
from plan.styles import Style
from qa.checks import TECHNICAL_CHECKS, Check
from qa.clip import clip_checks
from qa.duplicates import dhash, near_duplicates
from qa.family import family_checks
from qa.image import RenderImage
from qa.palette import palette
from qa.product import product_checks
from qa.verdicts import Finding, QAResult, decide
from render.stage import verified_render
from store.base import Store
from store.documents import FindingRecord, KeptFindings, read_document, write_document
from store.keys import checks_key, qa_key, render_key

log = logging.getLogger(__name__)

RENDER_CHECKS: Mapping[str, Check] = {**TECHNICAL_CHECKS, "palette": palette}


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


@cache
def _code_digest(modules: tuple[str, ...]) -> str:
    """sha256 of the source of the modules whose code decides per-render findings."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(inspect.getsourcefile(importlib.import_module(name))).read_bytes())
    return digest.hexdigest()


def findings_fingerprint(style: Style, checks: Mapping[str, Check]) -> str:
    """Changes whenever the style (thresholds, palette) or any check's code changes (the product
    comparison's too: ``qa.product``, and ``render.product`` which places the packshot; the family
    check's: ``qa.family``, and ``render.expand`` and ``render.focal`` which place the master)."""
    modules = tuple(sorted({c.__module__ for c in checks.values()}
                           | {__name__, "qa.image", "qa.duplicates", "qa.product", "render.product", "qa.family",
                              "render.expand", "render.focal"}))
    names = ",".join(f"{n}={c.__module__}.{c.__qualname__}" for n, c in sorted(checks.items()))
    text = f"{_code_digest(modules)}|{names}|{style.model_dump_json()}"
    return hashlib.sha256(text.encode()).hexdigest()


class _Kept(NamedTuple):
    """What an earlier run kept of one render: its per-render findings (in check order), its
    difference hash and, for the same render bytes, its product comparison and family check."""

    findings: dict[str, Finding]
    dhash: int | None
    product: Finding | None
    family: Finding | None


def _render_sha256(store: Store, job_key: str) -> str | None:
    try:
        return hashlib.sha256(store.get(render_key(job_key))).hexdigest()
    except Exception:  # noqa: BLE001 - unreadable: nothing to compare with (the product check says why)
        return None


def _kept_findings(store: Store, job: RenderJob, fingerprint: str) -> _Kept | None:
    """Findings kept by an earlier run for the same render, style and check code; None if absent or stale."""
    try:
        kept = read_document(store, checks_key(job.key), KeptFindings)
        if kept.fingerprint != fingerprint or not store.exists(render_key(job.key)):
            return None
    except Exception:  # absent, torn or from an older layout: check the render again
        return None
    findings = {name: Finding(fail=tuple(f.fail), review=tuple(f.review), scores=f.scores, details=f.details)
                for name, f in kept.findings}
    product, family = findings.pop("product", None), findings.pop("family", None)
    if product is not None and kept.product_render != _render_sha256(store, job.key):
        product = None  # other bytes under the job's key since: compare again
    if family is not None and ((renders := _family_renders(store, job)) is None or kept.family_renders != renders):
        family = None  # other bytes under the master's or the expansion's key since: check again
    return _Kept(findings, kept.dhash, product, family)


def _family_renders(store: Store, job: RenderJob) -> list[str] | None:
    """The sha256s of an expansion's master render and its own (what its family check compared);
    None if either cannot be read."""
    digests = [_render_sha256(store, job.master_key or ""), _render_sha256(store, job.key)]
    return None if None in digests else digests  # type: ignore[return-value]


def _keep_findings(store: Store, job: RenderJob, fingerprint: str, findings: Mapping[str, Finding],
                   digest: int | None, product: Finding | None, family: Finding | None) -> None:
    """Keep ``findings`` (and ``product``, the comparison of the render stored now, and
    ``family``, the family check of the master and expansion renders stored now)."""
    renders = _family_renders(store, job) if family is not None else None
    kept = {**findings, **({"product": product} if product is not None else {}),
            **({"family": family} if renders is not None else {})}
    records = [(name, FindingRecord(fail=list(f.fail), review=list(f.review), scores=dict(f.scores),
                                    details=dict(f.details))) for name, f in kept.items()]  # in check order
    write_document(store, checks_key(job.key), KeptFindings(
        fingerprint=fingerprint, dhash=digest, findings=records,
        product_render=_render_sha256(store, job.key) if product is not None else None, family_renders=renders))


def _family_kept(job: RenderJob, style: Style) -> bool:
    """Whether the job's family check is kept: an expansion's, where the style names no CLIP model."""
    return job.is_expansion and not style.qa.clip_model


def _load(job_key: str, store: Store) -> tuple[RenderImage | None, Finding | None]:
    """The decoded render, or the finding that explains why there is none."""
    key = render_key(job_key)
    try:
        data = verified_render(store, job_key)
    except ValueError as exc:  # not the bytes that were rendered
        return None, Finding(fail=("render_undecodable",), details={"render": f"{key}: {_error_text(exc)}"})
    except Exception as exc:  # absent, or the store cannot give it: nobody has looked at it
        return None, Finding(review=("render_missing",), details={"render": f"{key}: {_error_text(exc)}"})
    try:
        return RenderImage.from_bytes(data), None
    except Exception as exc:  # any decoder error: the bytes are not a usable image
        return None, Finding(fail=("render_undecodable",), details={"render": f"{key}: {_error_text(exc)}"})


class _JobQA:
    """What the checks found about one job so far."""

    def __init__(self) -> None:
        self.findings: dict[str, Finding] = {}
        self.errors: dict[str, str] = {}  # check name -> error message

    def run(self, name: str, check, *args) -> object:
        try:
            return check(*args)
        except Exception as exc:  # fail closed: a broken check sends the render to review
            self.errors[name] = _error_text(exc)
            return None

    def decide(self, job_key: str, sample_rate: float) -> QAResult:
        findings = {**self.findings, "errors": Finding(details={f"error:{n}": m for n, m in self.errors.items()})}
        return decide(job_key, findings, list(self.errors), sample_rate=sample_rate)


def run_qa(jobs: Sequence[RenderJob], store: Store, styles_by_ref: Mapping[str, Style],
           checks: Mapping[str, Check] = RENDER_CHECKS) -> list[QAResult]:
    """QA every job's render; writes ``qa/<job_key>.json`` for each and returns results in job order."""
    keys = [job.key for job in jobs]  # a job key is a sha256 of the job's JSON: compute it once
    state: dict[str, _JobQA] = {}
    hashes: dict[str, int] = {}
    fingerprints: dict[str, str] = {}  # style ref -> findings fingerprint
    readable: list[RenderJob] = []
    kept_products: dict[str, Finding] = {}  # job key -> its product comparison, kept for the same render bytes
    kept_families: dict[str, Finding] = {}  # job key -> its family check, kept for the same master and expansion bytes
    # job key -> (job, fingerprint, per-render findings, dhash, checked by this run, its family check kept):
    # kept once the product and family checks are done
    to_keep: dict[str, tuple[RenderJob, str, dict[str, Finding], int | None, bool, bool]] = {}
    for job, key in zip(jobs, keys, strict=True):
        if key in state:
            continue
        qa = state[key] = _JobQA()
        style = styles_by_ref.get(f"{job.style}@{job.style_version}")
        if style is None:
            qa.findings["style"] = Finding(review=("style_unknown",), details={"style": f"{job.style}@{job.style_version}"})
            continue
        if style.ref not in fingerprints:
            fingerprints[style.ref] = findings_fingerprint(style, checks)
        fingerprint = fingerprints[style.ref]
        kept, keeps_family = _kept_findings(store, job, fingerprint), _family_kept(job, style)
        if kept is not None:
            qa.findings, digest = kept.findings, kept.dhash
            if kept.product is not None:
                kept_products[key] = kept.product
            if kept.family is not None:
                kept_families[key] = kept.family
            if (job.product is not None and kept.product is None) or (keeps_family and kept.family is None):
                # keep what is checked now
                to_keep[key] = (job, fingerprint, dict(qa.findings), digest, False, keeps_family)
        else:
            img, problem = _load(key, store)
            if img is None:
                qa.findings["render"] = problem
                continue
            for name, check in checks.items():
                finding = qa.run(name, check, img, job, style)
                if finding is not None:
                    qa.findings[name] = finding
            digest = qa.run("near_duplicate", dhash, img.image)
            if not qa.errors:
                to_keep[key] = (job, fingerprint, dict(qa.findings), digest, True, keeps_family)
        readable.append(job)
        if digest is not None:
            hashes[key] = digest

    clip = clip_checks(readable, store, styles_by_ref)
    for key, finding in clip.findings.items():
        state[key].findings["clip"] = finding
    for key, message in clip.errors.items():
        state[key].errors["clip"] = message
    try:
        for key, finding in near_duplicates(readable, styles_by_ref, hashes, clip.embeddings).items():
            state[key].findings["near_duplicate"] = finding
    except Exception as exc:  # fail closed for every render the comparison covered
        for job in readable:
            state[job.key].errors["near_duplicate"] = _error_text(exc)
    family, family_errors = family_checks([job for job in readable if job.key not in kept_families], store,
                                          styles_by_ref, clip.embeddings)
    for key, finding in {**family, **kept_families}.items():
        state[key].findings["family"] = finding
    for key, message in family_errors.items():
        state[key].errors["family"] = message
    product, product_errors = product_checks([job for job in readable if job.key not in kept_products], store,
                                             styles_by_ref)
    for key, finding in {**product, **kept_products}.items():
        state[key].findings["product"] = finding
    for key, message in product_errors.items():
        state[key].errors["product"] = message
    for key, (job, fingerprint, findings, digest, checked, keeps_family) in to_keep.items():
        compared = product.get(key)
        if compared is not None and "product_missing" in compared.review:
            compared = None  # not a comparison (the packshot was not there): made again next run
        checked_family = family.get(key) if keeps_family else None
        if checked_family is not None and "family_master_missing" in checked_family.review:
            checked_family = None  # not a check (the master was not there): made again next run
        if checked or compared is not None or checked_family is not None:  # (else nothing new to keep)
            _keep_findings(store, job, fingerprint, findings, digest, compared or kept_products.get(key),
                           checked_family or kept_families.get(key))

    results = []
    for job, key in zip(jobs, keys, strict=True):
        style = styles_by_ref.get(f"{job.style}@{job.style_version}")
        result = state[key].decide(key, style.qa.review_sample_rate if style else 0.0)
        if "unsafe" in result.reasons:
            log.warning("blocked %s (%s v%s %s): unsafe, closest label %r", key, job.row_key, job.variant,
                        job.aspect, result.details.get("unsafe_label"))
        write_document(store, qa_key(result.job_key), result.to_record())
        results.append(result)
    return results
