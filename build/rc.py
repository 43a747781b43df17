"""The rc image: the base plus the pinned Python tools `freeze` runs in (pip-tools and its closure).

freeze: hashin pins each declared tool with the sha256 of every published file into
        lock/rc-requirements.txt (hashin resolves nothing: the declaration is the full closure).
build:  the image installs that file with --require-hashes, the host CA reaching pip only as a
        BuildKit secret mount.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hpsforge import buildkit
from hpsforge.config import DOCKERFILES, LOCK_DIR, ProjectConfig, RcConfig
from hpsforge.errors import HpsforgeError
from hpsforge.files import canonical_json, sha256_bytes, sha256_file
from hpsforge.store import cache_root

RC_LOCK = LOCK_DIR / "rc-requirements.txt"
RC_DOCKERFILE = DOCKERFILES / "rc.Dockerfile"
IMAGE_PYTHON = "3.11"  # Debian bookworm's python3, the interpreter of every image
ROLE = "rc"
INPUT_HEADER = "# input-sha256: "


def freeze(config: RcConfig) -> str:
    """The text of a fresh rc lock: every declared tool pinned with hashin."""
    print(f"hpsforge: pinning {len(config.requirements)} rc tools with hashin", flush=True)
    hashin = Path(sys.executable).parent / "hashin"
    with tempfile.TemporaryDirectory(prefix="hpsforge-rc-") as tmp:
        draft = Path(tmp) / "rc-requirements.txt"
        draft.write_text(
            "# The rc image's Python tools, pinned with hashes by hashin. Written by `nox -s freeze`.\n"
            f"{INPUT_HEADER}{config.declaration_sha256()}\n"
        )
        command = [str(hashin), "-r", str(draft), "--python-version", IMAGE_PYTHON,
                   *sorted(config.requirements, key=str.lower)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise HpsforgeError(
                f"hashin could not pin the rc tools:\n{(result.stderr or result.stdout).strip()[-2000:]}",
                hint="check rc.requirements in hpsforge.toml names released versions",
            )
        return draft.read_text()


def locked_input_sha256(path: Path | None = None) -> str | None:
    path = path or RC_LOCK
    if not path.exists():
        return None
    match = re.search(f"^{re.escape(INPUT_HEADER)}([0-9a-f]{{64}})$", path.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def require_fresh(config: RcConfig) -> None:
    locked = locked_input_sha256()
    if locked is None:
        raise HpsforgeError(f"{RC_LOCK}: missing or without its input hash", hint="run `nox -s freeze`")
    if locked != config.declaration_sha256():
        raise HpsforgeError(
            f"{RC_LOCK} is stale: rc.requirements in hpsforge.toml changed since it was locked",
            hint="re-lock with `nox -s freeze`",
        )


def build(config: ProjectConfig, base: buildkit.ImageRecord, *, no_cache: bool = False,
          record: bool = True) -> buildkit.ImageRecord:
    require_fresh(config.rc)
    scratch = cache_root() / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rc-context-", dir=scratch) as context:
        shutil.copyfile(RC_LOCK, Path(context) / RC_LOCK.name)
        input_sha256 = sha256_bytes(canonical_json({
            "base": base.digest, "lock": sha256_file(RC_LOCK), "dockerfile": sha256_file(RC_DOCKERFILE),
        }).encode())
        return buildkit.build(
            buildkit.ImageBuild(
                role=ROLE,
                dockerfile=RC_DOCKERFILE,
                context=Path(context),
                reference=f"{config.rc.image}:{input_sha256[:12]}",
                source_date_epoch=config.base.source_date_epoch,
                input_sha256=input_sha256,
                parents=(("base", base),),
                use_ca_bundle=True,
            ),
            no_cache=no_cache,
            record=record,
        )
