"""Every JSON document the pipeline stores, as a pydantic model, and the only way to read or write one.

Each model names its key in ``store.keys``; ``read_document`` / ``write_document`` are the only
readers and writers (``model_validate_json`` / ``model_dump_json``). A document carries a
``schema_version`` (absent in files written before it existed: read as 1); one that does not
parse raises ``DocumentError`` naming the file, what is wrong and what to do.

Field names are those the files always had, so stored outputs stay readable both ways. The
exception to ``schema_version`` is ``manifest.json``: its shape (a JSON list of rows) is part of
the output contract, so it is versioned by its fields only.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from store.base import Store

SCHEMA_VERSION = 1


class DocumentError(ValueError):
    """A stored document that does not parse; the message names its location. ``unparsable``:
    the bytes are not JSON at all (torn, cut short), as opposed to JSON of the wrong shape."""

    def __init__(self, message: str, *, unparsable: bool = False) -> None:
        super().__init__(message)
        self.unparsable = unparsable


class Document(BaseModel):
    """A stored JSON document: frozen, unknown fields refused, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION


D = TypeVar("D", bound=BaseModel)


def _problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(document)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_document(data: bytes, model: type[D], location: str, advice: str = "") -> D:
    """``data`` as a ``model``; ``DocumentError`` naming ``location`` (and ending in ``advice``)
    when it does not parse."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise DocumentError(f"{location}: not a valid {model.__name__} document ({_problem(exc)})"
                            + (f"; {advice}" if advice else ""),
                            unparsable=any(e["type"] == "json_invalid" for e in exc.errors())) from None


def read_document(store: Store, key: str, model: type[D]) -> D:
    """The document at ``key``. Raises ``FileNotFoundError`` when there is none, ``DocumentError``
    (naming the file, asking to fix or delete it) when it does not parse."""
    return parse_document(store.get(key), model, store.location(key), "fix or delete the file")


def dump_document(document: BaseModel, *, indent: int = 1, exclude_unset: bool = False) -> bytes:
    """Stable bytes: fields in declared order, UTF-8, one trailing newline."""
    text = document.model_dump_json(indent=indent, by_alias=True, exclude_unset=exclude_unset)
    return (text + "\n").encode("utf-8")


def write_document(store: Store, key: str, document: BaseModel, *, overwrite: bool = True) -> bool:
    """Write ``document`` at ``key`` (see ``Store.put`` for ``overwrite`` and the result)."""
    return store.put(key, dump_document(document), content_type="application/json", overwrite=overwrite)


# ---- renders ----

class RenderSidecar(Document):
    """``renders/<job key>.json``: the job's fields and the device settings it rendered with
    (flat, as ``RenderJob.to_dict()`` and ``DeviceSettings``), the job key, seconds and the PNG's sha256."""

    model_config = ConfigDict(extra="allow")

    job_key: str
    seconds: float
    sha256: str | None = None  # of the PNG as stored: what reuse checks it against (None: rendered before it was kept)


class RenderFailureRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job_key: str
    reason: str
    message: str


class RenderReportRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rendered: list[str]
    cached: list[str]
    failed: list[RenderFailureRecord]
    gpu_seconds: float
    job_seconds: dict[str, float]
    damaged: dict[str, str] = {}


class ShardReport(Document):
    """``shards/<flow run id>.json``: what one render shard did, for the campaign to merge."""

    flow_run_id: str
    node: str
    report: RenderReportRecord


# ---- QA ----

class QAResultRecord(Document):
    """``qa/<job key>.json``: a render's verdict (scores NaN/inf as null)."""

    job_key: str
    verdict: Literal["pass", "fail", "review"]
    reasons: list[str]
    scores: dict[str, float | None]
    details: dict[str, str] = {}


class ExportedItemRecord(BaseModel):
    """The manifest rows a check shard made for one approved asset variant, with the identity of
    the item they were made for (``exports.fingerprint.item_identity``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset_id: str
    variant: int
    identity: str
    rows: list[dict[str, Any]]


class CheckShardReport(Document):
    """``shards/<flow run id>.json`` of a check shard (``flows/shard.py``: QA, review queueing
    and export of some asset rows), for the campaign to merge. ``checked``: row -> the job keys
    its QA covered."""

    flow_run_id: str
    node: str
    results: list[QAResultRecord]
    checked: dict[str, list[str]]
    exports: list[ExportedItemRecord]


class FindingRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")  # NaN scores stay NaN

    fail: list[str]
    review: list[str]
    scores: dict[str, float]
    details: dict[str, str]


class KeptFindings(Document):
    """``qa/checks/<job key>.json``: per-render findings (in check order) and the difference
    hash, valid while ``fingerprint`` (style + check code) is unchanged; a ``product`` finding
    (the packshot comparison) only for the render whose sha256 is ``product_render``, a
    ``family`` finding (an expansion against its master) only for the master and expansion
    renders whose sha256s are ``family_renders``."""

    fingerprint: str
    dhash: int | None
    findings: list[tuple[str, FindingRecord]]
    product_render: str | None = None
    family_renders: list[str] | None = None


# ---- campaign state ----

class UpscalerRecord(BaseModel):
    """A style's upscaler as exports load it: id, weights file (None: the built-in tiny one), sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    path: str | None = None
    sha256: str | None = None


class AssetRecord(BaseModel):
    """What export needs of one planned sheet row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    row: int
    placements: list[str]
    alt_text: str
    headline: str = ""
    cta: str = ""
    locale: str = ""
    overlay: dict[str, Any] = {}
    focal: tuple[float, float] | None = None
    logo: str = ""
    max_upscale: float | None = None  # the style's (None: snapshots written before it: the default)
    upscaler: UpscalerRecord | None = None


class AssetSnapshot(Document):
    """``<campaign>/assets.json``: asset id -> ``AssetRecord`` of the campaign's latest plan.
    Files written before ``schema_version`` hold the bare mapping; they are read as version 1."""

    assets: dict[str, AssetRecord]

    @model_validator(mode="before")
    @classmethod
    def _bare_mapping(cls, data: Any) -> Any:
        if isinstance(data, dict) and "assets" not in data and "schema_version" not in data:
            return {"assets": data}
        return data


class DeadLetter(BaseModel):
    """A job that failed to render. ``reason``: the render failure code (model_error, nan_output,
    black_output, oom, budget, error); ``attempts``: how many runs tried it and failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_key: str
    asset_id: str
    row: int
    variant: int | str
    aspect: str
    reason: str
    message: str
    attempts: int
    first_failed: str  # ISO 8601 UTC
    last_failed: str


class DeadLetters(Document):
    """``<campaign>/dead-letters.json``. Its version field has always been called ``format``."""

    model_config = ConfigDict(populate_by_name=True)

    schema_version: Literal[1] = Field(SCHEMA_VERSION, alias="format")
    campaign: str
    dead_letters: list[DeadLetter]


class CampaignLaunch(Document):
    """``<campaign>/launch.json``: how the campaign's latest run was started, so that a designer's
    reroll can start the campaign flow again the same way. ``parameters``: the ``campaign_batch``
    parameters that say what to run (sheet, out, styles, model, formats, ...; not the run's own
    options such as ``retry_failed`` or ``wait_for_review``), as the run got them; ``cwd``: the
    folder relative paths among them are relative to; ``deployment``: ``flow/deployment`` when
    the run was a deployment run, else None, and ``job_variables`` the run's (e.g. its env)."""

    campaign: str
    parameters: dict[str, Any]
    cwd: str
    deployment: str | None = None
    job_variables: dict[str, Any] = {}


class InterruptedRun(Document):
    """``<campaign>/interrupted/<when>-<pid>.json``: a run cut short by a signal (written once)."""

    campaign: str
    signal: str  # SIGTERM, SIGINT
    started: str  # ISO 8601 UTC
    interrupted: str
    host: str
    pid: int
    children_ended: list[int]  # the child processes it ended (Prefect's server, pool workers)


class RunRecord(Document):
    """``<campaign>/runs/<start>-<run id>.json``: what one run did (written once). ``jobs``: jobs
    its render pass was given (the plan, or the dead letters under ``--retry-failed``);
    ``image_seconds``: render seconds of each new image (its share of its batch);
    ``render_seconds``: wall-clock seconds of the render stage (what images/hour is over);
    ``wall_seconds``: flow start to the end of export (a deployment run that waits for
    designers includes the wait)."""

    campaign: str
    run_id: str
    mode: Literal["run", "retry-failed"]
    started: str  # ISO 8601 UTC
    wall_seconds: float
    render_seconds: float
    jobs: int
    rendered: int
    cached: int
    failed: dict[str, int]  # reason code -> jobs
    gpu_seconds: float
    image_seconds: list[float]
    rows_valid: int
    rows_blocked: int
    rows_banned: int
    verdicts: dict[str, int]
    export_failed: int = 0


class ReportPlan(Document):
    """``<campaign>/report-plan.json``: what ``report.html`` needs of the latest run's plan, so
    the report can be rebuilt without the sheet after a decision, an export or a publish.
    ``jobs``: the planned render jobs (``RenderJob.to_dict()``); ``problems``: planning
    problems, one line each; ``rows_*``: rows planned, blocked, blocked by banned terms."""

    campaign: str
    jobs: list[dict[str, Any]]
    problems: list[str]
    rows_valid: int
    rows_blocked: int
    rows_banned: int


class PublishRecord(Document):
    """``<campaign>/publish.json``: the latest "publish approved" from the review app. ``state``:
    ``running``, ``done`` or ``failed``; ``resumed``: flow runs it resumed (they export); else
    ``written`` export files written or current, ``failures`` one line each (path: reason; files
    held for review and placements designers rejected are not failures), and
    ``where`` the folder the files are in; ``error``: why the publish itself failed."""

    campaign: str
    by: str
    note: str = ""
    approved: int = 0  # approved variants when it started (what it exports)
    started: str  # ISO 8601 UTC
    finished: str | None = None
    state: Literal["running", "done", "failed"]
    resumed: list[str] = []
    written: int = 0
    failures: list[str] = []
    where: str = ""
    error: str = ""


# ---- exports ----

class PreviewRecord(Document):
    """``previews/<digest>.json``: what the file a review preview shows would weigh when no export of
    it exists yet: an unsigned encode of the full-size image in the placement's upload format,
    within its byte cap (``estimate_error`` when nothing fits)."""

    width: int  # the placement's (the exported file's) size
    height: int
    estimate_format: str
    estimate_bytes: int | None = None
    estimate_error: str = ""


class ManifestRow(BaseModel):
    """One export file of ``<campaign>/manifest.json``. Fields are declared in alphabetical order
    (the file has always had sorted keys) and written only when set (``exclude_unset``), so rows
    come back as they were given; a row of an unknown placement has "" where it has no value.
    Fields this model does not declare are kept as they are."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    alt_text: str = ""
    approval_id: str = ""
    approved_by: str = ""
    asset_id: str
    bytes: int | str = 0
    c2pa_credential: str = ""
    cta: str = ""
    error: str = ""
    export_fingerprint: str = ""  # exports.fingerprint: everything that shaped the file
    export_inputs: dict[str, str] = {}  # the digest of each part of the fingerprint
    format: str = ""
    headline: str = ""
    height: int | str = ""
    input_images: str = ""  # column=sha256 of each uploaded image the render used, ';'-separated
    job_key: str = ""
    locale: str = ""
    master_job_key: str = ""  # creative families: the master an expansion was outpainted from
    max_upscale: float | str | None = None
    model: str = ""
    model_revision: str | None = None
    overrides: dict[str, dict[str, str]] = {}  # copy edited in review: {field: {before, after, by}}
    path: str
    placement: str = ""
    platform: str = ""
    prompt_sha256: str = ""
    qa_verdict: str = ""
    row: int | str = ""
    seed: int | str | None = None
    sha256: str = ""
    status: str = "exported"
    style: str = ""
    style_version: int | str | None = None
    upscale: float | str | None = None
    upscale_flagged: bool | str = False
    upscaler: str = ""  # <id>@<sha256[:16]> of the model that upscaled the source ("" none)
    upscaler_factor: float | str | None = None
    variant: int | str
    width: int | str = ""


class Manifest(RootModel[list[ManifestRow]]):
    """``<campaign>/manifest.json``: one row per export file, sorted by path (contract shape)."""
