"""C2PA Content Credentials: every export signed and valid, a user's certificate or signing
command, tampering detected, the byte cap counting the signed size, `brandbatch verify`."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from exports.credentials import Credential, CredentialError, development_credential, load_credential
from exports.encode import QUALITY, encode
from exports.metadata import xmp_packet
from exports.placements import load_placements
from exports.provenance import Provenance, sign, verify
from exports.stage import export_assets
from flows.cli import app
from store.local import LocalStore
from tests.exports.conftest import make_item, synthetic_render

FORMATS = ("webp", "avif", "jpeg", "png")
PROVENANCE = Provenance(job_key="ab" * 32, seed=42, style="acme@2", model="brandbatch/tiny-sd",
                        model_revision="builtin-1", placement="meta.stories", approval_id="a-1", approved_by="kim")


@pytest.fixture(scope="module")
def placements():
    return load_placements()


def _user_pki(folder: Path) -> tuple[Path, Path]:
    """A company CA and an ES256 signing certificate of its own (not brandbatch's): chain + key files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Outdoor Ltd")])

    def usage(**on):
        names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{n: on.get(n, False) for n in names})

    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Acme Root")).issuer_name(name("Acme Root"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("Acme Ads Signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain, key_file = folder / "chain.pem", folder / "signer.key"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file


def _encoded(fmt: str) -> bytes:
    return encode(synthetic_render(160, 120), fmt, max_bytes=None, xmp=xmp_packet("ab" * 32, "acme@2")).data


def _tampered(signed: bytes, unsigned: bytes) -> bytes:
    """``signed`` with one byte of its image data changed (found through the unsigned encode)."""
    window = unsigned[len(unsigned) // 2:len(unsigned) // 2 + 32]
    at = signed.index(window) + 16
    return signed[:at] + bytes([signed[at] ^ 0x5A]) + signed[at + 1:]


@pytest.mark.parametrize("fmt", FORMATS)
def test_signed_files_verify_and_carry_the_assertions(fmt):
    credential = load_credential()
    signed = sign(_encoded(fmt), fmt, PROVENANCE, credential, title=f"x.{fmt}")
    check = verify(signed, fmt)
    assert check.valid and check.development and not check.trusted and not check.problems, check.describe()
    assert check.assertion == PROVENANCE.assertion() and check.assertion["seed"] == 42
    assert (check.agent["name"], check.agent["model"], check.agent["model_revision"]) == (
        "brandbatch", "brandbatch/tiny-sd", "builtin-1")
    assert "development credential, not trusted" in check.describe()
    assert verify(signed).valid  # the format is detected from the bytes too
    with Image.open(io.BytesIO(signed)) as image:  # still an image every decoder reads, XMP kept
        image.load()
        assert "ab" * 32 in str(image.getxmp())


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tampered_file_fails_and_an_unsigned_one_has_no_manifest(fmt):
    unsigned = _encoded(fmt)
    check = verify(_tampered(sign(unsigned, fmt, PROVENANCE, load_credential(), title=f"x.{fmt}"), unsigned), fmt)
    assert not check.valid and check.state == "Invalid" and any("mismatch" in p for p in check.problems), check
    assert verify(unsigned, fmt).state == "missing"


def test_no_thumbnail_is_embedded_and_the_overhead_is_small():
    for fmt in FORMATS:
        unsigned = _encoded(fmt)
        overhead = len(sign(unsigned, fmt, PROVENANCE, load_credential(), title="x")) - len(unsigned)
        assert 0 < overhead < 8 * 1024, (fmt, overhead)  # a thumbnail alone would be tens of KB


def test_the_byte_cap_counts_the_signed_size():
    image, credential = synthetic_render(300, 250), load_credential()
    xmp = xmp_packet("ab" * 32, "acme@2")
    top = encode(image, "jpeg", max_bytes=None, xmp=xmp)
    cap = len(top.data) + 1000  # the unsigned top quality fits; signed (+3.7 KB) it does not
    result = encode(image, "jpeg", max_bytes=cap, xmp=xmp,
                    finish=lambda data: sign(data, "jpeg", PROVENANCE, credential, title="x.jpg"))
    assert len(result.data) <= cap and result.quality < QUALITY["jpeg"][1] and verify(result.data, "jpeg").valid


def test_a_user_certificate_signs_every_file_of_an_export(tmp_path, monkeypatch, placements):
    chain, key = _user_pki(tmp_path)
    monkeypatch.setenv("BRANDBATCH_C2PA_CERTS", str(chain))
    monkeypatch.setenv("BRANDBATCH_C2PA_KEY", str(key))
    store = LocalStore(tmp_path / "out")
    item = make_item(store, ("google.display.upload.300x250", "meta.stories"))
    rows = export_assets([item], store, placements, formats=("webp", "avif", "upload"), workers=2)
    assert len(rows) == 6
    for row in rows:
        assert row["status"] == "exported" and row["c2pa_credential"] == "configured", row
        check = verify(store.get(row["path"]), row["format"])
        assert check.valid and not check.development and "Acme Ads Signer" in check.signer, check.describe()
        assert len(store.get(row["path"])) <= placements[row["placement"]].max_bytes
    result = CliRunner().invoke(app, ["verify", str(tmp_path / "out" / "spring" / "exports")])
    assert result.exit_code == 0 and result.stdout.count(": valid (signer not in the trust list") == 6, result.output


def test_a_signing_command_signs_for_kms_users(tmp_path, monkeypatch):
    chain, key = _user_pki(tmp_path)
    script = tmp_path / "kms-sign.py"
    script.write_text(
        "import sys\nfrom cryptography.hazmat.primitives import hashes, serialization\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        f"key = serialization.load_pem_private_key(open({str(key)!r}, 'rb').read(), None)\n"
        "sys.stdout.buffer.write(key.sign(sys.stdin.buffer.read(), ec.ECDSA(hashes.SHA256())))\n")
    monkeypatch.setenv("BRANDBATCH_C2PA_CERTS", str(chain))
    monkeypatch.setenv("BRANDBATCH_C2PA_SIGN_COMMAND", f"{sys.executable} {script}")
    credential = load_credential()
    assert credential.key is None and credential.kind == "configured"
    check = verify(sign(_encoded("png"), "png", PROVENANCE, credential, title="x.png"), "png")
    assert check.valid and "Acme Ads Signer" in check.signer
    broken = Credential(credential.certs, "es256", command=(sys.executable, "-c", "import sys; sys.exit(3)"))
    with pytest.raises(Exception, match="signing command .* exited 3"):
        sign(_encoded("png"), "png", PROVENANCE, broken, title="x.png")


@pytest.mark.parametrize(("env", "message"), [
    ({"BRANDBATCH_C2PA_KEY": "k.pem"}, r"\$BRANDBATCH_C2PA_CERTS \(the PEM certificate chain\) is not"),
    ({"BRANDBATCH_C2PA_CERTS": "c.pem"}, "set exactly one of"),
    ({"BRANDBATCH_C2PA_CERTS": "/nope/c.pem", "BRANDBATCH_C2PA_KEY": "k.pem"}, "'/nope/c.pem' cannot be read"),
    ({"BRANDBATCH_C2PA_ALG": "md5"}, "must be one of es256, .* but is 'md5'"),
])
def test_incomplete_configuration_is_an_error_naming_what_is_missing(env, message):
    with pytest.raises(CredentialError, match=message):
        load_credential(env)


def test_the_development_credential_is_made_once_and_reused(tmp_path):
    first = development_credential(tmp_path / "c2pa")
    assert first.development and first.kind == "development" and b"PRIVATE KEY" in first.key
    assert development_credential(tmp_path / "c2pa") == first
    path = tmp_path / "c2pa" / "development-credential.pem"
    whole = path.read_bytes()
    for torn in (b"torn", whole[:len(whole) // 2], whole[:-30]):
        path.write_bytes(torn)
        assert development_credential(tmp_path / "c2pa").certs not in (first.certs, None)  # made anew
        path.write_bytes(whole)


def test_the_development_credential_is_made_again_a_day_before_its_certificate_expires(tmp_path, monkeypatch):
    """Its file's first line says when (read without importing x509: a cached run checks it);
    a file made before that line existed is checked by its certificate."""
    import exports.credentials as credentials
    from cryptography import x509

    folder, path = tmp_path / "c2pa", tmp_path / "c2pa" / "development-credential.pem"
    first = development_credential(folder)
    data = path.read_bytes()
    line, _, rest = data.partition(b"\n")
    expires = x509.load_pem_x509_certificates(data)[0].not_valid_after_utc
    assert line == b"Not after: " + expires.isoformat().encode() and first.certs.startswith(b"-----BEGIN CERTIFICATE")
    for content in (data, rest):  # this brandbatch's file, and one without the line
        path.write_bytes(content)
        monkeypatch.setattr(credentials, "_now", lambda: expires - dt.timedelta(days=1, minutes=1))
        assert development_credential(folder) == first and path.read_bytes() == content
        monkeypatch.setattr(credentials, "_now", lambda: expires - dt.timedelta(hours=23))
        renewed = development_credential(folder)
        assert renewed.certs != first.certs and path.read_bytes().startswith(b"Not after: ")
    path.write_bytes(b"Not after: 2999-01-01T00:00:00+00:00\n" + rest)  # the line decides, not the certificate
    monkeypatch.undo()
    assert development_credential(folder) == first


def test_a_stored_file_with_a_broken_manifest_is_made_again(store, placements):
    item = make_item(store, ("google.display.upload.300x250",))
    (first,) = export_assets([item], store, placements, formats=("upload",), workers=1)
    data = bytearray(store.get(first["path"]))
    data[len(data) // 2] ^= 0x5A
    store.put(first["path"], bytes(data), overwrite=True)
    assert not verify(bytes(data), "jpeg").valid
    (second,) = export_assets([item], store, placements, formats=("upload",), workers=1)
    assert second["sha256"] != hashlib.sha256(bytes(data)).hexdigest() and second["status"] == "exported"
    assert verify(store.get(second["path"]), "jpeg").valid


def test_verify_command_exits_1_on_a_missing_or_invalid_manifest(tmp_path):
    unsigned = _encoded("jpeg")
    signed = sign(unsigned, "jpeg", PROVENANCE, load_credential(), title="x.jpg")
    good, bad, bare = tmp_path / "good.jpg", tmp_path / "bad.jpg", tmp_path / "bare.jpg"
    good.write_bytes(signed)
    bad.write_bytes(_tampered(signed, unsigned))
    bare.write_bytes(unsigned)
    runner = CliRunner()
    assert runner.invoke(app, ["verify", str(good)]).exit_code == 0
    result = runner.invoke(app, ["verify", str(good), str(bad), str(bare), str(tmp_path / "nope.png")])
    assert result.exit_code == 1
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert lines[str(good)].startswith("valid (development credential, not trusted")
    assert lines[str(bad)].startswith("INVALID: assertion.dataHash.mismatch")
    assert lines[str(bare)] == "no C2PA manifest"
    assert lines[str(tmp_path / "nope.png")].startswith("unreadable")


def _first_use(folder: str, barrier, answers) -> None:
    barrier.wait(timeout=60)
    answers.put(development_credential(Path(folder)).certs)


def test_processes_making_the_development_credential_at_once_all_use_one(tmp_path):
    """Two runs started together on a fresh machine: had each made its own, each would sign
    with another key and take the other's files for stale (and write them again)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, answers = context.Barrier(6), context.Queue()
    makers = [context.Process(target=_first_use, args=(str(tmp_path / "c2pa"), barrier, answers)) for _ in range(6)]
    for maker in makers:
        maker.start()
    certs = {answers.get(timeout=120) for _ in makers}
    for maker in makers:
        maker.join(timeout=60)
    assert len(certs) == 1 and development_credential(tmp_path / "c2pa").certs in certs
    assert [p.name for p in (tmp_path / "c2pa").iterdir()] == ["development-credential.pem"]  # no temp file left
