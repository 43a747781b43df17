"""`images -- TARGET --push REGISTRY/PREFIX [--sign KEY]`: every runtime and pipeline image pushed,
proven by digest and recorded at once; with a key, signed beside it (`.att` then `.sig`).

An image whose signing failed stays pushed and is recorded unsigned; after the last image the
session fails naming each one. The tools' images (base, rc) stay home.
"""

from __future__ import annotations

from hpsforge.core.errors import HpsforgeError
from hpsforge.images import base, converter, rc
from hpsforge.locks import images_lock
from hpsforge.ship import registry, signing


def push_and_sign(
    built: dict[str, images_lock.ImageRecord],
    prefix: str,
    statements: dict[str, bytes],
    statement_types: tuple[str, str],
    private: signing.PrivateKey | None,
) -> dict[str, images_lock.ImageRecord]:
    """`built` with each pushed image's `pushed` (and `signature`) set, each written to the images
    record as soon as it is proven. statements: role -> its provenance statement's bytes;
    statement_types: (DSSE payload type, predicate type)."""
    payload_type, predicate_type = statement_types
    released = dict(built)
    unsigned = []
    for role, image in built.items():
        if role in (base.ROLE, rc.ROLE, converter.ROLE):  # tools, never released
            continue
        released[role] = registry.push(image, prefix)
        if private is not None and released[role].pushed:
            try:
                signed = signing.sign_image(
                    released[role].pushed or "", statements[role], payload_type, predicate_type, private
                )
            except HpsforgeError as error:
                unsigned.append(f"{role}: {error.message}")
                print(f"hpsforge: {role} is pushed but NOT signed: {error.message}", flush=True)
            else:
                released[role] = released[role].model_copy(update={"signature": signed.signature})
                print(f"hpsforge: signed {signed.signature} in {signed.seconds:.2f} s", flush=True)
        images_lock.ImagesLock.read().with_record(role, released[role]).write()  # each proven push, at once
    if unsigned:
        raise HpsforgeError(
            f"{len(unsigned)} pushed image(s) are recorded unsigned:\n  " + "\n  ".join(unsigned),
            hint="fix the registry or key, then run the same `images -- ... --push ... --sign KEY` again",
        )
    return released
