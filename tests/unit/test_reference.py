"""hpsforge.core.reference: one grammar for image references (distribution's, sha256 digests)."""

from __future__ import annotations

import dataclasses

import pytest

from hpsforge.core.errors import UsageError
from hpsforge.core.reference import ImageReference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, registry, repository, tag, digest",
    [
        ("ocr", None, "ocr", None, None),
        ("hpsforge/ocr-cpu:36e33bf2afd4", None, "hpsforge/ocr-cpu", "36e33bf2afd4", None),
        (f"ocr__cpu@{DIGEST}", None, "ocr__cpu", None, DIGEST),
        (f"hps/ocr-cpu:v1@{DIGEST}", None, "hps/ocr-cpu", "v1", DIGEST),
        ("hps/a.b-c---d__e_f", None, "hps/a.b-c---d__e_f", None, None),
        ("a.b/c", "a.b", "c", None, None),  # a '.' in the first part makes it a host
        ("localhost/inputs:v1", "localhost", "inputs", "v1", None),
        ("localhost:5000/inputs", "localhost:5000", "inputs", None, None),
        ("127.0.0.1:5000/hpsforge/inputs:2026-12-01", "127.0.0.1:5000", "hpsforge/inputs", "2026-12-01", None),
        ("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", None),
        ("[fe80::1]/a", "[fe80::1]", "a", None, None),
        (f"registry.example:5000/hps/ocr-cpu@{DIGEST}", "registry.example:5000", "hps/ocr-cpu", None, DIGEST),
        ("Registry.Example.COM/team/x:Tag_1.0-rc", "Registry.Example.COM", "team/x", "Tag_1.0-rc", None),
        ("MyHost/x", "MyHost", "x", None, None),  # an upper-case first part is a host, as for Docker
        ("docker.io/library/debian:bookworm", "docker.io", "library/debian", "bookworm", None),
        ("127.0.0.1:5000", None, "127.0.0.1", "5000", None),  # no '/': a repository and a tag
        ("x:_", None, "x", "_", None),
        ("x:" + "t" * 128, None, "x", "t" * 128, None),
    ],
)
def test_valid_references_parse_and_read_back(text, registry, repository, tag, digest):
    reference = ImageReference.parse(text)
    parts = (reference.registry, reference.repository, reference.tag, reference.digest)
    assert parts == (registry, repository, tag, digest)
    assert str(reference) == text
    assert ImageReference.parse(str(reference)) == reference
    assert reference.name == (f"{registry}/{repository}" if registry else repository)


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "it is empty"),
        (f"hps/ocr@{DIGEST} --privileged", "white space"),
        ("hps/ocr:v1\n", "white space"),
        ("hps/ocr@sha256:" + "ab" * 31, "the digest 'sha256:" + "ab" * 31 + "' is not sha256: and 64 lower-case"),
        ("hps/ocr@sha256:" + "AB" * 32, "lower-case hexadecimal"),
        ("hps/ocr@sha512:" + "ab" * 64, "the digest 'sha512:"),
        ("hps/ocr@", "the digest ''"),
        (f"hps/ocr@{DIGEST}@{DIGEST}", "the digest"),
        ("hps/ocr:bad tag", "white space"),
        ("hps/ocr:", "the tag ''"),
        ("hps/ocr:.v1", "the tag '.v1'"),
        ("hps/ocr:-v1", "the tag '-v1'"),
        ("hps/ocr:v1+x", "the tag 'v1+x'"),
        ("hps/ocr:" + "t" * 129, "is not 1 to 128 letters"),
        ("hps/ocr:é", "the tag 'é'"),
        ("registry.example/Hps/ocr", "the repository path component 'Hps'"),
        ("OCR", "the repository path component 'OCR'"),
        ("hps/ocr-", "the repository path component 'ocr-'"),
        ("hps/_ocr", "the repository path component '_ocr'"),
        ("hps/o___cr", "the repository path component 'o___cr'"),
        ("hps//ocr", "an empty path component"),
        ("hps/ocr/", "an empty path component"),
        ("/ocr", "an empty path component"),
        ("localhost/", "it names no repository"),
        (f"@{DIGEST}", "it names no repository"),
        ("-bad-.example/x", "the registry '-bad-.example' is not HOST[:PORT]"),
        ("registry..example/x", "the registry 'registry..example'"),
        ("registry.example:/x", "the registry 'registry.example:'"),
        ("registry.example:123456/x", "the registry 'registry.example:123456'"),
        ("registry.example:0/x", "a port outside 1-65535"),
        ("registry.example:65536/x", "a port outside 1-65535"),
        ("[::g]:5000/x", "the registry '[::g]:5000' is not HOST[:PORT]"),
        ("[1.2.3.4]/x", "no valid IPv6 address"),
        ("a/" + "b" * 254, "its name is 256 characters long, more than 255"),
    ],
)
def test_malformed_references_say_what_is_wrong(text, says):
    with pytest.raises(UsageError) as caught:
        ImageReference.parse(text)
    message = str(caught.value)
    assert message.startswith(f"malformed reference {text!r}: ") and says in message
    assert caught.value.exit_code == 2 and "[HOST[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST]" in caught.value.hint


def test_the_longest_name_is_accepted():
    assert ImageReference.parse("a/" + "b" * 253).repository == "a/" + "b" * 253


def test_built_from_parts_and_replaced():
    reference = ImageReference(registry="127.0.0.1:5000", repository="hps/ocr-cpu", tag="v1")
    assert str(reference) == "127.0.0.1:5000/hps/ocr-cpu:v1"
    by_digest = dataclasses.replace(reference, tag=None, digest=DIGEST)
    assert str(by_digest) == f"127.0.0.1:5000/hps/ocr-cpu@{DIGEST}" and by_digest.name == "127.0.0.1:5000/hps/ocr-cpu"
    assert ImageReference(repository="ocr") == ImageReference.parse("ocr")
    with pytest.raises(dataclasses.FrozenInstanceError):
        reference.tag = "v2"  # type: ignore[misc]


@pytest.mark.parametrize(
    "parts, says",
    [
        ({"repository": "Hps"}, "the repository path component 'Hps'"),
        ({"repository": "x", "tag": ""}, "the tag ''"),
        ({"repository": "x", "digest": "sha256:short"}, "the digest 'sha256:short'"),
        ({"repository": "x", "registry": "bad host"}, "white space"),
        # Text that would read back as other parts: a repository whose first part looks like a host.
        ({"repository": "localhost/x"}, "it would read back as other parts"),
        ({"repository": "x", "registry": ""}, "it would read back as other parts"),
        ({"repository": "x", "registry": "hps"}, "it would read back as other parts"),
    ],
)
def test_parts_that_make_no_valid_reference_are_refused(parts, says):
    with pytest.raises(UsageError, match="malformed reference") as caught:
        ImageReference(**parts)
    assert says in str(caught.value)
