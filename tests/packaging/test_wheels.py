"""The packages as users get them: build the sdist and wheel of `core` and of
every plugin with `python -m build` (isolated, so the build configuration
alone must suffice), check their metadata, install the wheels into an empty
virtualenv (dependencies from the package index), and serve models with it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpc_health.v1.health_pb2_grpc import HealthStub
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from core.testing import ServerProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# distribution name -> (source folder, import name)
PACKAGES = {
    "core": (ROOT / "core", "core"),
    "core-sklearn": (ROOT / "plugins" / "sklearn", "core_sklearn"),
    "core-xgboost": (ROOT / "plugins" / "xgboost", "core_xgboost"),
    "core-lightgbm": (ROOT / "plugins" / "lightgbm", "core_lightgbm"),
}
PLUGINS = [name for name in PACKAGES if name != "core"]
# plugin distribution -> (entry point name, runtime class)
RUNTIMES = {
    "core-sklearn": ("sklearn", "core_sklearn.SKLearnModel"),
    "core-xgboost": ("xgboost", "core_xgboost.XGBoostModel"),
    "core-lightgbm": ("lightgbm", "core_lightgbm.LightGBMModel"),
}
# Nothing from the environment may put the source tree on the new venv's path.
CLEAN_ENV = {"PYTHONPATH": ""}


def source_version(name: str) -> str:
    folder, module = PACKAGES[name]
    text = (folder / "src" / module / "version.py").read_text()
    match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", text)
    assert match, f"no __version__ in {module}/version.py"
    return match.group(1)


def artifact_stem(name: str) -> str:
    return f"{name.replace('-', '_')}-{source_version(name)}"


def wheel_path(dist: Path, name: str) -> Path:
    return dist / f"{artifact_stem(name)}-py3-none-any.whl"


def sdist_path(dist: Path, name: str) -> Path:
    return dist / f"{artifact_stem(name)}.tar.gz"


def wheel_file(dist: Path, name: str, member: str) -> str:
    stem = artifact_stem(name)
    with zipfile.ZipFile(wheel_path(dist, name)) as wheel:
        return wheel.read(f"{stem}.dist-info/{member}").decode()


def run(command: list[str]) -> str:
    """Run a command with the source tree kept off its path; its stdout."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, **CLEAN_ENV}
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every package built at once, each in build's own isolated environment."""
    out = tmp_path_factory.mktemp("dist")
    builds = {
        name: subprocess.Popen(
            [sys.executable, "-m", "build", "--outdir", str(out), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (folder, _) in PACKAGES.items()
    }
    for name, build in builds.items():
        output, _ = build.communicate(timeout=600)
        assert build.returncode == 0, f"building {name} failed:\n{output}"
    return out


@pytest.mark.parametrize("name", list(PACKAGES))
def test_sdist_and_wheel_are_built(dist: Path, name: str) -> None:
    assert wheel_path(dist, name).is_file(), sorted(p.name for p in dist.iterdir())
    sdist = sdist_path(dist, name)
    assert sdist.is_file(), sorted(p.name for p in dist.iterdir())
    _, module = PACKAGES[name]
    with tarfile.open(sdist) as archive:
        members = {member.split("/", 1)[1] for member in archive.getnames() if "/" in member}
    assert {"pyproject.toml", "PKG-INFO", "README.md", f"src/{module}/__init__.py"} <= members
    # The wheel is what the sdist builds: the same version, no stray files.
    with zipfile.ZipFile(wheel_path(dist, name)) as wheel:
        entries = set(wheel.namelist())
    tops = {entry.split("/", 1)[0] for entry in entries}
    assert tops == {module, f"{artifact_stem(name)}.dist-info"}
    if name == "core":
        # The sdist carries the .proto and the build hook, not protoc's output;
        # the wheel (built from the sdist) carries the compiled modules.
        assert {"hatch_build.py", "src/core/grpc/proto/inference.proto"} <= members
        assert not any("grpc/generated" in member for member in members), members
        generated = {"core/grpc/generated/inference_pb2.py", "core/grpc/generated/inference_pb2_grpc.py"}
        assert generated <= entries, sorted(entries)


@pytest.mark.parametrize("name", list(PACKAGES))
def test_wheel_metadata(dist: Path, name: str) -> None:
    metadata = Parser().parsestr(wheel_file(dist, name, "METADATA"))
    assert canonicalize_name(metadata["Name"]) == name
    assert metadata["Version"] == source_version(name)
    requires_python = SpecifierSet(metadata["Requires-Python"])
    assert "3.10" in requires_python and "3.9" not in requires_python, requires_python
    license_text = metadata.get("License-Expression") or metadata.get("License")
    assert license_text == "Apache-2.0", dict(metadata)


@pytest.mark.parametrize("name", PLUGINS)
def test_plugin_pins_a_bounded_core_range(dist: Path, name: str) -> None:
    metadata = Parser().parsestr(wheel_file(dist, name, "METADATA"))
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    core = [r for r in requirements if canonicalize_name(r.name) == "core" and r.marker is None]
    assert len(core) == 1, requirements
    specifier = core[0].specifier
    assert source_version("core") in specifier, specifier
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in specifier), (
        f"{name} must bound core from above, got 'core{specifier}'"
    )
    current = Version(source_version("core"))
    assert f"{current.major + 1}.0" not in specifier, specifier


def test_entry_points(dist: Path) -> None:
    core_entry_points = wheel_file(dist, "core", "entry_points.txt")
    assert re.search(r"\[console_scripts\]\s*\ncore = core\.cli\.main:main", core_entry_points)
    assert re.search(r"\[core\]\s*\ncore = core\.plugins\.builtin", core_entry_points)
    for name in PLUGINS:
        alias, implementation = RUNTIMES[name]
        module = implementation.split(".")[0]
        plugin_entry_points = wheel_file(dist, name, "entry_points.txt")
        assert re.search(rf"\[core\]\s*\n{alias} = {module}\.plugin", plugin_entry_points), (
            plugin_entry_points
        )


def test_xgboost_comes_without_gpu_libraries(dist: Path) -> None:
    """XGBoost's CPU build on Linux and Windows: the `xgboost` wheel for Linux
    pulls nvidia-nccl-cu12 (about 200 MB)."""
    metadata = Parser().parsestr(wheel_file(dist, "core-xgboost", "METADATA"))
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]
    chosen = {
        system: [
            r.name
            for r in requirements
            if r.marker is not None and r.marker.evaluate({"platform_system": system})
        ]
        for system in ("Linux", "Windows", "Darwin")
    }
    assert chosen == {"Linux": ["xgboost-cpu"], "Windows": ["xgboost-cpu"], "Darwin": ["xgboost"]}, (
        requirements
    )


@pytest.fixture(scope="module")
def venv_python(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty virtualenv of the interpreter below the dev venv, with the
    wheels installed from the dist folder (dependencies from the index; pip's
    cache is reused between runs)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    venv = tmp_path_factory.mktemp("venv")
    run([base, "-m", "venv", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # By name, as a user would, pinned to the versions just built; pip's
    # report then proves they came from the dist folder, not the index.
    report = venv / "install-report.json"
    run(
        [
            str(python), "-m", "pip", "install", "--quiet", "--find-links", str(dist),
            "--report", str(report),
            *(f"{name}=={source_version(name)}" for name in PACKAGES),
        ]
    )  # fmt: skip
    installed = {
        canonicalize_name(item["metadata"]["name"]): item["download_info"]["url"]
        for item in json.loads(report.read_text())["install"]
    }
    for name in PACKAGES:
        assert installed[name] == wheel_path(dist, name).resolve().as_uri(), installed[name]
    # No CUDA libraries came with XGBoost.
    assert not [name for name in installed if name.startswith("nvidia-")], sorted(installed)
    return python


def test_installed_packages_are_the_wheels(venv_python: Path) -> None:
    modules = {name: module for name, (_, module) in PACKAGES.items()}
    script = (
        "import json, importlib, importlib.metadata as m;"
        f"modules = {modules!r};"
        "print(json.dumps({name: [importlib.import_module(module).__file__, m.version(name)]"
        " for name, module in modules.items()}))"
    )
    found = json.loads(run([str(venv_python), "-c", script]))
    venv = venv_python.parent.parent
    for name, (file, version) in found.items():
        path = Path(file).resolve()
        assert path.is_relative_to(venv.resolve()) and "site-packages" in path.parts, found
        assert not path.is_relative_to(ROOT), found
        assert version == source_version(name), found


def test_installed_core_lists_the_plugins(venv_python: Path) -> None:
    command = venv_python.parent / ("core.exe" if os.name == "nt" else "core")
    listing = run([str(command), "plugins"])
    for name in PLUGINS:
        alias, implementation = RUNTIMES[name]
        assert f"{alias}  ({name} {source_version(name)})" in listing, listing
        assert f"runtime {alias}: {implementation}" in listing, listing


TRAIN = """
import json, sys, joblib
from pathlib import Path
import lightgbm as lgb
import xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

root = Path(sys.argv[1])
features, labels = load_iris(return_X_y=True)
sample = features[::10]
models = {
    "iris": LogisticRegression(max_iter=1000).fit(features, labels),
    "xgb": xgb.XGBClassifier(n_estimators=5).fit(features, labels),
    "lgbm": lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, labels),
}
joblib.dump(models["iris"], root / "iris" / "model.joblib")
models["xgb"].save_model(root / "xgb" / "model.json")
models["lgbm"].booster_.save_model(root / "lgbm" / "model.txt")
print(json.dumps({
    "features": sample.tolist(),
    "iris": [models["iris"].predict(sample).tolist(), models["iris"].predict_proba(sample).tolist()],
    "xgb": [models["xgb"].predict(sample).tolist(), models["xgb"].predict_proba(sample).tolist()],
    "lgbm": [None, models["lgbm"].booster_.predict(sample).tolist()],
}))
"""


def test_installed_server_serves_fresh_models(venv_python: Path, tmp_path: Path) -> None:
    """The models are trained by the venv's own frameworks, so the artifacts
    and the server agree on their versions whatever the index resolved."""
    import numpy as np

    root = tmp_path / "models"
    for name, runtime in [("iris", "sklearn"), ("xgb", "xgboost"), ("lgbm", "lightgbm")]:
        (root / name).mkdir(parents=True)
        (root / name / "model-settings.json").write_text(
            json.dumps({"name": name, "implementation": runtime})
        )
    expected = json.loads(run([str(venv_python), "-c", TRAIN, str(root)]))
    features = np.asarray(expected["features"])
    inputs = [
        {
            "name": "input-0",
            "shape": list(features.shape),
            "datatype": "FP64",
            "data": features.ravel().tolist(),
        }
    ]
    with (
        ServerProcess(root, python=str(venv_python), env=CLEAN_ENV) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
        grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel,
    ):
        metadata = http.get("/v2").json()
        responses = {
            "iris": http.post(
                "/v2/models/iris/infer",
                json={"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]},
            ),
            "xgb": http.post(
                "/v2/models/xgb/infer",
                json={"inputs": inputs, "outputs": [{"name": "predict"}, {"name": "predict_proba"}]},
            ),
            "lgbm": http.post("/v2/models/lgbm/infer", json={"inputs": inputs}),
        }
        # gRPC serves too: the wheel's compiled protos import and run.
        health = HealthStub(channel).Check(HealthCheckRequest(), timeout=30)
    assert health.status == HealthCheckResponse.SERVING
    assert metadata["version"] == source_version("core"), metadata
    for name, response in responses.items():
        assert response.status_code == 200, response.text
        outputs = {output["name"]: output for output in response.json()["outputs"]}
        labels, probabilities = expected[name]
        if labels is not None:
            np.testing.assert_array_equal(outputs["predict"]["data"], labels)
        scores = outputs["predict_proba" if labels is not None else "predict"]
        np.testing.assert_allclose(
            np.asarray(scores["data"]).reshape(scores["shape"]), probabilities, rtol=1e-6
        )


# core-alibi-detect is not in PACKAGES: alibi-detect pins numpy<2, which would
# hold the venv above on numpy 1. It gets a venv of its own, with core and
# core-sklearn, as a user serving detectors next to scikit-learn models has.
ALIBI_DETECT_FOLDER = ROOT / "plugins" / "alibi-detect"


def test_alibi_detect_installs_with_core_and_sklearn(dist: Path, tmp_path: Path) -> None:
    """The wheels of core, core-sklearn and core-alibi-detect install together
    into an empty venv: the index's numpy resolves to 1.x (alibi-detect's
    pin, which core and core-sklearn accept), and `core plugins` lists both
    runtimes. About a minute, most of it pip."""
    own_dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(own_dist), str(ALIBI_DETECT_FOLDER)])
    (wheel,) = own_dist.glob("core_alibi_detect-*-py3-none-any.whl")
    version = wheel.name.split("-")[1]
    base = getattr(sys, "_base_executable", None) or sys.executable
    venv = tmp_path / "venv"
    run([base, "-m", "venv", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    report = tmp_path / "install-report.json"
    run(
        [
            str(python), "-m", "pip", "install", "--quiet", "--report", str(report),
            "--find-links", str(dist), "--find-links", str(own_dist),
            f"core=={source_version('core')}", f"core-sklearn=={source_version('core-sklearn')}",
            f"core-alibi-detect=={version}",
        ]
    )  # fmt: skip
    installed = {
        canonicalize_name(item["metadata"]["name"]): (
            item["metadata"]["version"],
            item["download_info"]["url"],
        )
        for item in json.loads(report.read_text())["install"]
    }
    assert installed["core"][1] == wheel_path(dist, "core").resolve().as_uri(), installed["core"]
    assert installed["core-sklearn"][1] == wheel_path(dist, "core-sklearn").resolve().as_uri()
    assert installed["core-alibi-detect"][1] == wheel.resolve().as_uri(), installed["core-alibi-detect"]
    assert Version(installed["numpy"][0]).major == 1, installed["numpy"]
    run([str(python), "-m", "pip", "check"])
    listing = run([str(venv / ("Scripts/core.exe" if os.name == "nt" else "bin/core")), "plugins"])
    assert f"alibi-detect  (core-alibi-detect {version})" in listing, listing
    assert "runtime alibi-detect: core_alibi_detect.AlibiDetectModel" in listing, listing
    assert f"sklearn  (core-sklearn {source_version('core-sklearn')})" in listing, listing
    assert "runtime sklearn: core_sklearn.SKLearnModel" in listing, listing
