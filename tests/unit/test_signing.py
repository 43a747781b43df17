"""ship/signing.py without a registry: release keys in sigstore's format and DSSE envelopes."""

from __future__ import annotations

import base64
import json

import pytest

from hpsforge.core.errors import BadSignatureError, ExitCode, UsageError
from hpsforge.ship import signing

PAYLOAD_TYPE = "application/vnd.in-toto+json"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, public = signing.generate(folder / "release", b"correct horse")
    other_private, other_public = signing.generate(folder / "other", b"correct horse")
    return private, public, other_public


def test_a_key_pair_in_sigstore_format_opens_with_its_passphrase(keys):
    private, public, _ = keys
    text = private.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    document = json.loads(base64.b64decode("".join(text.splitlines()[1:-1])))
    assert document["kdf"]["name"] == "scrypt" and document["cipher"]["name"] == "nacl/secretbox"
    assert private.stat().st_mode & 0o077 == 0
    key = signing.load_private(private, b"correct horse")
    assert signing.key_id(key.public_key()) == signing.key_id(signing.load_public(public))


def test_a_key_is_never_overwritten(keys):
    private, _, _ = keys
    with pytest.raises(UsageError, match="never overwritten"):
        signing.generate(private.with_suffix(""), b"x")


def test_a_wrong_passphrase_is_named(keys):
    with pytest.raises(UsageError, match="passphrase does not open this key"):
        signing.load_private(keys[0], b"wrong")


def test_no_passphrase_anywhere_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.delenv("HPSFORGE_SIGNING_PASSPHRASE", raising=False)
    with pytest.raises(UsageError, match="needs its passphrase") as caught:
        signing.passphrase(None)
    assert "HPSFORGE_SIGNING_PASSPHRASE" in str(caught.value)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UsageError, match="first line is empty"):
        signing.passphrase(tmp_path / "empty")
    with pytest.raises(UsageError, match="unreadable"):
        signing.passphrase(tmp_path / "missing")
    monkeypatch.setenv("HPSFORGE_SIGNING_PASSPHRASE", "from env")
    assert signing.passphrase(None) == b"from env"
    (tmp_path / "file").write_text("from file\nignored\n")
    assert signing.passphrase(tmp_path / "file") == b"from file"


def test_unreadable_or_foreign_key_files_are_named(tmp_path, keys):
    with pytest.raises(UsageError, match="unreadable key file"):
        signing.load_private(tmp_path / "missing.private", b"x")
    with pytest.raises(UsageError, match="not a ENCRYPTED SIGSTORE PRIVATE KEY"):
        signing.load_private(keys[1], b"x")  # the public key in the private key's place
    (tmp_path / "garbled.private").write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJ9\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    with pytest.raises(UsageError, match="not a sigstore private key"):
        signing.load_private(tmp_path / "garbled.private", b"x")


def test_an_envelope_verifies_with_its_key_only(keys):
    private, public, other_public = keys
    key = signing.load_private(private, b"correct horse")
    envelope = signing.sign_envelope(b'{"subject": 1}', PAYLOAD_TYPE, key)
    assert signing.open_envelope(envelope, PAYLOAD_TYPE, signing.load_public(public), "test") == b'{"subject": 1}'
    with pytest.raises(BadSignatureError, match="does not verify with the key") as caught:
        signing.open_envelope(envelope, PAYLOAD_TYPE, signing.load_public(other_public), "test")
    assert caught.value.exit_code == ExitCode.BAD_SIGNATURE


def test_one_changed_byte_of_the_payload_is_refused(keys):
    private, public, _ = keys
    key = signing.load_private(private, b"correct horse")
    envelope = json.loads(signing.sign_envelope(b'{"digest": "sha256:aaaa"}', PAYLOAD_TYPE, key))
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[-3] ^= 0x01  # aaaa -> aa`a
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(BadSignatureError, match="does not verify"):
        signing.open_envelope(json.dumps(envelope).encode(), PAYLOAD_TYPE, signing.load_public(public), "test")


def test_another_payload_type_or_no_envelope_is_refused(keys):
    private, public, _ = keys
    key = signing.load_private(private, b"correct horse")
    envelope = signing.sign_envelope(b"{}", "text/plain", key)
    with pytest.raises(BadSignatureError, match="payload type"):
        signing.open_envelope(envelope, PAYLOAD_TYPE, signing.load_public(public), "test")
    with pytest.raises(BadSignatureError, match="not a DSSE envelope"):
        signing.open_envelope(b"[]", PAYLOAD_TYPE, signing.load_public(public), "test")


def test_verify_dispatches_on_the_argument_shape():
    from hpsforge import cli

    digest = "sha256:" + "a" * 64
    with pytest.raises(UsageError, match="--key"):
        cli.run_verify([f"127.0.0.1:5000/hps/ocr-cpu@{digest}"])
    with pytest.raises(UsageError, match="--rebuilds 2 needs at least as many --rebuilder-key"):
        cli.run_verify([f"127.0.0.1:5000/hps/ocr-cpu@{digest}", "--key", "k.pub", "--rebuilds", "2"])
    with pytest.raises(UsageError, match="unknown target"):
        cli.run_verify(["nosuchtarget"])


def test_sign_needs_a_push_and_attest_options_need_a_key(tmp_path):
    from hpsforge import cli

    with pytest.raises(UsageError, match="--sign signs the pushed images"):
        cli.run_images(["cpu", "--sign", str(tmp_path / "k.private")])
    with pytest.raises(UsageError, match="go with --attest KEY"):
        cli.run_repro(["--report", str(tmp_path / "r.json")])
