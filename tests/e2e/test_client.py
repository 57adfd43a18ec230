"""core.client against a real core server (in-process models and 2 workers):
every call, REST and gRPC, sync and async, binary and JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.client import (
    AsyncRESTClient,
    ClientError,
    GRPCClient,
    InferInput,
    InferRequest,
    RequestedOutput,
    RESTClient,
    connect,
)
from core.testing import ServerProcess
from core.testing.clients import EitherWayClient
from core.types import InferenceRequest, RequestInput

KINDS = ["rest", "rest-async", "grpc", "grpc-async"]


class Caller(EitherWayClient):
    """A client of the core server of `kind`, called the same way whichever it is."""

    def __init__(self, kind: str, server: ServerProcess, loop: asyncio.AbstractEventLoop, **options: Any):
        url = server.url if kind.startswith("rest") else f"127.0.0.1:{server.grpc_port}"
        super().__init__(kind, url, loop, **options)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(params=KINDS)
def caller(
    request: pytest.FixtureRequest, server: ServerProcess, loop: asyncio.AbstractEventLoop
) -> Iterator[Caller]:
    caller = Caller(request.param, server, loop)
    yield caller
    caller.close()


def test_health(caller: Caller) -> None:
    assert caller.is_server_live() is True
    assert caller.is_server_ready() is True
    assert caller.is_model_ready("iris") is True
    assert caller.is_model_ready("multi", "2") is True
    assert caller.is_model_ready("no-such-model") is False


def test_metadata(caller: Caller) -> None:
    server = caller.server_metadata()
    assert server.name == "core"
    assert "model_repository" in server.extensions or server.extensions
    model = caller.model_metadata("iris")
    assert model.name == "iris"
    assert [(t.name, t.datatype.value, t.shape) for t in model.inputs] == [("input-0", "FP32", [-1, 4])]
    assert [t.name for t in model.outputs] == ["predict", "predict_proba"]
    with pytest.raises(ClientError) as raised:
        caller.model_metadata("no-such-model")
    assert raised.value.status == 404
    assert "no-such-model" in raised.value.message


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_scikit_learn(caller: Caller, iris: Any, binary: bool) -> None:
    rows = iris.features[::7]
    tensor = InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    response = caller.infer(
        "iris",
        [tensor],
        outputs=[RequestedOutput("predict"), "predict_proba"],
        binary_output=binary,
        request_id="req-1",
    )
    assert response.model_name == "iris"
    assert response.id == "req-1"
    np.testing.assert_array_equal(response.as_numpy("predict"), iris.classifier.predict(rows))
    np.testing.assert_allclose(
        response.as_numpy("predict_proba"), iris.classifier.predict_proba(rows), rtol=1e-6
    )
    assert response.get_output_by_name("predict").datatype == "INT64"
    assert response.as_numpy("no-such-output") is None


def test_infer_takes_every_form_of_input(caller: Caller, iris: Any) -> None:
    rows = iris.features[:5]
    expected = iris.classifier.predict(rows)
    request = InferRequest("ignored", [InferInput.from_numpy("input-0", rows)])
    core_request = InferenceRequest(
        inputs=[RequestInput(name="input-0", shape=[5, 4], datatype="FP32", data=rows.ravel().tolist())]
    )
    for inputs in (rows, {"input-0": rows}, request, core_request):
        response = caller.infer("iris", inputs, outputs=["predict"])
        np.testing.assert_array_equal(response.as_numpy("predict"), expected)


def test_versions(caller: Caller, iris: Any) -> None:
    rows = iris.features
    v1 = caller.infer("multi", rows, model_version="1", outputs=["predict"])
    assert v1.model_version == "1"
    np.testing.assert_array_equal(v1.as_numpy("predict"), iris.stump.predict(rows))


def test_bytes_round_trip(caller: Caller) -> None:
    words = np.array([b"abc", "déjà".encode(), b"\x00\xff"], dtype=object)
    response = caller.infer("upper", [InferInput.from_numpy("text", words)])
    assert response.as_numpy("upper").tolist() == [word.upper() for word in words]


def test_parameters_and_headers_reach_the_model(caller: Caller) -> None:
    rows = np.arange(6, dtype=np.int32).reshape(2, 3)
    response = caller.infer("echo", {"x": rows}, parameters={"temperature": 0.5})
    np.testing.assert_array_equal(response.as_numpy("x"), rows)
    seen = response.as_numpy("seen")[0]
    assert b'"temperature": 0.5' in seen
    echoed = caller.infer("header-echo", rows, headers={"X-E2E-Echo": "hello"})
    assert echoed.as_numpy("header").tolist() == [b"hello"]


def test_pandas_round_trip(caller: Caller, iris: Any) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": ["x", "y", "z"]})
    response = caller.infer("echo", frame, outputs=["a", "b", "c"])
    back = response.as_dataframe()
    assert list(back.columns) == ["a", "b", "c"]
    assert back["a"].tolist() == [1, 2, 3]
    assert back["b"].tolist() == [0.5, 1.5, 2.5]
    assert [value.decode() if isinstance(value, bytes) else value for value in back["c"]] == ["x", "y", "z"]


def test_bad_input_is_a_client_error(caller: Caller) -> None:
    tensor = InferInput("input-0", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(ClientError) as raised:
        caller.infer("iris", [tensor])
    assert raised.value.status == 400
    assert raised.value.message  # the server's own words
    if caller.kind.startswith("grpc"):
        assert raised.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ClientError) as missing:
        caller.infer("no-such-model", np.zeros((1, 4), dtype=np.float32))
    assert missing.value.status == 404
    assert caller.is_server_live()  # and the server keeps serving


def test_stream(caller: Caller) -> None:
    text = np.array([b"one two three"], dtype=object)
    responses = caller.infer_stream(
        "tokens", [{"text_input": text}, {"text_input": np.array([b"four"], dtype=object)}]
    )
    words = [r.as_numpy("text_output")[0] for r in responses]
    assert words == [b"one", b" two", b" three", b"four"]
    with pytest.raises(ClientError) as raised:
        caller.infer_stream("tokens", [{"text_input": np.array([b"a explode"], dtype=object)}])
    assert "exploded mid-stream" in raised.value.message


def test_repository_calls(caller: Caller, iris: Any) -> None:
    name = "scratch-httpx"
    index = {item.name: item for item in caller.repository_index()}
    assert index["iris"].state.value == "READY"
    caller.unload_model(name)
    assert caller.is_model_ready(name) is False
    assert name not in {item.name for item in caller.repository_index(ready=True)}
    caller.load_model(name)
    assert caller.is_model_ready(name) is True
    np.testing.assert_array_equal(
        caller.infer(name, iris.features[:3], outputs=["predict"]).as_numpy("predict"),
        iris.classifier.predict(iris.features[:3]),
    )
    with pytest.raises(ClientError) as raised:
        caller.load_model("no-such-model")
    assert raised.value.status in (400, 404)


def test_config_and_statistics(caller: Caller, iris: Any) -> None:
    config = caller.model_config("iris")
    assert config["name"] == "iris"
    caller.infer("iris", iris.features[:2])
    stats = caller.model_statistics("iris")
    assert stats["model_stats"][0]["name"] == "iris"
    assert int(stats["model_stats"][0]["inference_count"]) >= 2
    everything = caller.model_statistics()
    assert "iris" in {model["name"] for model in everything["model_stats"]}


def test_connect_picks_the_transport(server: ServerProcess) -> None:
    with connect(server.url) as rest:
        assert isinstance(rest, RESTClient)
        assert rest.is_server_ready()
    with connect(f"grpc://127.0.0.1:{server.grpc_port}") as grpc_client:
        assert isinstance(grpc_client, GRPCClient)
        assert grpc_client.is_server_ready()


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_a_sync_client_shared_by_threads(server: ServerProcess, iris: Any, kind: str) -> None:
    """Each thread's calls get their own answers (REST: a connection each)."""
    from concurrent.futures import ThreadPoolExecutor

    client = RESTClient(server.url) if kind == "rest" else GRPCClient(f"127.0.0.1:{server.grpc_port}")
    slices = [iris.features[start : start + 5] for start in range(0, 150, 5)]
    with client, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda rows: client.infer("iris", rows, outputs=["predict"]), slices))
    for rows, response in zip(slices, answers, strict=True):
        np.testing.assert_array_equal(response.as_numpy("predict"), iris.classifier.predict(rows))


def test_rest_calls_reuse_one_connection(server: ServerProcess, iris: Any) -> None:
    with RESTClient(server.url) as client:
        client.infer("iris", iris.features[:2])
        pool = client._direct
        assert pool is not None and len(pool._idle) == 1
        first = pool._idle[0]
        for _ in range(5):
            client.infer("iris", iris.features[:2])
        assert pool._idle == [first]  # kept alive, not reopened


def test_keep_alive_transport_under_uvloop(server: ServerProcess, iris: Any) -> None:
    """The async lean transport runs on uvloop (uvicorn's loop: a transformer's)."""
    import uvloop

    from core.client.http1 import KeepAliveTransport

    async def main() -> np.ndarray:
        async with AsyncRESTClient(server.url, transport=KeepAliveTransport()) as client:
            answers = await asyncio.gather(*(client.infer("iris", iris.features[:3]) for _ in range(4)))
        return np.stack([answer.as_numpy("predict") for answer in answers])

    predictions = uvloop.run(main())
    assert (predictions == iris.classifier.predict(iris.features[:3])).all()
