"""The model repository on disk, implementation resolution, the registry of
loaded models and the protocol-neutral DataPlane."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core import Model, ModelParameters, ModelSettings, Settings, run_in_thread
from core.codecs import NumpyCodec
from core.dataplane import DataPlane
from core.errors import (
    BadRequest,
    ConfigurationError,
    InferenceError,
    ModelNotFound,
    ModelNotReady,
)
from core.registry import ModelRegistry, import_retries, runtime_loads
from core.repository import find_models, resolve_implementation
from core.settings import load_settings_file
from core.types import (
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    State,
)

# Test runtimes


class Echo(Model):
    """Answers with its version; `parameters.extra` steers load()."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.unloaded = False
        self.requests: list[InferenceRequest] = []

    async def load(self) -> bool:
        extra = self.settings.parameters.extra
        if "fail" in extra:
            raise RuntimeError(extra["fail"])
        return bool(extra.get("load", True))

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        self.requests.append(payload)
        extra = self.settings.parameters.extra
        if "predict_error" in extra:
            raise ValueError(extra["predict_error"])
        if "predict_bad_request" in extra:
            raise BadRequest(extra["predict_bad_request"])
        answer = np.array([self.version or ""], dtype=object)
        return InferenceResponse(model_name="ignored", outputs=[NumpyCodec.encode_output("version", answer)])

    async def unload(self) -> bool:
        self.unloaded = True
        return True


class Gated(Echo):
    """load() waits until the test opens the gate."""

    gate: asyncio.Event
    started: asyncio.Event

    async def load(self) -> bool:
        self.started.set()
        await self.gate.wait()
        return await super().load()


def settings(name: str = "m", version: str | None = None, **extra: Any) -> ModelSettings:
    return ModelSettings(name=name, parameters=ModelParameters(version=version, extra=extra))


def echo(name: str = "m", version: str | None = None, **extra: Any) -> Echo:
    return Echo(settings(name, version, **extra))


def a_request(**fields: Any) -> InferenceRequest:
    return InferenceRequest(
        inputs=[RequestInput(name="x", datatype="FP32", shape=[2], data=[1.0, 2.0])], **fields
    )


def write_model(folder: Path, content: dict[str, Any] | str, models_py: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model-settings.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    if models_py is not None:
        (folder / "models.py").write_text(textwrap.dedent(models_py))
    return path


RUNTIME_PY = """
    from core import Model
    from core.codecs import StringRequestCodec


    class Runtime(Model):
        async def predict(self, payload):
            return StringRequestCodec.encode_response(self.name, [{answer!r}])
"""


# find_models


def test_find_models_in_nested_folders(tmp_path: Path) -> None:
    write_model(tmp_path / "a", {"implementation": "x.Y"})
    write_model(tmp_path / "group" / "b", {"name": "named-b", "implementation": "x.Y"})
    write_model(tmp_path / "group" / "deeper" / "c" / "1", {"name": "c", "parameters": {"version": "1"}})
    write_model(tmp_path / ".venv" / "lib" / "pkg", {"name": "in-venv"})
    write_model(tmp_path / "venv" / "pkg", {"name": "in-venv2"})
    write_model(tmp_path / ".hidden" / "h", {"name": "hidden"})
    write_model(tmp_path / "node_modules" / "n", {"name": "node"})
    found = {model.name: model for model in find_models(tmp_path)}
    assert set(found) == {"a", "named-b", "c"}
    assert found["a"].path == tmp_path / "a" / "model-settings.json"
    assert found["a"].settings is not None
    assert found["a"].settings.name == "a"  # default name: the folder's
    assert found["c"].settings is not None
    assert found["c"].settings.version == "1"
    assert all(model.error is None for model in found.values())


def test_find_models_reports_unreadable_files(tmp_path: Path) -> None:
    write_model(tmp_path / "good", {"implementation": "x.Y"})
    bad = write_model(tmp_path / "broken", '{"name": ')
    wrong = write_model(tmp_path / "wrong", {"max_batch_size": "lots"})
    found = {model.name: model for model in find_models(tmp_path)}
    assert set(found) == {"good", "broken", "wrong"}
    assert found["broken"].settings is None
    assert found["broken"].error is not None
    assert str(bad) in found["broken"].error
    assert found["wrong"].error is not None
    assert str(wrong) in found["wrong"].error
    assert "max_batch_size" in found["wrong"].error


def test_find_models_root_file_and_empty_folder(tmp_path: Path) -> None:
    assert find_models(tmp_path) == []
    assert find_models(tmp_path / "does-not-exist") == []
    write_model(tmp_path, {})
    assert [model.name for model in find_models(tmp_path)] == [tmp_path.name]


def test_find_models_from_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_MODEL_IMPLEMENTATION", "sklearn")
    monkeypatch.setenv("CORE_MODEL_URI", "/m.joblib")
    [found] = find_models(tmp_path)
    assert found.name == "model"
    assert found.path is None
    assert found.settings is not None
    assert found.settings.implementation == "sklearn"
    assert found.settings.parameters.uri == "/m.joblib"


# resolve_implementation


def test_resolve_implementation_import_path() -> None:
    from core_sklearn import SKLearnModel

    assert resolve_implementation(ModelSettings(name="m", implementation="core_sklearn.SKLearnModel")) is (
        SKLearnModel
    )
    assert resolve_implementation(ModelSettings(name="m", implementation="core.model.Model")) is Model


def test_resolve_implementation_plugin_alias() -> None:
    from core_sklearn import SKLearnModel

    assert resolve_implementation(ModelSettings(name="m", implementation="sklearn")) is SKLearnModel


@pytest.mark.parametrize(
    "mlserver, alias",
    [("mlserver_sklearn.SKLearnModel", "sklearn"), ("mlserver_xgboost.XGBoostModel", "xgboost")],
)
def test_resolve_implementation_takes_mlservers_runtime_names(mlserver: str, alias: str) -> None:
    """An MLServer model-settings.json (or Seldon's agent's) names MLServer's class."""
    expected = resolve_implementation(ModelSettings(name="m", implementation=alias))
    assert resolve_implementation(ModelSettings(name="m", implementation=mlserver)) is expected


def test_resolve_implementation_models_py_next_to_the_settings(tmp_path: Path, run: Any) -> None:
    first = write_model(
        tmp_path / "one", {"implementation": "models.Runtime"}, RUNTIME_PY.format(answer="one")
    )
    second = write_model(
        tmp_path / "two", {"implementation": "models.Runtime"}, RUNTIME_PY.format(answer="two")
    )
    answers = []
    for path in (first, second):
        model_settings = load_settings_file(ModelSettings, path, name=path.parent.name)
        cls = resolve_implementation(model_settings)
        assert issubclass(cls, Model)
        assert cls.__name__ == "Runtime"
        response = run(cls(model_settings).predict(a_request()))
        answers.append(response.outputs[0].data)
    assert answers == [["one"], ["two"]]
    again = resolve_implementation(load_settings_file(ModelSettings, first))
    assert again is resolve_implementation(load_settings_file(ModelSettings, first))


def test_resolve_implementation_models_py_imports_its_siblings(tmp_path: Path) -> None:
    path = write_model(
        tmp_path / "sib",
        {"implementation": "models.Runtime"},
        "from helper_for_sib import Base\n\nclass Runtime(Base):\n    pass\n",
    )
    (tmp_path / "sib" / "helper_for_sib.py").write_text(
        "from core import Model\n\nclass Base(Model):\n    pass\n"
    )
    cls = resolve_implementation(load_settings_file(ModelSettings, path))
    assert cls.__name__ == "Runtime"
    assert issubclass(cls, Model)


def test_resolve_implementation_errors(tmp_path: Path) -> None:
    cases = {
        "": "field 'implementation' is required",
        "no-such-runtime": "no installed plugin provides runtime 'no-such-runtime'",
        "no_such_module_xyz.Model": "cannot import 'no_such_module_xyz'",
        "core.settings.Settings": "is not a core.Model subclass",
        "core.model.DoesNotExist": "is not a core.Model subclass",
    }
    for implementation, message in cases.items():
        with pytest.raises(ConfigurationError, match=message) as caught:
            resolve_implementation(ModelSettings(name="m", implementation=implementation))
        assert "model 'm'" in caught.value.message
    with pytest.raises(ConfigurationError, match=r"available: .*sklearn"):
        resolve_implementation(ModelSettings(name="m", implementation="nothing"))


def test_resolve_implementation_models_py_without_the_class(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m", {"implementation": "models.Missing"}, "X = 1\n")
    with pytest.raises(ConfigurationError, match=r"'models\.Missing' is not a core\.Model subclass"):
        resolve_implementation(load_settings_file(ModelSettings, path))


# ModelRegistry


def test_registry_serves_several_models_and_versions(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        models = {
            ("a", "1"): echo("a", "1"),
            ("a", "2"): echo("a", "2"),
            ("b", None): echo("b"),
        }
        for model in models.values():
            assert await registry.load(model.settings, model)
        assert registry.get("a", "1") is models["a", "1"]
        assert registry.get("a", "2") is models["a", "2"]
        assert registry.get("a") is models["a", "2"]
        assert registry.get("b") is models["b", None]
        assert {(e.name, e.version, e.state) for e in registry.entries()} == {
            ("a", "1", State.READY),
            ("a", "2", State.READY),
            ("b", None, State.READY),
        }
        assert all(model.ready for model in models.values())

    run(scenario())


@pytest.mark.parametrize(
    ("versions", "highest"),
    [
        (["9", "10", "2"], "10"),
        (["1", "latest"], "1"),  # numbers rank above names
        (["1", "v2"], "v2"),
        (["alpha", "beta"], "beta"),
        (["1.9.0", "1.10.0", "1.2.0"], "1.10.0"),
        (["v0.9", "v0.10"], "v0.10"),
    ],
)
def test_registry_default_version_is_the_highest(run: Any, versions: list[str], highest: str) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        for version in versions:
            await registry.load(settings("m", version), echo("m", version))
        assert registry.get("m").version == highest

    run(scenario())


def test_registry_unknown_model_or_version_is_404(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        await registry.load(settings("m", "1"), echo("m", "1"))
        with pytest.raises(ModelNotFound, match="model 'nope' not found") as caught:
            registry.get("nope")
        assert caught.value.status_code == 404
        with pytest.raises(ModelNotFound, match="model 'm' version '2' not found"):
            registry.get("m", "2")
        with pytest.raises(ModelNotFound):
            await registry.unload("nope")
        with pytest.raises(ModelNotFound):
            await registry.unload("m", "2")

    run(scenario())


def test_registry_failed_load_is_recorded_and_others_still_serve(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        assert await registry.load(settings("good"), echo("good"))
        assert not await registry.load(
            settings("bad", fail="weights missing"), echo("bad", fail="weights missing")
        )
        [entry] = registry.versions("bad")
        assert entry.state == State.FAILED
        assert entry.reason == "RuntimeError: weights missing"
        assert entry.model is None
        with pytest.raises(ModelNotReady, match="FAILED: RuntimeError: weights missing") as caught:
            registry.get("bad")
        assert caught.value.status_code == 503
        assert registry.get("good").name == "good"

    run(scenario())


def test_registry_load_returning_false(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        model = echo("m", "1", load=False)
        assert not await registry.load(model.settings, model)
        [entry] = registry.versions("m")
        assert entry.state == State.FAILED
        assert "load() returned False" in entry.reason
        assert model.ready is False
        with pytest.raises(ModelNotReady):
            registry.get("m", "1")

    run(scenario())


def test_registry_failed_version_does_not_become_the_default(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        await registry.load(settings("m", "1"), echo("m", "1"))
        await registry.load(settings("m", "2"), echo("m", "2", fail="no"))
        assert registry.get("m").version == "1"

    run(scenario())


def test_registry_builds_the_model_from_its_implementation(tmp_path: Path, run: Any) -> None:
    path = write_model(
        tmp_path / "m", {"implementation": "models.Runtime"}, RUNTIME_PY.format(answer="built")
    )
    broken = write_model(tmp_path / "x", {"implementation": "models.Runtime"}, "raise ImportError('nope')\n")

    async def scenario() -> None:
        registry = ModelRegistry()
        assert await registry.load(load_settings_file(ModelSettings, path, name="m"))
        response = await registry.get("m").predict(a_request())
        assert response.outputs[0].data == ["built"]
        assert not await registry.load(load_settings_file(ModelSettings, broken, name="x"))
        [entry] = registry.versions("x")
        assert entry.state == State.FAILED
        assert "cannot import 'models'" in entry.reason

    run(scenario())


def test_registry_reload_keeps_the_old_instance_until_the_new_one_is_ready(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        old = echo("m", "1")
        await registry.load(old.settings, old)
        new = Gated(settings("m", "1"))
        new.gate, new.started = asyncio.Event(), asyncio.Event()
        reload = asyncio.create_task(registry.load(new.settings, new))
        await new.started.wait()
        # The new instance is loading: the old one still answers.
        assert registry.get("m") is old
        assert registry.get("m", "1") is old
        assert [e.state for e in registry.versions("m")] == [State.READY]
        assert old.ready and not old.unloaded
        new.gate.set()
        assert await reload
        assert registry.get("m") is new
        assert registry.get("m", "1") is new
        assert old.unloaded
        assert old.ready is False
        assert new.ready

    run(scenario())


def test_registry_failed_reload_keeps_the_old_instance(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        old = echo("m", "1")
        await registry.load(old.settings, old)
        assert not await registry.load(settings("m", "1"), echo("m", "1", fail="corrupt"))
        assert registry.get("m") is old
        assert registry.get("m", "1") is old
        [entry] = registry.versions("m")
        assert entry.state == State.READY
        assert "previous instance still serving" in entry.reason
        assert "corrupt" in entry.reason
        assert not old.unloaded

    run(scenario())


def test_registry_unload_one_version_then_all(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        models = [echo("m", v) for v in ("1", "2", "3")]
        other = echo("other")
        for model in [*models, other]:
            await registry.load(model.settings, model)
        await registry.unload("m", "3")
        assert models[2].unloaded
        assert not models[1].unloaded
        assert registry.get("m") is models[1]  # the default moves down
        with pytest.raises(ModelNotFound):
            registry.get("m", "3")
        await registry.unload("m")
        assert all(model.unloaded for model in models)
        with pytest.raises(ModelNotFound):
            registry.get("m")
        assert registry.versions("m") == []
        assert registry.get("other") is other
        await registry.unload_all()
        assert other.unloaded
        assert registry.entries() == []

    run(scenario())


def test_registry_unload_survives_a_failing_unload(run: Any) -> None:
    class BadUnload(Echo):
        async def unload(self) -> bool:
            raise RuntimeError("stuck")

    async def scenario() -> None:
        registry = ModelRegistry()
        model = BadUnload(settings("m"))
        await registry.load(model.settings, model)
        await registry.unload("m")
        assert registry.entries() == []

    run(scenario())


# DataPlane


def dataplane(root: Path) -> DataPlane:
    plane = DataPlane(Settings(model_repository_root=str(root)), ModelRegistry())
    plane.started = True  # as Server does once its workers are up
    return plane


def test_dataplane_ready_only_when_every_startup_model_is_ready(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = DataPlane(Settings(model_repository_root=str(tmp_path)), ModelRegistry())
        assert not plane.ready()  # the server has not started yet
        plane.started = True
        assert plane.ready()  # nothing expected
        await plane.add_model(echo("a"))
        assert plane.ready()
        slow = Gated(settings("slow"))
        slow.gate, slow.started = asyncio.Event(), asyncio.Event()
        loading = asyncio.create_task(plane.add_model(slow))
        await slow.started.wait()
        assert not plane.ready()
        assert plane.model_ready("a")
        with pytest.raises(ModelNotReady):
            plane.model("slow")
        assert plane.model_ready("slow") is False
        slow.gate.set()
        await loading
        assert plane.ready()
        await plane.add_model(echo("broken", fail="bad"))
        assert not plane.ready()
        await plane.repository_unload("broken")
        assert plane.ready()
        assert plane.live()

    run(scenario())


def test_dataplane_load_repository_from_disk(tmp_path: Path, run: Any) -> None:
    write_model(tmp_path / "good", {"implementation": "models.Runtime"}, RUNTIME_PY.format(answer="g"))
    write_model(tmp_path / "bad", {"implementation": "no_such_module_xyz.Runtime"})

    async def scenario() -> None:
        plane = dataplane(tmp_path)
        await plane.load_repository()
        assert plane.model_ready("good")
        assert not plane.ready()
        response = await plane.infer(a_request(), "good")
        assert response.outputs[0].data == ["g"]

    run(scenario())


def test_dataplane_infer_echoes_or_generates_the_id(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = dataplane(tmp_path)
        model = echo("m", "5")
        await plane.add_model(model)
        response = await plane.infer(a_request(id="my-id"), "m")
        assert response.id == "my-id"
        assert response.model_name == "m"
        assert response.model_version == "5"
        response = await plane.infer(a_request(), "m", "5")
        assert response.id is not None
        assert uuid.UUID(response.id)
        assert model.requests[-1].id == response.id

    run(scenario())


def test_dataplane_infer_puts_headers_into_parameters(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = dataplane(tmp_path)
        model = echo("m")
        await plane.add_model(model)
        await plane.infer(a_request(), "m", headers={"x-trace": "t1"})
        parameters = model.requests[-1].parameters
        assert parameters is not None
        assert parameters.headers == {"x-trace": "t1"}
        keep = a_request(parameters=Parameters(content_type="np", custom="kept"))  # type: ignore[call-arg]
        await plane.infer(keep, "m", headers={"x-trace": "t2"})
        parameters = model.requests[-1].parameters
        assert parameters is not None
        assert parameters.headers == {"x-trace": "t2"}
        assert parameters.content_type == "np"
        assert parameters.model_extra == {"custom": "kept"}

    run(scenario())


def test_dataplane_infer_wraps_model_exceptions(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = dataplane(tmp_path)
        await plane.add_model(echo("m", predict_error="division by zero"))
        with pytest.raises(InferenceError) as caught:
            await plane.infer(a_request(), "m")
        assert caught.value.status_code == 500
        assert "model 'm' failed" in caught.value.message
        assert "ValueError: division by zero" in caught.value.message

    run(scenario())


def test_dataplane_infer_lets_bad_requests_through(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = dataplane(tmp_path)
        await plane.add_model(echo("m", predict_bad_request="feature 'age' must be positive"))
        with pytest.raises(BadRequest, match="feature 'age' must be positive") as caught:
            await plane.infer(a_request(), "m")
        assert type(caught.value) is BadRequest
        assert caught.value.status_code == 400

    run(scenario())


def test_dataplane_infer_rejects_bad_tensor_data_before_the_model(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = dataplane(tmp_path)
        model = echo("m")
        await plane.add_model(model)
        bad = InferenceRequest(inputs=[RequestInput(name="x", datatype="INT32", shape=[3], data=[1, 2])])
        with pytest.raises(BadRequest, match="tensor 'x'"):
            await plane.infer(bad, "m")
        bad = InferenceRequest(inputs=[RequestInput(name="x", datatype="INT32", shape=[2], data=["a", "b"])])
        with pytest.raises(BadRequest, match="tensor 'x'"):
            await plane.infer(bad, "m")
        assert model.requests == []
        with pytest.raises(ModelNotFound):
            await plane.infer(a_request(), "unknown")

    run(scenario())


def test_dataplane_model_metadata_lists_versions(tmp_path: Path, run: Any) -> None:
    async def scenario() -> None:
        plane = dataplane(tmp_path)
        await plane.add_model(echo("m", "1"))
        await plane.add_model(echo("m", "2"))
        metadata = await plane.model_metadata("m")
        assert metadata.name == "m"
        assert metadata.versions == ["1", "2"]
        assert plane.model_settings("m", "1").version == "1"
        assert plane.metadata().extensions == [
            "binary_tensor_data",
            "model_repository",
            "model_configuration",
            "statistics",
        ]

    run(scenario())


def test_dataplane_repository_index(tmp_path: Path, run: Any) -> None:
    write_model(tmp_path / "on-disk", {"implementation": "models.Runtime"}, RUNTIME_PY.format(answer="d"))
    write_model(tmp_path / "unreadable", "not json")

    async def scenario() -> None:
        plane = dataplane(tmp_path)
        await plane.add_model(echo("loaded", "1"))
        await plane.add_model(echo("loaded", "2"))
        await plane.add_model(echo("failed", fail="bad weights"))
        index = plane.repository_index().model_dump()
        assert [(i["name"], i["version"], i["state"]) for i in index] == [
            ("failed", None, State.FAILED),
            ("loaded", "1", State.READY),
            ("loaded", "2", State.READY),
            ("on-disk", None, State.UNAVAILABLE),
            ("unreadable", None, State.FAILED),
        ]
        reasons = {i["name"]: i["reason"] for i in index}
        assert "bad weights" in reasons["failed"]
        assert "unreadable" in reasons["unreadable"]
        ready = plane.repository_index(ready=True).model_dump()
        assert [(i["name"], i["version"]) for i in ready] == [("loaded", "1"), ("loaded", "2")]
        not_ready = plane.repository_index(ready=False).model_dump()
        assert [i["name"] for i in not_ready] == ["failed", "on-disk", "unreadable"]

        await plane.repository_load("on-disk")
        states = {(i["name"], i["state"]) for i in plane.repository_index().model_dump()}
        assert ("on-disk", State.READY) in states
        await plane.repository_unload("loaded")
        names = [i["name"] for i in plane.repository_index().model_dump()]
        assert "loaded" not in names

    run(scenario())


def test_instances_of_one_runtime_load_one_at_a_time_others_side_by_side() -> None:
    """Concurrent loads of one runtime would import its framework from several
    threads at once, which fails with "partially initialized module" errors:
    they serialise. Another runtime's load does not wait for them."""
    events: list[str] = []

    class Recording(Model):
        async def load(self) -> bool:
            events.append(f"start {self.name}")
            await asyncio.sleep(0.05)  # gives another load the chance to interleave
            events.append(f"end {self.name}")
            return True

    class Other(Recording):
        pass

    async def main() -> None:
        registry = ModelRegistry()
        loads = [registry.load(ModelSettings(name=n), Recording(ModelSettings(name=n))) for n in "abc"]
        loads.append(registry.load(ModelSettings(name="x"), Other(ModelSettings(name="x"))))
        await asyncio.gather(*loads)

    asyncio.run(main())
    same = [event for event in events if not event.endswith("x")]
    assert same == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert events.index("start x") < events.index("end a")


def write_colliding_package(root: Path, name: str) -> None:
    """A package laid out as scikit-learn's svm and linear_model are: each of
    its two entry points imports fine alone, but imported first from two
    threads at once they collide ("partially initialized module")."""
    files = {
        "__init__.py": "",
        "svm/__init__.py": f"from {name}.svm._classes import Classes\n",
        "svm/_classes.py": (
            f"import time\ntime.sleep(0.2)\nfrom {name}.svm._base import Base\nclass Classes(Base): ...\n"
        ),
        "svm/_base.py": f"from {name}.svm import _lib\nimport time\ntime.sleep(0.2)\nclass Base: ...\n",
        "svm/_lib.py": "",
        "linear/__init__.py": f"from {name}.svm._base import Base\n",
    }
    for path, text in files.items():
        (root / name / path).parent.mkdir(parents=True, exist_ok=True)
        (root / name / path).write_text(text)


def test_loads_whose_first_imports_collide_load_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    """Two runtimes whose loads import one package for the first time from two
    threads: both collide, and both load again (one at a time) and serve."""
    package = f"colliding_{uuid.uuid4().hex}"
    write_colliding_package(tmp_path, package)
    monkeypatch.syspath_prepend(str(tmp_path))
    attempts: list[str] = []

    class ImportsSvm(Model):
        module = "svm"

        async def load(self) -> bool:
            attempts.append(self.name)
            await run_in_thread(importlib.import_module, f"{package}.{self.module}")
            return True

    class ImportsLinear(ImportsSvm):
        module = "linear"

    async def scenario() -> None:
        registry = ModelRegistry()
        svm, linear = ModelSettings(name="svm"), ModelSettings(name="linear")
        results = await asyncio.gather(
            registry.load(svm, ImportsSvm(svm)), registry.load(linear, ImportsLinear(linear))
        )
        assert results == [True, True], [entry.reason for entry in registry.entries()]
        # They did collide (both, or one of them, by the timing): the
        # retries are what made them load.
        assert set(attempts) == {"linear", "svm"} and len(attempts) > 2
        assert len(import_retries) == 0

    try:
        run(scenario())
    finally:
        for module in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[module]


def test_only_import_collisions_load_again_and_only_three_times(run: Any) -> None:
    attempts: list[str] = []

    class Fails(Model):
        async def load(self) -> bool:
            attempts.append(self.name)
            if self.name == "collides":
                raise ImportError("cannot import name 'x' from partially initialized module 'y'")
            raise ImportError("No module named 'y'")

    async def scenario() -> None:
        registry = ModelRegistry()
        for name in ("collides", "missing"):
            assert not await registry.load(ModelSettings(name=name), Fails(ModelSettings(name=name)))
        reasons = {entry.name: entry.reason for entry in registry.entries()}
        assert "partially initialized module 'y'" in reasons["collides"]
        assert "No module named 'y'" in reasons["missing"]

    run(scenario())
    assert attempts == ["collides"] * 4 + ["missing"]


def test_a_load_past_its_deadline_fails_and_frees_its_runtime(run: Any) -> None:
    class Hangs(Model):
        async def load(self) -> bool:
            await asyncio.Event().wait()
            return True

    async def scenario() -> None:
        registry = ModelRegistry(settings=Settings(model_load_timeout=0.2))
        hangs = ModelSettings(name="hangs")
        other = ModelSettings(name="other", load_timeout=0.4)
        results = await asyncio.gather(registry.load(hangs, Hangs(hangs)), registry.load(other, Hangs(other)))
        assert results == [False, False]
        (entry,) = registry.versions("hangs")
        assert entry.state == State.FAILED and entry.timed_out
        assert entry.reason == "model 'hangs' did not load within its load_timeout of 0.2 s"
        # A model's own load_timeout overrides the server's; the wait for its
        # runtime's lock counts in it.
        assert (
            registry.versions("other")[0].reason
            == "model 'other' did not load within its load_timeout of 0.4 s"
        )
        # The runtime's lock is free again.
        assert len(runtime_loads) == 0
        assert await registry.load(settings("m"), echo("m"))

    run(scenario())


def test_unknown_names_leave_no_state_behind(run: Any) -> None:
    async def scenario() -> None:
        registry = ModelRegistry()
        for number in range(1000):
            with pytest.raises(ModelNotFound):
                await registry.unload(f"ghost-{number}")
        await registry.load(settings("m"), echo("m"))
        await registry.unload("m")
        assert len(registry._names) == 0
        assert registry.entries() == []

    run(scenario())
