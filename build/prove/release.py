"""A signed release proven: `verify REF@sha256:... --key PUB` and `repro --attest KEY`.

`verify_pushed` checks, stopping at the first failure, that the `.sig` beside a pushed image
verifies with the key and names its digest, that the `.att` statement verifies, is about this
digest and names only inputs the current locks pin, and (with `rebuilds`) that enough distinct
rebuilder keys attest a rebuild of this digest from these inputs. `attest_rebuilds` signs a
rebuild statement for each image a repro report found reproducible.

The registry and the keys are `hpsforge.ship.signing`'s; prove does not import ship (sibling
floors), so `cli` hands that module in as the `Attachments` it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from hpsforge.core import files
from hpsforge.core.errors import HpsforgeError, NotEnoughRebuildsError, ProvenanceMismatchError
from hpsforge.core.project import Project
from hpsforge.core.reference import ImageReference
from hpsforge.images import base, rc
from hpsforge.locks import images_lock
from hpsforge.prove import provenance, repro

PublicKey = ec.EllipticCurvePublicKey
PrivateKey = ec.EllipticCurvePrivateKey


class Attachments(Protocol):
    """The `.sig`/`.att` beside a pushed image and the release keys (the module ship.signing)."""

    def load_public(self, path: Path) -> PublicKey: ...

    def key_id(self, public: PublicKey) -> str: ...

    def verify_signature(self, pushed: str, public: PublicKey) -> None: ...

    def attested_statement(self, pushed: str, public: PublicKey, payload_type: str, predicate_type: str) -> bytes: ...

    def attested_statements(
        self, pushed: str, public: PublicKey, payload_type: str, predicate_type: str
    ) -> list[bytes]: ...

    def sign_envelope(self, payload: bytes, payload_type: str, private: PrivateKey) -> bytes: ...

    def put_attestation(self, pushed: str, envelope: bytes, predicate_type: str, *, replace_type: bool) -> None: ...


@dataclass(frozen=True)
class VerifiedRelease:
    """What `verify_pushed` proved of one pushed image."""

    reference: str
    key: Path
    role: str
    inputs: int  # resolved dependencies, each the one the locks pin
    rebuilders: list[Path]  # distinct rebuilder keys attesting this digest (only with rebuilds)
    required_rebuilds: int
    seconds: float

    def lines(self) -> list[str]:
        keys = ", ".join(map(str, self.rebuilders))
        rebuilt = [f"hpsforge: {len(self.rebuilders)} rebuild(s) from distinct keys attest it: {keys}"]
        return [
            *(rebuilt if self.required_rebuilds else []),
            f"hpsforge: {self.reference}: signature and provenance verify with {self.key}; {self.role}, "
            f"{self.inputs} inputs, each the one the locks pin ({self.seconds:.2f} s)",
        ]


def verify_pushed(
    reference: str, key: Path, rebuilds: int, rebuilder_keys: list[Path], attachments: Attachments
) -> VerifiedRelease:
    """Signature, statement, subject, locks, then rebuilds; the first failure raises its error kind
    (BadSignatureError, ProvenanceMismatchError, NotEnoughRebuildsError)."""
    project = Project.load()
    public = attachments.load_public(key)
    started = time.monotonic()
    attachments.verify_signature(reference, public)
    data = attachments.attested_statement(reference, public, provenance.PAYLOAD_TYPE, provenance.PREDICATE_TYPE)
    statement = provenance.Statement.parse(data, f"the attestation of {reference}")
    digest = reference.rsplit("@", 1)[1]
    if statement.digest != digest:
        raise ProvenanceMismatchError(
            f"{reference}: its provenance is the statement of another image ({statement.digest})",
            hint="the attestation was copied from another digest: sign this image again",
        )
    if problems := provenance.drift(project, statement, images_lock.ImagesLock.read().images):
        raise ProvenanceMismatchError(
            f"{reference} ({statement.node.role}): {len(problems)} input(s) are not what the current "
            "locks pin:\n  " + "\n  ".join(problems),
            hint="verify against the checkout it was built from, or rebuild and sign it from these locks",
        )
    agreeing: list[Path] = []
    if rebuilds:
        agreeing = _rebuilds(reference, statement, rebuilder_keys, attachments)
        if len(agreeing) < rebuilds:
            raise NotEnoughRebuildsError(
                f"{reference}: {len(agreeing)} independent rebuild(s) attest this digest "
                f"({', '.join(map(str, agreeing)) or 'none'}), {rebuilds} required",
                hint="run `./noxw -s repro -- TARGET --attest KEY --push REGISTRY/PREFIX` on another machine",
            )
    return VerifiedRelease(
        reference=reference,
        key=key,
        role=statement.node.role,
        inputs=len(statement.predicate.build_definition.resolved_dependencies),
        rebuilders=agreeing,
        required_rebuilds=rebuilds,
        seconds=time.monotonic() - started,
    )


def _rebuilds(
    reference: str, statement: provenance.Statement, keys: list[Path], attachments: Attachments
) -> list[Path]:
    """The rebuilder keys (each key once) with a verifying rebuild statement of this very image."""
    agreeing: dict[str, Path] = {}
    for path in keys:
        public = attachments.load_public(path)
        try:
            opened = attachments.attested_statements(
                reference, public, provenance.PAYLOAD_TYPE, provenance.REBUILD_PREDICATE_TYPE
            )
        except HpsforgeError as error:
            print(f"hpsforge: {path}: no rebuild attestation verifies ({error.message})", flush=True)
            continue
        for data in opened:
            rebuild = provenance.RebuildStatement.parse(data, f"a rebuild attestation of {reference}")
            if rebuild.digest == statement.digest and rebuild.predicate.input_sha256 == statement.node.input_sha256:
                agreeing.setdefault(attachments.key_id(public), path)
    return list(agreeing.values())


def attest_rebuilds(
    report: repro.ReproReport,
    private: PrivateKey,
    pushed_as: Callable[[images_lock.ImageRecord], str] | None,
    report_dir: Path,
    attachments: Attachments,
) -> int:
    """A signed rebuild statement per reproducible image whose rebuild is the recorded digest:
    report_dir/attestations/<role>.rebuild.dsse.json, and with `pushed_as` (record -> REPO@digest
    where it was pushed), a layer of the `.att` beside it. How many were signed."""
    recorded = images_lock.ImagesLock.read().images
    attested = 0
    for image in report.images:
        if image.verdict is not repro.Verdict.REPRODUCIBLE or not image.rebuilt or not image.inputs_sha256:
            continue
        record = recorded.get(image.role)
        if record is None or record.digest != image.rebuilt:
            continue  # only the recorded image is attested
        statement = provenance.rebuild_statement(
            image.role,
            ImageReference.parse(record.reference).repository,
            image.rebuilt,
            image.inputs_sha256,
            report.revision,
            report.from_archive,
            report.machine.model_dump(mode="json"),
        )
        envelope = attachments.sign_envelope(statement.canonical_bytes(), provenance.PAYLOAD_TYPE, private)
        files.atomic_write_text(report_dir / "attestations" / f"{image.role}.rebuild.dsse.json", envelope.decode())
        if pushed_as is not None and image.role not in (base.ROLE, rc.ROLE):
            pushed = pushed_as(record)
            attachments.put_attestation(pushed, envelope, provenance.REBUILD_PREDICATE_TYPE, replace_type=False)
            print(f"hpsforge: rebuild attested beside {pushed}", flush=True)
        attested += 1
    print(f"hpsforge: {attested} rebuild statement(s) signed in {report_dir / 'attestations'}", flush=True)
    return attested
