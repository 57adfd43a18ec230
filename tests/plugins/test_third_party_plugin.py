"""A third-party plugin, written here as its own package, installed for real with
pip (not editable, not on the source path) and found by `core` through its
entry point alone: `core plugins` lists it, and a server serves a model whose
runtime and codec come from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.testing import ServerProcess

ACME_VERSION = "0.3.1"

PYPROJECT = f"""\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "core-acme"
version = "{ACME_VERSION}"
description = "A third-party runtime and codec for core."
requires-python = ">=3.10"
dependencies = ["core>=0.1,<0.2"]

[project.entry-points.core]
acme = "core_acme.plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/core_acme"]
"""

INIT = '''\
"""The acme runtime: greets every string it is given."""

from typing import Any, ClassVar

from core import Model
from core.codecs import InputCodec, StringCodec
from core.types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput


class AcmeUpperCodec(InputCodec):
    """BYTES tensors as lists of strings, uppercased on the way in."""

    ContentType: ClassVar[str] = "acme-upper"

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> list[str]:
        return [text.upper() for text in StringCodec.decode_input(request_input)]

    @classmethod
    def encode_input(cls, name: str, payload: list[str], **kwargs: Any) -> RequestInput:
        request_input = StringCodec.encode_input(name, payload)
        request_input.parameters.content_type = cls.ContentType
        return request_input

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> list[str]:
        return StringCodec.decode_output(response_output)


class AcmeModel(Model):
    async def load(self) -> bool:
        self.greeting = self.settings.parameters.extra.get("greeting", "hello")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        # The content type of the request input picks the codec, so
        # "acme-upper" arrives here uppercased; no content type, as sent.
        names = self.decode(payload.inputs[0], default_codec=StringCodec)
        greetings = [f"{self.greeting} from acme, {name}" for name in names]
        return InferenceResponse(
            model_name=self.name, outputs=[StringCodec.encode_output("greeting", greetings)]
        )
'''

PLUGIN = '''\
"""Entry point of core-acme."""

from core.plugins import Runtime, hookimpl


@hookimpl
def core_runtimes():
    return [Runtime(alias="acme", implementation="core_acme.AcmeModel", description="greets")]


@hookimpl
def core_codecs():
    from core_acme import AcmeUpperCodec

    return [AcmeUpperCodec]
'''


def _write_package(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def _pip_install_target(package: Path, target: Path) -> None:
    """A real, non-editable install into a folder of its own, built by the
    package's own hatchling back end (the one installed here: no download)."""
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
            "--no-index", "--target", str(target), str(package),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """core-acme installed into a folder that only PYTHONPATH reveals."""
    root = tmp_path_factory.mktemp("acme")
    package = _write_package(
        root / "core-acme",
        {
            "pyproject.toml": PYPROJECT,
            "src/core_acme/__init__.py": INIT,
            "src/core_acme/plugin.py": PLUGIN,
        },
    )
    target = root / "site"
    _pip_install_target(package, target)
    assert (target / "core_acme" / "plugin.py").is_file()
    assert (target / f"core_acme-{ACME_VERSION}.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plugin whose entry-point module fails to import."""
    root = tmp_path_factory.mktemp("broken")
    package = _write_package(
        root / "core-broken",
        {
            "pyproject.toml": PYPROJECT.replace("core-acme", "core-broken")
            .replace('acme = "core_acme.plugin"', 'broken = "core_broken.plugin"')
            .replace("src/core_acme", "src/core_broken"),
            "src/core_broken/__init__.py": "",
            "src/core_broken/plugin.py": "import a_module_that_is_not_installed  # noqa: F401\n",
        },
    )
    target = root / "site"
    _pip_install_target(package, target)
    return target


def _env(*sites: Path) -> dict[str, str]:
    paths = [str(site) for site in sites]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(paths)}


def _core_plugins(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "core", "plugins"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_not_visible_without_pythonpath() -> None:
    assert "acme" not in _core_plugins({})


def test_core_plugins_lists_it(site: Path) -> None:
    listing = _core_plugins(_env(site))
    assert f"acme  (core-acme {ACME_VERSION})" in listing, listing
    acme = listing[listing.index("acme  (core-acme") :]
    assert "runtime acme: core_acme.AcmeModel" in acme, listing
    assert "input codecs: acme-upper" in acme, listing
    # The core's own plugin and core-sklearn are still there.
    assert "core  (core " in listing and "runtime sklearn: core_sklearn.SKLearnModel" in listing, listing


def test_server_uses_its_runtime_and_codec(site: Path, tmp_path: Path) -> None:
    model = tmp_path / "models" / "greeter"
    model.mkdir(parents=True)
    (model / "model-settings.json").write_text(
        '{"name": "greeter", "implementation": "acme", "parameters": {"extra": {"greeting": "hi"}}}'
    )
    with (
        ServerProcess(tmp_path / "models", env=_env(site)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        names = {"name": "names", "datatype": "BYTES", "shape": [2, 1], "data": ["ada", "Grace"]}
        upper = http.post(
            "/v2/models/greeter/infer",
            json={"inputs": [{**names, "parameters": {"content_type": "acme-upper"}}]},
        )
        plain = http.post("/v2/models/greeter/infer", json={"inputs": [names]})
    assert upper.status_code == 200, upper.text
    assert plain.status_code == 200, plain.text
    # The runtime (its greeting, its output name) and the codec (uppercase) both acted.
    assert upper.json()["outputs"][0]["name"] == "greeting"
    assert upper.json()["outputs"][0]["data"] == ["hi from acme, ADA", "hi from acme, GRACE"]
    assert plain.json()["outputs"][0]["data"] == ["hi from acme, ada", "hi from acme, Grace"]


def test_a_broken_plugin_does_not_stop_the_others(site: Path, broken_site: Path, tmp_path: Path) -> None:
    listing = _core_plugins(_env(site, broken_site))
    broken = listing[listing.index("broken  (core-broken") :]
    assert "FAILED to load: ModuleNotFoundError" in broken, listing
    assert "a_module_that_is_not_installed" in broken, listing
    assert "runtime acme: core_acme.AcmeModel" in listing, listing

    model = tmp_path / "models" / "greeter"
    model.mkdir(parents=True)
    (model / "model-settings.json").write_text('{"name": "greeter", "implementation": "acme"}')
    with (
        ServerProcess(tmp_path / "models", env=_env(site, broken_site)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        response = http.post(
            "/v2/models/greeter/infer",
            json={
                "inputs": [
                    {
                        "name": "names",
                        "datatype": "BYTES",
                        "shape": [1],
                        "data": ["lin"],
                        "parameters": {"content_type": "acme-upper"},
                    }
                ]
            },
        )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == ["hello from acme, LIN"]
    assert "core-broken" in server.log() and "skipped" in server.log()
