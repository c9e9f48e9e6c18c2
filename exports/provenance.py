"""C2PA Content Credentials on export files: sign (c2pa-python) and verify.

Each file gets one manifest with

* ``c2pa.actions``: ``c2pa.created``, digitalSourceType ``trainedAlgorithmicMedia``, software
  agent brandbatch (its version) with the model id and revision that made the render;
* ``com.brandbatch.export``: job key, seed, style@version, placement, approval id, approver and
  the export fingerprint when there is one.

No thumbnail is embedded (c2pa's default would add one, hundreds of KB against byte caps) and
nothing is fetched over the network. Signing is not byte-deterministic (the manifest carries
random salts and an ECDSA signature), so the same render gives the same pixels and XMP, and a
manifest that differs only in those.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from exports.credentials import Credential, CredentialError
from exports.encode import CONTENT_TYPES, EXTENSIONS
from exports.metadata import TRAINED_ALGORITHMIC_MEDIA

ASSERTION = "com.brandbatch.export"
DEVELOPMENT_ISSUER = "brandbatch (development)"
VALID_STATES = ("Valid", "Trusted")
_UNTRUSTED = "signingCredential.untrusted"


class SigningError(RuntimeError):
    """The file could not be signed (bad credential, signing command failed)."""


@dataclass(frozen=True)
class Provenance:
    """What a file's manifest says about how it was made."""

    job_key: str
    seed: int
    style: str  # name@version
    model: str
    model_revision: str | None
    placement: str
    approval_id: str
    approved_by: str
    export_fingerprint: str = ""

    def assertion(self) -> dict:
        data = {"job_key": self.job_key, "seed": self.seed, "style": self.style, "placement": self.placement,
                "approval_id": self.approval_id, "approved_by": self.approved_by}
        if self.export_fingerprint:
            data["export_fingerprint"] = self.export_fingerprint
        return data


@lru_cache(maxsize=1)
def brandbatch_version() -> str:
    try:
        return metadata.version("brandbatch")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "0+unknown"


def manifest_definition(provenance: Provenance, title: str) -> dict:
    agent = {"name": "brandbatch", "version": brandbatch_version(), "model": provenance.model,
             "model_revision": provenance.model_revision or ""}
    return {
        "claim_generator_info": [{"name": "brandbatch", "version": brandbatch_version()}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": agent}]}},
            {"label": ASSERTION, "data": provenance.assertion()},
        ],
    }


def _settings():
    import c2pa

    return c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})


def _signer(credential: Credential, errors: list[Exception]):
    """A c2pa signer; a signing command's failure is kept in ``errors`` (c2pa only logs it)."""
    import c2pa

    alg = getattr(c2pa.C2paSigningAlg, credential.alg.upper())
    if credential.key is not None:
        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, credential.certs, credential.key, credential.tsa_url))

    def signature(data: bytes) -> bytes:
        try:
            return credential.sign(data)
        except CredentialError as exc:
            errors.append(exc)
            raise

    return c2pa.Signer.from_callback(signature, alg, credential.certs.decode("ascii"), credential.tsa_url)


def sign(data: bytes, fmt: str, provenance: Provenance, credential: Credential, title: str) -> bytes:
    """``data`` (an encoded webp/avif/jpeg/png) with a signed C2PA manifest embedded."""
    import c2pa

    errors: list[Exception] = []
    try:
        builder = c2pa.Builder(manifest_definition(provenance, title), context=c2pa.Context(settings=_settings()))
        out = io.BytesIO()
        builder.sign(_signer(credential, errors), CONTENT_TYPES[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as exc:
        raise SigningError(f"C2PA signing of {title} failed ({credential.kind} credential): "
                           f"{errors[0] if errors else exc}") from None
    return out.getvalue()


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found in one file."""

    state: str  # Valid / Trusted / Invalid from c2pa, "missing" (no manifest), "unreadable"
    problems: tuple[str, ...] = ()  # failure codes with explanations (untrusted signer not included)
    trusted: bool = False
    development: bool = False
    signer: str = ""  # the signing certificate's common name and issuer
    agent: dict = field(default_factory=dict)  # the c2pa.created action's softwareAgent
    assertion: dict = field(default_factory=dict)  # com.brandbatch.export

    @property
    def valid(self) -> bool:
        return self.state in VALID_STATES

    def describe(self) -> str:
        if not self.valid:
            detail = "; ".join(self.problems) or "no details"
            return {"missing": "no C2PA manifest", "unreadable": f"unreadable: {detail}"}.get(
                self.state, f"INVALID: {detail}")
        trust = "trusted" if self.trusted else (
            "development credential, not trusted" if self.development else "signer not in the trust list")
        made = ", ".join(f"{k}={v}" for k, v in self.assertion.items())
        model = f"{self.agent.get('model', '')}@{self.agent.get('model_revision', '')}"
        return f"valid ({trust}; signed by {self.signer}); model {model}; {made}"


def verify(data: bytes, fmt: str | None = None) -> Verification:
    """Read and validate the C2PA manifest of an encoded file (``fmt``: its format, else detected)."""
    import c2pa

    try:
        reader = c2pa.Reader(CONTENT_TYPES.get(fmt or "", ""), io.BytesIO(data), context=c2pa.Context(settings=_settings()))
        manifest = reader.get_active_manifest()
        state = reader.get_validation_state() or "Invalid"
        results = reader.get_validation_results() or {}
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc) or "NotFound" in str(exc):
            return Verification("missing")
        return Verification("unreadable", (str(exc),))
    if not manifest:
        return Verification("missing")
    failures = [item for item in results.get("activeManifest", {}).get("failure", [])]
    problems = tuple(f"{f['code']}: {f.get('explanation', '')}".rstrip(": ") for f in failures
                     if f["code"] != _UNTRUSTED)
    info = manifest.get("signature_info") or {}
    assertions = {a["label"]: a.get("data", {}) for a in manifest.get("assertions", [])}
    actions = assertions.get("c2pa.actions.v2", assertions.get("c2pa.actions", {})).get("actions", [])
    created = next((a for a in actions if a.get("action") == "c2pa.created"), {})
    if problems and state in VALID_STATES:
        state = "Invalid"
    return Verification(
        state=state, problems=problems, trusted=state == "Trusted",
        development=info.get("issuer") == DEVELOPMENT_ISSUER,
        signer=f"{info.get('common_name', '?')} (issuer {info.get('issuer', '?')})",
        agent=created.get("softwareAgent", {}) if isinstance(created.get("softwareAgent"), dict) else {},
        assertion=assertions.get(ASSERTION, {}),
    )


def verify_paths(paths: Iterable[str | Path]) -> list[tuple[Path, Verification]]:
    """``verify`` for each file; a folder stands for every export file (.webp .avif .jpg .png)
    under it, in name order. A path that cannot be read is "unreadable" with the reason."""
    formats = {f".{ext}": fmt for fmt, ext in EXTENSIONS.items()}
    found: list[tuple[Path, Verification]] = []
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in formats) if path.is_dir() else [path]
        if not files:
            found.append((path, Verification("unreadable", ("a folder with no .webp .avif .jpg .png files",))))
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                found.append((file, Verification("unreadable", (exc.strerror or str(exc),))))
                continue
            found.append((file, verify(data, formats.get(file.suffix.lower()))))
    return found
