"""Every ``BRANDBATCH_*`` environment variable, in one pydantic-settings class.

Stages call ``load_settings()`` (the environment now) and read its fields; nothing else reads a
``BRANDBATCH_*`` variable. ``brandbatch`` validates them all before it does anything, so a bad
value stops the command with a ``SettingsError`` that names the variable, its value and what is
allowed. An empty value counts as unset. README.md's settings table is ``settings_table()``
(a test keeps them equal).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "BRANDBATCH_"
C2PA_ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")
_DEPLOYMENT = re.compile(r"^[^/\s]+/[^/\s]+$")


def _cache_folder() -> Path:
    return Path.home() / ".cache" / "brandbatch"


class SettingsError(ValueError):
    """One line per bad variable: its name, its value and what is allowed."""


class Settings(BaseSettings):
    """``description``: what the variable does; ``json_schema_extra["allowed"]``: what values are allowed."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore",
                                      frozen=True)

    # inputs
    styles: Path | None = Field(None, description="Style library folder (else `--styles`, `./styles`, the project's).",
                                json_schema_extra={"allowed": "a folder"})
    templates: Path | None = Field(None, description="Templates folder (`prompts/`, `review/`, `report/`) (else "
                                   "`./templates`, the project's).", json_schema_extra={"allowed": "a folder"})
    placements: Path | None = Field(None, description="Extra placement presets (YAML) over `exports/platforms.yaml`.",
                                    json_schema_extra={"allowed": "a YAML file"})
    # rendering
    device: str | None = Field(None, description="Render device (unset: cuda, then mps, then cpu).",
                               json_schema_extra={"allowed": "cpu, cuda, cuda:N or mps"})
    torch_threads: int = Field(1, ge=1, description="CPU threads torch uses (fixed, so CPU pixels are reproducible).",
                               json_schema_extra={"allowed": "a whole number >= 1"})
    batch_invariant: bool = Field(True, description="One pipeline call per image, so pixels never depend on the "
                                  "batch (0: batch the denoiser for throughput).",
                                  json_schema_extra={"allowed": "1/0 (true/false)"})
    compile: bool = Field(False, description="`torch.compile` the denoiser.",
                          json_schema_extra={"allowed": "1/0 (true/false)"})
    vae_tiling: bool = Field(False, description="Decode large images tile by tile (less memory).",
                             json_schema_extra={"allowed": "1/0 (true/false)"})
    vae_slicing: bool = Field(False, description="Decode a batch one image at a time (less memory).",
                              json_schema_extra={"allowed": "1/0 (true/false)"})
    cpu_offload: bool = Field(False, description="Keep idle model parts in CPU memory (GPU only).",
                              json_schema_extra={"allowed": "1/0 (true/false)"})
    model_cache: Path = Field(default_factory=lambda: _cache_folder() / "models", description="Where the tiny "
                              "offline models are built and kept.",
                              json_schema_extra={"allowed": "a folder", "default": "`~/.cache/brandbatch/models`"})
    cache: Path = Field(default_factory=_cache_folder, description="brandbatch's cache folder (the development C2PA "
                        "credential lives in `c2pa/`, the report's compiled templates in `jinja/`).",
                        json_schema_extra={"allowed": "a folder", "default": "`~/.cache/brandbatch`"})
    # throughput (docs/operations.md)
    stream: bool = Field(True, description="QA, queue and export each asset row as soon as its renders are done, "
                         "while later renders run (0: one stage after the other).",
                         json_schema_extra={"allowed": "1/0 (true/false)"})
    export_workers: int | None = Field(None, ge=1, description="Export processes (unset: one per core).",
                                       json_schema_extra={"allowed": "a whole number >= 1"})
    # sharded rendering on Prefect workers (docs/operations.md)
    shard_deployment: str | None = Field(None, description="Render as shards on this Prefect deployment (needs "
                                         "`PREFECT_API_URL`).", json_schema_extra={"allowed": "FLOW/DEPLOYMENT (e.g. "
                                                                                   "render_shard/render-shard)"})
    shard_size: int = Field(16, ge=1, description="Most jobs per shard.",
                            json_schema_extra={"allowed": "a whole number >= 1"})
    shard_stale_seconds: float = Field(90, ge=45, description="A shard without a heartbeat this long is marked "
                                       "Crashed and run again.", json_schema_extra={"allowed": "a number >= 45"})
    gpu_lease_seconds: float = Field(300, ge=60, description="Lease of a shard's `gpu` concurrency slot (freed this "
                                     "long after its process died).", json_schema_extra={"allowed": "a number >= 60"})
    check_deployment: str | None = Field(None, description="QA, queue and export finished asset rows as shards on "
                                         "this Prefect deployment (`cpu` pool; needs `PREFECT_API_URL`).",
                                         json_schema_extra={"allowed": "FLOW/DEPLOYMENT (e.g. "
                                                                       "check_shard/check-shard)"})
    check_shard_rows: int = Field(8, ge=1, description="Most asset rows per check shard.",
                                  json_schema_extra={"allowed": "a whole number >= 1"})
    node: str | None = Field(None, description="This worker's name in shard reports (default: the host name).",
                             json_schema_extra={"allowed": "any text"})
    home: Path | None = Field(None, description="The project checkout on workers; prefect.yaml's pull step runs "
                              "flows there (read by Prefect).", json_schema_extra={"allowed": "a folder"})
    # storage and review
    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint for `--out s3://...` (else "
                                    "`$AWS_ENDPOINT_URL`, else AWS).", json_schema_extra={"allowed": "a URL"})
    review_db: str | None = Field(None, description="Review queue database (default `<out>/review.sqlite3`; needed "
                                  "for an `s3://` out).", json_schema_extra={"allowed": "a SQLAlchemy URL"})
    reviewers_file: Path | None = Field(None, description="Reviewers and their tokens (wins over "
                                        "`BRANDBATCH_REVIEWER_TOKENS`).", json_schema_extra={"allowed": "a YAML/JSON "
                                                                                             "file of name: token"})
    reviewer_tokens: str | None = Field(None, description="Reviewers and their tokens.",
                                        json_schema_extra={"allowed": "name:token,name:token"})
    trusted_proxies: str | None = Field(None, description="Reverse proxies whose `X-Forwarded-For` the review app "
                                        "believes (none by default).",
                                        json_schema_extra={"allowed": "comma list of addresses"})
    # Content Credentials (docs/exports.md)
    c2pa_certs: str | None = Field(None, description="Signing certificate chain (unset, with the two below: a local "
                                   "development credential).", json_schema_extra={"allowed": "a PEM file"})
    c2pa_key: str | None = Field(None, description="The certificate's private key.",
                                 json_schema_extra={"allowed": "a PEM file"})
    c2pa_sign_command: str | None = Field(None, description="Instead of a key: a command that signs stdin (KMS/HSM).",
                                          json_schema_extra={"allowed": "a command line"})
    c2pa_alg: Literal[C2PA_ALGORITHMS] = Field("es256", description="Signing algorithm.",
                                               json_schema_extra={"allowed": "one of " + ", ".join(C2PA_ALGORITHMS)})
    c2pa_tsa_url: str | None = Field(None, description="RFC 3161 time-stamp authority.",
                                     json_schema_extra={"allowed": "a URL"})

    @field_validator("device")
    @classmethod
    def _device(cls, value: str | None) -> str | None:
        if value is not None and not _DEVICE.match(value):
            raise ValueError("not a device")
        return value

    @field_validator("shard_deployment", "check_deployment")
    @classmethod
    def _deployment(cls, value: str | None) -> str | None:
        if value is not None and not _DEPLOYMENT.match(value.strip()):
            raise ValueError("not FLOW/DEPLOYMENT")
        return value.strip() if value else value

    @field_validator("c2pa_alg", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class _FromMapping(Settings):
    """Settings read from a given mapping instead of ``os.environ``."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)


def variable(field: str) -> str:
    return PREFIX + field.upper()


def _allowed(field: str) -> str:
    return Settings.model_fields[field].json_schema_extra["allowed"]


def _explain(exc: ValidationError) -> SettingsError:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0])
        lines.append(f"${variable(field)} must be {_allowed(field)} but is {error['input']!r}")
    return SettingsError("\n".join(lines))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``environ`` (default: this process's environment, read now). Raises
    ``SettingsError`` naming every bad variable, its value and what is allowed."""
    if environ is None:  # the same variables (and home folder: defaults) give the same frozen settings
        return _from_environment(tuple(sorted((k, v) for k, v in os.environ.items()
                                              if k.upper().startswith(PREFIX) or k == "HOME")))
    try:
        values = {name: environ[variable(name)] for name in Settings.model_fields
                  if environ.get(variable(name), "").strip()}
        return _FromMapping(**values)
    except ValidationError as exc:
        raise _explain(exc) from None


@functools.lru_cache(maxsize=8)
def _from_environment(_variables: tuple[tuple[str, str], ...]) -> Settings:
    """``Settings()`` (reads ``os.environ``), once per set of variables (~ms each: stages ask often)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise _explain(exc) from None


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``BRANDBATCH_*`` variables that are set but mean nothing (typos), each with the closest
    known name."""
    env = os.environ if environ is None else environ
    fields = list(Settings.model_fields)
    out = []
    for name in sorted(n for n in env if n.startswith(PREFIX) and n[len(PREFIX):].lower() not in fields):
        close = difflib.get_close_matches(name[len(PREFIX):].lower(), fields, n=1)
        out.append(f"${name} is not a brandbatch setting"
                   + (f" (did you mean ${variable(close[0])}?)" if close else ""))
    return out


def settings_table() -> str:
    """The README's table of every variable (markdown)."""
    rows = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = field.json_schema_extra["default"]
        elif field.default is None:
            default = "unset"
        elif isinstance(field.default, bool):
            default = str(int(field.default))
        else:
            default = f"{field.default:g}" if isinstance(field.default, float) else str(field.default)
        rows.append(f"| `{variable(name)}` | {default} | {_allowed(name)} | {field.description} |")
    return "\n".join(rows) + "\n"
