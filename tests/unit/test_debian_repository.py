"""tests/support/debian_repository: a signed repository on 127.0.0.1 that hpsforge's gpgv-checked
index reads accept, and refuse once altered or signed by another key (no engine, no network)."""

from __future__ import annotations

import hashlib
import lzma
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from debian import deb822

from hpsforge.core.errors import HashMismatchError, HpsforgeError
from hpsforge.freeze.apt import signed_packages_index
from hpsforge.inputs.store import ContentStore
from hpsforge.locks.debian import DebPackage
from tests.support.debian_repository import (
    DebianRepository,
    HttpStandIn,
    SigningKey,
    pool_path,
    repository_from_packages,
)


def build_deb(directory: Path, package: str, version: str, architecture: str = "all", **fields: str) -> Path:
    """A tiny .deb (one file) made on the spot with dpkg-deb --build."""
    root = directory / f"{package}-{version.replace(':', '_')}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share" / package).mkdir(parents=True)
    (root / "usr/share" / package / "README").write_text(f"{package} {version}\n")
    control = {
        "Package": package,
        "Version": version,
        "Architecture": architecture,
        "Maintainer": "Tests <tests@hpsforge.invalid>",
        "Description": f"{package} for tests\n a second line\n .\n and a paragraph",
        **fields,
    }
    (root / "DEBIAN/control").write_text("".join(f"{key}: {value}\n" for key, value in control.items()))
    deb = directory / f"{package}_{version.replace(':', '_')}_{architecture}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("debs")
    return {
        "hello": build_deb(directory, "hello", "2.10-3"),
        "libfoo1": build_deb(
            directory, "libfoo1", "1:1.2-1", "amd64", Source="foo-lib (1.2-1)", Depends="hello (>= 2)"
        ),
        "libbar2": build_deb(directory, "libbar2", "3.0-1", "amd64", Source="libbar"),
        "hello-security": build_deb(directory, "hello", "2.10-3+deb12u1"),
    }


def mirror(root: Path, key: SigningKey, debs: dict[str, Path], **options: str) -> DebianRepository:
    repository = DebianRepository(root, key, **options)
    repository.add("debian", "bookworm", debs["hello"])
    repository.add("debian", "bookworm", debs["libfoo1"])
    repository.add("debian", "bookworm", debs["libbar2"])
    repository.add_suite("debian", "bookworm-updates")
    repository.add("debian-security", "bookworm-security", debs["hello-security"])
    repository.publish()
    return repository


@pytest.fixture
def served(tmp_path, signing_key, debs):
    mirror(tmp_path / "mirror", signing_key, debs)
    with HttpStandIn(tmp_path / "mirror") as stand_in:
        yield stand_in, tmp_path / "mirror"


def test_pool_paths_follow_debian():
    assert (
        pool_path({"Package": "hello", "Version": "2.10-3", "Architecture": "amd64"})
        == "pool/main/h/hello/hello_2.10-3_amd64.deb"
    )
    # lib* sources take four letters; the source's own name (without its version) names the folder;
    # the epoch stays out of the file name.
    assert (
        pool_path({"Package": "libssl3", "Source": "openssl", "Version": "3.0.17-1~deb12u2", "Architecture": "amd64"})
        == "pool/main/o/openssl/libssl3_3.0.17-1~deb12u2_amd64.deb"
    )
    assert (
        pool_path(
            {"Package": "libfoo1", "Source": "libfoo (1:1.2-1)", "Version": "1:1.2-1+b1", "Architecture": "amd64"}
        )
        == "pool/main/libf/libfoo/libfoo1_1.2-1+b1_amd64.deb"
    )


def test_signed_index_lists_the_stanzas_and_the_files_are_served(served, signing_key, debs):
    stand_in, _ = served
    index = signed_packages_index(stand_in.url + "/debian", "bookworm", signing_key.keyring, "amd64")
    by_name = {stanza["Package"]: stanza for stanza in index}
    assert sorted(by_name) == ["hello", "libbar2", "libfoo1"]
    libfoo = by_name["libfoo1"]
    # The .deb's own control fields, then the archive's.
    assert libfoo["Version"] == "1:1.2-1"
    assert libfoo["Depends"] == "hello (>= 2)"
    assert libfoo["Source"] == "foo-lib (1.2-1)"
    assert libfoo["Description"].startswith("libfoo1 for tests\n")
    assert libfoo["Filename"] == "pool/main/f/foo-lib/libfoo1_1.2-1_amd64.deb"
    assert by_name["libbar2"]["Filename"] == "pool/main/libb/libbar/libbar2_3.0-1_amd64.deb"
    data = debs["libfoo1"].read_bytes()
    assert (libfoo["Size"], libfoo["SHA256"], libfoo["MD5sum"]) == (
        str(len(data)),
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).hexdigest(),
    )
    with urllib.request.urlopen(f"{stand_in.url}/debian/{libfoo['Filename']}") as response:
        assert response.read() == data
    # The signed Release is read first, then the index it vouches for, then the .deb.
    assert stand_in.requests == [
        "/debian/dists/bookworm/InRelease",
        "/debian/dists/bookworm/main/binary-amd64/Packages.xz",
        f"/debian/{libfoo['Filename']}",
    ]


def test_suites_and_archives_are_separate(served, signing_key):
    stand_in, _ = served
    security = signed_packages_index(
        stand_in.url + "/debian-security", "bookworm-security", signing_key.keyring, "amd64"
    )
    assert [(s["Package"], s["Version"], s["Filename"]) for s in security] == [
        ("hello", "2.10-3+deb12u1", "pool/main/h/hello/hello_2.10-3+deb12u1_all.deb")
    ]
    assert signed_packages_index(stand_in.url + "/debian", "bookworm-updates", signing_key.keyring, "amd64") == []


def test_release_carries_what_apt_needs(served, signing_key):
    _, root = served
    dist = root / "debian/dists/bookworm"
    release = deb822.Release(dist.joinpath("Release").read_text())
    assert {key: release[key] for key in ("Suite", "Codename", "Date", "Architectures", "Components")} == {
        "Suite": "bookworm",
        "Codename": "bookworm",
        "Date": "Sat, 01 Nov 2025 00:00:00 UTC",
        "Architectures": "amd64",
        "Components": "main",
    }
    for table, algorithm in (("SHA256", "sha256"), ("MD5Sum", "md5sum")):
        listed = {entry["name"]: (entry[algorithm], int(entry["size"])) for entry in release[table]}
        assert sorted(listed) == ["main/binary-amd64/Packages", "main/binary-amd64/Packages.xz"]
        for name, (digest, size) in listed.items():
            data = (dist / name).read_bytes()
            assert (hashlib.new(algorithm.removesuffix("sum"), data).hexdigest(), len(data)) == (digest, size)
    packages = (dist / "main/binary-amd64/Packages").read_bytes()
    assert lzma.decompress((dist / "main/binary-amd64/Packages.xz").read_bytes()) == packages
    # InRelease and Release.gpg both verify with gpgv against the exported keyring.
    signed = subprocess.run(
        ["gpgv", "--keyring", str(signing_key.keyring), "--output", "-", str(dist / "InRelease")],
        capture_output=True,
        check=True,
    )
    assert signed.stdout == (dist / "Release").read_bytes()
    detached = subprocess.run(
        [
            "gpgv",
            "--status-fd",
            "1",
            "--keyring",
            str(signing_key.keyring),
            str(dist / "Release.gpg"),
            str(dist / "Release"),
        ],
        capture_output=True,
        check=True,
    )
    # Signed at the Release's Date (VALIDSIG <fingerprint> <day> <timestamp> ...), as a mirror would be.
    validsig = next(line.split() for line in detached.stdout.decode().splitlines() if "VALIDSIG" in line)
    assert (validsig[2], validsig[4]) == (signing_key.fingerprint, "1761955200")


def test_publish_is_deterministic(tmp_path, signing_key, debs):
    def published(root: Path) -> dict[str, bytes]:
        return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}

    first = published(mirror(tmp_path / "a", signing_key, debs).root)
    assert "debian/dists/bookworm/InRelease" in first
    assert first == published(mirror(tmp_path / "b", signing_key, debs).root)
    # Nor does the order packages were added in matter.
    shuffled = DebianRepository(tmp_path / "d", signing_key)
    shuffled.add("debian-security", "bookworm-security", debs["hello-security"])
    for name in ("libbar2", "libfoo1", "hello"):
        shuffled.add("debian", "bookworm", debs[name])
    shuffled.add_suite("debian", "bookworm-updates")
    shuffled.publish()
    assert first == published(shuffled.root)
    later = published(mirror(tmp_path / "c", signing_key, debs, date="Sun, 02 Nov 2025 00:00:00 UTC").root)
    assert later["debian/dists/bookworm/Release"] != first["debian/dists/bookworm/Release"]
    assert (
        later["debian/dists/bookworm/main/binary-amd64/Packages"]
        == first["debian/dists/bookworm/main/binary-amd64/Packages"]
    )


def test_altered_index_is_refused(served, signing_key, debs):
    stand_in, root = served
    index = root / "debian/dists/bookworm/main/binary-amd64/Packages.xz"
    packages = lzma.decompress(index.read_bytes()).replace(b"Depends: hello (>= 2)", b"Depends: hello (>= 1)")
    index.write_bytes(lzma.compress(packages))
    with pytest.raises(HpsforgeError, match="bytes do not match the signed InRelease"):
        signed_packages_index(stand_in.url + "/debian", "bookworm", signing_key.keyring, "amd64")


def test_another_key_is_refused(tmp_path, signing_key, debs):
    with SigningKey.generate(tmp_path / "other-key") as other:
        mirror(tmp_path / "mirror", other, debs)
        with HttpStandIn(tmp_path / "mirror") as stand_in:
            with pytest.raises(HashMismatchError, match="signature does not verify") as raised:
                signed_packages_index(stand_in.url + "/debian", "bookworm", signing_key.keyring, "amd64")
            assert "(gpgv: exit code " in raised.value.message  # and gpgv's own words below it
            assert raised.value.message.splitlines()[-1].startswith("    gpgv: ")
            # ... while its own key accepts the same repository.
            assert len(signed_packages_index(stand_in.url + "/debian", "bookworm", other.keyring, "amd64")) == 3


def test_stand_in_logs_drops_files_and_goes_down(tmp_path):
    (tmp_path / "dists").mkdir()
    (tmp_path / "dists/a b+c~1").write_bytes(b"kept")
    (tmp_path / "dists/removed").write_bytes(b"removed")
    stand_in = HttpStandIn(tmp_path)
    assert stand_in.url.startswith("http://127.0.0.1:")
    stand_in.gone.add("/dists/removed")
    with urllib.request.urlopen(f"{stand_in.url}/dists/a%20b%2Bc%7E1") as response:
        assert response.read() == b"kept"
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(f"{stand_in.url}/dists/removed")
    assert gone.value.code == 404
    gone.value.close()  # the error holds the 404 answer's connection
    with pytest.raises(HpsforgeError, match=r"is gone \(HTTP 404\)"):
        signed_packages_index(stand_in.url, "removed", tmp_path / "unused.gpg", "amd64")
    assert stand_in.requests == ["/dists/a b+c~1", "/dists/removed", "/dists/removed/InRelease"]
    stand_in.stop()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"{stand_in.url}/dists/a%20b%2Bc%7E1", timeout=5)
    stand_in.stop()  # a second stop is harmless


def test_repository_from_locked_packages(tmp_path, signing_key, debs):
    store = ContentStore(tmp_path / "cache")

    def locked(deb: Path, uri: str, filename: str) -> DebPackage:
        data = deb.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        store.path(digest).parent.mkdir(parents=True, exist_ok=True)
        store.path(digest).write_bytes(data)
        control = deb822.Deb822(
            subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout
        )
        return DebPackage(
            name=control["Package"],
            version=control["Version"],
            architecture=control["Architecture"],
            uri=uri,
            filename=filename,
            size=len(data),
            sha256=digest,
            snapshot="https://snapshot.debian.org/file/" + "0" * 40,
            priority="optional",
        )

    packages = [
        locked(debs["libfoo1"], "http://deb.debian.org/debian", "pool/main/f/foo/libfoo1_1.2-1_amd64.deb"),
        locked(
            debs["hello-security"],
            "http://deb.debian.org/debian-security/",
            "pool/updates/main/h/hello/hello_2.10-3+deb12u1_all.deb",
        ),
    ]
    suites = {"debian": "bookworm", "debian-security": "bookworm-security"}
    root = tmp_path / "mirror"
    repository_from_packages(root, signing_key, packages, suites, [("debian", "bookworm-updates")], store=store)
    for package in packages:
        archive = package.uri.rstrip("/").rsplit("/", 1)[-1]
        assert (root / archive / package.filename).read_bytes() == store.path(package.sha256).read_bytes()
    with HttpStandIn(root) as stand_in:
        security = signed_packages_index(
            stand_in.url + "/debian-security", "bookworm-security", signing_key.keyring, "amd64"
        )
        assert [(s["Package"], s["Filename"], s["SHA256"]) for s in security] == [
            ("hello", packages[1].filename, packages[1].sha256)
        ]
        assert [
            s["Package"]
            for s in signed_packages_index(stand_in.url + "/debian", "bookworm", signing_key.keyring, "amd64")
        ] == ["libfoo1"]
        assert signed_packages_index(stand_in.url + "/debian", "bookworm-updates", signing_key.keyring, "amd64") == []
    with pytest.raises(ValueError, match="no suite given for archive 'debian-security'"):
        repository_from_packages(tmp_path / "partial", signing_key, packages, {"debian": "bookworm"}, store=store)
