"""`core init`: a model folder and a plugin package written from the
templates shipped in core, whose own tests pass.

The plugin is installed for real (pip, not editable, no network) into a
fresh virtualenv that sees this environment's packages (this repo's core,
pytest, the clients) through a .pth file; the tests make sure the plugin
found there is the installed copy. Each project's tests then run with that
venv's Python, and `core plugins` there lists the new runtime."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sysconfig
import venv
from pathlib import Path

import httpx
import numpy as np
import pytest
from packaging.requirements import Requirement

import core
from core.cli.init import core_requirement
from core.cli.main import main
from core.testing import ServerProcess, readme_examples

MODEL = "my-model"  # its class: MyModel
PLUGIN = "acme-linear"  # core-acme-linear, import core_acme_linear, class AcmeLinearModel
PACKAGE = "core_acme_linear"
# Nothing from the outer pytest run may leak into the projects' own runs.
CLEAN_ENV = {
    name: value
    for name, value in os.environ.items()
    if not name.startswith("PYTEST_") and name not in ("PYTHONPATH", "COV_CORE_SOURCE")
}


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=CLEAN_ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv's Python. Its own site-packages comes first; this
    environment's (core and its dependencies, pytest, pip, hatchling) is
    added after it, .pth files included, so nothing is downloaded."""
    folder = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, env=CLEAN_ENV,
    ).stdout.strip()  # fmt: skip
    ours = sysconfig.get_path("purelib")
    (Path(own) / "_outer_environment.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory, python: Path) -> Path:
    """Both projects written by `core init`, run with the venv's Python: the
    model with --dir, the plugin into the default ./core-NAME."""
    root = tmp_path_factory.mktemp("projects")
    model = run([str(python), "-m", "core", "init", "model", MODEL, "--dir", "models/my-model"], root)
    assert model.returncode == 0, model.stderr
    plugin = run([str(python), "-m", "core", "init", "plugin", PLUGIN], root)
    assert plugin.returncode == 0, plugin.stderr
    assert f"core-{PLUGIN}/README.md" in plugin.stdout
    return root


@pytest.fixture(scope="module")
def installed(projects: Path, python: Path) -> Path:
    """The plugin, installed into the venv: the folder it went to."""
    done = run(
        [
            str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-index", str(projects / f"core-{PLUGIN}"),
        ],
        projects,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    where = run(
        [str(python), "-c", f"import core, {PACKAGE}; print(core.__file__); print({PACKAGE}.__file__)"],
        projects,
    )
    assert where.returncode == 0, where.stderr
    core_file, package_file = where.stdout.split()
    assert Path(core_file) == Path(core.__file__)  # this repo's core
    site = Path(python).parent.parent
    assert Path(package_file).is_relative_to(site), package_file  # the copy pip installed
    return Path(package_file).parent


def test_the_model_folder(projects: Path) -> None:
    folder = projects / "models" / MODEL
    assert sorted(path.name for path in folder.iterdir()) == [
        "README.md", "model-settings.json", "models.py", "test_model.py",
    ]  # fmt: skip
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings["name"] == MODEL
    assert settings["implementation"] == "models.MyModel"
    assert "class MyModel(Model):" in (folder / "models.py").read_text()


def test_the_model_folders_tests_pass(projects: Path, python: Path) -> None:
    done = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], projects / "models" / MODEL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout


def test_the_model_readme_request(projects: Path, python: Path) -> None:
    """The README's curl request gets the answer the README shows."""
    folder = projects / "models" / MODEL
    readme = (folder / "README.md").read_text()
    body = re.search(r"-d '(\{.*?\})'", readme)
    answer = re.search(r'^(\{"model_name".*\})$', readme, flags=re.MULTILINE)
    assert body and answer, readme
    shown = json.loads(answer[1].replace('"id":"..."', '"id":""'))
    with ServerProcess(folder, python=str(python), env=CLEAN_ENV) as server:
        response = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=json.loads(body[1]))
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["model_name"] == shown["model_name"]
    assert got["outputs"] == shown["outputs"]


def test_the_plugin_package(projects: Path, installed: Path, python: Path) -> None:
    folder = projects / f"core-{PLUGIN}"
    assert sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()) == [
        ".gitignore", "CHANGELOG.md", "LICENSE", "README.md", "pyproject.toml",
        f"src/{PACKAGE}/__init__.py", f"src/{PACKAGE}/artifact.py", f"src/{PACKAGE}/model.py",
        f"src/{PACKAGE}/plugin.py", f"src/{PACKAGE}/version.py",
        "tests/test_conformance.py", "tests/test_runtime.py",
    ]  # fmt: skip
    assert (folder / "LICENSE").read_text().startswith(" " * 33 + "Apache License")
    # The distribution's metadata: its version, from version.py, and core's minor range.
    metadata = run(
        [str(python), "-c", f"from importlib import metadata; print(metadata.version('core-{PLUGIN}')); "
         f"print(metadata.requires('core-{PLUGIN}'))"],
        projects,
    )  # fmt: skip
    version, requires = metadata.stdout.splitlines()
    assert version == "0.1.0"
    on_core = [Requirement(line) for line in ast.literal_eval(requires) if line.startswith("core")]
    expected = Requirement(core_requirement(core.__version__))  # core>=0.1,<0.2 for core 0.1.x
    assert [(r.name, r.specifier) for r in on_core] == [("core", expected.specifier)], requires
    assert core.__version__ in expected.specifier


def test_core_plugins_lists_the_plugin(installed: Path, python: Path, projects: Path) -> None:
    done = run([str(python), "-m", "core", "plugins"], projects)
    assert done.returncode == 0, done.stderr
    listing = done.stdout
    assert f"{PLUGIN}  (core-{PLUGIN} 0.1.0)" in listing, listing
    assert f"runtime {PLUGIN}: {PACKAGE}.AcmeLinearModel  artifacts: *.json" in listing, listing


def test_the_plugins_tests_pass(installed: Path, projects: Path, python: Path) -> None:
    done = run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], projects / f"core-{PLUGIN}")
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.search(r"\b(\d+) passed\b", done.stdout)
    # test_runtime.py's 4 tests, and the conformance kit's.
    assert passed and int(passed[1]) > 4, done.stdout


def test_the_plugin_readme_example(installed: Path, projects: Path, python: Path, tmp_path: Path) -> None:
    """The README's model-settings.json, artifact snippet and request, served
    with the installed plugin, answer what the README says."""
    readme = projects / f"core-{PLUGIN}" / "README.md"
    examples = readme_examples(readme)
    snippet = re.search(r"```python\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    answer = re.search(r"answers `(\[.*?\])`", readme.read_text())
    assert snippet and answer, readme.read_text()
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "model-settings.json").write_text(examples["settings"])
    saved = run([str(python), "-c", snippet[1]], folder)
    assert saved.returncode == 0, saved.stderr
    name = json.loads(examples["settings"])["name"]
    with ServerProcess(folder, python=str(python), env=CLEAN_ENV) as server:
        response = httpx.post(f"{server.url}/v2/models/{name}/infer", json=json.loads(examples["request"]))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["outputs"][0]["data"], json.loads(answer[1]))


# Names and folders, in this process.


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme!", "_acme", "acme-", "acme--x", "my model", ""])
def test_bad_names_are_refused(in_tmp: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "plugin", name]) == 2
    assert f"{name!r} is not a valid plugin name" in capsys.readouterr().err
    assert list(in_tmp.iterdir()) == []


def test_core_is_not_a_plugin_name(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "plugin", "core"]) == 2
    assert "'core' is the core's own plugin name" in capsys.readouterr().err


def test_a_folder_that_is_not_empty_needs_force(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = in_tmp / "iris"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"mine")
    (folder / "models.py").write_text("mine")
    assert main(["init", "model", "iris"]) == 2
    assert "exists and is not empty (--force writes into it anyway)" in capsys.readouterr().err
    assert (folder / "models.py").read_text() == "mine"

    assert main(["init", "model", "iris", "--force"]) == 0
    assert "class IrisModel(Model):" in (folder / "models.py").read_text()
    assert (folder / "model.joblib").read_bytes() == b"mine"  # not the template's: left alone


def test_an_empty_folder_is_fine(in_tmp: Path) -> None:
    (in_tmp / "empty").mkdir()
    assert main(["init", "plugin", "x", "--dir", "empty"]) == 0
    assert (in_tmp / "empty" / "src" / "core_x" / "plugin.py").is_file()
