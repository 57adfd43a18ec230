"""The Kubernetes manifests of deploy/ (docs/deploy-kserve.md,
deploy-seldon.md, deploy-kubernetes.md), checked without a cluster:

- Kubernetes' own kinds (Deployment, Service, ...), and the pod specs inside
  the custom resources, against Kubernetes' schemas: kubernetes-validate --strict;
- the custom resources (KServe, Seldon Core v2, prometheus-operator) against
  the schemas of their upstream CRDs (deploy/schemas/extract.py), with
  check-jsonschema. The CRDs are read from ../shared/spec beside the clone
  (as the OIP proto is), and from DEV_CRD_DIR when set; without them these
  tests skip, saying so;
- KServe's two kinds also against the schema of the kserve package's API
  model classes (deploy/schemas/from_python_models.py, run by .venvs/kserve's
  python), which dev.py installs: checked in CI, CRDs or not;
- the ServiceMonitor also against the prometheus-operator API's types and
  validator from npm (@kubernetes-models/prometheus-operator, with
  TypeScript's compiler), which dev.py installs into .venvs/npm;
- the wiring: every CORE_* variable names a setting, and each container that
  runs core is started here as a process with exactly its command, args and
  environment (KServe's placeholders filled in as KServe fills them), its
  volumes as temporary folders holding the iris model and its ports moved to
  free loopback ones (CORE_HOST=127.0.0.1 is the one addition). It must then
  answer on the ports and paths its probes, Service, ServiceMonitor, KServe's
  metrics annotations and Seldon's agent use."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml

from core.settings import ModelParameters, ModelSettings, Settings
from core.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The folders of Kubernetes manifests (deploy/docker holds the image's recipe).
FOLDERS = ("kserve", "seldon", "kubernetes")
IMAGE = "ghcr.io/core-serving/core:0.1.0"
# Upstream copies of the CRDs: in the shared folder beside the clone, and
# wherever DEV_CRD_DIR points.
CRD_SOURCES = [ROOT.parent / "shared" / "spec", *(Path(p) for p in [os.environ.get("DEV_CRD_DIR")] if p)]
# Kubernetes versions the built-in kinds are checked against: the oldest
# release still commonly run, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# The settings of core's ports, each of which a manifest must set.
PORT_VARIABLES = ("CORE_HTTP_PORT", "CORE_GRPC_PORT", "CORE_METRICS_PORT")
# A manifest's executables, as installed here.
EXECUTABLES = {"core": str(Path(sys.executable).with_name("core")), "python": sys.executable}
IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


extract = _module(DEPLOY / "schemas" / "extract.py")


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def manifests() -> list[Path]:
    found = [path for folder in FOLDERS for path in (DEPLOY / folder).glob("*.yaml")]
    return sorted(path for path in found if path.name != "kustomization.yaml")


def resources() -> list[dict[str, Any]]:
    return [document for path in manifests() for document in documents(path)]


def resource(kind: str, folder: str) -> dict[str, Any]:
    (found,) = [
        d for path in manifests() if path.parent.name == folder for d in documents(path) if d["kind"] == kind
    ]
    return found


def is_builtin(document: dict[str, Any]) -> bool:
    """Of a kind Kubernetes itself defines (apiVersion `v1` or GROUP/VERSION of a built-in group)."""
    group = document["apiVersion"].rpartition("/")[0]
    return group in ("", "apps", "autoscaling", "batch", "policy", "networking.k8s.io")


def container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec["containers"]
    (found,) = [c for c in containers if c["name"] == name]
    return found


def core_containers() -> list[dict[str, Any]]:
    """Every container (and init container) that runs the core image."""
    found = []
    for document in resources():
        for pod_spec in pod_specs(document):
            containers = [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
            found += [c for c in containers if c["image"].split(":")[0] == IMAGE.split(":")[0]]
    return found


def pod_specs(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod specs a resource holds: a Deployment's template, a
    ServerConfig's podSpec, a serving runtime's containers and volumes."""
    spec = document.get("spec", {})
    if document["kind"] == "Deployment":
        return [spec["template"]["spec"]]
    if document["kind"] == "ServerConfig":
        return [spec["podSpec"]]
    if document["kind"] == "ClusterServingRuntime":
        fields = ("containers", "volumes", "nodeSelector", "tolerations", "affinity", "imagePullSecrets")
        return [{field: spec[field] for field in fields if field in spec}]
    return []


# Shape and consistency


def test_every_manifest_is_named_resources_with_one_image() -> None:
    assert manifests(), "no manifests under deploy/"
    for document in resources():
        assert {"apiVersion", "kind", "metadata"} <= set(document), document
        assert document["metadata"].get("name"), document
    images = {c["image"] for c in core_containers()}
    assert images == {IMAGE}, f"the core containers name several images: {images}"
    # KServe's runtime, Seldon's server and init container, the Deployment
    assert len(core_containers()) == 4


def test_kustomization_lists_every_plain_manifest() -> None:
    (kustomization,) = documents(DEPLOY / "kubernetes" / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == on_disk


# Kubernetes' own kinds: kubernetes-validate


def kubernetes_validate(tmp_path: Path, documents_: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    files = []
    for index, document in enumerate(documents_):
        path = tmp_path / f"{index:02d}-{document['kind'].lower()}-{document['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(document))
        files.append(str(path))
    versions = [option for version in KUBERNETES_VERSIONS for option in ("-k", version)]
    command = [str(Path(sys.executable).with_name("kubernetes-validate")), "--strict", *versions, *files]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def as_pod(document: dict[str, Any], pod_spec: dict[str, Any]) -> dict[str, Any]:
    name = f"{document['kind'].lower()}-{document['metadata']['name']}"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec}


def test_builtin_kinds_and_embedded_pods_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    builtin = [document for document in resources() if is_builtin(document)]
    kinds = {document["kind"] for document in builtin}
    assert kinds == {"ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "HorizontalPodAutoscaler"}
    # The pod specs inside the custom resources, as Pods: checked against
    # Kubernetes' own Pod schema whether or not the CRDs are at hand.
    pods = [as_pod(d, spec) for d in resources() if not is_builtin(d) for spec in pod_specs(d)]
    assert {pod["metadata"]["name"] for pod in pods} == {"clusterservingruntime-core", "serverconfig-core"}
    checked = [*builtin, *pods]
    done = kubernetes_validate(tmp_path, checked)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN" not in done.stdout, done.stdout
    assert done.stdout.count(" passed for resource ") == len(checked) * len(KUBERNETES_VERSIONS), done.stdout


def test_kubernetes_validate_strict_rejects_an_unknown_field(tmp_path: Path) -> None:
    deployment = resource("Deployment", "kubernetes")
    deployment["spec"]["template"]["spec"]["containers"][0]["enviroment"] = []
    done = kubernetes_validate(tmp_path, [deployment])
    assert done.returncode != 0
    assert "enviroment" in done.stdout


# Custom resources: their CRDs' schemas, with check-jsonschema


def check_jsonschema(schema: Path, instances: list[Path]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("check-jsonschema")), "--schemafile", str(schema)]
    return subprocess.run([*command, *map(str, instances)], capture_output=True, text=True, timeout=120)


def test_extract_makes_crd_schemas_strict(tmp_path: Path) -> None:
    """extract.py on a small CRD with each Kubernetes extension it translates."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"x-kubernetes-int-or-string": True},
                                "note": {"type": "string", "nullable": True},
                                # a field that shares a keyword's name
                                "nullable": {"type": "boolean"},
                                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                         "properties": {"known": {"type": "string"}}},
                                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                                             "properties": {"spec": {"type": "object"}}},
                                "parts": {"type": "array", "items": {
                                    "type": "object", "properties": {"name": {"type": "string"}}}},
                            },
                        },
                    },
                }}},
                {"name": "v0", "served": False, "storage": False},
            ],
        },
    }  # fmt: skip
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "widgets.yaml").write_text("# a comment\n---\n" + yaml.safe_dump(crd))
    written = extract.extract([tmp_path / "crds"], tmp_path / "schemas")
    schema_file = tmp_path / "schemas" / "example.com" / "widget_v1.json"
    assert written == [schema_file]  # the unserved v0 has none
    schema = json.loads(schema_file.read_text())
    assert schema["properties"]["spec"]["properties"]["nullable"] == {"type": "boolean"}

    def instance(name: str, spec: dict[str, Any], **top: Any) -> Path:
        document = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**document, **top}))
        return path

    good = [
        instance("int-size", {"size": 3, "note": None, "free": {"anything": [1]}}),
        instance("string-size", {"size": "50%", "template": {"apiVersion": "v1", "kind": "Pod", "spec": {}}}),
        instance("parts", {"size": 1, "parts": [{"name": "a"}], "nullable": True}),
    ]
    done = check_jsonschema(schema_file, good)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = {
        "unknown-field": instance("unknown-field", {"size": 1, "colour": "red"}),
        "unknown-item-field": instance("unknown-item-field", {"size": 1, "parts": [{"nam": "a"}]}),
        "float-size": instance("float-size", {"size": 1.5}),
        "null-flag": instance("null-flag", {"size": 1, "nullable": None}),
        "missing-size": instance("missing-size", {}),
        "other-kind": instance("other-kind", {"size": 1}, kind="Gadget"),
        "numeric-label": instance("numeric-label", {"size": 1}, metadata={"name": "w", "labels": {"a": 1}}),
    }
    done = check_jsonschema(schema_file, list(bad.values()))
    assert done.returncode == 1
    passed = [name for name, path in bad.items() if f"{path}::" not in done.stdout]
    assert not passed, f"{passed} passed:\n{done.stdout}"


@pytest.fixture(scope="module")
def crd_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The schemas extract.py makes of the upstream CRDs at hand."""
    output = tmp_path_factory.mktemp("crd-schemas")
    extract.extract([source for source in CRD_SOURCES if source.is_dir()], output)
    return output


CUSTOM_RESOURCES = sorted(
    {(d["apiVersion"], d["kind"]) for path in manifests() for d in documents(path) if not is_builtin(d)}
)


def schema_file(crd_schemas: Path, api_version: str, kind: str) -> Path:
    group, _, version = api_version.partition("/")
    path: Path = extract.schema_path(crd_schemas, group, kind, version)
    if not path.is_file():
        pytest.skip(
            f"no CRD of {kind} ({api_version}) in {' or '.join(map(str, CRD_SOURCES))}: "
            "copy upstream's CRD YAML there (docs/deploy-kubernetes.md#checking-the-manifests)"
        )
    return path


@pytest.mark.parametrize(
    ("api_version", "kind"), CUSTOM_RESOURCES, ids=[kind for _, kind in CUSTOM_RESOURCES]
)
def test_custom_resource_matches_its_crd(
    crd_schemas: Path, tmp_path: Path, api_version: str, kind: str
) -> None:
    schema = schema_file(crd_schemas, api_version, kind)
    instances = []
    for index, document in enumerate(
        d for d in resources() if (d["apiVersion"], d["kind"]) == (api_version, kind)
    ):
        instances.append(tmp_path / f"{index}.json")
        instances[-1].write_text(json.dumps(document))
    done = check_jsonschema(schema, instances)
    assert done.returncode == 0, done.stdout + done.stderr


def test_crd_schema_rejects_a_misspelt_runtime_field(crd_schemas: Path, tmp_path: Path) -> None:
    runtime = resource("ClusterServingRuntime", "kserve")
    schema = schema_file(crd_schemas, runtime["apiVersion"], runtime["kind"])
    runtime["spec"]["containers"][0]["readinessProbe"]["httpGets"] = {}
    (tmp_path / "runtime.json").write_text(json.dumps(runtime))
    done = check_jsonschema(schema, [tmp_path / "runtime.json"])
    assert done.returncode == 1
    assert "httpGets" in done.stdout


# prometheus-operator's ServiceMonitor: its API's published types (npm)

NODE_MODULES = ROOT / ".venvs" / "npm" / "node_modules"
SERVICE_MONITOR_TYPES = "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor"


def npm_package(name: str) -> Path:
    path = NODE_MODULES / name
    if not (path / "package.json").is_file():
        pytest.fail(f"{name} is not in {NODE_MODULES}: `python3 dev.py test` installs it (NPM_PACKAGES)")
    return path


def typecheck_service_monitors(
    folder: Path, monitors: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """TypeScript's compiler on each manifest as an object literal typed with
    the package's IServiceMonitor (generated from prometheus-operator's Go
    API, as its CRD is): an unknown field or a wrong type is an error."""
    npm_package("@kubernetes-models/prometheus-operator")
    tsc = npm_package("typescript") / "bin" / "tsc"
    for index, monitor in enumerate(monitors):
        (folder / f"monitor{index}.ts").write_text(
            f'import type {{ IServiceMonitor }} from "{SERVICE_MONITOR_TYPES}";\n'
            f"export const manifest: IServiceMonitor = {json.dumps(monitor, indent=1)};\n"
        )
    # Modules resolve from the files' folder up: a node_modules link beside them.
    (folder / "node_modules").symlink_to(NODE_MODULES)
    command = [
        "node",
        str(tsc),
        "--noEmit",
        "--strict",
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
    ]
    files = [str(path) for path in sorted(folder.glob("*.ts"))]
    return subprocess.run([*command, *files], capture_output=True, text=True, cwd=folder)


def service_monitors() -> list[dict[str, Any]]:
    found = [d for d in resources() if d["kind"] == "ServiceMonitor"]
    assert found
    return found


def test_service_monitor_has_the_prometheus_operator_api_types(tmp_path: Path) -> None:
    done = typecheck_service_monitors(tmp_path, service_monitors())
    assert done.returncode == 0, done.stdout + done.stderr


def test_service_monitor_types_reject_a_misspelt_field_and_a_wrong_type(tmp_path: Path) -> None:
    misspelt, wrong_type = service_monitors()[0], service_monitors()[0]
    misspelt["spec"]["endpoints"][0]["intervall"] = "10s"
    wrong_type["spec"]["endpoints"][0]["interval"] = 10
    done = typecheck_service_monitors(tmp_path, [misspelt, wrong_type])
    assert done.returncode != 0
    assert "'\"intervall\"' does not exist in type 'IEndpoint'" in done.stdout, done.stdout
    assert "monitor1.ts" in done.stdout and "not assignable to type 'string'" in done.stdout, done.stdout


def test_service_monitor_passes_the_published_validator(tmp_path: Path) -> None:
    """The package's validator: the JSON schema of prometheus-operator's API
    (types, required fields, enums, patterns), compiled with ajv."""
    npm_package("@kubernetes-models/prometheus-operator")
    script = (
        f'import {{ ServiceMonitor }} from "{SERVICE_MONITOR_TYPES}";\n'
        'import { readFileSync } from "node:fs";\n'
        "for (const path of process.argv.slice(1)) {\n"
        '  try { new ServiceMonitor(JSON.parse(readFileSync(path, "utf8"))).validate(); }\n'
        "  catch (error) { console.log(`${path}: ${error.message}`); process.exitCode = 1; }\n"
        "}\n"
    )
    good, bad = service_monitors()[0], service_monitors()[0]
    bad["spec"]["endpoints"][0]["scheme"] = "gopher"
    paths = [tmp_path / "good.json", tmp_path / "bad.json"]
    paths[0].write_text(json.dumps(good))
    paths[1].write_text(json.dumps(bad))
    command = ["node", "--input-type=module", "--eval", script, *map(str, paths)]
    # An evaluated module resolves packages from the working directory.
    done = subprocess.run(command, capture_output=True, text=True, cwd=NODE_MODULES.parent)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("\n") == 1 and "bad.json" in done.stdout and "scheme" in done.stdout, done.stdout


# KServe's kinds: the schema of KServe's published API models, with check-jsonschema


def kserve_python() -> Path:
    """.venvs/kserve's python (as tests/client/independent_servers.py finds it):
    DEV_KSERVE_PYTHON when dev.py sets it, else the venv, else skip."""
    given = os.environ.get("DEV_KSERVE_PYTHON")
    if given:
        if not Path(given).exists():
            pytest.fail(f"DEV_KSERVE_PYTHON={given}: no such interpreter (dev.py test sets up .venvs/kserve)")
        return Path(given)
    python = ROOT / ".venvs" / "kserve" / ("Scripts" if os.name == "nt" else "bin") / "python"
    if not python.exists():
        pytest.skip(".venvs/kserve missing: `python3 dev.py test` sets it up (DEV_KSERVE_PYTHON unset)")
    return python


KSERVE_GROUP = "serving.kserve.io"
KSERVE_RESOURCES = [(v, k) for v, k in CUSTOM_RESOURCES if v.partition("/")[0] == KSERVE_GROUP]


@pytest.fixture(scope="module")
def kserve_model_schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> the schema from_python_models.py makes of the kserve package's
    model class of that kind (V1alpha1ClusterServingRuntime, ...)."""
    python = kserve_python()
    output = tmp_path_factory.mktemp("kserve-model-schemas")
    schemas = {}
    for api_version, kind in KSERVE_RESOURCES:
        model = api_version.partition("/")[2].capitalize() + kind
        command = [
            str(python),
            str(DEPLOY / "schemas" / "from_python_models.py"),
            model,
            "--group",
            KSERVE_GROUP,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        schemas[kind] = output / f"{model}.json"
        schemas[kind].write_text(done.stdout)
    return schemas


def test_kserve_resources_match_kserve_python_models(kserve_model_schemas: dict[str, Path]) -> None:
    assert KSERVE_RESOURCES == [
        ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
    ]
    for kind, schema in kserve_model_schemas.items():
        (path,) = [p for p in manifests() if any(d["kind"] == kind for d in documents(p))]
        done = check_jsonschema(schema, [path])
        assert done.returncode == 0, done.stdout + done.stderr


def test_kserve_python_model_schemas_reject_misspelt_fields(
    kserve_model_schemas: dict[str, Path], tmp_path: Path
) -> None:
    runtime = resource("ClusterServingRuntime", "kserve")
    runtime["spec"]["containers"][0]["readinessProbe"]["httpGets"] = {}  # a Kubernetes type's field
    service = resource("InferenceService", "kserve")
    service["spec"]["predictor"]["model"]["storageUrl"] = "s3://b/m"  # a KServe type's field
    for document, misspelt in ((runtime, "httpGets"), (service, "storageUrl")):
        path = tmp_path / f"{document['kind']}.json"
        path.write_text(json.dumps(document))
        done = check_jsonschema(kserve_model_schemas[document["kind"]], [path])
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"'{misspelt}' was unexpected" in done.stdout


# Settings: every CORE_* variable is one core reads


def setting_variables() -> set[str]:
    server = {f"CORE_{name.upper()}" for name in Settings.model_fields}
    model = {
        f"CORE_MODEL_{name.upper()}" for name in [*ModelSettings.model_fields, *ModelParameters.model_fields]
    }
    return server | model


def core_environment(spec: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> dict[str, str]:
    """A container's environment: its ConfigMaps' (envFrom), then its `env`."""
    environment: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        environment.update(config_maps[source["configMapRef"]["name"]])
    for variable in spec.get("env", []):
        assert "value" in variable, f"{variable['name']}: a core container's settings are values"
        environment[variable["name"]] = variable["value"]
    return environment


def config_maps() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["data"] for d in resources() if d["kind"] == "ConfigMap"}


def test_every_core_variable_is_a_setting() -> None:
    known = setting_variables()
    for spec in core_containers():
        environment = core_environment(spec, config_maps())
        unknown = {name for name in environment if name.startswith("CORE_")} - known
        assert not unknown, f"{spec['name']}: core reads no {sorted(unknown)}"


def test_settings_read_from_the_runtime_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = render(resource("ClusterServingRuntime", "kserve"), name="iris", namespace="models")
    for name in [n for n in os.environ if n.startswith("CORE_")]:
        monkeypatch.delenv(name)
    for name, value in core_environment(runtime["spec"]["containers"][0], {}).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (8080, 9000, 8082)
    assert ModelSettings().name == "iris"


# The wiring: core started as each manifest runs it


def render(runtime: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """A serving runtime as KServe fills it for an InferenceService: its Go
    template placeholders ({{.Name}}, {{.Namespace}}, ...: the service's
    metadata) replaced in the JSON of the runtime (KServe's ReplacePlaceholders)."""
    text = json.dumps(runtime).replace("{{.Name}}", name).replace("{{.Namespace}}", namespace)
    assert "{{" not in text, "a placeholder this test does not fill"
    rendered: dict[str, Any] = json.loads(text)
    return rendered


class Process:
    """A container run here: its command and args, its environment, each of
    its volumes a temporary folder, core's ports moved to free ones."""

    def __init__(
        self, spec: dict[str, Any], environment: dict[str, str], mounts: dict[str, Path], log: Path
    ) -> None:
        self.spec = spec
        self.mounts = mounts
        self.log_path = log
        # manifest port -> the free port standing in for it
        self.ports = {int(environment[name]): free_port() for name in PORT_VARIABLES if name in environment}
        here = {name: self._path(value) for name, value in environment.items()}
        here.update(
            {name: str(self.ports[int(environment[name])]) for name in PORT_VARIABLES if name in environment}
        )
        command = [*spec.get("command", []), *spec.get("args", [])]
        assert command, f"{spec['name']}: no command: it would depend on the image's entrypoint"
        self.command = [EXECUTABLES[command[0]], *map(self._path, command[1:])]
        outside = {name: value for name, value in os.environ.items() if not name.startswith("CORE_")}
        self.env = {**outside, **here, "CORE_HOST": "127.0.0.1"}
        self.process: subprocess.Popen[bytes] | None = None

    def _path(self, value: str) -> str:
        for mount, folder in self.mounts.items():
            if value == mount or value.startswith(mount + "/"):
                return str(folder) + value[len(mount) :]
        return value

    def port(self, port: int | str) -> int:
        """The port here of a container port, given by number or by name."""
        if isinstance(port, str):
            (port,) = [p["containerPort"] for p in self.spec.get("ports", []) if p["name"] == port]
        assert port in self.ports, f"port {port} is none of core's: {sorted(self.ports)}"
        return self.ports[int(port)]

    def url(self, probe: dict[str, Any]) -> str:
        action = probe["httpGet"]
        return f"http://127.0.0.1:{self.port(action['port'])}{action['path']}"

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command, env=self.env, capture_output=True, text=True, timeout=60)

    @contextlib.contextmanager
    def serving(self, wait_for: str, timeout: float = 60.0) -> Iterator[Process]:
        assert len(self.ports) == len(PORT_VARIABLES), "a port not set: core's default would be taken"
        log = self.log_path.open("w")
        self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert self.process.poll() is None, f"exited with {self.process.returncode}:\n{self.log()}"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(wait_for, timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"not ready at {wait_for}:\n{self.log()}"
                time.sleep(0.1)
            yield self
        finally:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def iris_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/iris's model, trained by its train.py."""
    path = tmp_path_factory.mktemp("iris") / "model.joblib"
    _module(ROOT / "examples" / "iris" / "train.py").train(path)
    return path


def infer(url: str, model: str) -> dict[str, Any]:
    body = {
        "inputs": [
            {"name": "input-0", "shape": list(IRIS.shape), "datatype": "FP64", "data": IRIS.ravel().tolist()}
        ]
    }
    response = httpx.post(f"{url}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def predictions(answer: dict[str, Any]) -> list[Any]:
    (output,) = [o for o in answer["outputs"] if o["name"] == "predict"]
    data: list[Any] = output["data"]
    return data


def test_kserve_runtime_serves_the_inference_service_model(tmp_path: Path, iris_artifact: Path) -> None:
    service = resource("InferenceService", "kserve")
    runtime = resource("ClusterServingRuntime", "kserve")
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {f["name"] for f in runtime["spec"]["supportedModelFormats"] if f.get("autoSelect")}
    assert model["modelFormat"]["name"] in formats
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert {"sklearn", "xgboost", "lightgbm", "mlflow", "huggingface", "alibi-detect"} <= formats

    rendered = render(runtime, name=service["metadata"]["name"], namespace="models")
    (spec,) = rendered["spec"]["containers"]
    # KServe's storage initializer downloads the storageUri into /mnt/models.
    models = tmp_path / "mnt-models"
    models.mkdir()
    shutil.copy(iris_artifact, models / "model.joblib")
    process = Process(spec, core_environment(spec, {}), {"/mnt/models": models}, tmp_path / "log")
    assert set(process.ports) == {8080, 9000, 8082}  # KServe's REST and gRPC ports
    with process.serving(process.url(spec["readinessProbe"])):
        assert httpx.get(process.url(spec["livenessProbe"])).status_code == 200
        url = f"http://127.0.0.1:{process.port(8080)}"  # KServe's default container port
        # The model is the InferenceService's name: KServe's routes and clients expect it.
        assert predictions(infer(url, "iris")) == [0, 2]
        v1 = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": IRIS.tolist()}, timeout=30)
        assert v1.json() == {"predictions": [0, 2]}
        with grpcclient.InferenceServerClient(f"127.0.0.1:{process.port(9000)}") as grpc:
            assert grpc.is_server_ready() and grpc.is_model_ready("iris")
        annotations = rendered["spec"]["annotations"]
        metrics_port = int(annotations["prometheus.kserve.io/port"])
        scraped = httpx.get(
            f"http://127.0.0.1:{process.port(metrics_port)}{annotations['prometheus.kserve.io/path']}"
        )
        assert scraped.status_code == 200
        assert 'model_infer_request_success_total{model_name="iris"' in scraped.text


def test_plain_deployment_serves_its_volume_behind_service_and_monitor(
    tmp_path: Path, iris_artifact: Path
) -> None:
    deployment = resource("Deployment", "kubernetes")
    pod = deployment["spec"]["template"]
    (spec,) = pod["spec"]["containers"]
    # The models volume: a model folder as examples/iris is one.
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert set(claims.values()) == {resource("PersistentVolumeClaim", "kubernetes")["metadata"]["name"]}
    mounts: dict[str, Path] = {}
    for mount in spec["volumeMounts"]:
        mounts[mount["mountPath"]] = tmp_path / mount["name"]
        mounts[mount["mountPath"]].mkdir()
        if mount["name"] in claims:
            iris = mounts[mount["mountPath"]] / "iris"
            iris.mkdir()
            shutil.copy(ROOT / "examples" / "iris" / "model-settings.json", iris)
            shutil.copy(iris_artifact, iris / "model.joblib")
    process = Process(spec, core_environment(spec, config_maps()), mounts, tmp_path / "log")
    with process.serving(process.url(spec["readinessProbe"])):
        for probe in ("startupProbe", "livenessProbe"):
            assert httpx.get(process.url(spec[probe])).status_code == 200
        service = resource("Service", "kubernetes")
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        service_ports = {p["name"]: process.port(p["targetPort"]) for p in service["spec"]["ports"]}
        assert predictions(infer(f"http://127.0.0.1:{service_ports['http']}", "iris")) == [0, 2]
        with grpcclient.InferenceServerClient(f"127.0.0.1:{service_ports['grpc']}") as grpc:
            assert grpc.is_model_ready("iris")
        monitor = resource("ServiceMonitor", "kubernetes")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        scraped = httpx.get(f"http://127.0.0.1:{service_ports[endpoint['port']]}{endpoint['path']}")
        assert scraped.status_code == 200
        assert 'model_infer_request_success_total{model_name="iris",model_version="1"}' in scraped.text
    autoscaler = resource("HorizontalPodAutoscaler", "kubernetes")
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    # A CPU utilization target is a share of the request: it needs one.
    assert autoscaler["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "cpu" in spec["resources"]["requests"]
    graceful = float(config_maps()["core-settings"]["CORE_GRACEFUL_SHUTDOWN_TIMEOUT"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > graceful


# The fields of model-settings.json Seldon's agent keeps when it rewrites
# the file (the Go struct it reads it into and writes it from).
AGENT_FIELDS = ("name", "inputs", "outputs", "platform", "versions", "parallel_workers", "implementation")
AGENT_TENSOR_FIELDS = ("name", "shape", "datatype")
AGENT_PARAMETERS = ("uri", "version", "format", "content_type", "extra", "environment_tarball")


def agent_rewrite(settings: dict[str, Any], name: str, version: str) -> dict[str, Any]:
    """model-settings.json as Seldon's agent writes it for a model version."""
    kept = {field: settings[field] for field in AGENT_FIELDS if settings.get(field)}
    for tensors in ("inputs", "outputs"):
        if tensors in kept:
            kept[tensors] = [{k: t[k] for k in AGENT_TENSOR_FIELDS if k in t} for t in kept[tensors]]
    parameters = {k: v for k, v in settings.get("parameters", {}).items() if k in AGENT_PARAMETERS and v}
    return {**kept, "name": name, "parameters": {**parameters, "version": version}}


def test_seldon_server_takes_models_from_the_agent(tmp_path: Path, iris_artifact: Path) -> None:
    config = resource("ServerConfig", "seldon")
    assert resource("Server", "seldon")["spec"]["serverConfig"] == config["metadata"]["name"]
    assert resource("Model", "seldon")["spec"]["server"] == resource("Server", "seldon")["metadata"]["name"]
    pod = config["spec"]["podSpec"]
    spec = container(pod, "core")
    agent = core_environment({"env": [e for e in container(pod, "agent")["env"] if "value" in e]}, {})
    (memory,) = [
        e["valueFrom"]["resourceFieldRef"]
        for e in container(pod, "agent")["env"]
        if e["name"] == "MEMORY_REQUEST"
    ]
    assert memory["containerName"] == "core" and "memory" in spec["resources"]["requests"]
    # Every container sees the models volume (a claim template) at /mnt/agent.
    (claim,) = config["spec"]["volumeClaimTemplates"]
    agent_folder = tmp_path / claim["name"]
    agent_folder.mkdir()
    mounts = {"/mnt/agent": agent_folder}
    for spec_ in [*pod["initContainers"], *pod["containers"]]:
        assert {m["mountPath"] for m in spec_["volumeMounts"] if m["name"] == claim["name"]} == {"/mnt/agent"}

    # The init container makes the repository before core starts.
    (init,) = pod["initContainers"]
    made = Process(init, {}, mounts, tmp_path / "init-log").run()
    assert made.returncode == 0, made.stderr
    repository = agent_folder / "models"
    assert repository.is_dir()

    environment = core_environment(spec, {})
    process = Process(spec, environment, mounts, tmp_path / "log")
    # The agent reaches core on the ports it is told.
    assert int(agent["SELDON_SERVER_HTTP_PORT"]) == int(environment["CORE_HTTP_PORT"])
    assert int(agent["SELDON_SERVER_GRPC_PORT"]) == int(environment["CORE_GRPC_PORT"])
    assert agent["SELDON_SERVER_TYPE"] == "mlserver"
    with process.serving(process.url(spec["readinessProbe"])):
        for probe in ("startupProbe", "livenessProbe"):
            assert httpx.get(process.url(spec[probe])).status_code == 200
        # What the agent does for Model `iris` (version 1): copy its folder
        # to NAME_VERSION/1 and rewrite its model-settings.json with the
        # versioned name (its MLServer repository handler), then load it
        # over gRPC (RepositoryModelLoad, as Triton's client sends it).
        folder = repository / "iris_1" / "1"
        folder.mkdir(parents=True)
        shutil.copy(iris_artifact, folder / "model.joblib")
        settings = json.loads((ROOT / "examples" / "iris" / "model-settings.json").read_text())
        (folder / "model-settings.json").write_text(json.dumps(agent_rewrite(settings, "iris_1", "1")))
        with grpcclient.InferenceServerClient(
            f"127.0.0.1:{process.port(int(agent['SELDON_SERVER_GRPC_PORT']))}"
        ) as grpc:
            assert grpc.is_server_live()
            grpc.load_model("iris_1")
            index = {m.name: m.state for m in grpc.get_model_repository_index().models}
            assert index == {"iris_1": "READY"}
            assert predictions(infer(f"http://127.0.0.1:{process.port('server-http')}", "iris_1")) == [0, 2]
            grpc.unload_model("iris_1")
            assert not grpc.is_model_ready("iris_1")
        scraped = httpx.get(f"http://127.0.0.1:{process.port('server-metrics')}/metrics")
        assert scraped.status_code == 200
