"""`nox -s deploy -- OCR --kubernetes --policy --key PUB.pem`: the admission policies that let a
cluster run a pipeline image only when it is signed with the release key.

Two policies of the same rule, for the two admission controllers that check sigstore signatures:
a sigstore policy-controller `ClusterImagePolicy` and a Kyverno `ClusterPolicy` with
`verifyImages`. Each names the pipeline image's repository (every tag and digest of it) and admits
an image of it only when a signature made by the release key verifies. The key goes in inline as
PEM: the public half only, read and re-encoded here, so a private key is never written out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from hpsforge.core.errors import UsageError
from hpsforge.core.pipelines import image_slug
from hpsforge.core.reference import ImageReference

POLICY_CONTROLLER_API = "policy.sigstore.dev/v1beta1"
KYVERNO_API = "kyverno.io/v1"
KEY_HINT = (
    "give the public half of the release key: PREFIX.pub, as `skopeo generate-sigstore-key "
    "--output-prefix PREFIX` writes it (an ECDSA P-256 key, `-----BEGIN PUBLIC KEY-----`)"
)
KEY_MAX_BYTES = 64 * 1024  # a P-256 public key is 178 bytes of PEM; anything this large is not one
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
# policy-controller rejects any other character in a glob (pkg/apis/glob in its source).
_GLOB_CHARACTERS = re.compile(r"[a-zA-Z0-9_:/*.@-]+")
# go-containerregistry, which policy-controller matches with, spells Docker Hub this way.
DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ReleaseKey:
    """The release public key, as the policies carry it."""

    path: Path
    pem: str  # SubjectPublicKeyInfo, re-encoded: the same bytes whatever the file's line ends
    fingerprint: str  # sha256 of the DER encoding, hex: what a platform team compares

    @classmethod
    def read(cls, path: Path) -> ReleaseKey:
        """The ECDSA P-256 public key in `path`; a UsageError (exit 2) for anything else."""

        def refuse(problem: str, hint: str = KEY_HINT) -> UsageError:
            return UsageError(f"--key {path}: {problem}", hint=hint)

        try:
            data = path.read_bytes()[: KEY_MAX_BYTES + 1]
        except FileNotFoundError:
            raise refuse("no such file") from None
        except IsADirectoryError:
            raise refuse("is a directory, not a key file") from None
        except OSError as error:
            raise refuse(f"cannot be read ({error.strerror})") from None
        labels = [label.decode("ascii") for label in _PEM_LABEL.findall(data)]
        # First, before anything is decoded or said about its content.
        private = [label for label in labels if "PRIVATE KEY" in label]
        if private:
            raise refuse(
                f"is a private key ({private[0]}): never ship the private key, not even to a cluster",
                hint="give the public key beside it (PREFIX.pub for the PREFIX.private that `skopeo "
                "generate-sigstore-key` wrote); keep the private one where only the signer reads it",
            )
        if len(data) > KEY_MAX_BYTES:
            raise refuse(f"is larger than {KEY_MAX_BYTES} bytes: not a PEM public key")
        if not labels:
            raise refuse("not a PEM public key (no -----BEGIN PUBLIC KEY----- block)")
        if labels != ["PUBLIC KEY"]:
            raise refuse(f"holds {', '.join(labels)} block(s), not exactly one PUBLIC KEY")
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as error:
            raise refuse(f"its PUBLIC KEY block does not decode as a public key ({error})") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            kind = f"ECDSA {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey) else _kind(key)
            raise refuse(f"its public key is {kind}, not ECDSA P-256 (the sigstore key skopeo makes)")
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = key.public_bytes(serialization.Encoding.DER, spki)
        pem = key.public_bytes(serialization.Encoding.PEM, spki).decode("ascii")
        return cls(path=path, pem=pem, fingerprint=hashlib.sha256(der).hexdigest())


def _kind(key: object) -> str:
    """What kind of key was given instead, in words."""
    kinds = {rsa.RSAPublicKey: "RSA", ed25519.Ed25519PublicKey: "Ed25519", dsa.DSAPublicKey: "DSA"}
    return next((kind for cls, kind in kinds.items() if isinstance(key, cls)), type(key).__name__)


def repository(image: str) -> ImageReference:
    """The image's registry and repository, refused when a policy could not name them."""
    reference = ImageReference.parse(image)
    if reference.registry is None:
        raise UsageError(
            f"--policy: the image {image} names no registry, and its signatures live beside it in the "
            "registry it is pushed to",
            hint="push it (`nox -s images -- cpu --push REGISTRY/PREFIX`) and deploy the pushed digest, "
            "or pass --image REGISTRY/...@sha256:...",
        )
    if not _GLOB_CHARACTERS.fullmatch(reference.name):
        raise UsageError(
            f"--policy: the image name {reference.name} has characters policy-controller's image globs "
            "refuse (a bracketed IPv6 registry?)",
            hint="push it to a registry named by host name or IPv4 address",
        )
    return reference


def policy_controller_globs(reference: ImageReference) -> list[str]:
    """Every tag and every digest of the repository, spelt as policy-controller normalizes names
    (`*` stops at "/", `**` does not; a digest reference reads `NAME@sha256:...`)."""
    name = reference.name
    if reference.registry in DOCKER_HUB_NAMES:
        path = reference.repository if "/" in reference.repository else f"library/{reference.repository}"
        name = f"index.docker.io/{path}"
    return [f"{name}:**", f"{name}@**"]


def kyverno_references(reference: ImageReference) -> list[str]:
    """Every tag and every digest of the repository, as Kyverno matches images (`*` is anything)."""
    return [f"{reference.name}:*", f"{reference.name}@*"]


def _metadata(name: str, slug: str) -> Manifest:
    return {
        "name": f"hps-{slug}-release-signed",
        "labels": {
            "app.kubernetes.io/name": f"hps-{slug}",
            "app.kubernetes.io/component": "admission-policy",
            "app.kubernetes.io/part-of": "hpsforge",
            "app.kubernetes.io/managed-by": "hpsforge",
        },
        "annotations": {"hpsforge.io/description": f"admit {name}'s image only when signed with the release key"},
    }


def policy_manifests(name: str, image: str, key: ReleaseKey) -> dict[str, Manifest]:
    """The two policies for pipeline `name`'s image, by file name."""
    reference, slug = repository(image), image_slug(name)
    cluster_image_policy = {
        "apiVersion": POLICY_CONTROLLER_API,
        "kind": "ClusterImagePolicy",
        "metadata": _metadata(name, slug),
        "spec": {
            "images": [{"glob": glob} for glob in policy_controller_globs(reference)],
            "authorities": [
                # No ctlog: the signatures are not in a transparency log (skopeo does not upload
                # them), and without one policy-controller checks the key alone.
                {"name": "release-key", "key": {"data": key.pem, "hashAlgorithm": "sha256"}}
            ],
            "mode": "enforce",
        },
    }
    kyverno_policy = {
        "apiVersion": KYVERNO_API,
        "kind": "ClusterPolicy",
        "metadata": _metadata(name, slug),
        "spec": {
            # Verifying reads the signature from the registry: Kyverno's default 10 s is tight.
            "webhookTimeoutSeconds": 30,
            "failurePolicy": "Fail",
            "rules": [
                {
                    "name": "release-signed",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [
                        {
                            "imageReferences": kyverno_references(reference),
                            "type": "Cosign",
                            "failureAction": "Enforce",
                            "required": True,
                            "mutateDigest": True,  # a tag is pinned to the digest that verified
                            "verifyDigest": True,  # and no image passes without a digest
                            "attestors": [
                                {
                                    "count": 1,
                                    "entries": [
                                        {
                                            "keys": {
                                                "publicKeys": key.pem,
                                                "signatureAlgorithm": "sha256",
                                                # Without these Kyverno asks rekor.sigstore.dev for a log
                                                # entry, which a skopeo signature does not have.
                                                "rekor": {"ignoreTlog": True},
                                                "ctlog": {"ignoreSCT": True},
                                            }
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return {"clusterimagepolicy.yaml": cluster_image_policy, "kyverno-clusterpolicy.yaml": kyverno_policy}
