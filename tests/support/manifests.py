"""Offline validation of generated manifests, as strict as `kubectl apply --validate=strict`.

Kubernetes kinds: kubernetes-validate's bundled OpenAPI schemas, in their strict form (an unknown
field is an error). Custom resources (KServe's, and the admission policies of sigstore
policy-controller and Kyverno): the openAPIV3Schema of the CRDs vendored in tests/data/kserve/ and
tests/data/admission/ (a README in each: source, version, licence), made strict the same way, with
`metadata` checked against Kubernetes' ObjectMeta. A document of a kind none knows is an error,
never a skip.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import importlib_resources
import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

KSERVE_DIR = Path(__file__).resolve().parents[1] / "data" / "kserve"
ADMISSION_DIR = Path(__file__).resolve().parents[1] / "data" / "admission"
# Kubernetes versions the manifests must be valid for: a floor older than anything they rely on
# (autoscaling/v2 and policy/v1 are GA since 1.23 and 1.21) and the newest schema set that
# kubernetes-validate 1.37.0 ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
KSERVE_CRDS = {
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
}
ADMISSION_CRDS = {
    "ClusterImagePolicy": "policy.sigstore.dev_clusterimagepolicies.yaml",
    "ClusterPolicy": "kyverno.io_clusterpolicies.yaml",
}
# kind -> (API group, vendored CRD file)
CRDS = {
    **{kind: ("serving.kserve.io", KSERVE_DIR / filename) for kind, filename in KSERVE_CRDS.items()},
    "ClusterImagePolicy": ("policy.sigstore.dev", ADMISSION_DIR / ADMISSION_CRDS["ClusterImagePolicy"]),
    "ClusterPolicy": ("kyverno.io", ADMISSION_DIR / ADMISSION_CRDS["ClusterPolicy"]),
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# The API server accepts these on every object whether or not a CRD's schema lists them
# (policy-controller's does not).
TYPE_AND_OBJECT_META = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


class ManifestInvalid(AssertionError):
    pass


def _strict(schema, closed: bool = True):
    """The CRD schema with additionalProperties: false wherever it lists properties and does not
    say to keep unknown fields: what the API server's strict field validation rejects. Branches of
    allOf/anyOf/oneOf/not only add constraints to their object, so they stay open."""
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {name: _strict(field) for name, field in schema["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_strict(branch, closed=False) for branch in schema[key]]
    if "not" in schema:
        schema["not"] = _strict(schema["not"], closed=False)
    if (
        closed
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


@functools.cache
def _crd(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def _crd_schema(kind: str, version: str) -> dict:
    crd = _crd(CRDS[kind][1])
    if crd["spec"]["names"]["kind"] != kind:
        raise ManifestInvalid(f"{kind}: the vendored CRD {CRDS[kind][1].name} is of {crd['spec']['names']['kind']}")
    served = {entry["name"]: entry for entry in crd["spec"]["versions"] if entry.get("served")}
    if version not in served:
        raise ManifestInvalid(f"{kind}: the vendored CRD serves {sorted(served)}, not {version}")
    schema = dict(served[version]["schema"]["openAPIV3Schema"])
    schema["properties"] = {**TYPE_AND_OBJECT_META, **schema["properties"]}
    return _strict(schema)


def crd_source(kind: str) -> str:
    """Where the schema of a custom resource kind comes from, for messages."""
    return CRDS[kind][1].relative_to(Path(__file__).resolve().parents[2]).as_posix()


@functools.cache
def _object_meta_validator(kubernetes_version: str) -> jsonschema.Draft202012Validator:
    folder = (
        importlib_resources.files("kubernetes_validate")
        / "kubernetes-json-schema"
        / f"v{kubernetes_version}-local-strict"
    )
    definitions = json.loads((folder / "_definitions.json").read_text(encoding="utf-8"))
    registry = Resource.from_contents(definitions) @ Registry()
    return jsonschema.Draft202012Validator({"$ref": f"{definitions['$id']}#/$defs/{OBJECT_META}"}, registry=registry)


def validate(document: dict, kubernetes_version: str = KUBERNETES_VERSIONS[0]) -> str:
    """Raise ManifestInvalid (naming the field) unless `document` is valid; what it was checked against."""
    kind, api_version = document.get("kind"), document.get("apiVersion", "")
    where = f"{kind} {document.get('metadata', {}).get('name')}"
    if kind in CRDS:
        group, _, version = api_version.partition("/")
        if group != CRDS[kind][0]:
            raise ManifestInvalid(f"{where}: apiVersion {api_version} is not in {CRDS[kind][0]}")
        # The CRD schemas are OpenAPI 3.0 schemas: JSON Schema draft 4 is what they build on.
        checks = [
            ((), jsonschema.Draft4Validator(_crd_schema(kind, version)), document),
            (("metadata",), _object_meta_validator(kubernetes_version), document.get("metadata", {})),
        ]
        for prefix, validator, part in checks:
            error = jsonschema.exceptions.best_match(validator.iter_errors(part))
            if error is not None:
                path = ".".join(str(item) for item in (*prefix, *error.absolute_path))
                raise ManifestInvalid(f"{where}: {path}: {error.message}")
        return f"{kind} CRD {api_version} ({crd_source(kind)})"
    try:
        checked = kubernetes_validate.validate(document, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(item) for item in error.path)
        raise ManifestInvalid(f"{where}: {path}: {error.message}") from None
    except kubernetes_validate.SchemaNotFoundError as error:
        raise ManifestInvalid(f"{where}: {error.message}") from None
    return f"Kubernetes {checked} (kubernetes-validate, strict)"


def validate_text(text: str, kubernetes_version: str = KUBERNETES_VERSIONS[0]) -> list[str]:
    """Every document of a YAML file, validated; what each was checked against."""
    documents = [document for document in yaml.safe_load_all(text) if document]
    if not documents:
        raise ManifestInvalid("no document in the file")
    return [validate(document, kubernetes_version) for document in documents]
