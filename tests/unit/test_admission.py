"""`nox -s deploy -- OCR --kubernetes --policy --key PUB.pem`: the admission policies are valid
against the vendored policy-controller and Kyverno CRDs, carry exactly the release public key, name
exactly the pipeline image's repository, come out byte-identical, and every bad key is refused."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from hpsforge import cli
from hpsforge.core.errors import ExitCode, UsageError
from hpsforge.core.pipelines import load_pipelines
from hpsforge.ship import admission, deploy
from tests.support import manifests

PIPELINES = load_pipelines()
IMAGE = "registry.example:5000/hps/ocr-cpu@sha256:" + "ab" * 32
POLICIES = ("policy/clusterimagepolicy.yaml", "policy/kyverno-clusterpolicy.yaml")
PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    """A release key as `skopeo generate-sigstore-key` makes one: ECDSA P-256."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def public_key(tmp_path, signing_key) -> Path:
    path = tmp_path / "release.pub"
    path.write_bytes(signing_key.public_key().public_bytes(PEM, SPKI))
    return path


def _render(name: str, key: admission.ReleaseKey, image: str = IMAGE) -> dict[str, str]:
    return deploy.render(name, PIPELINES[name], "cpu", image, ("kubernetes", "kserve"), "nox -s deploy -- test", key)


def _policies(key: admission.ReleaseKey, image: str = IMAGE) -> dict[str, dict]:
    files = _render("OCR", key, image)
    return {path: yaml.safe_load(files[path]) for path in POLICIES}


def _key_entry(kyverno_policy: dict) -> dict:
    (rule,) = kyverno_policy["spec"]["rules"]
    (verify,) = rule["verifyImages"]
    (attestor_set,) = verify["attestors"]
    (entry,) = attestor_set["entries"]
    return entry["keys"]


@pytest.mark.parametrize("kubernetes_version", manifests.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", PIPELINES)
def test_the_policies_validate_against_the_vendored_crds(name, kubernetes_version, public_key):
    files = _render(name, admission.ReleaseKey.read(public_key))
    checked = {path: manifests.validate_text(files[path], kubernetes_version) for path in POLICIES}
    assert checked == {
        "policy/clusterimagepolicy.yaml": [
            "ClusterImagePolicy CRD policy.sigstore.dev/v1beta1 "
            "(tests/data/admission/policy.sigstore.dev_clusterimagepolicies.yaml)"
        ],
        "policy/kyverno-clusterpolicy.yaml": [
            "ClusterPolicy CRD kyverno.io/v1 (tests/data/admission/kyverno.io_clusterpolicies.yaml)"
        ],
    }
    # The manifests are the same with --policy as without.
    without = deploy.render(name, PIPELINES[name], "cpu", IMAGE, ("kubernetes", "kserve"), "nox -s deploy -- test")
    assert {path: text for path, text in files.items() if path.endswith(".yaml") and path not in POLICIES} == {
        path: text for path, text in without.items() if path.endswith(".yaml")
    }


def test_the_policies_carry_the_release_key_and_enforce(public_key, signing_key):
    key = admission.ReleaseKey.read(public_key)
    documents = _policies(key)
    cip, kyverno = documents["policy/clusterimagepolicy.yaml"], documents["policy/kyverno-clusterpolicy.yaml"]
    (authority,) = cip["spec"]["authorities"]
    assert authority["key"]["hashAlgorithm"] == "sha256" and "ctlog" not in authority
    assert cip["spec"]["mode"] == "enforce"
    keys = _key_entry(kyverno)
    assert keys["signatureAlgorithm"] == "sha256"
    assert keys["rekor"] == {"ignoreTlog": True} and keys["ctlog"] == {"ignoreSCT": True}
    verify = kyverno["spec"]["rules"][0]["verifyImages"][0]
    assert verify["failureAction"] == "Enforce"
    assert verify["mutateDigest"] is True and verify["verifyDigest"] is True and verify["required"] is True
    assert "validationFailureAction" not in kyverno["spec"]  # deprecated in the vendored CRD
    # What the policies carry verifies a signature the release key made, with the hash they name;
    # it is exactly the public key, and nothing private.
    payload = b"sigstore simple-signing payload"
    signature = signing_key.sign(payload, ec.ECDSA(hashes.SHA256()))
    for pem in (authority["key"]["data"], keys["publicKeys"]):
        assert pem == public_key.read_text() and "PRIVATE" not in pem
        loaded = serialization.load_pem_public_key(pem.encode())
        assert isinstance(loaded, ec.EllipticCurvePublicKey)
        loaded.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):
            loaded.verify(signature, payload + b"!", ec.ECDSA(hashes.SHA256()))
    der = signing_key.public_key().public_bytes(serialization.Encoding.DER, SPKI)
    assert key.fingerprint == hashlib.sha256(der).hexdigest()


def _policy_controller_matches(glob: str, image: str) -> bool:
    """policy-controller's glob rules (pkg/apis/glob): `**` is anything, `*` anything but '/', whole string."""
    pattern = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in re.split(r"(\*\*|\*)", glob)
    )
    return re.fullmatch(pattern, image) is not None


def _kyverno_matches(pattern: str, image: str) -> bool:
    """Kyverno's wildcard rules: `*` is anything, `?` one character, whole string."""
    regex = "".join(
        ".*" if part == "*" else "." if part == "?" else re.escape(part) for part in re.split(r"([*?])", pattern)
    )
    return re.fullmatch(regex, image) is not None


def test_the_policies_name_exactly_the_pipeline_images_repository(public_key):
    files = _render("OCR", admission.ReleaseKey.read(public_key))
    documents = {path: yaml.safe_load(text) for path, text in files.items() if path.endswith(".yaml")}
    globs = [item["glob"] for item in documents["policy/clusterimagepolicy.yaml"]["spec"]["images"]]
    references = documents["policy/kyverno-clusterpolicy.yaml"]["spec"]["rules"][0]["verifyImages"][0][
        "imageReferences"
    ]
    deployed = {
        documents["kubernetes/deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]["image"],
        documents["kserve/servingruntime.yaml"]["spec"]["containers"][0]["image"],
    }
    assert deployed == {IMAGE}
    repository = "registry.example:5000/hps/ocr-cpu"
    covered = [IMAGE, f"{repository}:v1", f"{repository}@sha256:{'cd' * 32}", f"{repository}:v1@sha256:{'cd' * 32}"]
    elsewhere = [
        f"{repository}-evil@sha256:{'ab' * 32}",
        f"{repository}/sub:v1",
        "registry.example:5000/hps/ocr-cp:v1",
        f"registry.example:5001/hps/ocr-cpu@sha256:{'ab' * 32}",
        "other.example/hps/ocr-cpu:v1",
    ]
    for image in covered:
        assert any(_policy_controller_matches(glob, image) for glob in globs), image
        assert any(_kyverno_matches(reference, image) for reference in references), image
    for image in elsewhere:
        assert not any(_policy_controller_matches(glob, image) for glob in globs), image
        assert not any(_kyverno_matches(reference, image) for reference in references), image


def test_docker_hub_is_spelt_as_policy_controller_normalizes_it():
    for image, expected in [
        ("docker.io/hps/ocr-cpu@sha256:" + "ab" * 32, "index.docker.io/hps/ocr-cpu"),
        ("docker.io/ocr@sha256:" + "ab" * 32, "index.docker.io/library/ocr"),
        ("127.0.0.1:5000/ocr@sha256:" + "ab" * 32, "127.0.0.1:5000/ocr"),
    ]:
        assert admission.policy_controller_globs(admission.repository(image)) == [f"{expected}:**", f"{expected}@**"]


def _tampered(document: dict, change) -> dict:
    copy = yaml.safe_load(yaml.safe_dump(document))
    change(copy)
    return copy


TAMPERINGS = {
    "glob misspelt": ("policy/clusterimagepolicy.yaml", lambda d: d["spec"]["images"][0].update(globs="x")),
    "key data not a string": (
        "policy/clusterimagepolicy.yaml",
        lambda d: d["spec"]["authorities"][0]["key"].update(data=["-----BEGIN PUBLIC KEY-----"]),
    ),
    "hash algorithm misspelt": (
        "policy/clusterimagepolicy.yaml",
        lambda d: d["spec"]["authorities"][0]["key"].update(hashAlgoritm="sha256"),
    ),
    "unknown spec field": ("policy/clusterimagepolicy.yaml", lambda d: d["spec"].update(enforce=True)),
    "failure action not Enforce or Audit": (
        "policy/kyverno-clusterpolicy.yaml",
        lambda d: d["spec"]["rules"][0]["verifyImages"][0].update(failureAction="Deny"),
    ),
    "unknown verification type": (
        "policy/kyverno-clusterpolicy.yaml",
        lambda d: d["spec"]["rules"][0]["verifyImages"][0].update(type="Sigstore"),
    ),
    "public key field misspelt": (
        "policy/kyverno-clusterpolicy.yaml",
        lambda d: _key_entry(d).update(publicKey=_key_entry(d).pop("publicKeys")),
    ),
    "verifyDigest as a string": (
        "policy/kyverno-clusterpolicy.yaml",
        lambda d: d["spec"]["rules"][0]["verifyImages"][0].update(verifyDigest="true"),
    ),
    "rule without a name": ("policy/kyverno-clusterpolicy.yaml", lambda d: d["spec"]["rules"][0].pop("name")),
    "no spec": ("policy/kyverno-clusterpolicy.yaml", lambda d: d.pop("spec")),
    "bad metadata field": ("policy/kyverno-clusterpolicy.yaml", lambda d: d["metadata"].update(label={"a": "b"})),
}


@pytest.mark.parametrize("what", TAMPERINGS)
def test_a_tampered_policy_fails_validation(what, public_key):
    """The validation can fail: each of these breaks one field, and the error names the object."""
    path, change = TAMPERINGS[what]
    document = _policies(admission.ReleaseKey.read(public_key))[path]
    manifests.validate(document)  # the original passes
    with pytest.raises(manifests.ManifestInvalid) as caught:
        manifests.validate(_tampered(document, change))
    assert f"{document['kind']} hps-ocr-release-signed" in str(caught.value)


@pytest.mark.parametrize(
    "api_version, message",
    [
        ("policy.sigstore.dev/v1", "serves ['v1alpha1', 'v1beta1'], not v1"),
        ("kyverno.io/v1", "apiVersion kyverno.io/v1 is not in policy.sigstore.dev"),
    ],
)
def test_an_unserved_or_foreign_api_version_fails_validation(api_version, message, public_key):
    document = dict(_policies(admission.ReleaseKey.read(public_key))["policy/clusterimagepolicy.yaml"])
    document["apiVersion"] = api_version
    with pytest.raises(manifests.ManifestInvalid, match=re.escape(message)):
        manifests.validate(document)


def test_vendored_crds_are_the_ones_the_readme_names():
    readme = (manifests.ADMISSION_DIR / "README.md").read_text(encoding="utf-8")
    for filename in manifests.ADMISSION_CRDS.values():
        digest = hashlib.sha256((manifests.ADMISSION_DIR / filename).read_bytes()).hexdigest()
        assert re.search(rf"`{re.escape(filename)}`.*\| https://\S+/v\d+\.\d+\.\d+/\S+\.yaml \| `{digest}`", readme), (
            f"{filename}: sha256 {digest} is not the one tests/data/admission/README.md names"
        )


# Bad keys: (file bytes, what the error says). Each is refused with exit 2, naming the file.
def _pem(key) -> bytes:
    return key.public_bytes(PEM, SPKI)


def _certificate(private: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return certificate.public_bytes(PEM)


def _bad_keys(signing_key: ec.EllipticCurvePrivateKey) -> dict[str, tuple[bytes, str]]:
    public = _pem(signing_key.public_key())
    pkcs8 = signing_key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "a PKCS#8 private key": (pkcs8, "is a private key (PRIVATE KEY): never ship the private key"),
        "an EC private key": (
            signing_key.private_bytes(
                PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ),
            "is a private key (EC PRIVATE KEY): never ship the private key",
        ),
        # What `skopeo generate-sigstore-key` writes to PREFIX.private (the body here is not real).
        "skopeo's private key": (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "is a private key (ENCRYPTED SIGSTORE PRIVATE KEY): never ship the private key",
        ),
        "public and private together": (public + pkcs8, "is a private key (PRIVATE KEY): never ship the private key"),
        "empty": (b"", "not a PEM public key (no -----BEGIN PUBLIC KEY----- block)"),
        "not PEM": (b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI release\n", "not a PEM public key"),
        "a certificate": (_certificate(signing_key), "holds CERTIFICATE block(s), not exactly one PUBLIC KEY"),
        "two public keys": (public + _pem(ec.generate_private_key(ec.SECP256R1()).public_key()), "not exactly one"),
        "a corrupt block": (public.replace(public.splitlines()[1], b"!" * 20), "does not decode as a public key"),
        "a P-384 key": (
            _pem(ec.generate_private_key(ec.SECP384R1()).public_key()),
            "is ECDSA secp384r1, not ECDSA P-256",
        ),
        "an RSA key": (
            _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()),
            "is RSA, not ECDSA P-256",
        ),
        "an Ed25519 key": (_pem(ed25519.Ed25519PrivateKey.generate().public_key()), "is Ed25519, not ECDSA P-256"),
        "too large": (public + b"\n" * admission.KEY_MAX_BYTES, "larger than"),
    }


BAD_KEYS = (
    "a PKCS#8 private key",
    "an EC private key",
    "skopeo's private key",
    "public and private together",
    "empty",
    "not PEM",
    "a certificate",
    "two public keys",
    "a corrupt block",
    "a P-384 key",
    "an RSA key",
    "an Ed25519 key",
    "too large",
)


@pytest.fixture(scope="module")
def bad_keys(signing_key) -> dict[str, tuple[bytes, str]]:
    return _bad_keys(signing_key)


def test_every_bad_key_is_tried(bad_keys):
    assert tuple(bad_keys) == BAD_KEYS


@pytest.mark.parametrize("what", BAD_KEYS)
def test_a_bad_key_is_refused_and_nothing_is_written(what, tmp_path, bad_keys):
    data, message = bad_keys[what]
    key = tmp_path / "release.pub"
    key.write_bytes(data)
    output = tmp_path / "deploy"
    with pytest.raises(UsageError) as caught:
        cli.run_deploy(
            ["OCR", "--kubernetes", "--policy", "--key", str(key), "--image", IMAGE, "--output", str(output)]
        )
    assert caught.value.exit_code == ExitCode.USAGE == 2
    assert f"--key {key}: " in str(caught.value) and message in str(caught.value)
    assert not output.exists()
    if "private" in what:
        # The refusal says nothing of the key's content.
        body = b"".join(line for line in data.splitlines() if not line.startswith(b"-----"))
        assert body[:16].decode() not in str(caught.value)


def test_a_missing_or_unreadable_key_is_refused(tmp_path):
    for path, message in [(tmp_path / "absent.pub", "no such file"), (tmp_path, "is a directory")]:
        with pytest.raises(UsageError, match=re.escape(f"--key {path}: {message}")) as caught:
            admission.ReleaseKey.read(path)
        assert "skopeo generate-sigstore-key" in str(caught.value)


def test_line_endings_do_not_change_the_policies(tmp_path, public_key):
    crlf = tmp_path / "crlf.pub"
    crlf.write_bytes(public_key.read_bytes().replace(b"\n", b"\r\n"))
    assert admission.ReleaseKey.read(crlf).pem == admission.ReleaseKey.read(public_key).pem


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["OCR", "--kubernetes", "--policy", "--image", IMAGE], "--policy needs --key PUB.pem"),
        (["OCR", "--kubernetes", "--key", "release.pub", "--image", IMAGE], "--key is the key of --policy"),
        (["OCR", "--policy", "--key", "release.pub"], "--kubernetes, --kserve or both (--policy adds to them)"),
    ],
)
def test_policy_arguments(tmp_path, arguments, message):
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        cli.run_deploy([*arguments, "--output", str(tmp_path / "deploy")])
    assert caught.value.exit_code == 2
    assert not (tmp_path / "deploy").exists()


def test_an_image_without_a_registry_gets_no_policy(tmp_path, public_key):
    """Signatures live beside an image in its registry: the recorded local image names none."""
    output = tmp_path / "deploy"
    with pytest.raises(UsageError, match=r"--policy: the image hpsforge/\S+@sha256:\S+ names no registry") as caught:
        cli.run_deploy(["--all", "--kubernetes", "--policy", "--key", str(public_key), "--output", str(output)])
    assert "--push" in str(caught.value) and caught.value.exit_code == 2
    assert not output.exists()  # refused before the first pipeline's folder


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def test_the_session_writes_the_policies_byte_identical(tmp_path, public_key, capsys):
    arguments = ["OCR", "--kubernetes", "--policy", "--key", str(public_key), "--image", IMAGE]
    first_dir = tmp_path / "first"
    cli.run_deploy([*arguments, "--output", str(first_dir)])
    first = _tree(first_dir)
    assert {f"OCR/{path}" for path in POLICIES} <= set(first)
    printed = capsys.readouterr().out
    key = admission.ReleaseKey.read(public_key)
    assert "policy/kyverno-clusterpolicy.yaml" in printed and key.fingerprint in printed
    readme = first["OCR/README.md"].decode()
    assert "policy.sigstore.dev/include=true" in readme and key.fingerprint in readme
    header = first["OCR/policy/clusterimagepolicy.yaml"].decode().splitlines()[0]
    assert f"--policy --key {public_key}" in header
    # Another process, another hash seed, another folder: the same bytes.
    script = "import sys; from hpsforge import cli; cli.run_deploy(sys.argv[1:])"
    second_dir = tmp_path / "second"
    subprocess.run(
        [sys.executable, "-c", script, *arguments, "--output", str(second_dir)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
    )
    assert _tree(second_dir) == first
    # Run again over a folder that had no policy: the policies join it; without --policy they go.
    cli.run_deploy(["OCR", "--kubernetes", "--image", IMAGE, "--output", str(first_dir)])
    assert not (first_dir / "OCR" / "policy").exists()
    cli.run_deploy([*arguments, "--output", str(first_dir)])
    assert _tree(first_dir) == first
