"""Offline validation of generated manifests, as strict as `kubectl apply --validate=strict`.

Kubernetes kinds: kubernetes-validate's bundled OpenAPI schemas, in their strict form (an unknown
field is an error). KServe kinds: the openAPIV3Schema of the CRDs vendored in tests/data/kserve/
(README there: source, version, licence), made strict the same way, with `metadata` checked
against Kubernetes' ObjectMeta. A document of a kind neither knows is an error, never a skip.
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
# Kubernetes versions the manifests must be valid for: a floor older than anything they rely on
# (autoscaling/v2 and policy/v1 are GA since 1.23 and 1.21) and the newest schema set that
# kubernetes-validate 1.37.0 ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
KSERVE_CRDS = {
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


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
def _kserve_schema(kind: str, version: str) -> dict:
    crd = yaml.safe_load((KSERVE_DIR / KSERVE_CRDS[kind]).read_text(encoding="utf-8"))
    served = {entry["name"]: entry for entry in crd["spec"]["versions"] if entry.get("served")}
    if version not in served:
        raise ManifestInvalid(f"{kind}: the vendored CRD serves {sorted(served)}, not {version}")
    return _strict(served[version]["schema"]["openAPIV3Schema"])


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
    if kind in KSERVE_CRDS:
        group, _, version = api_version.partition("/")
        if group != "serving.kserve.io":
            raise ManifestInvalid(f"{where}: apiVersion {api_version} is not KServe's")
        # The CRD schemas are OpenAPI 3.0 schemas: JSON Schema draft 4 is what they build on.
        checks = [
            ((), jsonschema.Draft4Validator(_kserve_schema(kind, version)), document),
            (("metadata",), _object_meta_validator(kubernetes_version), document.get("metadata", {})),
        ]
        for prefix, validator, part in checks:
            error = jsonschema.exceptions.best_match(validator.iter_errors(part))
            if error is not None:
                path = ".".join(str(item) for item in (*prefix, *error.absolute_path))
                raise ManifestInvalid(f"{where}: {path}: {error.message}")
        return f"KServe CRD {api_version} (tests/data/kserve)"
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
