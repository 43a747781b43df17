"""Release keys, cosign-compatible image signatures and DSSE-signed provenance, offline.

Keys are sigstore's own format, the one `skopeo generate-sigstore-key` and cosign write: the
private key a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` holding JSON (scrypt parameters and salt,
a nacl/secretbox nonce, and the sealed PKCS#8 ECDSA P-256 key), the public key a PKIX PEM. The
passphrase comes from a file or $HPSFORGE_SIGNING_PASSPHRASE, never from a command line.

Beside an image `REPO@sha256:<hex>` the registry holds, in the same repository:

    REPO:sha256-<hex>.sig   one layer application/vnd.dev.cosign.simplesigning.v1+json: the
                            "simple signing" payload naming the digest; the ECDSA signature over
                            it in the annotation dev.cosignproject.cosign/signature (base64)
    REPO:sha256-<hex>.att   one layer application/vnd.dsse.envelope.v1+json: the provenance
                            statement as a DSSE envelope signed with the same key

which is the layout cosign reads (`cosign verify --key`, `cosign verify-attestation --key`).
Debian bookworm's skopeo (1.9) cannot sign in this format and trixie's needs trixie's libc, so the
signature is made here with `cryptography`, byte-compatible with skopeo's and cosign's.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from hpsforge.core.errors import BadSignatureError, UsageError
from hpsforge.core.files import atomic_output
from hpsforge.core.reference import ImageReference
from hpsforge.core.settings import settings
from hpsforge.ship import oci_archive

PRIVATE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"  # on each .att layer, as cosign writes it
EMPTY_CONFIG = (b"{}", "application/vnd.oci.image.config.v1+json")
# cosign's and skopeo's parameters: N = 2^16 (64 MiB of memory per derivation)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 65536, 8, 1
PrivateKey = ec.EllipticCurvePrivateKey
PASSPHRASE_USAGE = "give the passphrase in a file (--passphrase-file F) or in $HPSFORGE_SIGNING_PASSPHRASE"


# --- keys -----------------------------------------------------------------------------------------


def passphrase(passphrase_file: Path | None) -> bytes:
    """The key's passphrase: the first line of `passphrase_file`, else $HPSFORGE_SIGNING_PASSPHRASE."""
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text(encoding="utf-8").split("\n", 1)[0]
        except OSError as error:
            raise UsageError(f"--passphrase-file {passphrase_file}: unreadable ({error.strerror})") from None
        if not text:
            raise UsageError(f"--passphrase-file {passphrase_file}: its first line is empty", hint=PASSPHRASE_USAGE)
        return text.encode()
    secret = settings().signing_passphrase
    if secret is None:
        raise UsageError("the signing key needs its passphrase, and none was given", hint=PASSPHRASE_USAGE)
    return secret.get_secret_value().encode()


def _pem(kind: str, data: bytes) -> bytes:
    body = base64.b64encode(data).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode()


def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    import hashlib

    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + (1 << 20), dklen=32)


def generate(prefix: Path, secret: bytes) -> tuple[Path, Path]:
    """PREFIX.private (encrypted, mode 0600) and PREFIX.pub: a new ECDSA P-256 key pair."""
    private, public = Path(f"{prefix}.private"), Path(f"{prefix}.pub")
    for path in (private, public):
        if path.exists():
            raise UsageError(f"{path} exists: a release key is never overwritten", hint="choose another prefix")
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = os.urandom(32), os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    sealed = box.encrypt(der, nonce).ciphertext
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    with atomic_output(private) as stream:
        stream.write(_pem(PRIVATE_PEM_TYPE, json.dumps(document).encode()))
    private.chmod(0o600)
    with atomic_output(public) as stream:
        stream.write(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private, public


def _pem_body(path: Path, kind: str) -> bytes:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: unreadable key file ({getattr(error, 'strerror', None) or error})") from None
    begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
    if begin not in text or end not in text:
        raise UsageError(
            f"{path}: not a {kind} (no `{begin}` block)",
            hint="make a key pair with `./noxw -s keygen -- PREFIX` (or skopeo generate-sigstore-key)",
        )
    try:
        return base64.b64decode("".join(text.split(begin, 1)[1].split(end, 1)[0].split()), validate=True)
    except ValueError:
        raise UsageError(f"{path}: the {kind} block is not base64") from None


def load_private(path: Path, secret: bytes) -> ec.EllipticCurvePrivateKey:
    """Decrypt a sigstore private key; a wrong passphrase or a damaged file is a usage error."""
    try:
        document = json.loads(_pem_body(path, PRIVATE_PEM_TYPE))
        params = document["kdf"]["params"]
        if document["kdf"]["name"] != "scrypt" or document["cipher"]["name"] != "nacl/secretbox":
            raise ValueError(f"kdf {document['kdf']['name']} / cipher {document['cipher']['name']}")
        key = _scrypt(
            secret, base64.b64decode(document["kdf"]["salt"]), int(params["N"]), int(params["r"]), int(params["p"])
        )
        sealed, nonce = base64.b64decode(document["ciphertext"]), base64.b64decode(document["cipher"]["nonce"])
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{path}: not a sigstore private key ({error})") from None
    try:
        der = nacl.secret.SecretBox(key).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise UsageError(
            f"{path}: the passphrase does not open this key", hint=f"check the passphrase ({PASSPHRASE_USAGE})"
        ) from None
    private = serialization.load_der_private_key(der, password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise UsageError(f"{path}: not an ECDSA key")
    return private


def load_public(path: Path) -> ec.EllipticCurvePublicKey:
    der = _pem_body(path, "PUBLIC KEY")
    try:
        public = serialization.load_der_public_key(der)
    except ValueError as error:
        raise UsageError(f"{path}: not a public key ({error})") from None
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise UsageError(f"{path}: not an ECDSA public key")
    return public


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    return SSlibKey.from_crypto(public).keyid


# --- DSSE ----------------------------------------------------------------------------------------


def sign_envelope(payload: bytes, payload_type: str, private: ec.EllipticCurvePrivateKey) -> bytes:
    envelope = Envelope(payload=payload, payload_type=payload_type, signatures={})
    envelope.sign(CryptoSigner(private))
    return json.dumps(envelope.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def open_envelope(data: bytes, payload_type: str, public: ec.EllipticCurvePublicKey, where: str) -> bytes:
    """The payload of a DSSE envelope signed by `public`; anything else is a BadSignatureError."""
    try:
        envelope = Envelope.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError) as error:
        raise BadSignatureError(f"{where}: not a DSSE envelope ({error})") from None
    if envelope.payload_type != payload_type:
        raise BadSignatureError(f"{where}: payload type {envelope.payload_type!r}, not {payload_type!r}")
    try:
        envelope.verify([SSlibKey.from_crypto(public)], 1)
    except VerificationError as error:
        raise BadSignatureError(f"{where}: the envelope's signature does not verify with the key ({error})") from None
    return envelope.payload


# --- image signatures (cosign's simple signing) ---------------------------------------------------


def _attachment(pushed: str, suffix: str) -> tuple[str, str]:
    """(REPO:sha256-<hex>.<suffix>, sha256:<hex>) for REPO@sha256:<hex>."""
    ref = ImageReference.parse(pushed)
    if ref.digest is None or ref.registry is None:
        raise UsageError(f"{pushed!r} is not REGISTRY/REPOSITORY@sha256:<digest>")
    return f"{ref.registry}/{ref.repository}:{ref.digest.replace(':', '-')}.{suffix}", ref.digest


def _simple_signing(pushed: str) -> bytes:
    ref = ImageReference.parse(pushed)
    body = {
        "critical": {
            "identity": {"docker-reference": f"{ref.registry}/{ref.repository}"},
            "image": {"docker-manifest-digest": ref.digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Signed:
    signature: str  # REPO:sha256-<hex>.sig
    attestation: str  # REPO:sha256-<hex>.att
    seconds: float


def put_attestation(pushed: str, envelope: bytes, predicate_type: str, *, replace_type: bool) -> None:
    """Add a DSSE envelope layer to the `.att` beside `pushed` (kept: the others, less any of the
    same predicate type when `replace_type`, and an identical one)."""
    attestation, _ = _attachment(pushed, "att")
    kept = [
        layer
        for layer in oci_archive.get_small_artifact(attestation) or []
        if layer[0] != envelope and not (replace_type and layer[2].get(PREDICATE_ANNOTATION) == predicate_type)
    ]
    layer = (envelope, DSSE_MEDIA_TYPE, {PREDICATE_ANNOTATION: predicate_type})
    oci_archive.put_small_artifact(attestation, EMPTY_CONFIG, [*kept, layer])


def sign_image(
    pushed: str, statement: bytes, payload_type: str, predicate_type: str, private: ec.EllipticCurvePrivateKey
) -> Signed:
    """Push the attestation (the statement's DSSE envelope), then the signature, beside `pushed`."""
    started = time.monotonic()
    signature, _ = _attachment(pushed, "sig")
    put_attestation(pushed, sign_envelope(statement, payload_type, private), predicate_type, replace_type=True)
    payload = _simple_signing(pushed)
    der = private.sign(payload, ec.ECDSA(hashes.SHA256()))
    oci_archive.put_small_artifact(
        signature,
        EMPTY_CONFIG,
        [(payload, SIMPLE_SIGNING_MEDIA_TYPE, {SIGNATURE_ANNOTATION: base64.b64encode(der).decode()})],
    )
    return Signed(signature, _attachment(pushed, "att")[0], time.monotonic() - started)


def _layers(reference: str, what: str) -> list[tuple[bytes, str, dict[str, str]]]:
    layers = oci_archive.get_small_artifact(reference)
    if layers is None:
        raise BadSignatureError(
            f"{reference}: the registry holds no {what} for this image: it is unsigned",
            hint="sign it: `./noxw -s images -- TARGET --push REGISTRY/PREFIX --sign KEY`",
        )
    return layers


def verify_signature(pushed: str, public: ec.EllipticCurvePublicKey) -> None:
    """One signature layer beside `pushed` verifies with `public` and names exactly its digest."""
    reference, digest = _attachment(pushed, "sig")
    layers = _layers(reference, "signature (.sig)")
    problems = []
    for payload, media_type, notes in layers:
        if media_type != SIMPLE_SIGNING_MEDIA_TYPE or SIGNATURE_ANNOTATION not in notes:
            continue
        try:
            public.verify(base64.b64decode(notes[SIGNATURE_ANNOTATION]), payload, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            problems.append("a signature that does not verify with the key")
            continue
        try:
            named = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
        except (ValueError, KeyError, TypeError):
            problems.append("a signed payload that is not simple signing JSON")
            continue
        if named == digest:
            return
        problems.append(f"a valid signature of another image ({named})")
    raise BadSignatureError(
        f"{pushed}: no signature in {reference} verifies for this digest with the key"
        + (f" (found: {'; '.join(problems)})" if problems else " (no signature layers)"),
        hint="check the public key (--key) and that this digest was signed with its private key",
    )


def attested_statements(
    pushed: str, public: ec.EllipticCurvePublicKey, payload_type: str, predicate_type: str
) -> list[bytes]:
    """The statements of `predicate_type` in the attestation beside `pushed` whose envelopes verify
    with `public`; BadSignatureError when there are such envelopes but none verifies."""
    reference, _ = _attachment(pushed, "att")
    opened, failure = [], None
    for data, media_type, notes in _layers(reference, "attestation (.att)"):
        if media_type != DSSE_MEDIA_TYPE or notes.get(PREDICATE_ANNOTATION, predicate_type) != predicate_type:
            continue
        try:
            opened.append(open_envelope(data, payload_type, public, reference))
        except BadSignatureError as error:
            failure = error
    if not opened and failure is not None:
        raise failure
    return opened


def attested_statement(pushed: str, public: ec.EllipticCurvePublicKey, payload_type: str, predicate_type: str) -> bytes:
    """The one statement of `predicate_type` beside `pushed` that verifies with `public`."""
    opened = attested_statements(pushed, public, payload_type, predicate_type)
    if not opened:
        raise BadSignatureError(f"{_attachment(pushed, 'att')[0]}: no DSSE envelope of {predicate_type}")
    return opened[0]
