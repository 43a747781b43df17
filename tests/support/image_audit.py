"""Image audits for the tests: no layer and no history entry of an image holds a secret."""

from __future__ import annotations

import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import docker

from hpsforge.inputs.store import scratch_dir


@dataclass(frozen=True)
class Leak:
    """Where a secret was found: a layer file, or the image's history/config."""

    where: str
    secret: str

    def __str__(self) -> str:
        return f"{self.secret} found in {self.where}"


def pem_certificates(bundle: bytes) -> set[bytes]:
    """The individual PEM blocks of a CA bundle."""
    blocks, current = set(), []
    for line in bundle.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN CERTIFICATE-----"):
            current = [line]
        elif current:
            current.append(line)
            if line.startswith(b"-----END CERTIFICATE-----"):
                blocks.add(b"".join(current).strip())
                current = []
    return blocks


def _blob(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def scan_image(reference: str, secrets: dict[str, bytes]) -> list[Leak]:
    """Look for each named secret byte-string in every file of every layer, and in the config."""
    needles = {name: value for name, value in secrets.items() if value}
    leaks: list[Leak] = []
    with tempfile.TemporaryDirectory(prefix="audit-", dir=scratch_dir()) as tmp:
        archive = Path(tmp) / "image.tar"
        docker.image.save(reference, output=archive)
        with tarfile.open(archive) as image:
            blobs = {m.name: m for m in image.getmembers() if m.name.startswith("blobs/sha256/")}
            index = json.load(image.extractfile("index.json"))
            manifest = json.load(image.extractfile(_blob(index["manifests"][0]["digest"])))
            config = image.extractfile(_blob(manifest["config"]["digest"])).read()
            for name, value in needles.items():
                if value in config:
                    leaks.append(Leak(f"the image config/history of {reference}", name))
            for layer in manifest["layers"]:
                member = blobs[_blob(layer["digest"])]
                with tarfile.open(fileobj=image.extractfile(member), mode="r:*") as files:
                    for entry in files:
                        if not entry.isfile():
                            continue
                        content = files.extractfile(entry).read()
                        for name, value in needles.items():
                            if value in content:
                                leaks.append(Leak(f"layer {layer['digest'][:19]} file /{entry.name}", name))
    return leaks
