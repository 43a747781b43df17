"""The rc image's own tools, pinned with hashin: each declared tool with the sha256 of every file
its release publishes (hashin resolves nothing: the declaration in [rc] is the full closure)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hpsforge.core import proc
from hpsforge.core.config import RcConfig
from hpsforge.core.settings import IMAGE_PYTHON
from hpsforge.locks.requirements_lock import header

HASHIN_TIMEOUT_S = 900  # asks PyPI once per tool; a quarter of an hour means the index is not answering


def freeze(config: RcConfig) -> str:
    """The text of a fresh rc lock: every declared tool pinned with hashin."""
    print(f"hpsforge: pinning {len(config.requirements)} rc tools with hashin", flush=True)
    return pin_with_hashin(
        "The rc image's Python tools, pinned with hashes by hashin.",
        list(config.requirements),
        config.declaration_sha256(),
        IMAGE_PYTHON,
    )


def pin_with_hashin(title: str, requirements: list[str], input_sha256: str, python_version: str) -> str:
    """A lock of exactly `requirements` (no dependency resolution), each with every file's hash."""
    hashin = Path(sys.executable).parent / "hashin"
    with tempfile.TemporaryDirectory(prefix="hpsforge-hashin-") as tmp:
        draft = Path(tmp) / "requirements.txt"
        draft.write_text(header(title, input_sha256))
        command = [
            str(hashin),
            "-r",
            str(draft),
            "--python-version",
            python_version,
            *sorted(requirements, key=str.lower),
        ]
        proc.run(
            command,
            what=f"hashin could not pin {', '.join(requirements)}",
            timeout=HASHIN_TIMEOUT_S,
            hint="check that the pinned versions are released on PyPI",
        )
        return draft.read_text()
