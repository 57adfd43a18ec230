"""The runtime conformance kit: a pytest suite that a runtime's tests
inherit, run against a tiny real model the runtime's author trains.

    from core.testing.conformance import RuntimeConformance

    class TestAcmeRuntime(RuntimeConformance):
        implementation = "acme"
        def save_model(self, folder): ...      # train, save into folder, return the model
        def rows(self): ...                    # the request's rows
        def expected(self, model, rows): ...   # {"predict": model.predict(rows), ...}

See `RuntimeConformance` for what runs and what can be tuned. It needs
pytest; the calls go through core.client (REST JSON, REST binary tensors,
gRPC raw contents), and through tritonclient too when it is installed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest

from ..client import ClientError
from ..types import to_datatype
from .bad_inputs import BAD_INPUTS, GRPC_BAD_INPUTS, bad_inputs, bad_json_body, check_error_message
from .clients import TRANSPORTS, client_for, executions, infer_rows
from .expectations import check_answer, check_array, declared_tensor, described_tensor
from .server import ServerProcess

# The batched copy of the model runs a batch only once it holds this many
# requests (its max_batch_time is a minute): sending exactly that many at
# once makes them one batch without depending on timing.
BATCH_REQUESTS = 4
BATCH_WAIT = 60.0
# Seconds any one call may take (a lockstep batch waits for its last request).
CALL_TIMEOUT = 2 * BATCH_WAIT
MIN_ROWS = 8


@dataclass(frozen=True)
class ConformanceModel:
    """The model under test: served as `name` from `folder` (its artifact and
    the model-settings.json the kit wrote), `model` as `save_model` returned
    it, the request's `rows` and the `expected` outputs for them by name."""

    name: str
    folder: Path
    model: Any
    rows: np.ndarray
    expected: dict[str, np.ndarray]

    @property
    def batched_name(self) -> str:
        return f"{self.name}-batched"


class RuntimeConformance:
    """Subclass it in a test module (the name must start with `Test`), set
    `implementation` and write three methods; pytest then runs the kit's
    tests against your runtime served by a real `core start`:

        class TestAcmeRuntime(RuntimeConformance):
            implementation = "acme"  # alias or import path of the runtime

            def save_model(self, folder: Path) -> Any:
                model = AcmeClassifier().fit(*load_iris(return_X_y=True))
                model.save(folder / "model.acme")
                return model

            def rows(self) -> np.ndarray:
                return load_iris(return_X_y=True)[0][::10]

            def expected(self, model: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
                return {"predict": model.predict(rows), "predict_proba": model.predict_proba(rows)}

    - `save_model(folder)`: train a tiny real model and save its artifact in
      `folder`; return what `expected` needs (the model). The kit writes
      `folder/model-settings.json`: the name (`model_name`), the
      `implementation`, the `inputs` and `outputs` declared from `rows()`
      and `expected()`, then `model_settings` over them.
    - `rows()`: the request's one input (named `input_name`), 8 rows or
      more, 2-D (rows x features) for the feature-count check.
    - `expected(model, rows)`: the outputs the served model must answer for
      `rows`, by name: the same shape, datatype (that of the array's dtype)
      and values (within `rtol` / `atol`). Every output the request may name;
      the first is the default one (see `default_outputs`).

    Optional class attributes: `model_settings` (more model-settings.json
    fields, e.g. `{"parameters": {"uri": "./model.acme"}}`), `input_name`
    ("input-0"), `default_outputs` (the outputs answered when a request
    names none; None: the first of `expected`), `rtol` (1e-6), `atol` (0),
    `error_messages` (per bad-input case, a text its error must contain,
    e.g. `{"feature-count": "expecting 4 features"}`), `parallel_workers`
    (the worker counts `test_workers` serves the model with; 0 is the
    server process), `skip` (a kit test's name, "test_workers", with its
    parameter or not, "test_infer[grpc]", or a bad-input case,
    "unknown-output" -> the reason to skip it), `model_name`
    ("conformance").

    The tests: `test_model_is_ready`, `test_metadata`, `test_infer`,
    `test_default_outputs`, `test_requested_outputs` (over REST JSON, REST
    binary tensors and gRPC, with core.client), `test_tritonclient` (when
    tritonclient is installed), `test_bad_input` and
    `test_bad_input_over_grpc` (each of `core.testing.bad_inputs.BAD_INPUTS`
    is a 4xx with a message, and the server serves on), `test_unload_and_load` (the
    repository API), `test_batching` (adaptive batching merges concurrent
    requests and answers each its own rows) and `test_workers`. One server
    (`core start`, default settings) serves the whole class: the model and
    a batched copy of it; `test_workers` starts its own.

    Class-scoped fixtures your own tests in the class may use:
    `conformance` (a `ConformanceModel`) and `conformance_server` (the
    `core.testing.ServerProcess`)."""

    implementation: ClassVar[str] = ""
    model_settings: ClassVar[Mapping[str, Any]] = {}
    input_name: ClassVar[str] = "input-0"
    default_outputs: ClassVar[Sequence[str] | None] = None
    rtol: ClassVar[float] = 1e-6
    atol: ClassVar[float] = 0.0
    error_messages: ClassVar[Mapping[str, str]] = {}
    parallel_workers: ClassVar[Sequence[int]] = (0, 2)
    skip: ClassVar[Mapping[str, str]] = {}
    model_name: ClassVar[str] = "conformance"

    # What a runtime's test class writes.

    def save_model(self, folder: Path) -> Any:
        """Train a tiny real model, save it in `folder`, return it."""
        raise NotImplementedError(f"{type(self).__name__} must implement save_model(folder)")

    def rows(self) -> np.ndarray:
        """The request's input: 8 rows or more."""
        raise NotImplementedError(f"{type(self).__name__} must implement rows()")

    def expected(self, model: Any, rows: np.ndarray) -> Mapping[str, np.ndarray]:
        """The outputs for `rows`, by name; the first is the default one."""
        raise NotImplementedError(f"{type(self).__name__} must implement expected(model, rows)")

    # Fixtures

    @pytest.fixture(scope="class")
    @classmethod
    def conformance(cls, tmp_path_factory: pytest.TempPathFactory) -> ConformanceModel:
        # Once per class, while pytest makes an instance per test: the
        # runtime's methods run on one made here.
        runtime = cls()
        assert runtime.implementation, f"{cls.__name__}: set `implementation` (the runtime's alias)"
        root = tmp_path_factory.mktemp("conformance")
        folder = root / runtime.model_name
        folder.mkdir()
        model = runtime.save_model(folder)
        rows = np.asarray(runtime.rows())
        assert len(rows) >= MIN_ROWS, f"rows(): {MIN_ROWS} rows or more, got {len(rows)}"
        expected = {name: np.asarray(values) for name, values in runtime.expected(model, rows).items()}
        assert expected, "expected(): at least one output"
        settings = {
            "name": runtime.model_name,
            "implementation": runtime.implementation,
            "inputs": [declared_tensor(runtime.input_name, rows)],
            "outputs": [declared_tensor(name, values) for name, values in expected.items()],
            **runtime.model_settings,
        }
        _write_settings(folder, settings)
        batched = root / f"{runtime.model_name}-batched"
        shutil.copytree(folder, batched)
        _write_settings(
            batched,
            {
                **settings,
                "name": batched.name,
                "max_batch_size": BATCH_REQUESTS,
                "max_batch_time": BATCH_WAIT,
            },
        )
        return ConformanceModel(runtime.model_name, folder, model, rows, expected)

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_server(cls, conformance: ConformanceModel) -> Iterator[ServerProcess]:
        with _serve(conformance.folder.parent, [conformance.name, conformance.batched_name]) as server:
            yield server

    @pytest.fixture(autouse=True)
    def _conformance_skip(self, request: pytest.FixtureRequest) -> None:
        """`skip` by test ("test_workers"), test and parameter
        ("test_infer[grpc]") or bad-input case ("bytes-for-numbers")."""
        callspec = getattr(request.node, "callspec", None)
        keys = [request.node.originalname, request.node.name]
        if callspec and isinstance(callspec.params.get("case"), str):
            keys.append(callspec.params["case"])
        for key in keys:
            if key in self.skip:
                pytest.skip(self.skip[key])

    # Load and metadata

    def test_model_is_ready(self, conformance: ConformanceModel, conformance_server: ServerProcess) -> None:
        with self._client(conformance_server, "rest-json") as rest:
            assert rest.is_server_ready()
            states = {item.name: item.state.value for item in rest.repository_index()}
            assert states.get(conformance.name) == "READY", states
            assert rest.is_model_ready(conformance.name)
        with self._client(conformance_server, "grpc") as grpc:
            assert grpc.is_model_ready(conformance.name)

    @pytest.mark.parametrize("transport", ["rest-json", "grpc"])
    def test_metadata(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, transport: str
    ) -> None:
        """The model's metadata: its name and the inputs and outputs
        model-settings.json declares."""
        with self._client(conformance_server, transport) as client:
            metadata = client.model_metadata(conformance.name)
        assert metadata.name == conformance.name
        assert [described_tensor(tensor) for tensor in metadata.inputs] == [
            declared_tensor(self.input_name, conformance.rows)
        ]
        assert [described_tensor(tensor) for tensor in metadata.outputs] == [
            declared_tensor(name, values) for name, values in conformance.expected.items()
        ]

    # Inference

    @pytest.mark.parametrize("transport", TRANSPORTS)
    def test_infer(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, transport: str
    ) -> None:
        """Every output asked for by name: exactly those, as expected."""
        names = list(conformance.expected)
        with self._client(conformance_server, transport) as client:
            answer = self._infer(client, conformance.name, conformance.rows, names)
        assert answer.model_name == conformance.name
        self._check(answer, conformance.expected, names, transport)

    @pytest.mark.parametrize("transport", TRANSPORTS)
    def test_default_outputs(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, transport: str
    ) -> None:
        """No output named: the default ones."""
        names = list(self.default_outputs or list(conformance.expected)[:1])
        with self._client(conformance_server, transport) as client:
            answer = self._infer(client, conformance.name, conformance.rows, None)
        self._check(answer, conformance.expected, names, transport)

    @pytest.mark.parametrize("transport", TRANSPORTS)
    def test_requested_outputs(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, transport: str
    ) -> None:
        """Each output asked for alone; all of them in reverse order come
        back in that order."""
        names = list(conformance.expected)
        with self._client(conformance_server, transport) as client:
            for asked in [*([name] for name in names), names[::-1]]:
                answer = self._infer(client, conformance.name, conformance.rows, asked)
                self._check(answer, conformance.expected, asked, f"{transport}, asked {asked}")

    @pytest.mark.parametrize("protocol", ["http", "grpc"])
    def test_tritonclient(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, protocol: str
    ) -> None:
        """Triton's own client (binary tensors over HTTP, raw contents over
        gRPC), when it is installed."""
        triton = pytest.importorskip(f"tritonclient.{protocol}")
        port = conformance_server.http_port if protocol == "http" else conformance_server.grpc_port
        rows = conformance.rows
        tensor = triton.InferInput(self.input_name, list(rows.shape), to_datatype(rows.dtype).value)
        if protocol == "http":
            tensor.set_data_from_numpy(rows, binary_data=True)
        else:
            tensor.set_data_from_numpy(rows)
        names = list(conformance.expected)
        with triton.InferenceServerClient(f"127.0.0.1:{port}") as client:
            result = client.infer(
                conformance.name, [tensor], outputs=[triton.InferRequestedOutput(name) for name in names]
            )
        response = result.get_response()
        answered = (
            [output["name"] for output in response["outputs"]]
            if protocol == "http"
            else [output.name for output in response.outputs]
        )
        assert answered == names, answered
        for name in names:
            self._check_values(
                result.as_numpy(name), conformance.expected[name], f"tritonclient.{protocol}: {name}"
            )

    # Bad input

    @pytest.mark.parametrize("case", BAD_INPUTS)
    def test_bad_input(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, case: str
    ) -> None:
        """A bad request (see core.testing.bad_inputs) is a 4xx with a JSON
        error naming the problem; the server stays up and answers the next
        request right."""
        body = bad_json_body(case, self.input_name, conformance.rows, list(conformance.expected))
        response = httpx.post(
            f"{conformance_server.url}/v2/models/{conformance.name}/infer", json=body, timeout=CALL_TIMEOUT
        )
        assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
        error = response.json().get("error")
        assert isinstance(error, str) and error, response.text
        check_error_message(case, error, list(conformance.expected), self.error_messages)
        self._check_still_serving(conformance, conformance_server, "rest-json")

    @pytest.mark.parametrize("case", GRPC_BAD_INPUTS)
    def test_bad_input_over_grpc(
        self, conformance: ConformanceModel, conformance_server: ServerProcess, case: str
    ) -> None:
        """The same over gRPC: a status whose HTTP equivalent is a 4xx
        (INVALID_ARGUMENT...), with a message."""
        inputs, outputs = bad_inputs(case, self.input_name, conformance.rows, list(conformance.expected))
        with self._client(conformance_server, "grpc") as grpc, pytest.raises(ClientError) as refused:
            infer_rows(grpc, conformance.name, inputs, outputs)
        error = refused.value
        assert error.status is not None and 400 <= error.status < 500, (case, repr(error))
        assert error.message, repr(error)
        check_error_message(case, error.message, list(conformance.expected), self.error_messages)
        self._check_still_serving(conformance, conformance_server, "grpc")

    # The repository API

    def test_unload_and_load(self, conformance: ConformanceModel, conformance_server: ServerProcess) -> None:
        """Unloaded (over REST): listed but not ready, its requests refused;
        loaded again (over gRPC): ready, and right."""
        name = conformance.name
        with (
            self._client(conformance_server, "rest-json") as rest,
            self._client(conformance_server, "grpc") as grpc,
        ):
            rest.unload_model(name)
            try:
                states = {item.name: item.state.value for item in rest.repository_index()}
                assert states.get(name) == "UNAVAILABLE", states
                assert not rest.is_model_ready(name)
                with pytest.raises(ClientError) as refused:
                    self._infer(rest, name, conformance.rows, None)
                assert refused.value.status in (404, 503), repr(refused.value)
            finally:
                grpc.load_model(name)
            states = {item.name: item.state.value for item in grpc.repository_index()}
            assert states.get(name) == "READY", states
        self._check_still_serving(conformance, conformance_server, "rest-binary")

    # Adaptive batching and workers

    def test_batching(self, conformance: ConformanceModel, conformance_server: ServerProcess) -> None:
        """`BATCH_REQUESTS` requests at once, of 1, 2, 3 and the remaining
        rows, over every transport, run as one batch of the batched copy
        (max_batch_size) and each gets the answers for its own rows."""
        name, names = conformance.batched_name, list(conformance.expected)
        parts = np.split(conformance.rows, [1, 3, 6])
        transports = [TRANSPORTS[index % len(TRANSPORTS)] for index in range(BATCH_REQUESTS)]
        with self._client(conformance_server, "rest-json") as rest:
            before = executions(rest.model_statistics(name))

            def send(transport: str, rows: np.ndarray) -> Any:
                with self._client(conformance_server, transport) as client:
                    return self._infer(client, name, rows, names)

            with ThreadPoolExecutor(BATCH_REQUESTS) as pool:
                answers = list(pool.map(send, transports, parts))
            after = executions(rest.model_statistics(name))
        for transport, rows, answer in zip(transports, parts, answers, strict=True):
            expected = self._expected_for(conformance, rows)
            self._check(answer, expected, names, f"batched, {transport}, {len(rows)} rows")
        assert after - before == 1, f"{BATCH_REQUESTS} requests ran in {after - before} executions"

    def test_workers(self, conformance: ConformanceModel) -> None:
        """Served with each of `parallel_workers` worker processes, the model
        answers concurrent requests over every transport as expected."""
        parts = np.array_split(conformance.rows, 6)
        transports = [TRANSPORTS[index % len(TRANSPORTS)] for index in range(len(parts))]
        names = list(conformance.expected)
        for workers in self.parallel_workers:
            with _serve(conformance.folder, [conformance.name], "--parallel-workers", str(workers)) as server:

                def send(transport: str, rows: np.ndarray, server: ServerProcess = server) -> Any:
                    with self._client(server, transport) as client:
                        return self._infer(client, conformance.name, rows, names)

                with ThreadPoolExecutor(len(parts)) as pool:
                    answers = list(pool.map(send, transports, parts))
            for transport, rows, answer in zip(transports, parts, answers, strict=True):
                expected = self._expected_for(conformance, rows)
                self._check(answer, expected, names, f"{workers} workers, {transport}, {len(rows)} rows")

    # Checks

    def _expected_for(self, conformance: ConformanceModel, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.asarray(values) for name, values in self.expected(conformance.model, rows).items()}

    def _check(
        self, answer: Any, expected: Mapping[str, np.ndarray], names: Sequence[str], where: str
    ) -> None:
        check_answer(answer, expected, names, where, rtol=self.rtol, atol=self.atol)

    def _check_values(self, actual: Any, wanted: np.ndarray, where: str) -> None:
        check_array(actual, wanted, where, rtol=self.rtol, atol=self.atol)

    def _check_still_serving(
        self, conformance: ConformanceModel, server: ServerProcess, transport: str
    ) -> None:
        names = list(conformance.expected)
        with self._client(server, transport) as client:
            assert client.is_server_live()
            answer = self._infer(client, conformance.name, conformance.rows, names)
        self._check(answer, conformance.expected, names, f"{transport}, after")

    def _infer(self, client: Any, model: str, rows: np.ndarray, outputs: Sequence[str] | None) -> Any:
        return infer_rows(client, model, {self.input_name: rows}, outputs)

    @staticmethod
    def _client(server: ServerProcess, transport: str) -> Any:
        return client_for(server, transport, CALL_TIMEOUT)


def _write_settings(folder: Path, settings: Mapping[str, Any]) -> None:
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))


@contextmanager
def _serve(folder: Path, names: Sequence[str], *args: str) -> Iterator[ServerProcess]:
    """`core start folder *args`, once the models `names` are loaded."""
    with ServerProcess(folder, *args, wait_for="/v2/health/live") as server:
        server.wait_for_models(names)
        yield server
