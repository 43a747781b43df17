"""hpsforge.config: loading hpsforge.toml, error messages, declaration hashes, version parsing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpsforge.core.config import (
    BaseConfig,
    EngineConfig,
    ProjectConfig,
    RcConfig,
    load_config,
    version_tuple,
)
from hpsforge.core.errors import HpsforgeError

PROJECT_CONFIG = Path(__file__).resolve().parents[2] / "hpsforge.toml"


@pytest.fixture
def config_text() -> str:
    return PROJECT_CONFIG.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hpsforge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(HpsforgeError) as caught:
        load_config(path)
    return str(caught.value)


def test_valid_copy_loads(tmp_path, config_text):
    config = load_config(_write(tmp_path, config_text))
    assert isinstance(config, ProjectConfig)
    assert isinstance(config.engine, EngineConfig)
    assert isinstance(config.base, BaseConfig)
    assert isinstance(config.rc, RcConfig)
    assert config.base.packages, "base.packages must not be empty"
    assert config.engine.packages, "engine.packages must not be empty"
    assert all("==" in requirement for requirement in config.rc.requirements)
    assert isinstance(config.engine.keyring, Path)
    # The copy and the project's own file describe the same thing.
    assert config == load_config(PROJECT_CONFIG)


def test_apt_source_line(tmp_path, config_text):
    source = load_config(_write(tmp_path, config_text)).base.sources[0]
    assert source.line() == f"deb {source.uri} {source.suite} {' '.join(source.components)}"
    assert source.components == ["main"]  # the default when the TOML omits it


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    message = _error(path)
    assert str(path) in message
    assert "not found" in message


def test_malformed_toml_names_file(tmp_path, config_text):
    path = _write(tmp_path, config_text + "\n[base\n")
    message = _error(path)
    assert str(path) in message
    assert "not valid TOML" in message


def test_unknown_field(tmp_path, config_text):
    assert "[base]\n" in config_text
    path = _write(tmp_path, config_text.replace("[base]\n", "[base]\ncolour = 1\n", 1))
    message = _error(path)
    assert str(path) in message
    assert "base.colour" in message
    assert "unknown field" in message


def test_bad_package_name_is_located(tmp_path, config_text):
    packages = load_config(PROJECT_CONFIG).base.packages
    index = len(packages) - 1
    last = packages[index]
    assert f'"{last}"]' in config_text
    path = _write(tmp_path, config_text.replace(f'"{last}"]', '"Bad_Name!"]', 1))
    message = _error(path)
    assert f"base.packages.{index}" in message
    assert "Bad_Name!" in message
    assert "not well-formed" in message
    # Only the bad entry is reported.
    assert not re.search(rf"base\.packages\.(?!{index}\b)\d+", message)


def test_bad_rc_requirement_is_located(tmp_path, config_text):
    path = _write(tmp_path, config_text.replace('"pip==25.3"', '"pip>=25.3"', 1))
    message = _error(path)
    assert re.search(r"rc\.requirements\.\d+", message)
    assert "pip>=25.3" in message


@pytest.mark.parametrize("section", ["engine", "base", "rc"])
def test_missing_section_is_named(tmp_path, config_text, section):
    # Drop the section header and everything up to the next section header.
    stripped = re.sub(rf"(?ms)^\[{section}\]\n.*?(?=^\[|\Z)", "", config_text)
    assert f"[{section}]" not in stripped
    message = _error(_write(tmp_path, stripped))
    assert re.search(rf"^  {section}: Field required$", message, re.MULTILINE), message


def test_wrong_type_is_reported(tmp_path, config_text):
    path = _write(tmp_path, re.sub(r"source_date_epoch = \d+", 'source_date_epoch = "soon"', config_text))
    message = _error(path)
    assert "base.source_date_epoch" in message


def test_declaration_sha256_stable(tmp_path, config_text):
    first = load_config(_write(tmp_path, config_text))
    second = load_config(PROJECT_CONFIG)
    for name in ("engine", "base", "rc"):
        digest = getattr(first, name).declaration_sha256()
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert digest == getattr(first, name).declaration_sha256()
        assert digest == getattr(second, name).declaration_sha256()
    # Comments and layout are not part of the declaration.
    reformatted = load_config(_write(tmp_path, "# a comment\n" + config_text.replace(" = ", "=")))
    assert reformatted.base.declaration_sha256() == first.base.declaration_sha256()


def test_declaration_sha256_changes_only_with_what_a_lock_is_resolved_from(tmp_path, config_text):
    original = load_config(_write(tmp_path, config_text))
    edited_text, count = re.subn(r'"tini"\]', '"tini", "curl"]', config_text)
    assert count == 1
    edited = load_config(_write(tmp_path, edited_text))
    assert edited.base.declaration_sha256() != original.base.declaration_sha256()
    # Other sections' hashes are untouched by an edit to [base].
    assert edited.engine.declaration_sha256() == original.engine.declaration_sha256()
    assert edited.rc.declaration_sha256() == original.rc.declaration_sha256()
    # Fields no lock is resolved from (an epoch, an image name, a minimum version) leave it alone.
    epoch_text = re.sub(
        r"source_date_epoch = (\d+)", lambda m: f"source_date_epoch = {int(m.group(1)) + 1}", config_text
    )
    assert load_config(_write(tmp_path, epoch_text)).base.declaration_sha256() == original.base.declaration_sha256()
    renamed = original.rc.model_copy(update={"image": "hpsforge/other"})
    assert renamed.declaration_sha256() == original.rc.declaration_sha256()
    newer = original.engine.model_copy(update={"minimum_server_version": "27.0"})
    assert newer.declaration_sha256() == original.engine.declaration_sha256()
    repinned = original.rc.model_copy(update={"requirements": ["pip==25.3"]})
    assert repinned.declaration_sha256() != original.rc.declaration_sha256()


def test_models_are_frozen(tmp_path, config_text):
    config = load_config(_write(tmp_path, config_text))
    with pytest.raises(ValidationError):
        config.base.suite = "sid"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("26.1.5+dfsg1", (26, 1, 5)),
        ("26.0", (26, 0, 0)),
        ("v0.13.1", (0, 13, 1)),
        ("0.13.1+ds1-3", (0, 13, 1)),
        ("27", (27, 0, 0)),
    ],
)
def test_version_tuple(version, expected):
    assert version_tuple(version) == expected


def test_version_tuple_rejects_non_numeric():
    with pytest.raises(ValueError):
        version_tuple("dev")


def test_gpu_is_the_release_gpu_target_by_alias(config_text, tmp_path):
    config = load_config(_write(tmp_path, config_text))
    assert config.target_name("gpu") == "gpu-cu12"
    assert config.target_name("gpu-cu118") == "gpu-cu118"  # a target's own name means itself
    with pytest.raises(HpsforgeError, match=r"unknown target 'tpu'; .*gpu-cu118, gpu-cu12, gpu \(= gpu-cu12\)"):
        config.target_name("tpu")
    with pytest.raises(HpsforgeError, match="'gpu' stands for target 'gpu-cu12'"):
        config.target("gpu")  # code takes resolved names: an alias never becomes a role or a label


@pytest.mark.parametrize(
    "aliases, reason",
    [
        ('gpu = "gpu-cu11"', "aliases.gpu: 'gpu-cu11' is no target"),
        ('cpu = "gpu-cu12"', "aliases.cpu: 'cpu' is a target's own name"),
    ],
)
def test_an_alias_must_name_another_target(config_text, tmp_path, aliases, reason):
    assert '\ngpu = "gpu-cu12"\n' in config_text
    message = _error(_write(tmp_path, config_text.replace('\ngpu = "gpu-cu12"\n', f"\n{aliases}\n")))
    assert reason in message
