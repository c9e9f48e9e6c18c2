"""Verdicts: how check findings, errors and the spot-check sample become pass/fail/review.

Fail closed: a check that raised (``check_error:<name>``) or could not decide sends the
render to human review, never to ``pass``. A fail (any reason) wins over review, since both
keep the render from export and a fail says more. A render that would pass but falls in the
style's spot-check sample goes to review with reason ``sampled``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from store.documents import QAResultRecord, dump_document
from store.keys import render_key

Verdict = Literal["pass", "fail", "review"]
VERDICTS: tuple[Verdict, ...] = ("fail", "review", "pass")
SPOT_CHECK_SALT = "brandbatch-spot-check-v1"


@dataclass(frozen=True)
class QAResult:
    """The QA outcome of one render (stored as ``qa/<job_key>.json``)."""

    job_key: str
    verdict: Verdict
    reasons: tuple[str, ...]
    scores: dict[str, float]
    details: dict[str, str] = field(default_factory=dict)  # e.g. duplicate_of -> job key

    def to_dict(self) -> dict:
        return {"job_key": self.job_key, "verdict": self.verdict, "reasons": list(self.reasons),
                "scores": {k: _finite_or_none(v) for k, v in sorted(self.scores.items())}, "details": dict(sorted(self.details.items()))}

    def to_record(self) -> QAResultRecord:
        """The stored form, ``qa/<job_key>.json``."""
        return QAResultRecord(**self.to_dict())

    def to_json(self) -> bytes:
        return dump_document(self.to_record())

    @classmethod
    def from_dict(cls, data: Mapping) -> QAResult:
        return cls(job_key=data["job_key"], verdict=data["verdict"], reasons=tuple(data["reasons"]),
                   scores={k: float("nan") if v is None else float(v) for k, v in data["scores"].items()},
                   details={k: str(v) for k, v in data.get("details", {}).items()})

    @property
    def exportable(self) -> bool:
        return self.verdict == "pass"


@dataclass(frozen=True)
class Finding:
    """What one check says about one render: reasons to fail, reasons it cannot decide,
    and its scores. An empty finding means the check passed."""

    fail: tuple[str, ...] = ()
    review: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)


def spot_check_fraction(job_key: str) -> float:
    """A number in [0, 1) fixed by the job key alone (salted sha256), uniform over keys."""
    digest = hashlib.sha256(f"{SPOT_CHECK_SALT}:{job_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def in_spot_check(job_key: str, rate: float) -> bool:
    """True for a deterministic ``rate`` share of job keys: the same keys every run."""
    return spot_check_fraction(job_key) < rate


def band(score: float, threshold: float, uncertainty: float, *, higher_is_better: bool = True) -> str:
    """'pass', 'fail' or 'uncertain' for a score against a threshold with an uncertainty band.

    ``higher_is_better``: fail below ``threshold - uncertainty``, uncertain in
    ``[threshold - u, threshold + u)``, pass at or above ``threshold + u``. Otherwise mirrored:
    fail above ``threshold + u``, uncertain in ``(threshold - u, threshold + u]``. A NaN score
    cannot decide and is 'uncertain'.
    """
    if score != score:  # NaN
        return "uncertain"
    lo, hi = threshold - uncertainty, threshold + uncertainty
    if higher_is_better:
        if score < lo:
            return "fail"
        return "uncertain" if score < hi else "pass"
    if score > hi:
        return "fail"
    return "uncertain" if score > lo else "pass"


def _finite_or_none(value: float) -> float | None:
    """Scores are stored rounded to 6 decimals (stable bytes); NaN/inf as null."""
    return round(float(value), 6) if math.isfinite(value) else None


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def decide(job_key: str, findings: Mapping[str, Finding], errors: Iterable[str] = (),
           sample_rate: float = 0.0) -> QAResult:
    """Combine the findings of every check (by check name) and the names of checks that
    raised into one result."""
    fails = _unique(r for f in findings.values() for r in f.fail)
    reviews = _unique([r for f in findings.values() for r in f.review] + [f"check_error:{e}" for e in errors])
    scores: dict[str, float] = {}
    details: dict[str, str] = {}
    for finding in findings.values():
        scores.update({k: float(v) for k, v in finding.scores.items()})
        details.update({k: str(v) for k, v in finding.details.items()})
    if fails:
        return QAResult(job_key, "fail", fails + reviews, scores, details)
    if reviews:
        return QAResult(job_key, "review", reviews, scores, details)
    if in_spot_check(job_key, sample_rate):
        return QAResult(job_key, "review", ("sampled",), scores, details)
    return QAResult(job_key, "pass", (), scores, details)


def qa_error_lines(results: Iterable[QAResult]) -> list[str]:
    """One line per QA error (a check that raised, a render missing or undecodable): what, which
    file, why. Such renders go to review, but the run that met them must not report success."""
    lines = []
    for result in results:
        where = render_key(result.job_key)
        for reason in result.reasons:
            if reason.startswith("check_error:"):
                check = reason.removeprefix("check_error:")
                why = result.details.get(f"error:{check}", "no message")
                lines.append(f"QA error: check {check} failed on {where}: {why}")
            elif reason in ("render_missing", "render_undecodable"):
                lines.append(f"QA error: {reason.replace('_', ' ')}: {result.details.get('render', where)}")
    return lines
