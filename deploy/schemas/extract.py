#!/usr/bin/env python3
"""JSON Schemas of Kubernetes custom resources, from the CustomResourceDefinitions
that declare them, to check manifests of those kinds without a cluster:

    python deploy/schemas/extract.py OUTPUT CRD_FILE_OR_FOLDER...
    check-jsonschema --schemafile OUTPUT/serving.kserve.io/clusterservingruntime_v1alpha1.json MANIFEST.json

Every YAML file given, or found below a folder given, is read; each
CustomResourceDefinition in it gives one schema per served version, written
to OUTPUT/GROUP/KIND_VERSION.json (lower case, as kubeconform's CRD catalogue
names them).

A CRD's `openAPIV3Schema` is OpenAPI's dialect of JSON Schema with
Kubernetes extensions; the schema keeps it, with what the API server
enforces beyond it made explicit, so that a JSON Schema validator rejects
what `kubectl apply` (strict field validation, kubectl's default) would:

- an object with `properties` accepts no other fields (unless it has
  `x-kubernetes-preserve-unknown-fields` or `additionalProperties`);
- `nullable: true` admits null;
- `x-kubernetes-int-or-string` admits an integer or a string;
- `x-kubernetes-embedded-resource` objects take apiVersion, kind, metadata;
- `apiVersion` and `kind` must be the resource's, and `metadata`'s labels
  and annotations strings (ObjectMeta, which CRDs leave out).

CEL rules (`x-kubernetes-validations`) are not checked."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

DRAFT = "http://json-schema.org/draft-07/schema#"
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# What every object's metadata is held to: ObjectMeta's string maps.
METADATA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
_EMBEDDED = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
# Keywords whose values are subschemas: a map of them, or a list of them.
_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def find_crds(sources: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every CustomResourceDefinition in the YAML files given or below the folders given."""
    for source in sources:
        files = sorted([*source.rglob("*.yaml"), *source.rglob("*.yml")]) if source.is_dir() else [source]
        for path in files:
            text = path.read_text(encoding="utf-8")
            if "CustomResourceDefinition" not in text:
                continue  # spare parsing large files of other things
            for document in yaml.load_all(text, Loader=_LOADER):
                if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                    yield document


def schemas_of(crd: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, kind, version) -> JSON Schema, for each served version of `crd`."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    found = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        openapi = version.get("schema", {}).get("openAPIV3Schema")
        if openapi is None:
            continue
        schema = to_json_schema(openapi)
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"const": f"{group}/{version['name']}"}
        properties["kind"] = {"const": kind}
        properties["metadata"] = METADATA
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind"})
        found[(group, kind, version["name"])] = {
            "$schema": DRAFT,
            "title": f"{kind} ({group}/{version['name']})",
            **schema,
        }
    return found


def to_json_schema(node: Any) -> Any:
    """A CRD's structural schema as plain JSON Schema (see the module's docstring)."""
    if not isinstance(node, dict):
        return node
    schema = dict(node)  # values other than subschemas (enum, default, ...) as they are
    for key in _SCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            schema[key] = {name: to_json_schema(value) for name, value in node[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            schema[key] = [to_json_schema(value) for value in node[key]]
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            schema[key] = to_json_schema(node[key])
    properties = schema.get("properties")
    if node.get("x-kubernetes-embedded-resource") and isinstance(properties, dict):
        schema["properties"] = {**_EMBEDDED, **properties}
    if (
        schema.get("type") == "object"
        and isinstance(properties, dict)
        and "additionalProperties" not in schema
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string") and "type" not in schema and "anyOf" not in schema:
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.pop("nullable", False) and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    return schema


def schema_path(output: Path, group: str, kind: str, version: str) -> Path:
    return output / group / f"{kind.lower()}_{version}.json"


def extract(sources: Iterable[Path], output: Path) -> list[Path]:
    """Write the schema of every CRD version found in `sources` under `output`."""
    written = []
    for crd in find_crds(sources):
        for (group, kind, version), schema in schemas_of(crd).items():
            path = schema_path(output, group, kind, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            written.append(path)
    return written


# libyaml's loader when PyYAML has it: a large CRD (KServe's InferenceService
# is 2 MB) parses in a fraction of the time.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", type=Path, help="folder the schemas are written to")
    parser.add_argument("sources", type=Path, nargs="+", help="CRD YAML files, or folders holding them")
    args = parser.parse_args(argv)
    written = extract(args.sources, args.output)
    if not written:
        print("extract.py: no CustomResourceDefinition found", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
