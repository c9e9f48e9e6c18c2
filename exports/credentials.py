"""Content Credentials signing credential: from configuration, else a local development one.

Configuration (environment):

* ``BRANDBATCH_C2PA_CERTS``: PEM file with the signing certificate first, then its chain;
* ``BRANDBATCH_C2PA_KEY``: PEM file with the certificate's private key, or
  ``BRANDBATCH_C2PA_SIGN_COMMAND``: a command (KMS/HSM users) that reads the bytes to sign on
  stdin and writes the signature (DER or raw r||s for ECDSA) on stdout;
* ``BRANDBATCH_C2PA_ALG``: es256 (default), es384, es512, ps256, ps384, ps512 or ed25519;
* ``BRANDBATCH_C2PA_TSA_URL``: optional RFC 3161 time-stamp authority.

Without any of them, a local development CA and an ES256 signing certificate are made on first
use under ``$BRANDBATCH_CACHE/c2pa`` (default ``~/.cache/brandbatch/c2pa``); files signed with it
validate but chain to no trusted root, and every report says the credential is a development one.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from settings import SettingsError, load_settings, variable

DEVELOPMENT_CA_NAME = "brandbatch development CA (not trusted)"
DEVELOPMENT_SIGNER_NAME = "brandbatch development signer (not trusted)"
_DEVELOPMENT_FILE = "development-credential.pem"
_NOT_AFTER = b"Not after: "  # the development file's first line: when its signing certificate expires
_SIGN_TIMEOUT_S = 30


class CredentialError(ValueError):
    """The signing configuration is incomplete or its files cannot be used."""


@dataclass(frozen=True)
class Credential:
    """What signing needs; plain data, so it crosses process boundaries."""

    certs: bytes  # PEM: signing certificate, then its chain
    alg: str
    key: bytes | None = None  # PEM private key; None: ``command`` signs
    command: tuple[str, ...] = ()
    tsa_url: str | None = None
    development: bool = False

    @property
    def kind(self) -> str:
        return "development" if self.development else "configured"

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` by the signing command (not used for a key file)."""
        try:
            done = subprocess.run(self.command, input=data, capture_output=True, timeout=_SIGN_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialError(f"signing command {shlex.join(self.command)!r} failed: {exc}") from None
        if done.returncode != 0 or not done.stdout:
            raise CredentialError(f"signing command {shlex.join(self.command)!r} exited {done.returncode} with "
                                  f"{len(done.stdout)} bytes of signature: {done.stderr.decode(errors='replace')[:200]}")
        return done.stdout


def _read(variable: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CredentialError(f"${variable} {path!r} cannot be read: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise CredentialError(f"${variable} {path!r} is not a PEM file (no '-----BEGIN' line)")
    return data


def load_credential(environ: Mapping[str, str] | None = None) -> Credential:
    """The configured credential (see the module's doc), else the development one. ``environ``:
    where the settings come from (default: this process's environment)."""
    try:
        settings = load_settings(environ)
    except SettingsError as exc:
        raise CredentialError(str(exc)) from None
    certs, key, command = settings.c2pa_certs, settings.c2pa_key, settings.c2pa_sign_command
    alg, tsa_url = settings.c2pa_alg, settings.c2pa_tsa_url
    if not (certs or key or command):
        return development_credential(settings.cache / "c2pa")
    if not certs:
        raise CredentialError("$BRANDBATCH_C2PA_KEY or $BRANDBATCH_C2PA_SIGN_COMMAND is set but "
                              "$BRANDBATCH_C2PA_CERTS (the PEM certificate chain) is not")
    if bool(key) == bool(command):
        raise CredentialError("set exactly one of $BRANDBATCH_C2PA_KEY (a PEM key file) and "
                              "$BRANDBATCH_C2PA_SIGN_COMMAND (a command that signs stdin) with $BRANDBATCH_C2PA_CERTS")
    chain = _read(variable("c2pa_certs"), certs)
    if key:
        return Credential(chain, alg, key=_read(variable("c2pa_key"), key), tsa_url=tsa_url)
    return Credential(chain, alg, command=tuple(shlex.split(command)), tsa_url=tsa_url)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _not_after(pem: bytes) -> dt.datetime:
    """When the development signing certificate in ``pem`` expires: its first line says (written
    with it), else the certificate (a file made before that line was). Raises ``ValueError``,
    ``IndexError`` for a torn file."""
    first = pem.partition(b"\n")[0]
    if first.startswith(_NOT_AFTER):
        return dt.datetime.fromisoformat(first[len(_NOT_AFTER):].decode("ascii"))
    from cryptography import x509  # ~30 ms of imports: only for such a file

    return x509.load_pem_x509_certificates(pem)[0].not_valid_after_utc


def development_credential(folder: Path) -> Credential:
    """The development CA + ES256 signer in ``folder``, made (atomically) on first use and
    again when its certificate is within a day of expiring."""
    path = Path(folder) / _DEVELOPMENT_FILE

    def usable() -> Credential | None:
        try:
            data = path.read_bytes()
            credential, expires = _split_development(data), _not_after(data)
        except (OSError, ValueError, IndexError):
            return None  # missing or torn
        return credential if expires > _now() + dt.timedelta(days=1) else None

    if (credential := usable()) is not None:
        return credential
    made = _make_development_pem()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".credential-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(made)
        os.chmod(temp, 0o600)
        try:
            os.link(temp, path)  # none there: of processes making it at once, one wins and all use its
            return _split_development(made)
        except FileExistsError:
            if (credential := usable()) is not None:  # another process's, made meanwhile
                return credential
        os.replace(temp, path)  # torn or expiring: replaced
        return _split_development(made)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _split_development(pem: bytes) -> Credential:
    """The credential in a development file: its certificates (from the first, the line before
    them left out) and its key. Raises ``ValueError`` for a torn file."""
    if not pem.endswith(b"-----END CERTIFICATE-----\n"):
        raise ValueError("the development credential file ends before its CA certificate does")
    certs = pem.index(b"-----BEGIN CERTIFICATE-----")
    start = pem.index(b"-----BEGIN PRIVATE KEY-----")
    end = pem.index(b"-----END PRIVATE KEY-----") + len(b"-----END PRIVATE KEY-----\n")
    return Credential(pem[certs:start] + pem[end:], "es256", key=pem[start:end], development=True)


def _make_development_pem() -> bytes:
    """A self-signed P-256 CA and a leaf with the C2PA signing profile (digitalSignature,
    emailProtection EKU, key identifiers), as PEM: leaf certificate, private key, CA certificate,
    after a line with the leaf's expiry (explanatory text, RFC 7468 section 2: what a run checks,
    read without parsing the certificate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "brandbatch (development)")])

    def usage(**set_) -> x509.KeyUsage:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        return x509.KeyUsage(**(flags | set_))

    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name(DEVELOPMENT_CA_NAME)).issuer_name(name(DEVELOPMENT_CA_NAME))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name(DEVELOPMENT_SIGNER_NAME)).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    expiry = _NOT_AFTER + leaf.not_valid_after_utc.isoformat().encode("ascii") + b"\n"
    return expiry + leaf.public_bytes(pem) + key + ca.public_bytes(pem)
