"""text-generation streams its text as it is generated, on every transport
and in both process modes: Triton's generate_stream and OIP infer_stream
(server-sent events), gRPC ModelStreamInfer; a client that goes away stops
the generation."""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc as triton_grpc

from core.testing import ServerProcess

PROMPT = "the cat sat"
GREEDY = {"max_new_tokens": 16, "temperature": 0}


def events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [
            json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")
        ]


def whole_text(http: httpx.Client) -> dict[str, Any]:
    body = {
        "inputs": [{"name": "text_inputs", "shape": [1], "datatype": "BYTES", "data": [PROMPT]}],
        "parameters": GREEDY,
    }
    answer = http.post("/v2/models/text-generation/infer", json=body)
    assert answer.status_code == 200, answer.text
    return {o["name"]: o["data"][0] for o in answer.json()["outputs"]}


def test_generate_stream_sends_the_text_as_it_is_generated(any_server: ServerProcess) -> None:
    with httpx.Client(base_url=any_server.url, timeout=60) as http:
        expected = whole_text(http)
        streamed = events(
            http, "/v2/models/text-generation/generate_stream", {"text_input": PROMPT, "parameters": GREEDY}
        )
        assert len(streamed) > 2  # chunks, then the last event
        assert "".join(event["text_output"] for event in streamed) == expected["text_output"]
        last = streamed[-1]
        assert (last["finish_reason"], last["completion_tokens"]) == ("length", 16)
        assert last["prompt_tokens"] == expected["prompt_tokens"]
        assert all("finish_reason" not in event for event in streamed[:-1])
        # /generate: one answer, the chunks joined.
        generated = http.post("/v2/models/text-generation/generate", json={"text_input": PROMPT, **GREEDY})
        assert generated.status_code == 200, generated.text
        assert generated.json()["text_output"] == expected["text_output"]


def test_infer_stream_sends_v2_responses(any_server: ServerProcess) -> None:
    body = {
        "id": "s-1",
        "inputs": [{"name": "text_inputs", "shape": [1], "datatype": "BYTES", "data": [PROMPT]}],
        "parameters": GREEDY,
    }
    with httpx.Client(base_url=any_server.url, timeout=60) as http:
        expected = whole_text(http)["text_output"]
        streamed = events(http, "/v2/models/text-generation/infer_stream", body)
    assert {event["id"] for event in streamed} == {"s-1"}
    chunks = [o["data"][0] for event in streamed for o in event["outputs"] if o["name"] == "text_output"]
    assert "".join(chunks) == expected
    assert [o["name"] for o in streamed[-1]["outputs"]] == [
        "text_output",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
    ]


def test_grpc_model_stream_infer(any_server: ServerProcess) -> None:
    with httpx.Client(base_url=any_server.url, timeout=60) as http:
        expected = whole_text(http)["text_output"]
    results: queue.Queue[Any] = queue.Queue()
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{any_server.grpc_port}")
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    tensor = triton_grpc.InferInput("text_input", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([PROMPT.encode()], dtype=object))
    client.async_stream_infer("text-generation", [tensor], request_id="g-1", parameters=GREEDY)
    client.stop_stream()
    collected = []
    while not results.empty():
        collected.append(results.get())
    client.close()
    assert [error for _, error in collected] == [None] * len(collected)
    assert len(collected) > 2
    text = "".join(result.as_numpy("text_output")[0].decode() for result, _ in collected)
    assert text == expected
    assert collected[-1][0].as_numpy("finish_reason")[0] == b"length"


def test_a_client_that_goes_away_stops_the_generation(any_server: ServerProcess) -> None:
    before = any_server.log().count("generation stopped")
    # The longest generation the 64-token context allows, read for one event only.
    body = {"text_input": "a", "parameters": {"max_new_tokens": 60, "temperature": 0}}
    with (
        httpx.Client(base_url=any_server.url, timeout=60) as http,
        http.stream("POST", "/v2/models/text-generation/generate_stream", json=body) as response,
    ):
        assert response.status_code == 200
        next(response.iter_lines())
    deadline = time.monotonic() + 30
    while any_server.log().count("generation stopped") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any_server.log().count("generation stopped") == before + 1, any_server.log()[-2000:]
    with httpx.Client(base_url=any_server.url, timeout=60) as http:
        assert whole_text(http)["finish_reason"] == "length"  # still serving


def test_stream_errors_before_the_first_chunk_are_statuses(server: ServerProcess) -> None:
    two_prompts = {
        "inputs": [{"name": "text_inputs", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
    }
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = http.post("/v2/models/text-generation/infer_stream", json=two_prompts)
        assert response.status_code == 400
        assert "one prompt at a time" in response.json()["error"]
        too_long = {"text_input": "word " * 80, "parameters": {"max_new_tokens": 2}}
        response = http.post("/v2/models/text-generation/generate_stream", json=too_long)
        assert response.status_code == 400
        assert "context of 64 tokens" in response.json()["error"]
        # A task that does not stream answers a stream with its one response.
        classify = {"inputs": [{"name": "inputs", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
        streamed = events(http, "/v2/models/text-classification/infer_stream", classify)
        assert [o["name"] for o in streamed[0]["outputs"]] == ["label", "score"]
