"""`nox -s repro`: rebuild a target from nothing and prove the digest is the one built before.

The proof compares three digests: the image as built normally (the "first" build), a rebuild
with no BuildKit cache and a fresh base rootfs, and the digest lock/images.lock.json recorded for
the same inputs. A mismatch writes a report naming the differing layers and files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from hpsforge import base, buildkit, graph, imagediff, rc, runtime
from hpsforge.config import PROJECT_ROOT, ProjectConfig
from hpsforge.errors import DigestMismatchError, HpsforgeError
from hpsforge.files import atomic_write_text
from hpsforge.pipelines import Pipeline

REPORT_DIR = PROJECT_ROOT / "output" / "repro"


@dataclass(frozen=True)
class ReproResult:
    target: str
    first: buildkit.ImageRecord
    rebuilt: buildkit.ImageRecord
    recorded: buildkit.ImageRecord | None
    seconds: float


def explain(first: buildkit.ImageRecord, second: buildkit.ImageRecord, report: Path) -> list[str]:
    """Write the difference report of two built images; return its lines."""
    lines = [f"first:  {first.reference} {first.digest}", f"second: {second.reference} {second.digest}", ""]
    lines += imagediff.diff_layouts(buildkit.ensure_layout(first), buildkit.ensure_layout(second))
    atomic_write_text(report, "\n".join(lines) + "\n")
    return lines


def run(config: ProjectConfig, pipelines: dict[str, Pipeline], target: str) -> ReproResult:
    config.target(target)
    role = runtime.role(target)
    recorded = buildkit.ImagesLock.read().images.get(role)  # before the first build rewrites it
    shared = graph.build_shared_images(config)
    first = runtime.build(config, pipelines, target, shared[base.ROLE], shared[rc.ROLE])
    print(f"hpsforge: rebuilding {role} from nothing (fresh rootfs, no BuildKit cache)", flush=True)
    started = time.monotonic()
    fresh_base = base.build(config, no_cache=True, record=False)
    rebuilt = runtime.build(config, pipelines, target, fresh_base, shared[rc.ROLE],
                            tag="repro", no_cache=True, record=False)
    result = ReproResult(target, first, rebuilt, recorded, time.monotonic() - started)
    problems = []
    if rebuilt.digest != first.digest:
        report = REPORT_DIR / f"{target}.txt"
        lines = explain(first, rebuilt, report)
        problems.append(f"the rebuild's digest {rebuilt.digest} differs from the first build's {first.digest}; "
                        f"report: {report}\n    " + "\n    ".join(lines[3:23]))
    if recorded is not None and recorded.input_sha256 == first.input_sha256 and recorded.digest != first.digest:
        problems.append(f"lock/images.lock.json records {recorded.digest} for these inputs, "
                        f"the build gave {first.digest}")
    if problems:
        raise DigestMismatchError(f"{role} is not reproducible:\n  - " + "\n  - ".join(problems))
    return result
