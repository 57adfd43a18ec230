"""Tiny real transformers models, built here from small configs (no hub),
served by real `core start` subprocesses shared by the tests of a session:
one serving in-process, one through a worker process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from transformers.pipelines import get_supported_tasks

from core.testing import ServerProcess
from core_huggingface.testing import BUILDERS

# The tasks the installed transformers has (question-answering and
# text2text-generation are gone from transformers 5).
TASKS = [task for task in BUILDERS if task in get_supported_tasks()]

# Offline: an absent hub id fails at once instead of trying the network.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each task's tiny checkpoint folder (config.json, weights, tokenizer)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {task: BUILDERS[task](root / task) for task in TASKS}


def write_settings(folder: Path, **settings: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """One model per task, named after it; and batched twins of the
    classifier and of GPT-2 (up to 8 requests, gathered for 50 ms)."""
    root = tmp_path_factory.mktemp("repository")
    for task, checkpoint in tiny_models.items():
        write_settings(
            root / task, name=task, implementation="huggingface", parameters={"uri": str(checkpoint)}
        )
    batching = {"max_batch_size": 8, "max_batch_time": 0.05}
    for name, task in (("classifier-batched", "text-classification"), ("gpt2-batched", "text-generation")):
        write_settings(
            root / name,
            name=name,
            implementation="huggingface",
            parameters={"uri": str(tiny_models[task])},
            **batching,
        )
    return root


def _serve(repository: Path, *args: str) -> Iterator[ServerProcess]:
    with ServerProcess(repository, *args, env=OFFLINE, timeout=180) as server:
        yield server


@pytest.fixture(scope="session")
def server(repository: Path) -> Iterator[ServerProcess]:
    """Every model, in the server process."""
    yield from _serve(repository, "--parallel-workers", "0")


@pytest.fixture(scope="session")
def worker_server(repository: Path) -> Iterator[ServerProcess]:
    """Every model, in one worker process: requests cross processes."""
    yield from _serve(repository, "--parallel-workers", "1")


@pytest.fixture(params=["in-process", "worker"])
def any_server(request: pytest.FixtureRequest) -> ServerProcess:
    name = "server" if request.param == "in-process" else "worker_server"
    served: ServerProcess = request.getfixturevalue(name)
    return served


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http
