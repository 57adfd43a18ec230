"""Checks of a model served by a `ServerProcess`: the same request over
every transport, the README's example, liveness during a slow request.

    outputs = infer_every_way(server, "m", features, ["predict"])
    check_outputs(server, "m", features, {"predict": expected})

They need httpx and tritonclient[http,grpc] (test dependencies, not the
core's); `core.testing.conformance` is the kit built on core.client instead.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .server import ServerProcess


def json_request(
    features: np.ndarray, outputs: Sequence[str] = (), input_name: str = "input-0"
) -> dict[str, Any]:
    """An OIP JSON request body with `features` as its one input, asking for
    `outputs` (none: the model's default)."""
    from tritonclient.utils import np_to_triton_dtype

    tensor = {
        "name": input_name,
        "shape": list(features.shape),
        "datatype": np_to_triton_dtype(features.dtype),
        "data": features.ravel().tolist(),
    }
    body: dict[str, Any] = {"inputs": [tensor]}
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return body


def infer_every_way(
    server: ServerProcess,
    model: str,
    features: np.ndarray,
    outputs: Sequence[str] = (),
    input_name: str = "input-0",
) -> dict[str, dict[str, np.ndarray]]:
    """Send `features` as the model's one input over REST with a JSON body
    (httpx), REST with binary tensors (tritonclient.http, its default) and
    gRPC (tritonclient.grpc); `outputs` names the outputs to ask for (none:
    the model's default). Each transport's outputs, by name, as arrays."""
    import httpx
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import np_to_triton_dtype

    datatype = np_to_triton_dtype(features.dtype)
    body = json_request(features, outputs, input_name)
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answers = {
        "rest-json": {
            output["name"]: np.asarray(output["data"]).reshape(output["shape"])
            for output in response.json()["outputs"]
        }
    }

    http_input = httpclient.InferInput(input_name, list(features.shape), datatype)
    http_input.set_data_from_numpy(features, binary_data=True)
    with httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}") as http:
        result = http.infer(
            model,
            [http_input],
            outputs=[httpclient.InferRequestedOutput(name, binary_data=True) for name in outputs] or None,
        )
    answers["rest-binary"] = {
        output["name"]: result.as_numpy(output["name"]) for output in result.get_response()["outputs"]
    }

    grpc_input = grpcclient.InferInput(input_name, list(features.shape), datatype)
    grpc_input.set_data_from_numpy(features)
    with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as grpc:
        reply = grpc.infer(
            model, [grpc_input], outputs=[grpcclient.InferRequestedOutput(name) for name in outputs] or None
        )
    answers["grpc"] = {output.name: reply.as_numpy(output.name) for output in reply.get_response().outputs}
    return answers


def check_outputs(
    server: ServerProcess,
    model: str,
    features: np.ndarray,
    expected: Mapping[str, np.ndarray],
    default: bool = False,
    rtol: float = 1e-6,
) -> None:
    """Over every transport (`infer_every_way`), the model answers exactly
    the outputs of `expected`, with those values: asked for by name, or,
    with `default`, without naming any (the model's default outputs)."""
    answers = infer_every_way(server, model, features, [] if default else list(expected))
    for transport, outputs in answers.items():
        assert list(outputs) == list(expected), (transport, list(outputs))
        for name, values in expected.items():
            assert outputs[name].shape == np.shape(values), (transport, name, outputs[name].shape)
            np.testing.assert_allclose(outputs[name], values, rtol=rtol, err_msg=f"{transport}: {name}")


def readme_examples(readme: Path) -> dict[str, str]:
    """The two JSON examples of a runtime's README.md, verbatim: the
    model-settings.json (the ```json block with "implementation") and the
    request (the one with "inputs"), to serve and send in a test."""
    blocks = re.findall(r"```json\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    settings = [block for block in blocks if '"implementation"' in block]
    requests = [block for block in blocks if '"inputs"' in block]
    assert len(settings) == 1 and len(requests) == 1, f"{readme}: examples changed: {blocks}"
    return {"settings": settings[0], "request": requests[0]}


def check_readme_example(server: ServerProcess, examples: Mapping[str, str], estimator: Any) -> None:
    """The README's request (`readme_examples`), sent to the model its
    model-settings.json names, answers each requested output with what the
    estimator's method of that name returns for the request's input (read in
    the request's datatype)."""
    import httpx
    from tritonclient.utils import triton_to_np_dtype

    settings = json.loads(examples["settings"])
    request = json.loads(examples["request"])
    response = httpx.post(f"{server.url}/v2/models/{settings['name']}/infer", json=request, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in response.json()["outputs"]}
    assert list(outputs) == [output["name"] for output in request["outputs"]]
    sent = request["inputs"][0]
    features = np.asarray(sent["data"], dtype=triton_to_np_dtype(sent["datatype"])).reshape(sent["shape"])
    for name, output in outputs.items():
        expected = getattr(estimator, name)(features)
        np.testing.assert_allclose(
            np.reshape(output["data"], output["shape"]), expected, rtol=1e-6, err_msg=name
        )


def check_live_during(server: ServerProcess, model: str, body: bytes, checks: int = 5) -> Any:
    """POST the JSON `body` (a request that takes a while) to the model's
    infer endpoint and, once the body is fully sent, call /v2/health/live
    `checks` times: every one must be answered before the inference
    response starts, i.e. the prediction did not stall the event loop. Only
    the order of events is asserted, never a duration. The inference's
    httpx response."""
    import httpx

    body_sent = threading.Event()
    predict_answered = threading.Event()
    events: list[tuple[str, float]] = []  # list.append is atomic across threads
    result: dict[str, Any] = {}

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]
        # The generator resumes only after httpx wrote the last chunk.
        events.append(("body sent", time.monotonic()))
        body_sent.set()

    def send_predict() -> None:
        try:
            with (
                httpx.Client(timeout=120) as http,
                http.stream(
                    "POST",
                    f"{server.url}/v2/models/{model}/infer",
                    content=chunks(),
                    headers={"content-type": "application/json", "content-length": str(len(body))},
                ) as response,
            ):
                # Recorded as soon as the status line and headers are in.
                events.append(("predict answered", time.monotonic()))
                predict_answered.set()
                response.read()
                result["response"] = response
        except BaseException as error:  # surfaced by the calling thread
            result["error"] = error
            body_sent.set()
            predict_answered.set()

    thread = threading.Thread(target=send_predict, daemon=True)
    thread.start()
    try:
        assert body_sent.wait(60), "the predict request body was never sent"
        answered_before_live: list[bool] = []
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for _ in range(checks):
                live = http.get("/v2/health/live")
                assert live.status_code == 200, live.text
                assert live.json() == {"live": True}
                events.append(("live", time.monotonic()))
                answered_before_live.append(predict_answered.is_set())
    finally:
        thread.join(120)
    assert "error" not in result, result.get("error")
    order = [name for name, _ in sorted(events, key=lambda event: event[1])]
    assert order == ["body sent", *["live"] * checks, "predict answered"], events
    assert not any(answered_before_live), events
    return result["response"]
