"""Input archives through a real OCI registry (Debian's docker-registry on 127.0.0.1)."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from hpsforge.core.errors import HashMismatchError, InputUnavailableError, UsageError
from hpsforge.inputs.store import ContentStore
from hpsforge.ship import oci_archive
from hpsforge.ship.oci_archive import (
    FILE_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    TITLE,
)
from tests.support.archives import folder_contents, make_archive
from tests.support.registry import TEST_HTPASSWD as HTPASSWD
from tests.support.registry import LocalRegistry, RegistryUnavailable, local_registry
from tests.support.token_auth import token_server

BIG = 4_000_000


@pytest.fixture
def start_registry(tmp_path, registry_tool):
    """start_registry(**options) → a running LocalRegistry, stopped at teardown."""
    with_blocks = []

    def start(**options) -> LocalRegistry:
        block = local_registry(tmp_path / f"registry{len(with_blocks)}", **options)
        try:
            registry = block.__enter__()
        except RegistryUnavailable as error:
            pytest.fail(str(error))
        with_blocks.append(block)
        return registry

    yield start
    for block in reversed(with_blocks):
        block.__exit__(None, None, None)


@pytest.fixture
def registry(start_registry) -> LocalRegistry:
    return start_registry()


@pytest.fixture
def archive(tmp_path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "archive"
    shas = make_archive(
        folder,
        {
            "foo_1.0_amd64.deb": b"a small deb\n" * 500,
            "paddle-1.0-cp311-none-any.whl": os.urandom(BIG),
            "model.tar.gz": os.urandom(200_000),
        },
    )
    return folder, shas


def _get(url: str, accept: str | None = None) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers.get("Content-Type", "")


def test_push_then_pull_gives_the_same_folder_and_a_second_push_sends_nothing(registry, archive, tmp_path, capsys):
    folder, _ = archive
    reference = registry.reference("hpsforge/inputs", "2026-12-01")
    digest = oci_archive.push(folder, reference)
    first = capsys.readouterr().out
    assert "pushing 3 files (4.2 MB)" in first and "3 files uploaded (4.2 MB), 0 files already" in first
    assert f"({digest}) in " in first and digest.startswith("sha256:")

    assert oci_archive.pull(reference, tmp_path / "pulled") == digest
    assert folder_contents(tmp_path / "pulled") == folder_contents(folder)
    assert "3 files downloaded (4.2 MB)" in capsys.readouterr().out
    by_digest = f"{registry.host}/hpsforge/inputs@{digest}"
    assert oci_archive.pull(by_digest, tmp_path / "by-digest") == digest
    assert folder_contents(tmp_path / "by-digest") == folder_contents(folder)

    started = time.monotonic()
    assert oci_archive.push(folder, reference) == digest  # same folder, same manifest
    elapsed = time.monotonic() - started
    second = capsys.readouterr().out
    assert "0 files uploaded (0.0 MB), 3 files already in the registry (4.2 MB)" in second
    assert elapsed < 5, f"a push with nothing to send took {elapsed:.1f} s"


def test_the_registry_holds_an_hpsforge_artifact(registry, archive):
    folder, shas = archive
    reference = registry.reference("hpsforge/inputs", "typed")
    digest = oci_archive.push(folder, reference)
    raw, content_type = _get(f"{registry.url}/v2/hpsforge/inputs/manifests/typed", accept=MANIFEST_MEDIA_TYPE)
    assert content_type == MANIFEST_MEDIA_TYPE and f"sha256:{__import__('hashlib').sha256(raw).hexdigest()}" == digest
    manifest = json.loads(raw)
    assert manifest["config"]["mediaType"] == INDEX_MEDIA_TYPE
    assert {layer["mediaType"] for layer in manifest["layers"]} == {FILE_MEDIA_TYPE}
    assert sorted(layer["annotations"][TITLE] for layer in manifest["layers"]) == sorted(
        f"files/{sha}" for sha in set(shas.values())
    )
    config, _ = _get(f"{registry.url}/v2/hpsforge/inputs/blobs/{manifest['config']['digest']}")
    assert config == (folder / "index.json").read_bytes()


def test_a_pull_takes_what_the_content_store_holds(registry, archive, tmp_path, capsys):
    folder, shas = archive
    reference = registry.reference("hpsforge/inputs", "stored")
    oci_archive.push(folder, reference)
    store = ContentStore(tmp_path / "cache")
    big = shas["paddle-1.0-cp311-none-any.whl"]
    store.path(big).parent.mkdir(parents=True)
    store.path(big).write_bytes((folder / "files" / big).read_bytes())
    damaged = shas["model.tar.gz"]  # a damaged stored copy is not used
    store.path(damaged).parent.mkdir(parents=True)
    store.path(damaged).write_bytes(b"not the model")
    capsys.readouterr()
    oci_archive.pull(reference, tmp_path / "pulled", store=store)
    assert folder_contents(tmp_path / "pulled") == folder_contents(folder)
    assert "2 files downloaded (0.2 MB), 1 file from the content store (4.0 MB)" in capsys.readouterr().out


def test_a_stopped_registry_is_named_with_the_reference(registry, archive, tmp_path):
    folder, _ = archive
    reference = registry.reference("hpsforge/inputs", "down")
    registry.stop()
    for action in (
        lambda: oci_archive.push(folder, reference),
        lambda: oci_archive.pull(reference, tmp_path / "pulled"),
    ):
        started = time.monotonic()
        with pytest.raises(InputUnavailableError, match=f"{reference}: the registry at {registry.url} does not answer"):
            action()
        assert time.monotonic() - started < 5
    assert not (tmp_path / "pulled").exists()


def test_a_missing_tag_is_named(registry, tmp_path):
    reference = registry.reference("hpsforge/inputs", "never-pushed")
    with pytest.raises(InputUnavailableError, match=r"has no such archive \(HTTP 404: .*MANIFEST_UNKNOWN|NAME_UNKNOWN"):
        oci_archive.pull(reference, tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists()


def test_an_ordinary_image_is_not_an_archive(registry, tmp_path):
    from python_on_whales import docker

    context = tmp_path / "context"
    context.mkdir()
    (context / "hello.txt").write_text("hello\n")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /\n")
    reference = registry.reference("other/image", "tiny")
    docker.buildx.build(context, output={"type": "registry", "name": reference}, provenance=False)
    with pytest.raises(UsageError, match=f"{reference} is a Docker image .* not an hpsforge archive") as raised:
        oci_archive.pull(reference, tmp_path / "pulled")
    assert raised.value.exit_code == 2
    assert not (tmp_path / "pulled").exists()


def test_another_oci_artifact_is_not_an_archive(registry, tmp_path, monkeypatch):
    import oras.provider

    (tmp_path / "notes.txt").write_text("not an archive\n")
    monkeypatch.chdir(tmp_path)
    reference = registry.reference("other/artifact", "v1")
    oras.provider.Registry(insecure=True).push(reference, files=["notes.txt"], quiet=True)
    with pytest.raises(UsageError, match="is an OCI artifact of type application/vnd.unknown.config.v1"):
        oci_archive.pull(reference, tmp_path / "pulled")


def test_a_blob_damaged_in_the_registry_fails_the_pull_and_leaves_nothing(registry, archive, tmp_path):
    folder, shas = archive
    reference = registry.reference("hpsforge/inputs", "damaged")
    oci_archive.push(folder, reference)
    big = shas["paddle-1.0-cp311-none-any.whl"]
    stored = registry.blob_data(big)
    data = bytearray(stored.read_bytes())
    data[BIG // 2] ^= 0xFF  # same size, one byte off
    stored.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError) as raised:
        oci_archive.pull(reference, tmp_path / "pulled")
    message = str(raised.value)
    assert reference in message and f"files/{big} (paddle-1.0-cp311-none-any.whl)" in message
    assert "does not match its digest" in message and raised.value.exit_code == 5
    assert not (tmp_path / "pulled").exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".pulled")]  # no temp sibling left


def test_credentials_come_from_docker_config_only(start_registry, archive, tmp_path, monkeypatch):
    registry = start_registry(htpasswd=HTPASSWD)
    folder, _ = archive
    reference = registry.reference("hpsforge/inputs", "private")
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    # Neither oras' variables nor ~/.netrc may be used.
    monkeypatch.setenv("ORAS_USER", "archive-user")
    monkeypatch.setenv("ORAS_PASS", "archive-secret")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    (tmp_path / "netrc").write_text("machine 127.0.0.1 login archive-user password archive-secret\n")
    with pytest.raises(InputUnavailableError, match=r"refused to .*\(HTTP 401\)") as raised:
        oci_archive.push(folder, reference)  # its first request is a HEAD: a status, no text
    assert raised.value.hint.startswith(f"log in with `docker login {registry.host}`")
    with pytest.raises(
        InputUnavailableError,
        match=r"refused to send the manifest \(HTTP 401: UNAUTHORIZED: "
        r"authentication required",
    ) as raised:
        oci_archive.pull(reference, tmp_path / "pulled")
    assert raised.value.hint.startswith(f"log in with `docker login {registry.host}`")

    # A credential helper, as `docker login` with a credsStore leaves it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-hpsforgetest"
    helper.write_text(
        "#!/bin/sh\nread host\n"
        f'[ "$host" = {registry.host} ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        'echo \'{"Username": "archive-user", "Secret": "archive-secret"}\'\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (config_dir / "config.json").write_text(json.dumps({"auths": {registry.host: {}}, "credsStore": "hpsforgetest"}))
    digest = oci_archive.push(folder, reference)
    assert oci_archive.pull(reference, tmp_path / "pulled") == digest
    assert folder_contents(tmp_path / "pulled") == folder_contents(folder)

    # The config file's own `auths`, as `docker login` without a store writes it.
    secret = base64.b64encode(b"archive-user:archive-secret").decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
    assert oci_archive.pull(reference, tmp_path / "again") == digest
    wrong = base64.b64encode(b"archive-user:wrong").decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": wrong}}}))
    with pytest.raises(InputUnavailableError, match="HTTP 401"):
        oci_archive.pull(reference, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_bearer_tokens_from_the_realm_with_docker_credentials(start_registry, archive, tmp_path, monkeypatch):
    """The Docker Hub / GHCR flow: the token a HEAD earns (pull) is not enough to push, so the push
    asks the realm again for the POST's scope; anonymous users may pull but not push."""
    folder, _ = archive
    with token_server(tmp_path / "tokens", {"archive-user": "archive-secret"}) as tokens:
        registry = start_registry(auth=tokens.registry_auth())
        reference = registry.reference("hpsforge/inputs", "tokens")
        config_dir = tmp_path / "docker-config"
        config_dir.mkdir()
        monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))

        with pytest.raises(InputUnavailableError, match=r"refused to start the upload of .*\(HTTP 401: UNAUTHORIZED"):
            oci_archive.push(folder, reference)  # anonymous: pull tokens only
        assert {user for user, _ in tokens.issued} == {""}

        secret = base64.b64encode(b"archive-user:archive-secret").decode()
        (config_dir / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
        tokens.issued.clear()
        digest = oci_archive.push(folder, reference)
        # oras-py joins a scope's actions in set order (the hash seed's): compare them as sets.
        scopes = [
            (name, frozenset(actions.split(",")))
            for user, scope in tokens.issued
            if user == "archive-user"
            for name, _, actions in [scope.rpartition(":")]
        ]
        assert ("repository:hpsforge/inputs", {"pull"}) in scopes
        assert ("repository:hpsforge/inputs", {"pull", "push"}) in scopes

        (config_dir / "config.json").unlink()  # anonymous pulls are allowed here
        assert oci_archive.pull(reference, tmp_path / "pulled") == digest
        assert folder_contents(tmp_path / "pulled") == folder_contents(folder)
