"""A model in a custom environment, served through the worker pool: its
worker runs the packed environment's Python, so the model sees the library
version packed there, while a model without one, in the same server, sees the
server's."""

from __future__ import annotations

import importlib.metadata
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.testing import ServerProcess, child_pids

pytestmark = pytest.mark.slow

MODELS_PY = textwrap.dedent(
    '''
    """Reports the version of a library, as the process running the model sees it."""

    import importlib.metadata

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput


    class LibraryVersion(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            library = self.settings.parameters.extra["library"]
            version = importlib.metadata.version(library)
            output = ResponseOutput(name="version", shape=[1], datatype="BYTES", data=[version])
            return InferenceResponse(model_name=self.name, outputs=[output])
    '''
)


def write_model(folder: Path, name: str, library: str, **parameters: Any) -> None:
    folder.mkdir(parents=True)
    settings = {
        "name": name,
        "implementation": "models.LibraryVersion",
        "parameters": {"extra": {"library": library}, **parameters},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    (folder / "models.py").write_text(MODELS_PY)


def library_version(http: httpx.Client, model: str) -> str:
    body = {"inputs": [{"name": "any", "shape": [1], "datatype": "BYTES", "data": ["?"]}]}
    response = http.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    return str(output["data"][0])


def workers_running(server: ServerProcess, python_under: Path) -> set[int]:
    """The server's child processes whose command runs a Python under `python_under`."""
    assert server.process is not None
    found = set()
    for child in child_pids(server.process.pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:  # exited meanwhile
            continue
        if command and command[0].decode().startswith(str(python_under)):
            found.add(child)
    return found


def test_a_model_runs_in_its_packed_environment(packed_environment: Any, tmp_path: Path) -> None:
    library = packed_environment.library
    repository = tmp_path / "models"
    # Relative to the model's folder, as users write it.
    repository.mkdir()
    tarball = repository / "environment.tar.gz"
    tarball.write_bytes(packed_environment.tarball.read_bytes())
    write_model(
        repository / "in-environment", "in-environment", library, environment_tarball="../environment.tar.gz"
    )
    write_model(repository / "in-server", "in-server", library)
    env = {"CORE_PARALLEL_WORKERS": "1", "CORE_ENVIRONMENTS_DIR": str(tmp_path / "envs")}
    # Unpacking and starting the environment's worker take seconds.
    with (
        ServerProcess(repository, env=env, timeout=180) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        in_environment = library_version(http, "in-environment")
        in_server = library_version(http, "in-server")
        # The environment's pool stops with its last model, and starts again
        # for the next one.
        environment_workers = workers_running(server, tmp_path / "envs")
        assert len(environment_workers) == 1
        assert http.post("/v2/repository/models/in-environment/unload").status_code == 200
        assert not any(Path(f"/proc/{pid}").exists() for pid in environment_workers)
        assert workers_running(server, tmp_path / "envs") == set()
        assert library_version(http, "in-server") == in_server
        assert http.post("/v2/repository/models/in-environment/load").status_code == 200
        assert library_version(http, "in-environment") == in_environment
        assert len(workers_running(server, tmp_path / "envs") - environment_workers) == 1
    assert in_environment == packed_environment.version
    assert in_server == importlib.metadata.version(library) != in_environment
    # Unpacked once, into the environments_dir the server was given.
    assert len([p for p in (tmp_path / "envs").iterdir() if p.is_dir()]) == 1
