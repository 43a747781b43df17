"""`nox -s freeze -- conversions`: convert every declared model for every engine it declares, in
the converter image, and lock what each conversion wrote (lock/conversions.json). The converted
files enter the content store, so the next `images` takes them from there."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hpsforge.core.errors import ConversionError, StaleLockError
from hpsforge.core.files import sha256_file
from hpsforge.core.project import Project
from hpsforge.inputs import model_files
from hpsforge.inputs.conversions import Converter, conversion, convert_checked
from hpsforge.inputs.store import ContentStore, scratch_dir
from hpsforge.locks import pip_locks
from hpsforge.locks.conversions import (
    CONVERTERS,
    ConversionsLock,
    ConvertedFile,
    EngineConversion,
    converter_environment,
    converter_versions,
    declared,
    paddle_inputs,
)


def freeze(project: Project, converter: Converter, store: ContentStore, pending_convert_lock: str | None) -> str:
    """The text of a fresh lock/conversions.json (every conversion done, or an error and no text)."""
    lock_file = pip_locks.lock_path(pip_locks.CONVERT)
    if pending_convert_lock is not None and pending_convert_lock != lock_file.read_text(encoding="utf-8"):
        raise StaleLockError(
            f"{lock_file} changes in this freeze: the conversions are made with the written lock",
            hint="run `nox -s freeze -- convert` first, then `nox -s freeze -- conversions`",
        )
    lock_sha256, script_sha256 = converter_environment()
    locked = ConversionsLock()
    started = time.monotonic()
    wanted = declared(project.pipelines)
    for index, ((pipeline, model, engine), (artifact, _)) in enumerate(sorted(wanted.items()), start=1):
        print(f"hpsforge: conversion {index}/{len(wanted)}: {pipeline}/{model} for {engine}", flush=True)
        with tempfile.TemporaryDirectory(prefix="freeze-conversion-", dir=scratch_dir()) as tmp:
            models = Path(tmp)
            model_files.extract(pipeline, [artifact], models, store)
            stored = convert_checked(conversion(pipeline, artifact, engine), models / model, converter, None, store)
        name, _packages, options, files = CONVERTERS[engine]
        if sorted(stored) != sorted(files):
            raise ConversionError(f"{pipeline}/{model} {engine}: wrote {sorted(stored)}, not {list(files)}")
        locked.pipelines.setdefault(pipeline, {}).setdefault(model, {})[engine] = EngineConversion(
            converter=name,
            versions=converter_versions(engine),
            options=options,
            inputs=paddle_inputs(artifact),
            convert_lock_sha256=lock_sha256,
            script_sha256=script_sha256,
            files={
                basename: ConvertedFile(sha256=sha256_file(path), size=path.stat().st_size)
                for basename, path in sorted(stored.items())
            },
        )
    print(f"hpsforge: {len(wanted)} conversion(s) in {time.monotonic() - started:.1f} s", flush=True)
    return locked.canonical_text()
