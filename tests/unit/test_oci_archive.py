"""hpsforge.oci_archive without a registry process: references, credentials, folder and manifest checks.

The transfers themselves run against a real registry in tests/engine/test_oci_archive.py.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path

import pytest

from hpsforge.core.errors import (
    HashMismatchError,
    HpsforgeError,
    InputUnavailableError,
    UsageError,
)
from hpsforge.ship import oci_archive
from hpsforge.ship.oci_archive import (
    FILE_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    TITLE,
    docker_credentials,
    parse_index,
    parse_reference,
)
from tests.support.archives import make_archive


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def archive(tmp_path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "archive"
    shas = make_archive(
        folder, {"foo_1.0_amd64.deb": b"a deb\n" * 100, "bar-1.0-py3-none-any.whl": b"a wheel", "empty.txt": b""}
    )
    return folder, shas


# references


@pytest.mark.parametrize(
    "text, host, repository, tag, digest, plain_http",
    [
        ("127.0.0.1:5000/hpsforge/inputs:2026-12-01", "127.0.0.1:5000", "hpsforge/inputs", "2026-12-01", None, True),
        ("localhost/inputs:v1", "localhost", "inputs", "v1", None, True),
        ("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", None, True),
        (
            "registry.example.com/team/hpsforge.inputs:x_1@sha256:" + "a" * 64,
            "registry.example.com",
            "team/hpsforge.inputs",
            "x_1",
            "sha256:" + "a" * 64,
            False,
        ),
        (
            "registry.example.com:8443/in__puts--x@sha256:" + "b" * 64,
            "registry.example.com:8443",
            "in__puts--x",
            None,
            "sha256:" + "b" * 64,
            False,
        ),
    ],
)
def test_references_that_parse(text, host, repository, tag, digest, plain_http):
    ref = parse_reference(text, push=False)
    assert (ref.host, ref.repository, ref.tag, ref.digest, ref.plain_http) == (
        host,
        repository,
        tag,
        digest,
        plain_http,
    )
    assert ref.base_url.startswith("http://" if plain_http else "https://")


def test_docker_hub_is_reached_at_its_api_host():
    ref = parse_reference("docker.io/team/inputs:v1", push=True)
    assert ref.base_url == "https://registry-1.docker.io" and ref.host == "docker.io"


@pytest.mark.parametrize(
    "text, push, says",
    [
        ("inputs:t1", True, "malformed reference"),
        ("hpsforge/inputs:t1", True, "names no registry host"),
        ("127.0.0.1:5000/Hpsforge/inputs:t1", True, "malformed reference"),
        ("127.0.0.1:5000/hpsforge/inputs:bad tag", True, "malformed reference"),
        ("127.0.0.1:5000/hpsforge/inputs:" + "t" * 129, True, "malformed reference"),
        ("127.0.0.1:5000/hpsforge/inputs@sha256:" + "a" * 63, False, "malformed reference"),
        ("127.0.0.1:5000/hpsforge/inputs", True, "a push needs a tag"),
        ("127.0.0.1:5000/hpsforge/inputs:t@sha256:" + "a" * 64, True, "a push needs a tag and no digest"),
        ("127.0.0.1:5000/hpsforge/inputs", False, "names no tag or digest"),
    ],
)
def test_malformed_references_are_usage_errors_naming_them(text, push, says):
    with pytest.raises(UsageError, match=says) as raised:
        parse_reference(text, push=push)
    assert repr(text) in str(raised.value) and raised.value.exit_code == 2 and raised.value.hint


# the archive folder, checked before the registry is contacted (nothing listens on the port)


def test_push_refuses_a_folder_without_index(tmp_path):
    (tmp_path / "files").mkdir()
    with pytest.raises(UsageError, match="has no index.json"):
        oci_archive.push(tmp_path, f"127.0.0.1:{_unused_port()}/x/inputs:t")


def test_push_refuses_an_index_of_another_format(archive):
    folder, _ = archive
    index = json.loads((folder / "index.json").read_text())
    index["format"] = "hpsforge-archive/2"
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(UsageError, match=r"not an hpsforge archive index \(hpsforge-archive/1\): format"):
        oci_archive.push(folder, f"127.0.0.1:{_unused_port()}/x/inputs:t")


def test_push_refuses_a_missing_file_naming_it(archive):
    folder, shas = archive
    (folder / "files" / shas["foo_1.0_amd64.deb"]).unlink()
    with pytest.raises(InputUnavailableError, match=rf"files/{shas['foo_1.0_amd64.deb']} \(foo_1.0_amd64.deb\)"):
        oci_archive.push(folder, f"127.0.0.1:{_unused_port()}/x/inputs:t")


def test_push_refuses_a_file_the_index_does_not_list(archive):
    folder, _ = archive
    (folder / "files" / ("c" * 64)).write_bytes(b"stray")
    with pytest.raises(UsageError, match=f"does not list: files/{'c' * 64}"):
        oci_archive.push(folder, f"127.0.0.1:{_unused_port()}/x/inputs:t")


@pytest.mark.parametrize("damage", [b"a DEB\n" * 100, b"a deb\n" * 99])
def test_push_refuses_a_file_whose_bytes_changed(archive, damage):
    folder, shas = archive
    (folder / "files" / shas["foo_1.0_amd64.deb"]).write_bytes(damage)
    with pytest.raises(HashMismatchError, match=r"\(foo_1.0_amd64.deb\) does not match index.json") as raised:
        oci_archive.push(folder, f"127.0.0.1:{_unused_port()}/x/inputs:t")
    assert raised.value.exit_code == 5


def test_pull_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "kept.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not an empty folder"):
        oci_archive.pull(f"127.0.0.1:{_unused_port()}/x/inputs:t", tmp_path)
    assert (tmp_path / "kept.txt").read_text() == "mine"


def test_a_registry_that_does_not_answer_fails_at_once_naming_reference_and_address(tmp_path):
    """No retries: oras-py's own request loop would retry for about two minutes."""
    reference = f"127.0.0.1:{_unused_port()}/hpsforge/inputs:t"
    started = time.monotonic()
    with pytest.raises(InputUnavailableError) as raised:
        oci_archive.pull(reference, tmp_path / "pulled")
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert reference in message and f"http://{reference.split('/')[0]} does not answer (Connection refused)" in message
    assert "start the registry" in message and raised.value.exit_code == 4
    assert not (tmp_path / "pulled").exists() and list(tmp_path.iterdir()) == []


# the manifest


def test_the_manifest_lists_index_as_config_and_each_file_once_as_a_titled_layer(archive):
    folder, shas = archive
    index_bytes = (folder / "index.json").read_bytes()
    files = parse_index(index_bytes, "index.json").files()
    data = oci_archive._manifest(index_bytes, files)
    assert data == oci_archive._manifest(index_bytes, files)  # same folder, same digest
    manifest = json.loads(data)
    assert manifest["mediaType"] == MANIFEST_MEDIA_TYPE and manifest["config"]["mediaType"] == INDEX_MEDIA_TYPE
    assert manifest["config"]["size"] == len(index_bytes)
    assert [(layer["mediaType"], layer["digest"], layer["annotations"][TITLE]) for layer in manifest["layers"]] == [
        (FILE_MEDIA_TYPE, f"sha256:{sha}", f"files/{sha}") for sha in shas.values()
    ]


def _ref():
    return parse_reference("127.0.0.1:5000/other/thing:v1", push=False)


def _descriptor(media_type: str, fill: str = "a", title: str | None = None) -> dict:
    layer = {"mediaType": media_type, "digest": "sha256:" + fill * 64, "size": 3}
    if title:
        layer["annotations"] = {TITLE: title}
    return layer


@pytest.mark.parametrize(
    "manifest, content_type, says",
    [
        (
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": _descriptor("application/vnd.docker.container.image.v1+json"),
                "layers": [],
            },
            "",
            r"is a Docker image \(application/vnd.docker.distribution.manifest.v2\+json\)",
        ),
        ({"schemaVersion": 2, "manifests": []}, "application/vnd.oci.image.index.v1+json", "is an OCI image index"),
        (
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": _descriptor("application/vnd.oci.image.config.v1+json"),
                "layers": [],
            },
            "",
            r"is an OCI container image \(config application/vnd.oci.image.config.v1\+json\)",
        ),
        (
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "artifactType": "application/vnd.cncf.helm.chart",
                "config": _descriptor("application/vnd.oci.empty.v1+json"),
                "layers": [],
            },
            "",
            "is an OCI artifact of type application/vnd.cncf.helm.chart",
        ),
        (
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": _descriptor(INDEX_MEDIA_TYPE),
                "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", "b", "files/" + "b" * 64)],
            },
            "",
            "layer 1 .* is not an archive file",
        ),
        (
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": _descriptor(INDEX_MEDIA_TYPE),
                "layers": [_descriptor(FILE_MEDIA_TYPE, "b", "../../etc/passwd")],
            },
            "",
            "layer 1 .* is not an archive file",
        ),
    ],
)
def test_what_is_not_an_archive_is_named(manifest, content_type, says):
    with pytest.raises(UsageError, match=says) as raised:
        oci_archive._archive_manifest(_ref(), json.dumps(manifest).encode(), content_type)
    assert "127.0.0.1:5000/other/thing:v1" in str(raised.value)


def test_manifest_and_index_must_list_the_same_files(archive):
    folder, shas = archive
    index_bytes = (folder / "index.json").read_bytes()
    index = parse_index(index_bytes, "index.json")
    manifest = oci_archive._archive_manifest(_ref(), oci_archive._manifest(index_bytes, index.files()), "")
    oci_archive._check_against_index(_ref(), manifest, index)
    shorter = manifest.model_copy(update={"layers": manifest.layers[1:]})
    with pytest.raises(HashMismatchError, match=r"\(foo_1.0_amd64.deb\) has no layer"):
        oci_archive._check_against_index(_ref(), shorter, index)
    resized = manifest.model_copy(
        update={"layers": [manifest.layers[0].model_copy(update={"size": 1}), *manifest.layers[1:]]}
    )
    with pytest.raises(HashMismatchError, match="is 1 bytes in the manifest, 600 in index.json"):
        oci_archive._check_against_index(_ref(), resized, index)


# credentials: Docker's configuration only


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    # Environment variables that other tools read credentials from must make no difference.
    monkeypatch.setenv("ORAS_USER", "env-user")
    monkeypatch.setenv("ORAS_PASS", "env-pass")

    def write(config: dict) -> None:
        (directory / "config.json").write_text(json.dumps(config))

    return write


@pytest.fixture
def helper_bin(tmp_path, monkeypatch):
    """A docker-credential-fake on PATH that knows reg.example:5000 only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-fake"
    script.write_text(
        "#!/bin/sh\nread host\n"
        'if [ "$host" = reg.example:5000 ]; then\n'
        '  echo \'{"ServerURL": "reg.example:5000", "Username": "helper-user", "Secret": "s3cret"}\'\n'
        'elif [ "$host" = token.example ]; then\n'
        '  echo \'{"ServerURL": "token.example", "Username": "<token>", "Secret": "refresh"}\'\n'
        'else\n  echo "credentials not found in native keychain"; exit 1\nfi\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def test_no_docker_config_means_no_credentials(docker_config):
    assert docker_credentials("reg.example:5000") is None


def test_credentials_stored_in_the_config_file(docker_config):
    docker_config(
        {
            "auths": {
                "reg.example:5000": {"auth": base64.b64encode(b"file-user:pa:ss").decode()},
                "https://other.example/v1/": {"auth": base64.b64encode(b"other:pw").decode()},
            }
        }
    )
    assert docker_credentials("reg.example:5000") == ("file-user", "pa:ss")
    assert docker_credentials("other.example") == ("other", "pw")
    assert docker_credentials("unknown.example") is None


def test_home_docker_config_without_docker_config_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"reg.example:5000": {"auth": base64.b64encode(b"home:pw").decode()}}})
    )
    assert docker_credentials("reg.example:5000") == ("home", "pw")


def test_credential_helpers_are_asked_first(docker_config, helper_bin):
    inline = {"auth": base64.b64encode(b"file-user:pw").decode()}
    docker_config({"credHelpers": {"reg.example:5000": "fake"}, "auths": {"reg.example:5000": inline}})
    assert docker_credentials("reg.example:5000") == ("helper-user", "s3cret")
    docker_config({"credsStore": "fake", "auths": {"reg.example:5000": {}, "elsewhere.example": inline}})
    assert docker_credentials("reg.example:5000") == ("helper-user", "s3cret")
    assert docker_credentials("elsewhere.example") is None  # the store is asked, as by the Docker CLI


def test_a_missing_helper_is_named(docker_config, helper_bin):
    docker_config({"credsStore": "pass"})
    with pytest.raises(
        HpsforgeError, match="names the credential helper 'pass', but docker-credential-pass is not installed"
    ):
        docker_credentials("reg.example:5000")


def test_identity_tokens_are_refused_clearly(docker_config, helper_bin):
    docker_config({"credsStore": "fake"})
    with pytest.raises(HpsforgeError, match="identity token") as raised:
        docker_credentials("token.example")
    assert "docker login -u USER token.example" in raised.value.hint
    docker_config({"auths": {"token.example": {"identitytoken": "refresh"}}})
    with pytest.raises(HpsforgeError, match="identity token"):
        docker_credentials("token.example")


def test_a_malformed_stored_secret_is_named(docker_config):
    docker_config({"auths": {"reg.example:5000": {"auth": "%%%not base64"}}})
    with pytest.raises(HpsforgeError, match="malformed `auth` for reg.example:5000") as raised:
        docker_credentials("reg.example:5000")
    assert "docker login reg.example:5000" in raised.value.hint


def test_the_test_registry_names_docker_registry_when_it_is_not_installed(tmp_path, monkeypatch):
    from tests.support.registry import RegistryUnavailable, local_registry

    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(RegistryUnavailable, match="docker-registry is not on PATH.*apt-get install .*docker-registry"),
        local_registry(tmp_path),
    ):
        pass


def test_a_helper_that_hangs_is_stopped_and_named(docker_config, tmp_path, monkeypatch):
    script = tmp_path / "bin" / "docker-credential-stuck"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin:/bin")
    monkeypatch.setattr(oci_archive, "CREDENTIAL_HELPER_TIMEOUT_S", 0.5)
    docker_config({"credsStore": "stuck"})
    with pytest.raises(
        HpsforgeError,
        match=r"the credential helper docker-credential-stuck gave no answer for "
        r"reg.example:5000 \(docker-credential-stuck: did not finish within 0.5 s",
    ):
        docker_credentials("reg.example:5000")
