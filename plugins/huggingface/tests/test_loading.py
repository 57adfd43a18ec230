"""Loading: from a folder or a hub id, the task inferred or given, settings
from parameters.extra or CORE_MODEL_HUGGINGFACE_* variables, clear load
errors, a checkpoint folder served with no settings file, weights loaded once
and off the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from transformers import PreTrainedModel

from core.errors import ConfigurationError, ModelLoadError
from core.settings import ModelSettings
from core.testing import ServerProcess
from core_huggingface.model import HuggingFaceModel

from .conftest import OFFLINE, write_settings


def settings(folder: Path, **extra: Any) -> ModelSettings:
    return ModelSettings(
        name="m", implementation="huggingface", parameters={"uri": str(folder), "extra": extra}
    )


def test_a_checkpoint_folder_is_served_with_no_settings_file(tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["text-classification"]
    with ServerProcess(folder, "--parallel-workers", "0", env=OFFLINE, timeout=120) as server:
        metadata = httpx.get(f"{server.url}/v2/models/text-classification").json()
        assert metadata["parameters"]["task"] == "text-classification"
        body = {"inputs": [{"name": "inputs", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
        answer = httpx.post(f"{server.url}/v2/models/text-classification/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert "task text-classification, inferred from ['BertForSequenceClassification']" in server.log()


def test_environment_variables_set_the_runtime_s_settings(tiny_models: dict[str, Path]) -> None:
    # A classifier's checkpoint served for its embeddings, chosen from the environment.
    env = {
        **OFFLINE,
        "CORE_MODEL_HUGGINGFACE_TASK": "feature-extraction",
        "CORE_MODEL_HUGGINGFACE_NORMALIZE": "true",
    }
    with ServerProcess(
        tiny_models["text-classification"], "--parallel-workers", "0", env=env, timeout=120
    ) as server:
        metadata = httpx.get(f"{server.url}/v2/models/text-classification").json()
        assert metadata["parameters"]["task"] == "feature-extraction"
        body = {"inputs": [{"name": "inputs", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
        embedding = httpx.post(f"{server.url}/v2/models/text-classification/infer", json=body).json()
        vector = torch.tensor(embedding["outputs"][0]["data"])
        assert float(vector.norm()) == pytest.approx(1.0, rel=1e-5)


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Any:
    """Models whose loads fail, next to one that loads."""
    root = tmp_path_factory.mktemp("failing")
    checkpoint = str(tiny_models["text-classification"])
    models: dict[str, dict[str, Any]] = {
        "good": {"uri": checkpoint},
        "unknown-task": {"uri": checkpoint, "extra": {"task": "summarise-everything"}},
        "removed-task": {"uri": checkpoint, "extra": {"task": "question-answering"}},
        "hub-absent": {"extra": {"pretrained_model": "acme/no-such-model"}},
        "typo": {"uri": checkpoint, "extra": {"tsk": "text-classification"}},
        "not-a-folder": {"uri": "./nowhere"},
    }
    for name, parameters in models.items():
        write_settings(root / name, name=name, implementation="huggingface", parameters=parameters)
    with ServerProcess(
        root, "--parallel-workers", "0", env=OFFLINE, wait_for="/v2/models/good/ready"
    ) as server:
        yield server


def reason(server: ServerProcess, name: str) -> str:
    index = httpx.post(f"{server.url}/v2/repository/index", json={}).json()
    [entry] = [item for item in index if item["name"] == name]
    assert entry["state"] == "FAILED", entry
    return str(entry["reason"])


def test_an_unknown_task_lists_the_tasks_served(failing_server: ServerProcess) -> None:
    text = reason(failing_server, "unknown-task")
    assert "task 'summarise-everything' is not available" in text
    assert "tasks this runtime serves with the installed transformers: feature-extraction, fill-mask" in text


def test_a_task_removed_in_transformers_5_says_so(failing_server: ServerProcess) -> None:
    import transformers

    if transformers.__version__.startswith("4."):
        pytest.skip("question-answering exists in transformers 4")
    text = reason(failing_server, "removed-task")
    assert "task 'question-answering' is not available (removed in transformers 5" in text


def test_an_absent_hub_id_offline_is_a_load_error_naming_it(failing_server: ServerProcess) -> None:
    text = reason(failing_server, "hub-absent")
    assert "cannot load 'acme/no-such-model': it is not a local folder, and the Hugging Face hub" in text


def test_unknown_settings_and_missing_folders_are_named(failing_server: ServerProcess) -> None:
    assert "field 'parameters.extra.tsk'" in reason(failing_server, "typo")
    assert "nowhere is not a folder holding a Hugging Face model" in reason(failing_server, "not-a-folder")
    good = {"inputs": [{"name": "inputs", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
    assert httpx.post(f"{failing_server.url}/v2/models/good/infer", json=good).status_code == 200


def test_weights_load_once_in_a_thread(tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    original = PreTrainedModel.from_pretrained.__func__  # type: ignore[attr-defined]

    def counted(cls: type[PreTrainedModel], *args: Any, **kwargs: Any) -> Any:
        loads.append(threading.current_thread().name)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counted))
    model = HuggingFaceModel(settings(tiny_models["text-generation"]))

    async def load() -> str:
        await model.load()
        return threading.current_thread().name

    loop_thread = asyncio.run(load())
    assert len(loads) == 1
    assert loads[0] != loop_thread


def test_pad_token_dtype_and_device(tiny_models: dict[str, Path]) -> None:
    model = HuggingFaceModel(settings(tiny_models["text-generation"], dtype="bfloat16", device="cpu"))
    asyncio.run(model.load())
    assert model.task is not None
    tokenizer = model.task.tokenizer
    # The tiny GPT-2 has no pad token and its EOS id is 0: it pads with EOS, id 0.
    assert (tokenizer.pad_token_id, tokenizer.padding_side) == (0, "left")
    assert model.task.pipeline.model.dtype == torch.bfloat16
    assert str(model.task.pipeline.device) == "cpu"


def test_bad_settings_are_configuration_errors(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match=r"field 'parameters\.extra\.inter_op_threads'"):
        HuggingFaceModel(settings(tiny_models["text-generation"], inter_op_threads=0))
    model = HuggingFaceModel(settings(tiny_models["text-generation"], dtype="float13"))
    with pytest.raises(ModelLoadError, match="dtype 'float13' is not a torch dtype"):
        asyncio.run(model.load())


def test_config_json_alone_is_not_a_checkpoint(tmp_path: Path) -> None:
    from core_huggingface.artifacts import looks_like_checkpoint

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert not looks_like_checkpoint(tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert looks_like_checkpoint(tmp_path / "config.json")
    (tmp_path / "config.json").write_text(json.dumps({"learning_rate": 0.1}))  # some other tool's config
    assert not looks_like_checkpoint(tmp_path / "config.json")


def test_a_hub_id_loads_through_the_hugging_face_cache(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    # The hub's cache layout, filled by hand, read offline: the path a hub id
    # takes once downloaded (no hub is reachable here).
    repository = tmp_path / "hf-home" / "hub" / "models--acme--tiny-classifier"
    revision = "0" * 40
    snapshot = repository / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in tiny_models["text-classification"].iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(revision)
    extra = {"pretrained_model": "acme/tiny-classifier"}
    write_settings(
        tmp_path / "models" / "hub", name="hub", implementation="huggingface", parameters={"extra": extra}
    )
    env = {**OFFLINE, "HF_HOME": str(tmp_path / "hf-home")}
    with ServerProcess(tmp_path / "models", "--parallel-workers", "0", env=env, timeout=120) as server:
        body = {"inputs": [{"name": "inputs", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
        answer = httpx.post(f"{server.url}/v2/models/hub/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"][0] in ("negative", "positive")
