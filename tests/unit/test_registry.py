"""hpsforge.ship.registry without a registry: the push prefix, the pushed names, what a pull accepts.

Pushes and pulls themselves run against a real registry in tests/engine/test_registry_images.py.
"""

from __future__ import annotations

import pytest

from hpsforge.core.errors import UsageError
from hpsforge.core.reference import ImageReference
from hpsforge.locks.images_lock import ImageRecord
from hpsforge.ship import registry

DIGEST = "sha256:" + "cd" * 32


def _record(reference: str) -> ImageRecord:
    return ImageRecord(reference=reference, digest=DIGEST, input_sha256="0" * 64)


@pytest.mark.parametrize(
    "prefix, checked",
    [
        ("127.0.0.1:5000/hps", "127.0.0.1:5000/hps"),
        ("127.0.0.1:5000/hps/", "127.0.0.1:5000/hps"),
        ("registry.example.com", "registry.example.com"),
        ("localhost:5000/a/b", "localhost:5000/a/b"),
    ],
)
def test_a_prefix_names_a_registry_and_an_optional_path(prefix, checked):
    assert registry.check_prefix(prefix) == checked


@pytest.mark.parametrize(
    "prefix, says",
    [
        ("hps", "names no registry host"),
        ("hps/images", "names no registry host"),
        ("127.0.0.1:5000/Hps", "the repository path component 'Hps'"),
        ("127.0.0.1:5000/hps:v1", "the repository path component 'hps:v1'"),
        ("127.0.0.1:99999/hps", "a port outside 1-65535"),
    ],
)
def test_a_bad_prefix_is_a_usage_error_naming_it(prefix, says):
    with pytest.raises(UsageError) as caught:
        registry.check_prefix(prefix)
    assert f"--push {prefix!r}" in str(caught.value) and says in str(caught.value)


@pytest.mark.parametrize(
    "reference, prefix, pushed",
    [
        ("hpsforge/ocr-cpu:0123abcd", "127.0.0.1:5000/hps", "127.0.0.1:5000/hps/ocr-cpu:0123abcd"),
        ("hpsforge/runtime-cpu:0123abcd", "registry.example", "registry.example/runtime-cpu:0123abcd"),
        ("ocr-cpu:v1", "localhost:5000/a/b", "localhost:5000/a/b/ocr-cpu:v1"),
    ],
)
def test_the_pushed_name_keeps_the_last_component_and_the_tag(reference, prefix, pushed):
    name = registry.pushed_name(_record(reference), prefix)
    assert name == ImageReference.parse(pushed) and str(name) == pushed


def test_an_untagged_record_has_no_pushed_name():
    with pytest.raises(UsageError, match="has no tag to push it under"):
        registry.pushed_name(_record(f"hpsforge/ocr-cpu@{DIGEST}"), "127.0.0.1:5000/hps")


@pytest.mark.parametrize(
    "reference, says",
    [
        ("127.0.0.1:5000/hps/ocr-cpu:v1", "is not a reference by digest"),
        ("127.0.0.1:5000/hps/ocr-cpu", "is not a reference by digest"),
        ("127.0.0.1:5000/hps/ocr-cpu@sha256:short", "malformed reference"),
        ("127.0.0.1:5000/Hps/ocr-cpu@" + DIGEST, "the repository path component 'Hps'"),
    ],
)
def test_a_pull_takes_only_a_reference_by_digest(reference, says, monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("the engine was asked before the reference was checked")

    monkeypatch.setattr(registry.docker.image, "pull", refused)
    with pytest.raises(UsageError, match=says) as caught:
        registry.pull(reference)
    assert repr(reference) in str(caught.value)
