"""The rc image: the base plus the pinned Python tools `freeze` runs in (pip-tools and its closure).

It installs exactly the wheels of lock/rc-requirements.txt (pinned by freeze/rc_tools.py; fetched
into the store, downloaded by the base image's own pip when absent) with --require-hashes,
--no-index and no network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hpsforge.core.config import ProjectConfig, RcConfig
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.core.settings import settings
from hpsforge.images import buildkit
from hpsforge.images.containers import BASE_PIP, pip_download
from hpsforge.inputs import wheelhouse
from hpsforge.inputs.store import scratch_dir
from hpsforge.locks import requirements_lock
from hpsforge.locks.images_lock import RC_ROLE, ImageRecord
from hpsforge.locks.pip_locks import rc_lock_path

ROLE = RC_ROLE


def require_fresh(config: RcConfig, lock_text: str | None = None) -> None:
    """Refuse a missing, stale or unhashed rc lock."""
    lock_path = rc_lock_path()
    lock = requirements_lock.parse(lock_text, lock_path) if lock_text else requirements_lock.read(lock_path)
    problems = requirements_lock.problems(lock, config.declaration_sha256(), "nox -s freeze")
    if problems:
        raise HpsforgeError("\n".join(problems))


def build(
    config: ProjectConfig,
    base: ImageRecord,
    *,
    lock_text: str | None = None,
    no_cache: bool = False,
    tag_suffix: str = "",
    backend: buildkit.Backend = buildkit.Backend(),
) -> ImageRecord:
    """Build the rc image from `lock_text` (default: lock/rc-requirements.txt) on `base`, offline:
    its wheels are fetched first (downloaded in the base image only when the store lacks them)."""
    lock_path, dockerfile = rc_lock_path(), settings().dockerfiles / "rc.Dockerfile"
    if lock_text is None:
        require_fresh(config.rc)  # refuses a missing lock
        lock_text = lock_path.read_text()
    else:
        require_fresh(config.rc, lock_text)
    scratch = scratch_dir()
    with tempfile.TemporaryDirectory(prefix="rc-context-", dir=scratch) as context:
        lock_file = Path(context) / lock_path.name
        lock_file.write_text(lock_text)
        wheels = wheelhouse.fetch(ROLE, pip_download(base, BASE_PIP), lock_path=lock_file, where=base.reference)
        input_sha256 = sha256_bytes(
            canonical_json(
                {
                    "base": base.digest,
                    "lock": sha256_bytes(lock_text.encode()),
                    "dockerfile": sha256_file(dockerfile),
                }
            ).encode()
        )
        return buildkit.build(
            buildkit.ImageBuild(
                role=ROLE,
                dockerfile=dockerfile,
                context=Path(context),
                reference=f"{config.rc.image}:{input_sha256[:12]}{tag_suffix}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=input_sha256,
                parents=(("base", base),),
                folders=(("wheelhouse", wheels),),
            ),
            no_cache=no_cache,
            backend=backend,
        )
