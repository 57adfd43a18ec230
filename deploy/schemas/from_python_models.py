#!/usr/bin/env python3
r"""A JSON Schema of a Kubernetes resource from the OpenAPI model classes of
a Python client: KServe's (`kserve.models`, from the `kserve` package) and
Kubernetes' own (`kubernetes.client.models`). Run it with a python that has
`kserve` installed (`.venvs/kserve`, made by `python3 dev.py test`):

    python deploy/schemas/from_python_models.py V1alpha1ClusterServingRuntime \
        --group serving.kserve.io > runtime.json
    check-jsonschema --schemafile runtime.json deploy/kserve/clusterservingruntime.yaml

Each model class lists its fields in `openapi_types` (attribute -> type:
'str', 'int', 'float', 'bool', 'datetime', 'object', 'list[X]', 'dict(str, X)'
or another model class) and their JSON names in `attribute_map`. Each model
class becomes an object that accepts only its own fields, typed as the
class types them, under `$defs` (so that recursive types, such as
JSONSchemaProps, are `$ref`s). 'object' is what the generator makes of
schemas it could not type (IntOrString, free-form JSON): it accepts anything.

This is stricter than the API server in places: null is rejected where the
server would drop it; Quantity is typed 'str', so `cpu: 1` is rejected where
the API server takes it; required fields are not checked (the classes do not
list them)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import kserve.models
import kubernetes.client.models

DRAFT = "https://json-schema.org/draft/2020-12/schema"
MODULES = (kserve.models, kubernetes.client.models)
PRIMITIVES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "bytes": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "object": {},
}
# Names KServe's classes use for types that the kubernetes package names
# otherwise (or types as a primitive: Quantity and Time are strings there).
ALIASES = {
    "ResourceQuantity": "str",
    "V1Time": "datetime",
    "K8sIoApiAppsV1DeploymentStrategy": "V1DeploymentStrategy",
    "K8sIoApiAutoscalingV2HorizontalPodAutoscalerBehavior": "V2HorizontalPodAutoscalerBehavior",
}
# Both spellings of the generators: KServe's `list[X]`, `dict(str, X)` and
# the kubernetes package's `List[X]`, `Dict[str, X]`.
_LIST = re.compile(r"[lL]ist\[(.+)\]")
_DICT = re.compile(r"(?:dict\(|Dict\[)str, (.+)[)\]]")
# A top-level class's name: API version, then kind (V1beta1InferenceService).
_KIND = re.compile(r"(V\d+(?:(?:alpha|beta)\d+)?)([A-Z]\w*)")


def model_class(name: str) -> type | None:
    for module in MODULES:
        found = getattr(module, name, None)
        if isinstance(found, type) and hasattr(found, "openapi_types"):
            return found
    return None


class SchemaBuilder:
    """Schemas of type strings; every model class met is added to `defs`."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self.unresolved: set[str] = set()

    def of_type(self, type_: str) -> dict[str, Any]:
        type_ = ALIASES.get(type_, type_)
        if type_ in PRIMITIVES:
            return dict(PRIMITIVES[type_])
        if match := _LIST.fullmatch(type_):
            return {"type": "array", "items": self.of_type(match[1])}
        if match := _DICT.fullmatch(type_):
            return {"type": "object", "additionalProperties": self.of_type(match[1])}
        cls = model_class(type_)
        if cls is None:
            # A name neither package defines: nothing to check it against.
            self.unresolved.add(type_)
            return {"description": f"{type_}: no model class of that name"}
        if type_ not in self.defs:
            self.defs[type_] = {}  # before recursing: a cycle ends at this $ref
            self.defs[type_] = self.of_class(cls)
        return {"$ref": f"#/$defs/{type_}"}

    def of_class(self, cls: type) -> dict[str, Any]:
        types: dict[str, str] = cls.openapi_types  # type: ignore[attr-defined]
        names: dict[str, str] = cls.attribute_map  # type: ignore[attr-defined]
        properties = {names[attribute]: self.of_type(type_) for attribute, type_ in types.items()}
        return {"type": "object", "properties": properties, "additionalProperties": False}


def schema(class_name: str, group: str | None = None) -> tuple[dict[str, Any], set[str]]:
    """The JSON Schema of model class `class_name`, and the type names it
    references that no class defines. With `group`, apiVersion and kind
    must be the class's (GROUP/VERSION and KIND, from its name)."""
    cls = model_class(class_name)
    if cls is None:
        raise ValueError(f"no model class {class_name} in kserve.models or kubernetes.client.models")
    builder = SchemaBuilder()
    root = builder.of_class(cls)
    if group is not None:
        match = _KIND.fullmatch(class_name)
        if match is None:
            raise ValueError(f"{class_name} is not named VERSION + KIND")
        root["properties"]["apiVersion"] = {"const": f"{group}/{match[1].lower()}"}
        root["properties"]["kind"] = {"const": match[2]}
        root["required"] = ["apiVersion", "kind"]
    document = {"$schema": DRAFT, "title": class_name, **root, "$defs": dict(sorted(builder.defs.items()))}
    return document, builder.unresolved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model class's name, e.g. V1beta1InferenceService")
    parser.add_argument("--group", help="pin apiVersion to GROUP/VERSION and kind to the class's")
    args = parser.parse_args(argv)
    try:
        document, unresolved = schema(args.model, args.group)
    except ValueError as error:
        print(f"from_python_models.py: {error}", file=sys.stderr)
        return 1
    if unresolved:
        print(
            f"from_python_models.py: not checked (no class): {', '.join(sorted(unresolved))}", file=sys.stderr
        )
    print(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
