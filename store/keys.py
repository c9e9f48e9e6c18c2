"""Where every artefact lives in the store: the only module that spells a store key.

Keys are '/'-separated paths relative to the store root (``--out``); stages call these
functions and never format a key themselves (``tests/store/test_keys.py`` greps for that).

=============================================  ==================================================
key                                            what
=============================================  ==================================================
``renders/<job key>.png``                      a render (content-addressed by its job key)
``renders/<job key>.json``                     its sidecar (the job, device settings, seconds)
``qa/<job key>.json``                          the QA result of a render
``qa/checks/<job key>.json``                   kept per-render QA findings (resume)
``qa/embeddings/<model tag>/<job key>.npy``    cached CLIP image embedding
``upscaled/<sha256>.png``                      a render upscaled by a model (render bytes + weights)
``previews/<digest>.png``, ``.json``           a review preview of a placement (by its pixel inputs)
``inputs/<sha256>``                            an uploaded image a render uses (packshot, mask), by its bytes
``thumbnails/<digest>.jpg``                    a report thumbnail (by its image's content and size)
``shards/<flow run id>.json``                  the report of one render or check shard
``<campaign>/assets.json``                     asset snapshot: what export needs of each row
``<campaign>/dead-letters.json``               jobs that failed and have not rendered since
``<campaign>/runs/<start>-<run id>.json``      one record per run that did render work
``<campaign>/launch.json``                     how the campaign's last run was started (rerolls)
``<campaign>/.run.lock``                       the local run lock (flock); ``run.lease`` on S3
``<campaign>/interrupted/<when>-<pid>.json``   a run cut short by SIGTERM/SIGINT
``<campaign>/logs/<command>-<when>.log``       Prefect's and brandbatch's log of one command
``review-log/<campaign>/<item>/<version>.json``  the review queue's append-only decision log
``<campaign>/exports/<placement>/<name>.<ext>``  an export file
``<campaign>/manifest.json``, ``manifest.csv``   the campaign's manifests (contract)
``<campaign>/report.html``                     run report + contact sheet (contract)
``<campaign>/report-plan.json``                what the report needs of the latest run's plan
``<campaign>/publish.json``                    the latest "publish approved" and its result
=============================================  ==================================================
"""

from __future__ import annotations

import datetime as dt
import hashlib

def render_key(job_key: str) -> str:
    return f"renders/{job_key}.png"


def in_renders(key: str) -> bool:
    """A render or its sidecar: content-addressed by job key, so never different bytes."""
    return key.startswith("renders/")


def sidecar_key(job_key: str) -> str:
    return f"renders/{job_key}.json"


def qa_key(job_key: str) -> str:
    return f"qa/{job_key}.json"


CHECKS_PREFIX = "qa/checks"
EMBEDDINGS_PREFIX = "qa/embeddings"


def checks_key(job_key: str) -> str:
    return f"{CHECKS_PREFIX}/{job_key}.json"


def embedding_key(model_tag: str, job_key: str) -> str:
    return f"{EMBEDDINGS_PREFIX}/{model_tag}/{job_key}.npy"


def upscaled_key(render_sha256: str, upscaler_tag: str) -> str:
    """A render upscaled by a super-resolution model, content-addressed by the render's bytes and
    the weights (``<id>@<sha256[:16]>``): made once, reused by every export and run."""
    digest = hashlib.sha256(f"brandbatch-upscaled-v1|{render_sha256}|{upscaler_tag}".encode()).hexdigest()
    return f"upscaled/{digest}.png"


def preview_key(digest: str) -> str:
    """A placement preview at review scale, content-addressed by what decides its pixels
    (``exports.preview``: the export's pixel parts and the preview size)."""
    return f"previews/{digest}.png"


def preview_record_key(digest: str) -> str:
    """What a preview's export would weigh (``store.documents.PreviewRecord``)."""
    return f"previews/{digest}.json"


def thumbnail_key(source: str, size: int, quality: int) -> str:
    """A report's thumbnail (JPEG), content-addressed by its image (``source``: a render's job key,
    an export file's sha256) and how it is made: made once, reused by every rebuild of the report."""
    digest = hashlib.sha256(f"brandbatch-thumbnail-v1|{source}|{size}|{quality}".encode()).hexdigest()
    return f"thumbnails/{digest}.jpg"


def input_key(sha256: str) -> str:
    """An uploaded image (a sheet's ``product_image``, ``product_mask``): content-addressed by the
    sha256 of its bytes, written at planning, read by render, QA and export."""
    return f"inputs/{sha256}"


def shard_report_key(flow_run_id: str) -> str:
    return f"shards/{flow_run_id}.json"


def assets_key(campaign: str) -> str:
    return f"{campaign}/assets.json"


def dead_letters_key(campaign: str) -> str:
    return f"{campaign}/dead-letters.json"


def launch_key(campaign: str) -> str:
    return f"{campaign}/launch.json"


def run_lock_key(campaign: str) -> str:
    """The file a local run of ``campaign`` holds an ``flock`` on."""
    return f"{campaign}/.run.lock"


def run_lease_key(campaign: str) -> str:
    """The lease object a run of ``campaign`` on S3 holds (conditional writes)."""
    return f"{campaign}/run.lease"


def interrupted_key(campaign: str, stamp: str, pid: int) -> str:
    """``stamp``: the UTC time the run was cut short, ``%Y%m%dT%H%M%S%fZ``."""
    return f"{campaign}/interrupted/{stamp}-{pid}.json"


REVIEW_LOG_PREFIX = "review-log"


def review_log_prefix(campaign: str | None = None) -> str:
    """The decision log of one campaign, or of the whole queue (for ``Store.list``)."""
    return f"{REVIEW_LOG_PREFIX}/{campaign}" if campaign else REVIEW_LOG_PREFIX


def review_log_key(campaign: str, item_id: str, version: int) -> str:
    return f"{review_log_prefix(campaign)}/{item_id}/{version:06d}.json"


def logs_prefix(campaign: str) -> str:
    """The folder of the campaign's command logs (for ``Store.list``)."""
    return f"{campaign}/logs"


def log_key(campaign: str, command: str, started: dt.datetime) -> str:
    """The log of one ``command`` (run, export) of ``campaign`` started at ``started`` (UTC)."""
    return f"{logs_prefix(campaign)}/{command}-{started.astimezone(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}.log"


def runs_prefix(campaign: str) -> str:
    """The folder of the campaign's run records (for ``Store.list``)."""
    return f"{campaign}/runs"


def run_record_key(campaign: str, started: str, run_id: str) -> str:
    """``started``: ISO 8601; ``run_id``: its letters and digits (first 12) name the record."""
    stamp = dt.datetime.fromisoformat(started).strftime("%Y%m%dT%H%M%SZ")
    return f"{runs_prefix(campaign)}/{stamp}-{''.join(c for c in run_id if c.isalnum())[:12] or 'run'}.json"


def export_name(asset_id: str, variant: int) -> str:
    """An export file's name without its extension (variant 1 has no ``-v1`` suffix)."""
    return asset_id if variant == 1 else f"{asset_id}-v{variant}"


def exports_prefix(campaign: str) -> str:
    """The folder of the campaign's export files."""
    return f"{campaign}/exports"


def export_stem(campaign: str, placement_id: str, asset_id: str, variant: int) -> str:
    """An export file's key without its extension."""
    return f"{exports_prefix(campaign)}/{placement_id}/{export_name(asset_id, variant)}"


def export_key(campaign: str, placement_id: str, asset_id: str, variant: int, extension: str) -> str:
    return f"{export_stem(campaign, placement_id, asset_id, variant)}.{extension}"


def manifest_key(campaign: str) -> str:
    return f"{campaign}/manifest.json"


def manifest_csv_key(campaign: str) -> str:
    return f"{campaign}/manifest.csv"


def report_key(campaign: str) -> str:
    return f"{campaign}/report.html"


def report_plan_key(campaign: str) -> str:
    """The latest run's planned jobs and planning problems: the report is rebuilt from it (and
    the queue, manifest and run records) after a decision, an export or a publish."""
    return f"{campaign}/report-plan.json"


def publish_key(campaign: str) -> str:
    """The latest "publish approved" of the campaign and its result (``review.campaign_page``)."""
    return f"{campaign}/publish.json"
