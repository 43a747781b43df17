"""Engine package constraints: dpkg ordering, binNMUs, and the newest matching pin."""

from __future__ import annotations

import pytest

from hpsforge.core.config import HostPackage
from hpsforge.core.debversion import Constraint
from hpsforge.core.errors import HpsforgeError
from hpsforge.freeze.apt import pin_host_package

SERIES = ">= 26.1.5, << 26.2~"


@pytest.mark.parametrize(
    "version, allowed",
    [
        ("26.1.5+dfsg1-9+deb13u1", True),
        ("26.1.5+dfsg1-9+deb13u1+b1", True),  # a binNMU of the same upstream version
        ("26.1.5+dfsg1-10", True),  # a newer Debian revision
        ("26.1.9+dfsg1-1", True),
        ("26.2.0+dfsg1-1", False),
        ("26.2~rc1-1", False),  # a pre-release of 26.2 sorts after the series' end: ~
        ("26.1.4+dfsg1-3", False),
        ("1:20.10.24+dfsg1-1", False),  # an epoch wins over everything
    ],
)
def test_series_constraint(version, allowed):
    assert Constraint.parse(SERIES).allows(version) is allowed


def test_bare_version_is_exact_and_comparison_is_dpkgs():
    exact = Constraint.parse("1.3.5-7")
    assert exact.allows("1.3.5-7") and not exact.allows("1.3.5-7+b1")
    assert Constraint.parse(">> 1.9").allows("1.10")  # not a string comparison
    assert Constraint.parse("<< 1.0").allows("1.0~rc1")


@pytest.mark.parametrize("text", ["", ">= ", "~> 2", ">= 1, banana", "=> 1.0", ">= 1,"])
def test_malformed_constraints_are_refused(text):
    with pytest.raises(ValueError):
        Constraint.parse(text)


def test_a_malformed_constraint_names_the_field(tmp_path):
    from hpsforge.core.config import load_config
    from hpsforge.core.settings import PROJECT_ROOT

    text = (
        (PROJECT_ROOT / "hpsforge.toml")
        .read_text()
        .replace('version = ">= 26.1.5, << 26.2~"', 'version = "~> 26.1"', 1)
    )
    path = tmp_path / "hpsforge.toml"
    path.write_text(text)
    with pytest.raises(HpsforgeError) as refused:
        load_config(path)
    assert "engine.packages." in str(refused.value) and "'~> 26.1' is not a version clause" in str(refused.value)


def _stanza(name: str, version: str, arch: str = "amd64") -> dict[str, str]:
    return {
        "Package": name,
        "Version": version,
        "Architecture": arch,
        "Size": "10",
        "Filename": f"pool/main/d/docker.io/{name}_{version}_{arch}.deb",
        "SHA256": "ab" * 32,
    }


INDEX = [
    _stanza("docker-cli", "26.1.5+dfsg1-9+deb13u1+b1"),
    _stanza("docker-cli", "26.1.5+dfsg1-9+deb13u1+b2", "arm64"),
    _stanza("docker-cli", "27.0.1+dfsg1-1"),
    _stanza("docker-cli", "26.1.5+dfsg1-9+deb13u1"),
    _stanza("docker.io", "26.1.5+dfsg1-9+deb13u1+b3"),
]


def test_freeze_pins_the_newest_version_of_the_series_for_this_architecture():
    wanted = HostPackage(name="docker-cli", version=SERIES, suite="trixie")
    assert pin_host_package(wanted, INDEX, "amd64") == "26.1.5+dfsg1-9+deb13u1+b1"


def test_a_constraint_nothing_matches_lists_what_the_mirror_has():
    wanted = HostPackage(name="docker-cli", version=">= 28.0, << 28.1~", suite="trixie")
    with pytest.raises(HpsforgeError) as refused:
        pin_host_package(wanted, INDEX, "amd64")
    message = str(refused.value)
    assert "docker-cli" in message and "trixie" in message and "'>= 28.0, << 28.1~'" in message
    assert "the mirror has: 26.1.5+dfsg1-9+deb13u1, 26.1.5+dfsg1-9+deb13u1+b1, 27.0.1+dfsg1-1" in message
    absent = HostPackage(name="docker-compose", version=SERIES, suite="trixie")
    with pytest.raises(HpsforgeError, match="the mirror has: none"):
        pin_host_package(absent, INDEX, "amd64")
