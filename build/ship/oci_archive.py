"""Input archives through an OCI registry: each file one blob, index.json the config.

An archive folder (`index.json` + `files/<sha256>`) travels as one OCI image manifest:

    config  application/vnd.hpsforge.archive.index.v1+json   index.json, byte for byte
    layers  application/vnd.hpsforge.archive.file.v1         one per files/<sha256>, annotated
                                                             org.opencontainers.image.title = files/<sha256>

index.json is the config rather than a layer because registries and tools tell an artifact's
kind by its config's media type (OCI 1.1's artifactType falls back to it, and a 2.8 registry
knows nothing newer): "is this an hpsforge archive?" is answered by the manifest alone, and the
pull reads the index (one small blob) and checks every layer against it before it downloads any
file. One layer per file means a second push sends only new files, and a pull can take files it
already has from the content store. The manifest is built from the folder alone (no timestamps),
so the same archive always has the same manifest digest.

oras-py provides the registry session and its authentication (the bearer-token dance of a
Www-Authenticate challenge, with the credentials Docker stored); the transfers themselves are
written here against the distribution API (see `_Registry` for why).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Literal, NoReturn

import oras.provider
import oras.utils
import requests
import requests.adapters
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpsforge.core import proc
from hpsforge.core.errors import (
    HashMismatchError,
    HpsforgeError,
    InputUnavailableError,
    UsageError,
)
from hpsforge.core.files import CHUNK, sha256_bytes, sha256_file
from hpsforge.core.reference import ImageReference
from hpsforge.images.buildkit import host_ca_bundle
from hpsforge.inputs.archive import ArchiveIndex
from hpsforge.inputs.store import ContentStore, link_or_copy

ARCHIVE_FORMAT = "hpsforge-archive/1"
INDEX_MEDIA_TYPE = "application/vnd.hpsforge.archive.index.v1+json"
FILE_MEDIA_TYPE = "application/vnd.hpsforge.archive.file.v1"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"
# Everything a reference may name is asked for, so that a wrong one can be told apart, not just refused.
OTHER_MANIFESTS = {
    "application/vnd.oci.image.index.v1+json": "an OCI image index (a multi-platform image)",
    "application/vnd.docker.distribution.manifest.v2+json": "a Docker image",
    "application/vnd.docker.distribution.manifest.list.v2+json": "a Docker multi-platform image",
    "application/vnd.docker.distribution.manifest.v1+prettyjws": "a Docker schema 1 image",
}
IMAGE_CONFIGS = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")

UPLOAD_PIECE = 64 << 20  # files up to this size go up in one PUT, larger ones in PATCH chunks of it
INDEX_MAX = 64 << 20  # index.json is held in memory
MANIFEST_MAX = 4 << 20  # what distribution (and most registries) accept as a manifest body
CREDENTIAL_HELPER_TIMEOUT_S = 60  # a helper may ask a keychain or a cloud API
TIMEOUT_S = (10, 300)  # (connect, read): a registry that stops answering fails instead of hanging
PROGRESS_EVERY_S = 5
USAGE = "HOST[:PORT]/REPOSITORY:TAG, e.g. 127.0.0.1:5000/hpsforge/inputs:2026-12-01"


# --- the archive index (hpsforge.archive's model) ----------------------------------------------


def manifest_digest(reference: str) -> str:
    """The digest of the manifest `reference` names, as its registry serves it (the bytes are
    hashed here: the registry's own header is not trusted). Credentials: Docker's config."""
    ref = parse_reference(reference, push=False)
    registry = _Registry(ref)
    registry.connect()
    return registry.get_manifest()[1]


def parse_index(data: bytes, where: str) -> ArchiveIndex:
    try:
        return ArchiveIndex.model_validate_json(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(document)'}: {e['msg']}" for e in error.errors()[:5])
        raise UsageError(
            f"{where} is not an hpsforge archive index ({ARCHIVE_FORMAT}): {problems}", hint="export the archive again"
        ) from None


# --- references ----------------------------------------------------------------------------------


class Reference(ImageReference):
    """An archive's reference (core.reference's grammar) with the registry it is reached at;
    parse_reference makes sure it names one."""

    @property
    def text(self) -> str:
        return str(self)

    @property
    def host(self) -> str:
        """As written: the key of Docker's credentials and of `docker login`."""
        return self.registry or ""

    @property
    def api_host(self) -> str:
        # Docker Hub's name is not its API's address.
        return "registry-1.docker.io" if self.host in ("docker.io", "index.docker.io") else self.host

    @property
    def plain_http(self) -> bool:
        """Loopback registries speak plain HTTP, as the Docker engine assumes too; all others HTTPS."""
        name = self.host.rsplit(":", 1)[0] if not self.host.startswith("[") else self.host[1 : self.host.index("]")]
        if name == "localhost":
            return True
        with contextlib.suppress(ValueError):
            return ipaddress.ip_address(name).is_loopback
        return False

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.api_host}"

    @property
    def manifest_name(self) -> str:
        """What the registry is asked for: the digest, else the tag (parse_reference makes sure of one)."""
        name = self.digest or self.tag
        if not name:
            raise UsageError(f"reference {self.text!r} names no tag or digest ({USAGE})")
        return name


def parse_reference(text: str, *, push: bool) -> Reference:
    ref = Reference.parse(text)
    if ref.registry is None:
        raise UsageError(
            f"malformed reference {text!r}: it names no registry host; expected {USAGE}",
            hint=f"write the registry's address first, e.g. 127.0.0.1:5000/{text}",
        )
    if push and (ref.digest or not ref.tag):
        raise UsageError(
            f"reference {text!r}: a push needs a tag and no digest ({USAGE})",
            hint="name the tag to push to; the pushed digest is printed afterwards",
        )
    if not push and not (ref.tag or ref.digest):
        raise UsageError(
            f"reference {text!r} names no tag or digest ({USAGE}, or …@sha256:<digest>)",
            hint="add the tag the archive was pushed under",
        )
    return ref


# --- credentials: Docker's own configuration, nothing else -------------------------------------


def docker_config_file() -> Path:
    """Where the Docker CLI keeps credentials: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def docker_credentials(host: str) -> tuple[str, str] | None:
    """(username, secret) that `docker login host` stored, looked up as the Docker CLI does:
    the host's credHelpers entry, else the credsStore, else the file's own `auths`."""
    path = docker_config_file()
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise HpsforgeError(
            f"cannot read Docker's configuration {path}: {error}",
            hint=f"repair it, or log in again with `docker login {host}`",
        ) from None
    key = "https://index.docker.io/v1/" if host in ("docker.io", "index.docker.io") else host
    if helper := (config.get("credHelpers") or {}).get(key) or config.get("credsStore"):
        return _from_helper(helper, key, path)
    for server, entry in (config.get("auths") or {}).items():
        if _server_host(server) != key and server != key:
            continue
        if entry.get("identitytoken"):
            _identity_token_refused(host)
        if entry.get("auth"):
            try:
                user, _, secret = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
            except ValueError:
                raise HpsforgeError(
                    f"Docker's configuration {path} holds a malformed `auth` for {server}",
                    hint=f"log in again with `docker login {host}`",
                ) from None
            return user, secret
        if entry.get("username"):
            return entry["username"], entry.get("password", "")
    return None


def _server_host(server: str) -> str:
    """`https://host:5000/v1/` or `host:5000` (both spellings occur in config.json) → `host:5000`."""
    return urllib.parse.urlsplit(server if "://" in server else f"//{server}").netloc


def _from_helper(helper: str, key: str, config: Path) -> tuple[str, str] | None:
    binary = f"docker-credential-{helper}"
    if shutil.which(binary) is None:
        raise HpsforgeError(
            f"{config} names the credential helper {helper!r}, but {binary} is not installed",
            hint=f"install {binary}, or remove it from {config} and `docker login {key}`",
        )
    # Exit 1 with "credentials not found" is an answer (no login for this registry), not a failure.
    done = proc.run(
        [binary, "get"],
        input=key,
        timeout=CREDENTIAL_HELPER_TIMEOUT_S,
        check=False,
        what=f"the credential helper {binary} gave no answer for {key}",
    )
    answer = (done.stdout_bytes or done.stderr_bytes).decode(errors="replace").strip()
    if done.returncode != 0:
        if "credentials not found" in answer.lower():
            return None
        raise HpsforgeError(
            f"the credential helper {binary} failed for {key}: {answer[:300]}",
            hint=f"check it with `echo {key} | {binary} get`, or log in again with `docker login {key}`",
        )
    try:
        payload = json.loads(done.stdout_bytes)
        user, secret = payload["Username"], payload["Secret"]
    except (ValueError, KeyError, TypeError):
        raise HpsforgeError(f"the credential helper {binary} gave no Username/Secret for {key}") from None
    if user == "<token>":
        _identity_token_refused(key)
    return user, secret


def _identity_token_refused(host: str) -> NoReturn:
    # An identity token is an OAuth2 refresh token; oras-py's token auth only knows username/secret.
    raise HpsforgeError(
        f"Docker's credentials for {host} are an identity token, which hpsforge cannot use",
        hint=f"log in with a username and a password or access token: `docker login -u USER {host}`",
    )


# --- the registry client -------------------------------------------------------------------------


class _TimeoutAdapter(requests.adapters.HTTPAdapter):
    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=TIMEOUT_S if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


class _Registry(oras.provider.Registry):
    """oras-py's registry session and token authentication; the transfers are done here.

    oras-py's own push, pull and request loop do not fit: its request loop retries every failure
    five times over about two minutes (a registry that is down would hang the command) and turns
    a 401/403 without a challenge into a bare ValueError, losing the status and the registry's
    text; a token it holds is resent unchanged after a 401 (a pull token never becomes a push
    token); `pull` writes blobs without checking their digest; `put_upload` reads a whole file
    into memory; and its config lookup ignores $DOCKER_CONFIG.
    """

    def __init__(self, ref: Reference) -> None:
        bundle = host_ca_bundle()
        super().__init__(
            hostname=ref.api_host,
            insecure=ref.plain_http,
            tls_verify=str(bundle) if bundle else True,
            auth_backend="token",
        )
        self.ref = ref
        self.base = ref.base_url
        # Credentials come from Docker's configuration only: requests' trust_env would also read
        # ~/.netrc (and let $REQUESTS_CA_BUNDLE override the CA); the proxy settings are kept.
        self.session.trust_env = False
        if not ref.plain_http:
            self.session.proxies = requests.utils.get_environ_proxies(self.base)
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, _TimeoutAdapter())

    def _url(self, *parts: str) -> str:
        return "/".join((self.base, "v2", self.ref.repository, *parts))

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, verify=self._tls_verify, **kwargs)
        except requests.exceptions.SSLError as error:
            raise InputUnavailableError(
                f"{self.ref.text}: TLS with the registry at {self.base} failed: {_reason(error)}",
                hint="a registry on this machine is reached over plain HTTP only as 127.0.0.1 or localhost; "
                "otherwise add its CA to the host's CA bundle",
            ) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            raise InputUnavailableError(
                f"{self.ref.text}: the registry at {self.base} does not answer ({_reason(error)})",
                hint="start the registry, or correct the host and port in the reference, then run again",
            ) from None

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request with the current token; after a bearer challenge, one more with a new token
        for the challenge's scope. Any answer is returned: the caller judges the status."""
        headers = {**(headers or {}), **self.auth.get_auth_header()}
        response = self._send(method, url, data=data, json=json, headers=headers, stream=stream)
        if response.status_code == 401 and _challenge(response) == "bearer":
            headers, changed = self.auth.authenticate_request(response, headers, refresh=True)
            if changed:
                response.close()
                response = self._send(method, url, data=data, json=json, headers=headers, stream=stream)
        return response

    def connect(self) -> None:
        """GET /v2/: the registry answers, speaks the distribution API, and says how to authenticate."""
        response = self._send("GET", f"{self.base}/v2/")
        if response.status_code == 200:
            return
        scheme = _challenge(response)
        if response.status_code != 401 or scheme not in ("bearer", "basic"):
            self.refused(response, "answer the API's version check (GET /v2/)")
        credentials = docker_credentials(self.ref.host)
        if credentials and scheme == "bearer":
            self.auth.set_basic_auth(*credentials)  # exchanged for tokens at the challenge's realm
        elif credentials:
            self.session.auth = credentials  # HTTP basic on every request

    def refused(self, response: requests.Response, action: str) -> NoReturn:
        text = _error_text(response)
        message = (
            f"{self.ref.text}: the registry at {self.base} refused to {action} "
            f"(HTTP {response.status_code}{': ' + text if text else ''})"
        )
        if response.status_code in (401, 403):
            raise InputUnavailableError(
                message,
                hint=f"log in with `docker login {self.ref.host}` "
                "(hpsforge uses the credentials Docker stores), then run again",
            )
        raise InputUnavailableError(message, hint="check the reference and the registry's log, then run again")

    # blobs

    def has_blob(self, digest: str) -> bool:
        response = self.do_request(self._url("blobs", digest), "HEAD")
        if response.status_code in (200, 404):
            return response.status_code == 200
        self.refused(response, f"say whether it holds blob {digest}")

    def upload(self, source: Path | bytes, digest: str, size: int, label: str) -> None:
        """POST an upload session, then PUT the bytes (or PATCH them in pieces, then PUT)."""
        response = self.do_request(self._url("blobs", "uploads", ""), "POST")
        if response.status_code != 202:
            self.refused(response, f"start the upload of {label}")
        location = self._location(response)
        octets = {"Content-Type": "application/octet-stream"}
        if isinstance(source, bytes) or size <= UPLOAD_PIECE:
            # In memory (at most UPLOAD_PIECE) so that a request re-sent after a challenge sends it again.
            data = source if isinstance(source, bytes) else source.read_bytes()
            response = self.do_request(
                oras.utils.append_url_params(location, {"digest": digest}), "PUT", data=data, headers=octets
            )
        else:
            with open(source, "rb") as stream:
                offset = 0
                while piece := stream.read(UPLOAD_PIECE):
                    response = self.do_request(
                        location,
                        "PATCH",
                        data=piece,
                        headers={**octets, "Content-Range": f"{offset}-{offset + len(piece) - 1}"},
                    )
                    if response.status_code != 202:
                        self.refused(response, f"take {label} (bytes from {offset})")
                    location = self._location(response)
                    offset += len(piece)
            response = self.do_request(oras.utils.append_url_params(location, {"digest": digest}), "PUT")
        if response.status_code != 201:
            self.refused(response, f"take {label}")

    def _location(self, response: requests.Response) -> str:
        if not (location := response.headers.get("Location")):
            self.refused(response, "name an upload location")
        return urllib.parse.urljoin(self.base + "/", location)

    def download(self, digest: str, size: int, target: Path, label: str) -> None:
        """Stream a blob into `target`, hashing as it comes; its bytes must match digest and size."""
        expected = digest.removeprefix("sha256:")
        with self.do_request(self._url("blobs", digest), "GET", stream=True) as response:
            if response.status_code != 200:
                self.refused(response, f"send {label}")
            actual, received = hashlib.sha256(), 0
            with open(target, "wb") as out:
                try:
                    for chunk in response.iter_content(CHUNK):
                        actual.update(chunk)
                        received += len(chunk)
                        if received > size:
                            break  # more than the manifest says: wrong whatever follows, and no disk filled
                        out.write(chunk)
                except requests.RequestException as error:
                    raise InputUnavailableError(
                        f"{self.ref.text}: the download of {label} broke off after {received} bytes ({_reason(error)})",
                        hint="run the pull again",
                    ) from None
                out.flush()
                os.fsync(out.fileno())
        if actual.hexdigest() != expected or received != size:
            raise HashMismatchError(
                f"{self.ref.text}: {label} from the registry at {self.base} does not match its digest\n"
                f"    expected sha256 {expected} ({size} bytes)\n"
                f"    received sha256 {actual.hexdigest()} ({received}{'+' if received > size else ''} bytes)",
                hint=f"the registry's copy is damaged: delete blob {digest} in the registry "
                "and push the archive again from an intact copy",
            )

    def small_blob(self, digest: str, size: int, label: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="hpsforge-blob-") as tmp:
            self.download(digest, size, Path(tmp) / "blob", label)
            return (Path(tmp) / "blob").read_bytes()

    # manifests

    def put_manifest(self, manifest: bytes, tag: str) -> str:
        response = self.do_request(
            self._url("manifests", tag), "PUT", data=manifest, headers={"Content-Type": MANIFEST_MEDIA_TYPE}
        )
        if response.status_code != 201:
            self.refused(response, "take the manifest")
        digest = f"sha256:{sha256_bytes(manifest)}"
        if (stored := response.headers.get("Docker-Content-Digest")) and stored != digest:
            raise HashMismatchError(
                f"{self.ref.text}: the registry stored the manifest as {stored}, but its bytes hash to {digest}",
                hint="the registry rewrote the manifest; push to an OCI-conformant registry",
            )
        return digest

    def get_manifest(self) -> tuple[bytes, str, str]:
        """(bytes, their digest, the registry's media type) of the reference's manifest."""
        accept = ", ".join((MANIFEST_MEDIA_TYPE, *OTHER_MANIFESTS))
        response = self.do_request(self._url("manifests", self.ref.manifest_name), "GET", headers={"Accept": accept})
        if response.status_code == 404:
            text = _error_text(response)
            raise InputUnavailableError(
                f"{self.ref.text}: the registry at {self.base} has no such archive "
                f"(HTTP 404{': ' + text if text else ''})",
                hint=f"check the repository and tag (the registry lists the tags at {self._url('tags', 'list')}), "
                "or push the archive first",
            )
        if response.status_code != 200:
            self.refused(response, "send the manifest")
        data = response.content
        if len(data) > MANIFEST_MAX:
            raise UsageError(f"{self.ref.text}: its manifest is {len(data)} bytes, not an hpsforge archive's")
        digest = f"sha256:{sha256_bytes(data)}"
        if self.ref.digest and digest != self.ref.digest:
            raise HashMismatchError(
                f"{self.ref.text}: the registry sent a manifest whose bytes hash to {digest}",
                hint="the registry's copy is damaged or forged; push the archive again",
            )
        return data, digest, response.headers.get("Content-Type", "").split(";")[0].strip()


def _challenge(response: requests.Response) -> str:
    return response.headers.get("Www-Authenticate", "").strip().split(" ", 1)[0].lower()


def _error_text(response: requests.Response) -> str:
    """The registry's own words: its `errors` list (code: message detail), else the body's start."""
    try:
        errors = response.json().get("errors") or []
        parts = []
        for error in errors[:3]:
            detail = error.get("detail")
            detail = f" {json.dumps(detail, separators=(',', ':'))[:200]}" if detail else ""
            parts.append(f"{error.get('code', '?')}: {error.get('message', '')}{detail}")
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError, TypeError):
        pass
    return " ".join((response.text or "").split())[:300] if response.request.method != "HEAD" else ""


def _reason(error: Exception) -> str:
    """The root cause of a requests error ('Connection refused'), not urllib3's whole chain."""
    text = str(error)
    if found := re.search(r"\[Errno -?\d+\] ([^'\")]+)", text):
        return found[1].strip()
    if isinstance(error, requests.Timeout):
        return f"no answer within {TIMEOUT_S[1]} s"
    return text[:300] or type(error).__name__


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


class _Progress:
    """A line every few seconds while many megabytes move; nothing for a quick transfer."""

    def __init__(self, verb: str, files: int, total: int) -> None:
        self.verb, self.files, self.total = verb, files, total
        self.done_files = self.done_bytes = 0
        self.last = time.monotonic()

    def advance(self, size: int) -> None:
        self.done_files += 1
        self.done_bytes += size
        if time.monotonic() - self.last >= PROGRESS_EVERY_S and self.done_files < self.files:
            self.last = time.monotonic()
            print(
                f"hpsforge:   {self.verb} {self.done_files}/{self.files} files, "
                f"{self.done_bytes / 1e6:.1f}/{self.total / 1e6:.1f} MB",
                flush=True,
            )


# --- push ----------------------------------------------------------------------------------------


def _read_folder(folder: Path) -> tuple[bytes, ArchiveIndex]:
    """index.json and the proof that files/ holds exactly its files, each hashing to its name."""
    index_path = folder / "index.json"
    if not index_path.is_file():
        raise UsageError(
            f"{folder} is not an input archive folder (it has no index.json)",
            hint="give the folder an archive export wrote (index.json and files/)",
        )
    index_bytes = index_path.read_bytes()
    if len(index_bytes) > INDEX_MAX:
        raise UsageError(f"{index_path} is {len(index_bytes)} bytes; an archive index is at most {INDEX_MAX}")
    index = parse_index(index_bytes, str(index_path))
    files_dir = folder / "files"
    present = {path.name for path in files_dir.iterdir()} if files_dir.is_dir() else set()
    listed = index.files()
    if missing := [sha for sha in listed if sha not in present]:
        shown = ", ".join(f"files/{sha} ({index.name_of(sha)})" for sha in missing[:3])
        raise InputUnavailableError(
            f"{folder}: {len(missing)} files index.json lists are missing: {shown}", hint="export the archive again"
        )
    if stray := sorted(present - set(listed)):
        raise UsageError(
            f"{folder}/files holds {len(stray)} files index.json does not list: "
            + ", ".join(f"files/{name}" for name in stray[:3]),
            hint="remove them, or export the archive again",
        )
    for sha, size in listed.items():
        path = files_dir / sha
        actual_size = path.stat().st_size
        actual = sha256_file(path) if actual_size == size else None
        if actual != sha:
            raise HashMismatchError(
                f"{path} ({index.name_of(sha)}) does not match index.json\n"
                f"    expected sha256 {sha} ({size} bytes)\n"
                f"    actual   {'sha256 ' + actual if actual else 'size'} ({actual_size} bytes)",
                hint="export the archive again from the content store",
            )
    return index_bytes, index


def _manifest(index_bytes: bytes, files: dict[str, int]) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": INDEX_MEDIA_TYPE,
            "digest": f"sha256:{sha256_bytes(index_bytes)}",
            "size": len(index_bytes),
        },
        "layers": [
            {
                "mediaType": FILE_MEDIA_TYPE,
                "digest": f"sha256:{sha}",
                "size": size,
                "annotations": {TITLE: f"files/{sha}"},
            }
            for sha, size in files.items()
        ],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def push(folder: Path, reference: str) -> str:
    """Push the archive `folder` to `reference`; return the manifest digest.

    Every file is hashed against its name first; files the registry already holds are not sent.
    """
    ref = parse_reference(reference, push=True)
    folder = Path(folder)
    started = time.monotonic()
    index_bytes, index = _read_folder(folder)
    files = index.files()
    manifest = _manifest(index_bytes, files)
    if len(manifest) > MANIFEST_MAX:
        raise UsageError(
            f"{folder}: {len(files)} files make a manifest of {len(manifest)} bytes, "
            f"more than registries accept ({MANIFEST_MAX})",
            hint="split the archive",
        )
    registry = _Registry(ref)
    registry.connect()
    total = sum(files.values())
    print(f"hpsforge: pushing {_files(len(files))} ({total / 1e6:.1f} MB) from {folder} to {ref.text}", flush=True)
    progress = _Progress("pushed", len(files), total)
    sent = [0, 0]  # files, bytes
    for sha, size in files.items():
        digest = f"sha256:{sha}"
        if not registry.has_blob(digest):
            registry.upload(folder / "files" / sha, digest, size, f"files/{sha} ({index.name_of(sha)})")
            sent[0] += 1
            sent[1] += size
        progress.advance(size)
    config_digest = f"sha256:{sha256_bytes(index_bytes)}"
    if not registry.has_blob(config_digest):
        registry.upload(index_bytes, config_digest, len(index_bytes), "index.json")
    digest = registry.put_manifest(manifest, ref.manifest_name)  # a push's reference has a tag, no digest
    print(
        f"hpsforge: pushed {ref.text} ({digest}) in {time.monotonic() - started:.1f} s: "
        f"{_files(sent[0])} uploaded ({sent[1] / 1e6:.1f} MB), "
        f"{_files(len(files) - sent[0])} already in the registry ({(total - sent[1]) / 1e6:.1f} MB)",
        flush=True,
    )
    return digest


# --- pull ----------------------------------------------------------------------------------------


class _Descriptor(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    media_type: str = Field(alias="mediaType")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    size: int = Field(ge=0)
    annotations: dict[str, str] = {}


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_version: Literal[2] = Field(alias="schemaVersion")
    media_type: str | None = Field(None, alias="mediaType")
    artifact_type: str | None = Field(None, alias="artifactType")
    config: _Descriptor
    layers: list[_Descriptor]


def _not_an_archive(ref: Reference, what: str) -> NoReturn:
    raise UsageError(
        f"{ref.text} is {what}, not an hpsforge archive (whose config is {INDEX_MEDIA_TYPE})",
        hint="pull a reference an archive push wrote, e.g. …/hpsforge/inputs:<date>",
    )


def _archive_manifest(ref: Reference, data: bytes, content_type: str) -> _Manifest:
    """The manifest, if it is an hpsforge archive's; otherwise say what it is."""
    try:
        raw = json.loads(data)
    except ValueError:
        _not_an_archive(ref, f"a document of type {content_type or 'unknown'} that is not JSON")
    media_type = (raw.get("mediaType") if isinstance(raw, dict) else None) or content_type
    if media_type in OTHER_MANIFESTS:
        _not_an_archive(ref, f"{OTHER_MANIFESTS[media_type]} ({media_type})")
    try:
        manifest = _Manifest.model_validate(raw)
    except ValidationError as error:
        _not_an_archive(
            ref,
            f"a manifest of type {media_type or 'unknown'} that is malformed "
            f"({error.errors()[0]['loc']}: {error.errors()[0]['msg']})",
        )
    config_type = manifest.config.media_type
    if config_type in IMAGE_CONFIGS:
        _not_an_archive(ref, f"an OCI container image (config {config_type})")
    if config_type != INDEX_MEDIA_TYPE:
        _not_an_archive(ref, f"an OCI artifact of type {manifest.artifact_type or config_type}")
    for number, layer in enumerate(manifest.layers, 1):
        title = f"files/{layer.digest.removeprefix('sha256:')}"
        if layer.media_type != FILE_MEDIA_TYPE or layer.annotations.get(TITLE) != title:
            raise UsageError(
                f"{ref.text}: layer {number} ({layer.media_type}, {layer.annotations.get(TITLE)!r}) "
                f"is not an archive file ({FILE_MEDIA_TYPE} titled {title})",
                hint="push the archive again with hpsforge",
            )
    return manifest


def _check_against_index(ref: Reference, manifest: _Manifest, index: ArchiveIndex) -> None:
    """The manifest's layers are exactly the index's files, at the index's sizes."""
    layers = {layer.digest.removeprefix("sha256:"): layer.size for layer in manifest.layers}
    files = index.files()
    problems = [f"files/{sha} ({index.name_of(sha)}) has no layer" for sha in files if sha not in layers]
    problems += [f"layer files/{sha} is not in index.json" for sha in layers if sha not in files]
    problems += [
        f"files/{sha} ({index.name_of(sha)}) is {layers[sha]} bytes in the manifest, {size} in index.json"
        for sha, size in files.items()
        if sha in layers and layers[sha] != size
    ]
    if problems:
        raise HashMismatchError(
            f"{ref.text}: the manifest and its index.json disagree: " + "; ".join(problems[:3]),
            hint="push the archive again from an intact copy",
        )


def _from_store(store: ContentStore, sha: str, target: Path) -> bool:
    """Take the file from the content store if it holds it intact (a damaged copy is not used)."""
    stored = store.path(sha)
    if not stored.is_file() or sha256_file(stored) != sha:
        return False
    link_or_copy(stored, target)
    return True


def pull(reference: str, folder: Path, *, store: ContentStore | None = None) -> str:
    """Download the archive at `reference` into `folder` (absent or empty); return the manifest digest.

    Everything lands in a private sibling folder, every blob re-hashed against its digest and the
    index; only a complete, checked archive is renamed to `folder`. With `store`, files the content
    store already holds are linked from it instead of downloaded.
    """
    ref = parse_reference(reference, push=False)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(
            f"{folder} exists and is not an empty folder; a pull writes a whole archive",
            hint="pull into a new folder, or remove this one first",
        )
    started = time.monotonic()
    registry = _Registry(ref)
    registry.connect()
    data, digest, content_type = registry.get_manifest()
    manifest = _archive_manifest(ref, data, content_type)
    if manifest.config.size > INDEX_MAX:
        raise UsageError(f"{ref.text}: its index.json is {manifest.config.size} bytes, more than {INDEX_MAX}")
    index_bytes = registry.small_blob(manifest.config.digest, manifest.config.size, "index.json")
    index = parse_index(index_bytes, f"{ref.text}: index.json")
    _check_against_index(ref, manifest, index)
    files = index.files()
    total = sum(files.values())
    print(f"hpsforge: pulling {ref.text} ({_files(len(files))}, {total / 1e6:.1f} MB) into {folder}", flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    progress = _Progress("pulled", len(files), total)
    reused = [0, 0]  # files, bytes
    try:
        (temp / "files").mkdir()
        for sha, size in files.items():
            target = temp / "files" / sha
            if store is not None and _from_store(store, sha, target):
                reused[0] += 1
                reused[1] += size
            else:
                registry.download(f"sha256:{sha}", size, target, f"files/{sha} ({index.name_of(sha)})")
                os.chmod(target, 0o644)
            progress.advance(size)
        (temp / "index.json").write_bytes(index_bytes)
        os.chmod(temp, 0o755)  # mkdtemp's 0700 would make the archive private
        try:
            os.rename(temp, folder)  # replaces an empty folder; refuses one that filled up meanwhile
        except OSError as error:
            raise UsageError(
                f"cannot put the pulled archive at {folder}: {error.strerror}",
                hint="pull into a new folder, or remove this one first",
            ) from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    downloaded = f"{_files(len(files) - reused[0])} downloaded ({(total - reused[1]) / 1e6:.1f} MB)"
    from_store = f", {_files(reused[0])} from the content store ({reused[1] / 1e6:.1f} MB)" if store is not None else ""
    print(
        f"hpsforge: pulled {ref.text} ({digest}) into {folder} in {time.monotonic() - started:.1f} s: "
        f"{downloaded}{from_store}",
        flush=True,
    )
    return digest


# --- small artifacts beside an image: cosign-style signatures and attestations ----------------------


def put_small_artifact(
    reference: str, config: tuple[bytes, str], layers: list[tuple[bytes, str, dict[str, str]]]
) -> str:
    """Push one OCI manifest of small in-memory blobs under REGISTRY/REPO:TAG; its digest.
    config: (bytes, media type); layers: (bytes, media type, annotations)."""
    ref = parse_reference(reference, push=True)
    registry = _Registry(ref)
    registry.connect()
    descriptors = []
    for data, media_type, notes in [(config[0], config[1], {}), *layers]:
        digest = f"sha256:{sha256_bytes(data)}"
        if not registry.has_blob(digest):
            registry.upload(data, digest, len(data), media_type)
        descriptors.append(
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(data),
                **({"annotations": notes} if notes else {}),
            }
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptors[0],
        "layers": descriptors[1:],
    }
    return registry.put_manifest(json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode(), ref.tag or "")


def get_small_artifact(reference: str) -> list[tuple[bytes, str, dict[str, str]]] | None:
    """The layers (bytes, media type, annotations) of the manifest REGISTRY/REPO:TAG, each checked
    against its digest; None when the registry has no such tag."""
    ref = parse_reference(reference, push=False)
    registry = _Registry(ref)
    registry.connect()
    probe = registry.do_request(
        registry._url("manifests", ref.manifest_name), "HEAD", headers={"Accept": MANIFEST_MEDIA_TYPE}
    )
    if probe.status_code == 404:
        return None
    data = registry.get_manifest()[0]
    try:
        layers = json.loads(data)["layers"]
        return [
            (
                registry.small_blob(layer["digest"], int(layer["size"]), layer["mediaType"]),
                str(layer["mediaType"]),
                dict(layer.get("annotations") or {}),
            )
            for layer in layers
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{reference}: not an image manifest with layers ({error})") from None
