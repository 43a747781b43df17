"""A CycloneDX 1.5 SBOM of a target's image, derived from the locks alone.

Every Debian package of the base, every wheel of the target's pip lock, every vendor blob the
target needs and every model file of every pipeline, each with its version and sha256. The
document is deterministic: same locks, same bytes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from hpsforge import blobs, debian, pip_locks, requirements_lock, wheelhouse
from hpsforge.config import PROJECT_ROOT, ProjectConfig
from hpsforge.files import atomic_write_text, canonical_json, sha256_bytes, sha256_file
from hpsforge.pipelines import Pipeline

SPEC_VERSION = "1.5"
OUTPUT_DIR = PROJECT_ROOT / "output" / "sbom"


def _hashes(*digests: str) -> list[dict]:
    return [{"alg": "SHA-256", "content": digest} for digest in sorted(digests)]


def _debian_components(lock: debian.DebianLock, distro: str) -> list[dict]:
    return [{
        "type": "library",
        "bom-ref": f"deb:{p.name}@{p.version}:{p.architecture}",
        "name": p.name,
        "version": p.version,
        "purl": f"pkg:deb/debian/{p.name}@{quote(p.version, safe='')}?arch={p.architecture}&distro={distro}",
        "hashes": _hashes(p.sha256),
        "externalReferences": [{"type": "distribution", "url": p.url}],
    } for p in lock.packages]


def _wheel_components(target: str) -> list[dict]:
    lock = requirements_lock.read(pip_locks.lock_path(target))
    manifest = wheelhouse.read_manifest(target)
    fetched = {}
    if manifest is not None and manifest.lock_sha256 == sha256_file(pip_locks.lock_path(target)):
        # The exact files this platform installs, when a wheelhouse of this very lock exists.
        fetched = {wheelhouse.wheel_project(w.filename): w.sha256 for w in manifest.wheels}
    components = []
    for requirement in lock.requirements:
        name = requirements_lock.canonical_name(requirement.name)
        digests = [fetched[name]] if fetched.get(name) in requirement.hashes else list(requirement.hashes)
        components.append({
            "type": "library",
            "bom-ref": f"pypi:{name}@{requirement.version}",
            "name": name,
            "version": requirement.version,
            "purl": f"pkg:pypi/{name}@{requirement.version}",
            "hashes": _hashes(*digests),
        })
    return components


def _blob_components(config: ProjectConfig, target: str) -> list[dict]:
    manifest = blobs.load_manifest()
    components = []
    for name in config.target(target).blobs:
        blob = manifest.get(name)
        components.append({
            "type": "file",
            "bom-ref": f"blob:{blob.name}",
            "name": blob.file,
            "hashes": _hashes(blob.sha256),
            "licenses": [{"license": {"name": blob.license}}],
            "externalReferences": [{"type": "distribution", "url": blob.url}],
        })
    return components


def _model_components(pipelines: dict[str, Pipeline]) -> list[dict]:
    components = []
    for pipeline_name, pipeline in pipelines.items():
        for artifact in pipeline.models:
            components.append({
                "type": "machine-learning-model",
                "bom-ref": f"model:{pipeline_name}/{artifact.name}",
                "name": f"{pipeline_name}/{artifact.name}",
                "description": f"from {artifact.source.describe()}",
                "components": [{
                    "type": "file",
                    "bom-ref": f"model:{pipeline_name}/{artifact.name}/{path}",
                    "name": path,
                    "hashes": _hashes(digest),
                } for path, digest in sorted(artifact.files.items())],
            })
    return components


def document(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str) -> dict:
    config.target(target)
    components = (_debian_components(debian.DebianLock.read(debian.BASE_LOCK), f"debian-{config.base.suite}")
                  + _wheel_components(target) + _blob_components(config, target)
                  + _model_components(pipelines))
    created = datetime.fromtimestamp(config.base.source_date_epoch, tz=timezone.utc)
    body = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "hpsforge"}]},
            "component": {"type": "container", "bom-ref": f"image:{target}", "name": f"hpsforge-{target}"},
        },
        "components": components,
    }
    # A serial number derived from the content keeps the document reproducible.
    body["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, sha256_bytes(canonical_json(body).encode()))}"
    return body


def write(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str,
          output_dir: Path = OUTPUT_DIR) -> Path:
    path = output_dir / f"{target}.cdx.json"
    atomic_write_text(path, canonical_json(document(config, pipelines, target)))
    return path
