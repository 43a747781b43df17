"""lock/images.lock.json: the record of every image built, by role (digest, inputs, where pushed)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from hpsforge.core.config import Model
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import atomic_write_text, canonical_json
from hpsforge.core.settings import settings

# The roles of the two images every target builds on (keys of the record, like runtime-cpu).
BASE_ROLE = "base"
RC_ROLE = "rc"


class ImageRecord(Model):
    """What one build produced, and from which inputs (and, once pushed, where it is by digest)."""

    reference: str
    digest: str
    input_sha256: str
    pushed: str | None = None
    # Once signed: REPO:sha256-<hex>.sig, the cosign-style signature beside the pushed image.
    signature: str | None = None


def images_lock_path() -> Path:
    """Where builds record their digests; HPSFORGE_IMAGES_RECORD sends them elsewhere (the test
    suite does, so no test writes the committed lock/images.lock.json)."""
    return settings().images_record


class ImagesLock(Model):
    """lock/images.lock.json: the digest of every image built, keyed by image role."""

    images: dict[str, ImageRecord] = {}

    @classmethod
    def read(cls, path: Path | None = None) -> ImagesLock:
        path = images_lock_path() if path is None else path
        if not path.exists():
            return cls()
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as error:
            raise HpsforgeError(
                f"{path}: malformed ({error.errors()[0]['msg']})",
                hint="restore it from git or delete it; the next build rewrites it",
            ) from None

    def with_record(self, role: str, record: ImageRecord) -> ImagesLock:
        return ImagesLock(images={**self.images, role: record})

    def with_records(self, records: dict[str, ImageRecord]) -> ImagesLock:
        return ImagesLock(images={**self.images, **records})

    def write(self, path: Path | None = None) -> bool:
        path = images_lock_path() if path is None else path
        return atomic_write_text(path, canonical_json(self.model_dump(mode="json", exclude_none=True)))
