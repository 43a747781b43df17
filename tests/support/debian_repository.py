"""A hermetic, signed Debian repository for tests: .debs already on disk, served on 127.0.0.1.

SigningKey makes a throwaway OpenPGP key; DebianRepository lays out archives like a mirror
(root/<archive>/pool/..., root/<archive>/dists/<suite>/...) and signs each suite's Release;
HttpStandIn serves root over HTTP, logs what is fetched, and can drop files or go down.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.server
import lzma
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path

from debian import deb822

from hpsforge.inputs.store import ContentStore, link_or_copy
from hpsforge.locks.debian import DebPackage

DEFAULT_DATE = "Sat, 01 Nov 2025 00:00:00 UTC"
# The key's creation time, long before any Release date a test picks: gpgv refuses a signature
# older than its key.
KEY_CREATED = 946684800  # 2000-01-01T00:00:00Z
COMPONENT = "main"


def _run(command: list[str], *, env: dict[str, str] | None = None, data: bytes | None = None) -> bytes:
    """stdout of `command`; on failure an error carrying its stderr (gpg explains itself there)."""
    result = subprocess.run(command, input=data, capture_output=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed (exit {result.returncode}): " + result.stderr.decode(errors="replace").strip()
        )
    return result.stdout


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    """gpg on GNUPGHOME `home`, never ~/.gnupg; no passphrase, no prompt."""
    return _run(
        ["gpg", "--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", *args],
        env={**os.environ, "GNUPGHOME": str(home)},
        data=data,
    )


class SigningKey:
    """A throwaway ed25519 key in a private GNUPGHOME, without a passphrase.

    Signatures are made at a fixed time (`at`, default the key's creation time) and ed25519
    signatures are deterministic, so the same data signed at the same time gives the same bytes.
    """

    def __init__(self, home: Path, keyring: Path, fingerprint: str) -> None:
        self.home = home
        self.keyring = keyring  # binary export: what gpgv --keyring and apt's Dir::Etc::Trusted read
        self.fingerprint = fingerprint

    @classmethod
    def generate(cls, directory: Path, uid: str = "hpsforge test archive <archive@hpsforge.invalid>") -> SigningKey:
        """A new key whose GNUPGHOME is directory/gnupg; close() stops its agent and removes its keyring."""
        home = directory / "gnupg"
        home.mkdir(mode=0o700, parents=True)
        # apt checks signatures as its unprivileged _apt user, who cannot enter pytest's tmp
        # folders (/tmp/pytest-of-root is 0700) and then reports NO_PUBKEY: the exported keyring
        # lives in a world-readable folder of its own.
        public = Path(tempfile.mkdtemp(prefix="hpsforge-keyring-"))
        public.chmod(0o755)
        key = cls(home, public / "keyring.gpg", "")
        try:
            _gpg(home, "--faked-system-time", f"{KEY_CREATED}!", "--quick-gen-key", uid, "ed25519", "sign", "never")
            listing = _gpg(home, "--with-colons", "--list-secret-keys").decode()
            key.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            key.keyring.write_bytes(_gpg(home, "--export", key.fingerprint))
            key.keyring.chmod(0o644)
        except BaseException:
            key.close()
            raise
        return key

    def _sign(self, mode: str, data: bytes, at: int | None) -> bytes:
        # A frozen clock fixes the signature's timestamp: the bytes depend on the data and `at` only.
        return _gpg(
            self.home,
            "--faked-system-time",
            f"{KEY_CREATED if at is None else at}!",
            "--local-user",
            self.fingerprint,
            "--digest-algo",
            "SHA512",
            "--armor",
            mode,
            "--output",
            "-",
            data=data,
        )

    def clearsign(self, data: bytes, at: int | None = None) -> bytes:
        """`data` inside a cleartext signature: an InRelease."""
        return self._sign("--clearsign", data, at)

    def detach_sign(self, data: bytes, at: int | None = None) -> bytes:
        """An ASCII-armoured detached signature of `data`: a Release.gpg."""
        return self._sign("--detach-sign", data, at)

    def close(self) -> None:
        """Stop the gpg-agent this key's GNUPGHOME started; remove the exported keyring."""
        _run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(self.home)})
        shutil.rmtree(self.keyring.parent, ignore_errors=True)

    def __enter__(self) -> SigningKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pool_path(control: Mapping[str, str]) -> str:
    """Debian's pool location of a .deb: pool/main/<initial>/<source>/<name>_<version>_<arch>.deb."""
    source = control.get("Source", control["Package"]).split()[0]  # "Source: foo (1.2-3)" names foo
    initial = source[:4] if source.startswith("lib") else source[0]
    version = control["Version"].split(":", 1)[-1]  # the pool's file names drop the epoch
    return f"pool/{COMPONENT}/{initial}/{source}/{control['Package']}_{version}_{control['Architecture']}.deb"


def _digests(path: Path) -> tuple[int, str, str]:
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return size, md5.hexdigest(), sha256.hexdigest()


class DebianRepository:
    """Archives (like deb.debian.org's `debian` and `debian-security`) with suites, under root/.

    Files are hard-linked where possible, so they share their bytes with their source (the
    content store): to alter one in a test, write a new file over it (unlink first), never in
    place.
    """

    def __init__(self, root: Path, key: SigningKey, date: str = DEFAULT_DATE, architecture: str = "amd64") -> None:
        self.root = root
        self.key = key
        self.date = date
        self.signed_at = int(email.utils.parsedate_to_datetime(date).timestamp())  # signatures carry the Date
        self.architecture = architecture
        # (archive, suite) -> Filename -> Packages stanza
        self._suites: dict[tuple[str, str], dict[str, deb822.Packages]] = {}

    def add_suite(self, archive: str, suite: str) -> None:
        """A suite that is published even with no package in it (bookworm-updates, say)."""
        self._suites.setdefault((archive, suite), {})

    def add(
        self,
        archive: str,
        suite: str,
        deb: Path,
        filename: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        """Put `deb` at root/<archive>/<filename> (default: its pool path) and list it in `suite`;
        `overrides` replace control fields the way the archive's overrides do (Priority, say)."""
        stanza = deb822.Packages(_run(["dpkg-deb", "--field", str(deb)]).decode())
        for field, value in (overrides or {}).items():
            stanza[field] = value
        filename = filename or pool_path(stanza)
        target = self.root / archive / filename
        if target.exists():
            # Suites of one archive share its pool; one path holding two different files is a test bug.
            if _digests(target)[2] != _digests(deb)[2]:
                raise ValueError(f"{archive}/{filename} already holds a different file than {deb}")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(deb, target)
        size, md5, sha256 = _digests(target)
        stanza["Filename"] = filename
        stanza["Size"] = str(size)
        stanza["MD5sum"] = md5
        stanza["SHA256"] = sha256
        self.add_suite(archive, suite)
        self._suites[(archive, suite)][filename] = stanza

    def add_older_version(
        self, archive: str, suite: str, deb: Path, overrides: Mapping[str, str] | None = None
    ) -> None:
        """List in `suite` an older version of `deb`'s package, whose file is never served.

        Debian's stable suite keeps the release's version of a package that a security update
        superseded, and mmdebstrap picks a minimal system's package names from the stable suite
        alone (the newer version then wins). A mirror built from a lock has only the newer file:
        this entry stands in for the older one, so the same names are picked."""
        stanza = deb822.Packages(_run(["dpkg-deb", "--field", str(deb)]).decode())
        for field, value in (overrides or {}).items():
            stanza[field] = value
        stanza["Version"] = f"{stanza['Version']}~older"
        size, md5, sha256 = _digests(deb)
        stanza["Filename"] = f"pool/never-served/{stanza['Package']}_{stanza['Version']}.deb"
        stanza["Size"], stanza["MD5sum"], stanza["SHA256"] = str(size), md5, sha256
        self.add_suite(archive, suite)
        self._suites[(archive, suite)][stanza["Filename"]] = stanza

    def publish(self) -> None:
        """Write every suite's indices, Release, InRelease and Release.gpg (same inputs, same bytes)."""
        for (archive, suite), stanzas in sorted(self._suites.items()):
            dist = self.root / archive / "dists" / suite
            binary = f"{COMPONENT}/binary-{self.architecture}"
            (dist / binary).mkdir(parents=True, exist_ok=True)
            packages = "\n".join(stanzas[name].dump() for name in sorted(stanzas)).encode()
            indices = {
                f"{binary}/Packages": packages,
                # Fixed preset and check: lzma output depends only on its input then.
                f"{binary}/Packages.xz": lzma.compress(
                    packages, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6
                ),
            }
            for name, data in indices.items():
                (dist / name).write_bytes(data)
            release = self._release(archive, suite, indices)
            (dist / "Release").write_bytes(release)
            (dist / "InRelease").write_bytes(self.key.clearsign(release, at=self.signed_at))
            (dist / "Release.gpg").write_bytes(self.key.detach_sign(release, at=self.signed_at))

    def _release(self, archive: str, suite: str, indices: Mapping[str, bytes]) -> bytes:
        release = deb822.Release()
        release["Origin"] = "hpsforge-test"
        release["Label"] = archive
        release["Suite"] = suite
        release["Codename"] = suite
        release["Date"] = self.date  # apt refuses a Release dated in the future ("not valid yet")
        # What a Debian mirror states; apt 2.6 would guess without them, the consumers should not.
        release["Architectures"] = self.architecture
        release["Components"] = COMPONENT
        release["Description"] = f"hermetic test repository: {archive} {suite}"
        release["MD5Sum"] = [
            {"md5sum": hashlib.md5(data).hexdigest(), "size": str(len(data)), "name": name}
            for name, data in indices.items()
        ]
        # apt insists on a strong hash: with MD5Sum alone it calls the repository "weak" and stops.
        release["SHA256"] = [
            {"sha256": hashlib.sha256(data).hexdigest(), "size": str(len(data)), "name": name}
            for name, data in indices.items()
        ]
        return release.dump().encode()


def archive_of(uri: str) -> str:
    """The archive a package's uri names: http://deb.debian.org/debian-security -> debian-security."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


def repository_from_packages(
    root: Path,
    key: SigningKey,
    packages: Iterable[DebPackage],
    suites: Mapping[str, str],
    empty_suites: Iterable[tuple[str, str]] = (),
    store: ContentStore | None = None,
    date: str = DEFAULT_DATE,
) -> DebianRepository:
    """A published repository of locked packages, each file taken from the content store.

    Every package goes into archive `archive_of(package.uri)` at its locked `filename`, listed
    in suite `suites[archive]`; `empty_suites` are (archive, suite) pairs published empty. E.g.
    suites={"debian": "bookworm", "debian-security": "bookworm-security"},
    empty_suites=[("debian", "bookworm-updates")].
    """
    store = store or ContentStore()
    repository = DebianRepository(root, key, date=date)
    for archive, suite in empty_suites:
        repository.add_suite(archive, suite)
    for package in packages:
        archive = archive_of(package.uri)
        if archive not in suites:
            raise ValueError(f"{package.name}: no suite given for archive {archive!r} ({package.uri})")
        deb = store.path(package.sha256)
        if not deb.exists():
            raise FileNotFoundError(f"{package.name}: {deb} is not in the content store (fetch the lock first)")
        repository.add(archive, suites[archive], deb, package.filename, {"Priority": package.priority})
    repository.publish()
    return repository


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args: object, stand_in: HttpStandIn, **kwargs: object) -> None:
        self.stand_in = stand_in
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def send_head(self):  # type: ignore[no-untyped-def]
        # GET and HEAD both come through here: the one place to log and to refuse.
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.stand_in.requests.append(path)
        if path in self.stand_in.gone:
            self.send_error(404, "gone from the mirror")
            return None
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log is `requests`; stderr stays quiet


class HttpStandIn:
    """A static HTTP server for `directory` on 127.0.0.1 (a free port), in a background thread.

    `requests` lists the URL-decoded paths asked for, in order ("/debian/dists/bookworm/InRelease");
    a path put in `gone` is answered 404; after stop() connections are refused.
    """

    def __init__(self, directory: Path) -> None:
        self.requests: list[str] = []
        self.gone: set[str] = set()
        self._server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(_Handler, stand_in=self, directory=str(directory))
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval: stop() waits for one, and tests stop servers often.
        self._thread = threading.Thread(
            target=partial(self._server.serve_forever, poll_interval=0.05), name=f"HttpStandIn {self.url}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()  # closes the listening socket: new connections are refused
            self._thread.join()

    def __enter__(self) -> HttpStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
