"""Helpers to test runtimes against a real server: start `core start` in a
subprocess on free loopback ports and wait until it is ready, send it a
request over every transport, check that a slow request does not stall it.

    with ServerProcess(model_folder) as server:
        httpx.post(f"{server.url}/v2/models/m/infer", json=...)
        outputs = infer_every_way(server, "m", features, ["predict"])
        check_outputs(server, "m", features, {"predict": expected})

`infer_every_way`, `check_outputs` and `check_live_during` need httpx and
tritonclient[http,grpc] (test dependencies, not the core's).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> set[int]:
    """The processes `pid` started and that still run: a server's workers
    (Linux: read from /proc)."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


class ServerProcess:
    """`core start FOLDER` as a subprocess on 127.0.0.1 with free ports."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *args: str,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        wait_for: str = "/v2/health/ready",
        timeout: float = 60.0,
    ) -> None:
        # A URI (s3://..., https://...) is served as given; `folder` is then that string's Path.
        target = str(folder)
        self.folder = Path(folder)
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.command = [
            python, "-m", "core", "start", target, "--host", "127.0.0.1",
            "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port), *args,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.wait_for = wait_for
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the server)

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + self.wait_for, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server not ready at {self.url}{self.wait_for}:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


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
