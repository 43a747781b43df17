"""The rc image: the base plus the pinned Python tools `freeze` runs in (pip-tools and its closure).

freeze: hashin pins each declared tool with the sha256 of every published file into
        lock/rc-requirements.txt (hashin resolves nothing: the declaration is the full closure).
build:  the image installs exactly those wheels (fetched into the store, downloaded by the base
        image's own pip when absent) with --require-hashes, --no-index and no network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hpsforge import buildkit, requirements_lock, wheelhouse
from hpsforge.config import DOCKERFILES, IMAGE_PYTHON, LOCK_DIR, ProjectConfig, RcConfig
from hpsforge.errors import HpsforgeError
from hpsforge.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.store import scratch_dir

RC_LOCK = LOCK_DIR / "rc-requirements.txt"
RC_DOCKERFILE = DOCKERFILES / "rc.Dockerfile"
ROLE = "rc"


def freeze(config: RcConfig) -> str:
    """The text of a fresh rc lock: every declared tool pinned with hashin."""
    print(f"hpsforge: pinning {len(config.requirements)} rc tools with hashin", flush=True)
    return requirements_lock.pin_with_hashin(
        "The rc image's Python tools, pinned with hashes by hashin.",
        list(config.requirements), config.declaration_sha256(), IMAGE_PYTHON,
    )


def require_fresh(config: RcConfig, lock_text: str | None = None) -> None:
    """Refuse a missing, stale or unhashed rc lock."""
    lock = requirements_lock.parse(lock_text, RC_LOCK) if lock_text else requirements_lock.read(RC_LOCK)
    problems = requirements_lock.problems(lock, config.declaration_sha256(), "nox -s freeze")
    if problems:
        raise HpsforgeError("\n".join(problems))


def build(config: ProjectConfig, base: buildkit.ImageRecord, *, lock_text: str | None = None,
          no_cache: bool = False, tag_suffix: str = "") -> buildkit.ImageRecord:
    """Build the rc image from `lock_text` (default: lock/rc-requirements.txt) on `base`, offline:
    its wheels are fetched first (downloaded in the base image only when the store lacks them)."""
    lock_text = lock_text if lock_text is not None else RC_LOCK.read_text() if RC_LOCK.exists() else None
    require_fresh(config.rc, lock_text)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix="rc-context-", dir=scratch) as context:
        lock_file = Path(context) / RC_LOCK.name
        lock_file.write_text(lock_text)
        wheels = wheelhouse.fetch(ROLE, base, lock_path=lock_file, pip=wheelhouse.BASE_PIP)
        input_sha256 = sha256_bytes(canonical_json({
            "base": base.digest, "lock": sha256_bytes(lock_text.encode()), "dockerfile": sha256_file(RC_DOCKERFILE),
        }).encode())
        return buildkit.build(
            buildkit.ImageBuild(
                role=ROLE,
                dockerfile=RC_DOCKERFILE,
                context=Path(context),
                reference=f"{config.rc.image}:{input_sha256[:12]}{tag_suffix}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=input_sha256,
                parents=(("base", base),),
                folders=(("wheelhouse", wheels),),
            ),
            no_cache=no_cache,
        )
