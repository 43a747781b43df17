"""Signed releases (issue 22): the cpu images already built are pushed to a real local registry
(Debian's docker-registry) and signed with a fresh release key; each verifies offline with the
public key, and each bad input is refused with its exit code. Nothing is built here."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hpsforge.core.errors import ExitCode
from hpsforge.locks.images_lock import ImagesLock
from hpsforge.prove import provenance
from hpsforge.ship import oci_archive, signing
from tests.support.registry import local_registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMITTED = Path(os.environ["HPSFORGE_COMMITTED_RECORD"])
SIGNED_ROLES = {
    "runtime-cpu",
    "pipeline-ocr-cpu",
    "pipeline-face-recognition-cpu",
    "pipeline-image-classification-cpu",
    "pipeline-lexical-analysis-cpu",
}
PASSPHRASE = "release test passphrase"


def _noxw(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # the passphrase only where a test gives it: the CI's own environment never leaks in
    environment = {k: v for k, v in os.environ.items() if k != "HPSFORGE_SIGNING_PASSPHRASE"} | (env or {})
    return subprocess.run(
        [str(PROJECT_ROOT / "noxw"), *args], cwd=PROJECT_ROOT, capture_output=True, text=True, env=environment
    )


def _output(result: subprocess.CompletedProcess) -> str:
    return result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    (folder / "passphrase").write_text(PASSPHRASE + "\n")
    made = _noxw("-s", "keygen", "--", str(folder / "release"), "--passphrase-file", str(folder / "passphrase"))
    assert made.returncode == 0, _output(made)
    other = _noxw("-s", "keygen", "--", str(folder / "other"), env={"HPSFORGE_SIGNING_PASSPHRASE": "x"})
    assert other.returncode == 0, _output(other)
    return folder


@pytest.fixture(scope="module")
def released(cpu_images, registry_tool, keys, tmp_path_factory):
    """`images -- cpu --push --sign`: (registry, the record it wrote, the session's output, record path)."""
    root = tmp_path_factory.mktemp("released")
    record = root / "images.lock.json"
    shutil.copyfile(COMMITTED, record)
    env = {"HPSFORGE_IMAGES_RECORD": str(record)}
    with local_registry(root / "registry") as served:
        started = time.monotonic()
        result = _noxw(
            "-s", "images", "--", "cpu", "--push", f"{served.host}/rel", "--sign", str(keys / "release.private"),
            "--passphrase-file", str(keys / "passphrase"), env=env,
        )  # fmt: skip
        assert result.returncode == 0, _output(result)
        print(f"push and sign of every cpu runtime and pipeline image: {time.monotonic() - started:.0f} s")
        for line in result.stdout.splitlines():
            if "signed " in line or "provenance of" in line:
                print(line)
        yield served, ImagesLock.read(record), record


def _verify(reference: str, key: Path, record: Path) -> subprocess.CompletedProcess:
    return _noxw("-s", "verify", "--", reference, "--key", str(key), env={"HPSFORGE_IMAGES_RECORD": str(record)})


def test_every_pushed_image_is_signed_and_verifies_offline_with_the_public_key(released, keys):
    served, record, path = released
    signed = {role for role, image in record.images.items() if image.signature}
    assert signed == SIGNED_ROLES
    for role in sorted(SIGNED_ROLES):
        image = record.images[role]
        assert image.pushed and image.signature == image.pushed.replace("@sha256:", ":sha256-") + ".sig"
        started = time.monotonic()
        result = _verify(image.pushed, keys / "release.pub", path)
        assert result.returncode == 0, _output(result)
        assert "signature and provenance verify" in result.stdout
        print(next(line for line in result.stdout.splitlines() if "signature and provenance verify" in line))
        statement = provenance.statement_path(role)
        print(f"verify {role}: {time.monotonic() - started:.1f} s (session); statement {statement.stat().st_size} B")


def test_the_attested_statement_is_the_one_written_to_output(released, keys):
    _, record, _ = released
    image = record.images["pipeline-ocr-cpu"]
    public = signing.load_public(keys / "release.pub")
    attested = signing.attested_statement(image.pushed, public, provenance.PAYLOAD_TYPE, provenance.PREDICATE_TYPE)
    assert attested == provenance.statement_path("pipeline-ocr-cpu").read_bytes()
    assert provenance.Statement.parse(attested, "ocr").digest == image.digest


def _refused(result: subprocess.CompletedProcess, code: ExitCode, pattern: str) -> None:
    assert result.returncode == code.value, _output(result)
    assert re.search(pattern, result.stdout + result.stderr), _output(result)


def test_a_wrong_key_is_a_bad_signature(released, keys):
    _, record, path = released
    _refused(_verify(record.images["runtime-cpu"].pushed, keys / "other.pub", path), ExitCode.BAD_SIGNATURE, "verif")


def _sig_ref(pushed: str) -> str:
    return pushed.replace("@sha256:", ":sha256-")


def test_one_byte_of_the_signature_changed_is_refused(released, keys):
    _, record, path = released
    pushed = record.images["pipeline-lexical-analysis-cpu"].pushed
    ((payload, media_type, notes),) = oci_archive.get_small_artifact(_sig_ref(pushed) + ".sig")
    good = notes[signing.SIGNATURE_ANNOTATION]
    raw = bytearray(base64.b64decode(good))
    raw[-1] ^= 0x01
    tampered = {signing.SIGNATURE_ANNOTATION: base64.b64encode(bytes(raw)).decode()}
    oci_archive.put_small_artifact(_sig_ref(pushed) + ".sig", signing.EMPTY_CONFIG, [(payload, media_type, tampered)])
    try:
        _refused(_verify(pushed, keys / "release.pub", path), ExitCode.BAD_SIGNATURE, "does not verify|no signature")
    finally:
        oci_archive.put_small_artifact(_sig_ref(pushed) + ".sig", signing.EMPTY_CONFIG, [(payload, media_type, notes)])
    assert _verify(pushed, keys / "release.pub", path).returncode == 0


def _private(keys):
    return signing.load_private(keys / "release.private", PASSPHRASE.encode())


def _put_attestation(pushed: str, envelope: bytes) -> None:
    oci_archive.put_small_artifact(
        _sig_ref(pushed) + ".att",
        signing.EMPTY_CONFIG,
        [(envelope, signing.DSSE_MEDIA_TYPE, {signing.PREDICATE_ANNOTATION: provenance.PREDICATE_TYPE})],
    )  # annotated as cosign and `images --sign` write it


def test_attestations_that_lie_are_refused(released, keys):
    _, record, path = released
    pushed = record.images["pipeline-image-classification-cpu"].pushed
    (original,) = oci_archive.get_small_artifact(_sig_ref(pushed) + ".att")
    statement = provenance.statement_path("pipeline-image-classification-cpu").read_bytes()
    try:
        # one byte of the statement changed under the envelope's signature
        envelope = json.loads(original[0])
        body = bytearray(base64.b64decode(envelope["payload"]))
        body[body.index(b"image_classification")] ^= 0x20
        envelope["payload"] = base64.b64encode(bytes(body)).decode()
        _put_attestation(pushed, json.dumps(envelope).encode())
        _refused(_verify(pushed, keys / "release.pub", path), ExitCode.BAD_SIGNATURE, "does not verify with the key")
        # a validly signed statement of another image
        other = provenance.statement_path("pipeline-ocr-cpu").read_bytes()
        _put_attestation(pushed, signing.sign_envelope(other, provenance.PAYLOAD_TYPE, _private(keys)))
        _refused(
            _verify(pushed, keys / "release.pub", path), ExitCode.PROVENANCE_MISMATCH, "statement of another image"
        )
        # a validly signed statement naming an input no lock pins
        lying = json.loads(statement)
        lying["predicate"]["buildDefinition"]["resolvedDependencies"][1]["digest"]["sha256"] = "0" * 64
        lying_bytes = json.dumps(lying).encode()
        _put_attestation(pushed, signing.sign_envelope(lying_bytes, provenance.PAYLOAD_TYPE, _private(keys)))
        result = _verify(pushed, keys / "release.pub", path)
        _refused(result, ExitCode.PROVENANCE_MISMATCH, "not what the current locks pin")
        assert "0" * 64 in result.stdout + result.stderr
    finally:
        _put_attestation(pushed, original[0])
    assert _verify(pushed, keys / "release.pub", path).returncode == 0


def test_an_image_without_attachments_is_unsigned(released, keys):
    served, record, path = released
    image = record.images["runtime-cpu"]
    from hpsforge.ship import registry

    unsigned = registry.push(image.model_copy(update={"pushed": None, "signature": None}), f"{served.host}/unsigned")
    _refused(_verify(unsigned.pushed, keys / "release.pub", path), ExitCode.BAD_SIGNATURE, "no signature .* unsigned")


def test_a_key_without_its_passphrase_or_unreadable_is_refused_before_any_push(released, keys, tmp_path):
    served, _, _ = released
    push = ("-s", "images", "--", "cpu", "--push", f"{served.host}/never", "--sign")
    _refused(_noxw(*push, str(keys / "release.private")), ExitCode.USAGE, "needs its passphrase")
    _refused(
        _noxw(*push, str(keys / "release.private"), env={"HPSFORGE_SIGNING_PASSPHRASE": "wrong"}),
        ExitCode.USAGE,
        "passphrase does not open this key",
    )
    _refused(
        _noxw(*push, str(tmp_path / "absent.private"), env={"HPSFORGE_SIGNING_PASSPHRASE": "x"}),
        ExitCode.USAGE,
        "unreadable key file",
    )
    listing = subprocess.run(["curl", "-s", f"{served.url}/v2/_catalog"], capture_output=True, text=True)
    assert "never/" not in listing.stdout


def test_a_signing_failure_leaves_the_image_pushed_and_recorded_unsigned(released, keys, tmp_path):
    """The registry's own state makes one signature impossible: beside runtime-cpu's digest it holds
    a `.att` whose layer blob it no longer has (deleted through its API, as a cleanup might).
    The push succeeds, signing fails on reading that `.att`; every other image is signed."""
    import hashlib
    import urllib.request

    served, released_record, _ = released
    digest = released_record.images["runtime-cpu"].digest
    lost = b"an attachment whose blob the registry no longer has"
    oci_archive.put_small_artifact(
        f"{served.host}/lost/runtime-cpu:{digest.replace(':', '-')}.att",
        signing.EMPTY_CONFIG,
        [(lost, signing.DSSE_MEDIA_TYPE, {})],
    )
    gone = f"{served.url}/v2/lost/runtime-cpu/blobs/sha256:{hashlib.sha256(lost).hexdigest()}"
    with urllib.request.urlopen(urllib.request.Request(gone, method="DELETE")) as answer:
        assert answer.status == 202
    record = tmp_path / "images.lock.json"
    shutil.copyfile(COMMITTED, record)
    env = {"HPSFORGE_IMAGES_RECORD": str(record)}
    result = _noxw(
        "-s", "images", "--", "cpu", "--push", f"{served.host}/lost", "--sign", str(keys / "release.private"),
        "--passphrase-file", str(keys / "passphrase"), env=env,
    )  # fmt: skip
    _refused(result, ExitCode.FAILURE, r"runtime-cpu is pushed but NOT signed: .*BLOB_UNKNOWN")
    _refused(result, ExitCode.FAILURE, r"1 pushed image\(s\) are recorded unsigned:\s+runtime-cpu: ")
    images = ImagesLock.read(record).images
    assert images["runtime-cpu"].pushed == f"{served.host}/lost/runtime-cpu@{digest}"
    assert images["runtime-cpu"].signature is None
    assert {role for role, image in images.items() if image.signature} == SIGNED_ROLES - {"runtime-cpu"}
    _refused(_verify(images["runtime-cpu"].pushed, keys / "release.pub", record), ExitCode.BAD_SIGNATURE, "unsigned")


def test_two_runs_of_images_write_byte_identical_statements(released):
    _, _, path = released
    before = {p.name: p.read_bytes() for p in provenance.provenance_dir().glob("*.intoto.json")}
    again = _noxw("-s", "images", "--", "cpu", env={"HPSFORGE_IMAGES_RECORD": str(path)})
    assert again.returncode == 0, _output(again)
    after = {p.name: p.read_bytes() for p in provenance.provenance_dir().glob("*.intoto.json")}
    assert set(before) >= {f"{role}.intoto.json" for role in SIGNED_ROLES | {"base", "rc"}}
    assert after == before
    smallest = min(before, key=lambda name: len(before[name]))
    print("statement sizes:", {name: len(data) for name, data in sorted(before.items())}, "smallest:", smallest)


def test_rebuilds_from_distinct_keys_are_counted(released, keys, tmp_path):
    """A repro report (here the released record's digests, standing in for a repro run's report:
    a rebuild from nothing takes half an hour and is the nightly repro's own test) is attested
    with a rebuilder's key and pushed beside the images; verify counts distinct keys."""
    from hpsforge.prove import repro

    served, record, path = released
    images = [
        repro.ImageResult(
            role=role, kind="pipeline" if role.startswith("pipeline") else "runtime", target="cpu", pipeline=None,
            inputs_sha256=record.images[role].input_sha256, recorded=record.images[role].digest,
            first=record.images[role].digest, rebuilt=record.images[role].digest,
            verdict=repro.Verdict.REPRODUCIBLE, seconds=1.0,
        )
        for role in sorted(SIGNED_ROLES)
    ]  # fmt: skip
    report = repro.ReproReport(
        format="hpsforge-repro/1", revision="test", created="2026-01-01T00:00:00Z", targets=["cpu"],
        from_archive=False, machine=repro.Machine(engine="e", buildx="b", kernel="k", architecture="amd64"),
        images=images,
    )  # fmt: skip
    (tmp_path / "report.json").write_text(report.model_dump_json())
    pushed = record.images["pipeline-ocr-cpu"].pushed
    env = {"HPSFORGE_IMAGES_RECORD": str(path)}
    rebuilder = ("--rebuilds", "1", "--rebuilder-key", str(keys / "other.pub"))
    before = _noxw("-s", "verify", "--", pushed, "--key", str(keys / "release.pub"), *rebuilder, env=env)
    _refused(before, ExitCode.NOT_ENOUGH_REBUILDS, "0 independent rebuild")
    attest = _noxw(
        "-s", "repro", "--", "--attest", str(keys / "other.private"), "--report", str(tmp_path / "report.json"),
        "--push", f"{served.host}/rel", env={**env, "HPSFORGE_SIGNING_PASSPHRASE": "x"},
    )  # fmt: skip
    assert attest.returncode == 0, _output(attest)
    assert len(list((tmp_path / "attestations").glob("*.rebuild.dsse.json"))) == len(SIGNED_ROLES)
    after = _noxw("-s", "verify", "--", pushed, "--key", str(keys / "release.pub"), *rebuilder, env=env)
    assert after.returncode == 0, _output(after)
    assert "1 rebuild(s) from distinct keys" in after.stdout
    same_key_twice = (*rebuilder, "--rebuilds", "2", "--rebuilder-key", str(keys / "other.pub"))
    twice = _noxw("-s", "verify", "--", pushed, "--key", str(keys / "release.pub"), *same_key_twice, env=env)
    _refused(twice, ExitCode.NOT_ENOUGH_REBUILDS, "1 independent rebuild")


# --- the signatures read by tools that are not hpsforge ------------------------------------------
# Debian bookworm builds skopeo, podman and buildah on containers/image 5.23 with its
# disable-sigstore.patch: a sigstoreSigned policy finds and classifies a .sig, then refuses with
# "Debian-local change: sigstore disabled" before any key is read. So skopeo proves where the
# signature is and what it is, skopeo fetches the attachments (checking every blob's digest), and
# the base image's OpenSSL (the locked Debian set) checks each ECDSA signature with the .pub.
SKOPEO_FOUND_A_SIGNATURE = "sigstore disabled"
SKOPEO_FOUND_NONE = "no signature exists"


def _skopeo(served, root: Path, public: Path, reference: str) -> subprocess.CompletedProcess:
    """`skopeo copy` of `reference` under a policy that requires a sigstore signature by `public`."""
    (root / "registries.d").mkdir(parents=True, exist_ok=True)
    (root / "registries.d" / "local.yaml").write_text(
        f"docker:\n  {served.host}:\n    use-sigstore-attachments: true\n"
    )
    requirement = {"type": "sigstoreSigned", "keyPath": str(public), "signedIdentity": {"type": "matchRepository"}}
    policy = {"default": [{"type": "reject"}], "transports": {"docker": {served.host: [requirement]}}}
    (root / "policy.json").write_text(json.dumps(policy))
    target = root / "copy"
    shutil.rmtree(target, ignore_errors=True)
    return subprocess.run(
        ["skopeo", "--policy", str(root / "policy.json"), "--registries.d", str(root / "registries.d"), "copy",
         "--src-tls-verify=false", f"docker://{reference}", f"dir:{target}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _fetched_by_skopeo(root: Path, reference: str) -> list[tuple[bytes, dict[str, str]]]:
    """The layers (bytes, annotations) of the artifact `reference`, as skopeo copies it to a dir."""
    (root / "any.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    target = root / reference.rsplit(":", 1)[1]
    copied = subprocess.run(
        ["skopeo", "--policy", str(root / "any.json"), "copy", "--src-tls-verify=false", f"docker://{reference}",
         f"dir:{target}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    manifest = json.loads((target / "manifest.json").read_text())
    return [
        ((target / layer["digest"].removeprefix("sha256:")).read_bytes(), layer.get("annotations") or {})
        for layer in manifest["layers"]
    ]


def _openssl_verifies(base_image: str, public: Path, message: bytes, der_signature: bytes, root: Path) -> bool:
    """OpenSSL (in the base image, no network) checks an ECDSA-SHA256 signature with the PEM key."""
    folder = root / "openssl"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "message").write_bytes(message)
    (folder / "signature").write_bytes(der_signature)
    shutil.copyfile(public, folder / "key.pub")
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    checked = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{folder}:/check:ro", base_image, "openssl", "dgst",
         "-sha256", "-verify", "/check/key.pub", "-signature", "/check/signature", "/check/message"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.stdout.strip() in ("Verified OK", "Verification failure"), checked.stdout + checked.stderr
    return checked.stdout.strip() == "Verified OK"


def _pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding, written from its specification (not hpsforge's)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def test_skopeo_finds_each_signature_and_openssl_verifies_it(released, keys, cpu_images, tmp_path):
    served, record, _ = released
    base_image = cpu_images["base"].reference
    started = time.monotonic()
    for role in sorted(SIGNED_ROLES):
        pushed = record.images[role].pushed
        repository, digest = pushed.split("@")
        # skopeo's sigstoreSigned policy finds the .sig at cosign's tag and takes it for a signature
        found = _skopeo(served, tmp_path / "policy", keys / "release.pub", pushed)
        assert found.returncode != 0 and SKOPEO_FOUND_A_SIGNATURE in found.stderr, found.stderr
        # the simple-signing payload, as skopeo fetched it, names this image; OpenSSL checks its signature
        ((payload, notes),) = _fetched_by_skopeo(tmp_path, _sig_ref(pushed) + ".sig")
        critical = json.loads(payload)["critical"]
        assert critical["image"]["docker-manifest-digest"] == digest
        assert critical["identity"]["docker-reference"] == repository
        assert critical["type"] == "cosign container image signature"
        signature = base64.b64decode(notes[signing.SIGNATURE_ANNOTATION])
        assert _openssl_verifies(base_image, keys / "release.pub", payload, signature, tmp_path)
        assert not _openssl_verifies(base_image, keys / "other.pub", payload, signature, tmp_path)
        # the .att's envelope: its payload is the statement written to output, its signature verifies
        layers = _fetched_by_skopeo(tmp_path, _sig_ref(pushed) + ".att")  # and rebuild statements, if any
        (envelope_bytes,) = [data for data, notes in layers if notes["predicateType"] == provenance.PREDICATE_TYPE]
        envelope = json.loads(envelope_bytes)
        body = base64.b64decode(envelope["payload"])
        assert envelope["payloadType"] == "application/vnd.in-toto+json"
        assert body == provenance.statement_path(role).read_bytes()
        (envelope_signature,) = envelope["signatures"]
        signed = _pae(envelope["payloadType"], body)
        raw = base64.b64decode(envelope_signature["sig"])
        assert _openssl_verifies(base_image, keys / "release.pub", signed, raw, tmp_path)
        assert not _openssl_verifies(base_image, keys / "other.pub", signed, raw, tmp_path)
    print(f"skopeo + OpenSSL checked {len(SIGNED_ROLES)} signed images in {time.monotonic() - started:.1f} s")
    # an image pushed without signing: skopeo finds no signature at all
    from hpsforge.ship import registry

    image = record.images["runtime-cpu"]
    unsigned = registry.push(image.model_copy(update={"pushed": None, "signature": None}), f"{served.host}/bare")
    refused = _skopeo(served, tmp_path / "policy", keys / "release.pub", unsigned.pushed)
    assert refused.returncode != 0 and SKOPEO_FOUND_NONE in refused.stderr, refused.stderr
