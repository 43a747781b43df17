"""hpsforge.sbom: the CycloneDX 1.5 document of a target, derived from the committed locks."""

from __future__ import annotations

import copy
import json
import re
import string
from urllib.parse import quote, urlsplit

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from jsonschema.validators import Draft7Validator
from packageurl import PackageURL

from hpsforge.core.config import load_config
from hpsforge.core.errors import HpsforgeError
from hpsforge.core.files import canonical_json, sha256_file
from hpsforge.core.pipelines import load_pipelines
from hpsforge.inputs import blobs
from hpsforge.locks import debian, pip_locks, requirements_lock
from hpsforge.locks.requirements_lock import canonical_name
from hpsforge.prove import sbom

HEX64 = re.compile(r"^[0-9a-f]{64}$")
_IRI_FORBIDDEN = set(string.whitespace) | set('<>"{}|\\^`')


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """No wheelhouse manifest from this machine's cache leaks into the documents."""
    monkeypatch.setenv("HPSFORGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def project():
    return load_config(), load_pipelines()


@pytest.fixture
def fast_iri_check(monkeypatch):
    """jsonschema checks `iri-reference` with a full RFC 3987 Earley parser: ~30 ms a URL, so the
    ~130 URLs of a document would take seconds. Validation of everything else is unchanged;
    test_urls_are_valid_iris runs the real parser over one URL of each kind."""

    def is_iri_reference(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        if _IRI_FORBIDDEN & set(instance) or any(ord(c) < 0x20 for c in instance):
            raise ValueError(f"not an IRI reference: {instance!r}")
        urlsplit(instance)
        return True

    monkeypatch.setitem(Draft7Validator.FORMAT_CHECKER.checkers, "iri-reference", (is_iri_reference, ValueError))


def _validate(document: dict):
    return JsonStrictValidator(SchemaVersion.V1_5).validate_str(canonical_json(document))


def _components(document: dict, prefix: str) -> list[dict]:
    return [c for c in document["components"] if c["bom-ref"].startswith(prefix)]


def _digests(component: dict) -> list[str]:
    assert all(h["alg"] == "SHA-256" for h in component["hashes"])
    return [h["content"] for h in component["hashes"]]


def _bom_refs(components: list[dict]):
    for component in components:
        yield component["bom-ref"]
        yield from _bom_refs(component.get("components", []))


# --- schema -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["cpu", "gpu-cu118"])
def test_document_is_valid_cyclonedx_1_5(project, target, fast_iri_check):
    config, pipelines = project
    document = sbom.document(config, pipelines, target)
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.5"
    assert _validate(document) is None


def test_validation_can_fail(project, fast_iri_check):
    config, pipelines = project
    document = sbom.document(config, pipelines, "cpu")
    broken = copy.deepcopy(document)
    broken["components"][0]["type"] = "bogus"
    assert _validate(broken) is not None
    unknown_field = copy.deepcopy(document)
    unknown_field["components"][-1]["colour"] = "blue"  # the strict schema forbids extra properties
    assert _validate(unknown_field) is not None
    bad_url = copy.deepcopy(document)
    bad_url["components"][0]["externalReferences"][0]["url"] = "http://deb.debian.org/a b"
    assert _validate(bad_url) is not None


def test_urls_are_valid_iris(project):
    config, pipelines = project
    document = sbom.document(config, pipelines, "gpu-cu118")
    urls = [ref["url"] for c in document["components"] for ref in c.get("externalReferences", [])]
    assert urls
    for url in urls:
        assert urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc, url
    # One URL per host and top folder, through the real RFC 3987 parser jsonschema uses.
    samples = {}
    for url in urls:
        parts = urlsplit(url)
        samples.setdefault((parts.netloc, parts.path.split("/")[1]), url)
    checker = Draft7Validator.FORMAT_CHECKER
    for url in samples.values():
        assert checker.conforms(url, "iri-reference"), url
    assert not checker.conforms("http://deb.debian.org/a b", "iri-reference")


# --- contents -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["cpu", "gpu-cu118"])
def test_every_debian_package_is_listed(project, target):
    config, pipelines = project
    lock = debian.DebianLock.read(debian.base_lock_path())
    components = _components(sbom.document(config, pipelines, target), "deb:")
    assert len(components) == len(lock.packages) > 0
    listed = {(c["name"], c["version"]): _digests(c) for c in components}
    assert listed == {(p.name, p.version): [p.sha256] for p in lock.packages}
    for component in components:
        # packageurl-python's canonical form percent-encodes a '+' in the name (libstdc++6).
        assert component["purl"].startswith(f"pkg:deb/debian/{component['name'].replace('+', '%2B')}@")
        assert f"distro=debian-{config.base.suite}" in component["purl"]
        # Each purl reads back as its package (the version percent-decoded).
        purl = PackageURL.from_string(component["purl"])
        assert (purl.type, purl.namespace, purl.name, purl.version) == (
            "deb",
            "debian",
            component["name"],
            component["version"],
        )
        assert purl.qualifiers == {
            "arch": component["bom-ref"].rsplit(":", 1)[1],
            "distro": f"debian-{config.base.suite}",
        }


def test_debian_purls_in_packageurls_canonical_form(project):
    """packageurl-python writes an epoch's ':' as it is and a '+' as %2B, in the version and in the
    name (the hand-made purls had ':' as %3A and the name unencoded; both read back the same)."""
    config, pipelines = project
    purls = {c["name"]: c["purl"] for c in _components(sbom.document(config, pipelines, "cpu"), "deb:")}
    packages = {p.name: p for p in debian.DebianLock.read(debian.base_lock_path()).packages}
    suite = f"debian-{config.base.suite}"
    epoch = next(p for p in packages.values() if ":" in p.version and "+" in p.version)
    assert purls[epoch.name] == (
        f"pkg:deb/debian/{epoch.name}@{epoch.version.replace('+', '%2B')}?arch={epoch.architecture}&distro={suite}"
    )
    stdcxx = packages["libstdc++6"]
    assert purls["libstdc++6"] == (
        f"pkg:deb/debian/libstdc%2B%2B6@{stdcxx.version.replace('+', '%2B')}?arch={stdcxx.architecture}&distro={suite}"
    )
    hand_made = f"pkg:deb/debian/libstdc++6@{quote(stdcxx.version, safe='')}?arch={stdcxx.architecture}&distro={suite}"
    assert PackageURL.from_string(hand_made) == PackageURL.from_string(purls["libstdc++6"])


@pytest.mark.parametrize("target", ["cpu", "gpu-cu118"])
def test_every_locked_requirement_is_listed(project, target):
    config, pipelines = project
    lock = requirements_lock.read(pip_locks.lock_path(target))
    components = _components(sbom.document(config, pipelines, target), "pypi:")
    assert len(components) == len(lock.requirements) > 0
    listed = {(c["name"], c["version"]): _digests(c) for c in components}
    assert listed == {(canonical_name(r.name), r.version): sorted(r.hashes) for r in lock.requirements}
    for component in components:
        assert component["purl"] == f"pkg:pypi/{component['name']}@{component['version']}"


def test_each_target_lists_its_own_paddle(project):
    config, pipelines = project
    names = {
        t: {c["name"] for c in _components(sbom.document(config, pipelines, t), "pypi:")} for t in ("cpu", "gpu-cu118")
    }
    assert "paddlepaddle" in names["cpu"] and "paddlepaddle-gpu" not in names["cpu"]
    assert "paddlepaddle-gpu" in names["gpu-cu118"] and "paddlepaddle" not in names["gpu-cu118"]


@pytest.mark.parametrize("target", ["cpu", "gpu-cu118"])
def test_every_model_file_is_listed(project, target):
    config, pipelines = project
    components = _components(sbom.document(config, pipelines, target), "model:")
    expected = {
        f"{name}/{artifact.name}": artifact.files
        for name, pipeline in pipelines.items()
        for artifact in pipeline.models
    }
    assert expected
    listed = {}
    for component in components:
        assert component["type"] == "machine-learning-model"
        files = {}
        for file in component["components"]:
            (digest,) = _digests(file)
            files[file["name"]] = digest
        listed[component["name"]] = files
    assert listed == expected


def test_gpu_lists_its_vendor_blobs(project):
    config, pipelines = project
    manifest = blobs.load_manifest()
    wanted = config.targets["gpu-cu118"].blobs
    assert wanted
    components = _components(sbom.document(config, pipelines, "gpu-cu118"), "blob:")
    listed = {c["bom-ref"].removeprefix("blob:"): (c["name"], _digests(c)) for c in components}
    assert listed == {name: (manifest.get(name).file, [manifest.get(name).sha256]) for name in wanted}
    for digest in (d for _, ds in listed.values() for d in ds):
        assert HEX64.match(digest)


def test_cpu_lists_no_vendor_blobs(project):
    config, pipelines = project
    assert config.targets["cpu"].blobs == []
    assert _components(sbom.document(config, pipelines, "cpu"), "blob:") == []


@pytest.mark.parametrize("target", ["cpu", "gpu-cu118"])
def test_bom_refs_are_unique(project, target):
    config, pipelines = project
    document = sbom.document(config, pipelines, target)
    refs = list(_bom_refs(document["components"]))
    assert len(refs) == len(set(refs))


def test_metadata(project):
    config, pipelines = project
    document = sbom.document(config, pipelines, "gpu-cu118")
    assert document["metadata"]["timestamp"] == "2026-01-01T00:00:00Z"
    assert config.base.source_date_epoch == 1767225600
    assert document["metadata"]["component"]["bom-ref"] == "image:gpu-cu118"
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", document["serialNumber"])
    assert document["serialNumber"] != sbom.document(config, pipelines, "cpu")["serialNumber"]


# --- determinism and output ---------------------------------------------------------------------


def test_document_is_deterministic(project):
    config, pipelines = project
    first = canonical_json(sbom.document(config, pipelines, "cpu"))
    second = canonical_json(sbom.document(config, pipelines, "cpu"))
    assert first == second
    assert json.loads(first)["serialNumber"] == json.loads(second)["serialNumber"]


def test_write(project, tmp_path):
    config, pipelines = project
    path = sbom.write(config, pipelines, "cpu", output_dir=tmp_path / "sbom")
    assert path == tmp_path / "sbom" / "cpu.cdx.json"
    assert path.read_text(encoding="utf-8") == canonical_json(sbom.document(config, pipelines, "cpu"))
    assert sbom.write(config, pipelines, "cpu", output_dir=tmp_path / "sbom") == path


def test_unknown_target(project, tmp_path):
    config, pipelines = project
    with pytest.raises(HpsforgeError, match="unknown target 'tpu'"):
        sbom.document(config, pipelines, "tpu")
    with pytest.raises(HpsforgeError, match="unknown target"):
        sbom.write(config, pipelines, "tpu", output_dir=tmp_path)
    assert not (tmp_path / "tpu.cdx.json").exists()


# --- the wheelhouse manifest --------------------------------------------------------------------


def _write_manifest(cache, target: str, lock_sha256: str, wheels: list[dict]) -> None:
    folder = cache / "wheelhouse" / target
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"target": target, "lock_sha256": lock_sha256, "wheels": wheels}), encoding="utf-8"
    )


def _numpy(document: dict) -> dict:
    (component,) = [c for c in _components(document, "pypi:") if c["name"] == "numpy"]
    return component


def test_fresh_wheelhouse_manifest_narrows_hashes_to_the_fetched_wheel(project, empty_cache):
    config, pipelines = project
    lock_file = pip_locks.lock_path("cpu")
    numpy = requirements_lock.read(lock_file).by_name()["numpy"]
    chosen = sorted(numpy.hashes)[0]
    _write_manifest(
        empty_cache,
        "cpu",
        sha256_file(lock_file),
        [
            {
                "filename": f"numpy-{numpy.version}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "sha256": chosen,
                "size": 1,
            }
        ],
    )
    component = _numpy(sbom.document(config, pipelines, "cpu"))
    assert component["version"] == numpy.version
    assert _digests(component) == [chosen]


def test_stale_wheelhouse_manifest_is_ignored(project, empty_cache):
    config, pipelines = project
    lock_file = pip_locks.lock_path("cpu")
    numpy = requirements_lock.read(lock_file).by_name()["numpy"]
    _write_manifest(
        empty_cache,
        "cpu",
        "0" * 64,
        [
            {
                "filename": "numpy-1.26.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                "sha256": "ab" * 32,
                "size": 1,
            }
        ],
    )
    component = _numpy(sbom.document(config, pipelines, "cpu"))
    assert set(_digests(component)) <= numpy.hashes
