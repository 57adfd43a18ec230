"""Streaming inference end to end: REST `infer_stream`, `generate_stream`
(server-sent events, read with httpx) and `generate`, and gRPC
`ModelStreamInfer` with tritonclient's stream. The `tokens` model streams
one response per word of its input; `echo` has no predict_stream, so the
streaming routes answer with its predict's one response, as Triton does for
a model that is not decoupled."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException


def text_request(text: str, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}], **extra}


def read_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON of each server-sent event's `data` field."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(json.loads(line[len("data: ") :]))
        else:
            assert line == "", f"unexpected line in the event stream: {line!r}"
    return events


def stream_events(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_events(response)


def texts(events: list[dict[str, Any]]) -> list[str]:
    return [event["outputs"][0]["data"][0] for event in events]


# REST infer_stream


def test_infer_stream_sends_one_event_per_word(client: httpx.Client) -> None:
    events = stream_events(client, "/v2/models/tokens/infer_stream", text_request("a b c", id="s-1"))
    assert texts(events) == ["a", " b", " c"]
    assert {event["id"] for event in events} == {"s-1"}
    assert {event["model_name"] for event in events} == {"tokens"}
    assert events[0]["outputs"][0]["name"] == "text_output"


def test_infer_stream_error_mid_stream_is_the_last_event(client: httpx.Client) -> None:
    events = stream_events(client, "/v2/models/tokens/infer_stream", text_request("a explode c"))
    assert texts(events[:1]) == ["a"]
    assert len(events) == 2
    assert "exploded mid-stream" in events[1]["error"]
    # The server goes on serving.
    again = stream_events(client, "/v2/models/tokens/infer_stream", text_request("d e"))
    assert texts(again) == ["d", " e"]


def test_infer_stream_errors_before_the_stream_are_statuses(client: httpx.Client) -> None:
    cases = [
        ("/v2/models/ghost/infer_stream", text_request("a"), 404, "ghost"),
        ("/v2/models/tokens/versions/9/infer_stream", text_request("a"), 404, "tokens"),
    ]
    for path, body, status, fragment in cases:
        response = client.post(path, json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert fragment in response.json()["error"]
    malformed = client.post(
        "/v2/models/tokens/infer_stream", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert "malformed JSON" in malformed.json()["error"]
    bad_shape = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}
    assert client.post("/v2/models/tokens/infer_stream", json=bad_shape).status_code == 400
    assert client.get("/v2/health/live").json() == {"live": True}


# REST generate and generate_stream


def test_generate_stream_sends_text_output_events(client: httpx.Client) -> None:
    body = {"id": "g-1", "text_input": "a b c", "parameters": {"temperature": 0.5}}
    events = stream_events(client, "/v2/models/tokens/generate_stream", body)
    assert events == [
        {"model_name": "tokens", "id": "g-1", "text_output": word} for word in ("a", " b", " c")
    ]


def test_generate_stream_error_mid_stream(client: httpx.Client) -> None:
    events = stream_events(client, "/v2/models/tokens/generate_stream", {"text_input": "a explode"})
    assert events[0]["text_output"] == "a"
    assert "exploded mid-stream" in events[1]["error"]
    assert len(events) == 2


def test_generate_concatenates_the_streamed_text(client: httpx.Client) -> None:
    response = client.post("/v2/models/tokens/generate", json={"text_input": "a b c"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    content = response.json()
    assert content["text_output"] == "a b c"
    assert content["model_name"] == "tokens"


def test_generate_errors(client: httpx.Client) -> None:
    cases = [
        ("/v2/models/tokens/generate", {"text": "no text_input"}, 400, "text_input"),
        ("/v2/models/tokens/generate_stream", {"text_input": 3}, 400, "text_input"),
        ("/v2/models/tokens/generate", {"text_input": "a", "parameters": []}, 400, "parameters"),
        ("/v2/models/tokens/generate", {"text_input": "a explode"}, 500, "exploded mid-stream"),
    ]
    for path, body, status, fragment in cases:
        response = client.post(path, json=body)
        assert response.status_code == status, (path, response.text)
        assert fragment in response.json()["error"]
    assert client.get("/v2/health/live").json() == {"live": True}


def test_a_model_without_predict_stream_streams_its_one_predict_response(client: httpx.Client) -> None:
    events = stream_events(client, "/v2/models/echo/infer_stream", text_request("a", id="e-1"))
    assert len(events) == 1
    assert events[0]["id"] == "e-1"
    assert events[0]["outputs"][0] == {
        "name": "text",
        "shape": [1],
        "datatype": "BYTES",
        "data": ["a"],
    }
    generated = stream_events(client, "/v2/models/echo/generate_stream", {"text_input": "b"})
    assert [event["text_input"] for event in generated] == ["b"]
    once = client.post("/v2/models/echo/generate", json={"text_input": "c", "id": "e-2"})
    assert once.status_code == 200, once.text
    assert once.json()["text_input"] == "c"
    assert once.json()["id"] == "e-2"


# gRPC ModelStreamInfer


@pytest.fixture()
def triton_stream(server) -> Iterator[tuple[triton.InferenceServerClient, queue.Queue[Any]]]:
    results: queue.Queue[Any] = queue.Queue()
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    yield client, results
    client.close()


def send_text(client: triton.InferenceServerClient, model: str, text: str, request_id: str = "") -> None:
    request_input = triton.InferInput("text", [1], "BYTES")
    request_input.set_data_from_numpy(np.array([text.encode()], dtype=object))
    client.async_stream_infer(model, [request_input], request_id=request_id)


def drain(client: triton.InferenceServerClient, results: queue.Queue[Any]) -> list[Any]:
    """Every result, once the server has answered all requests: stop_stream
    closes the sending side and waits for the server to end the stream."""
    client.stop_stream()
    collected = []
    while not results.empty():
        collected.append(results.get())
    return collected


def word_of(result: Any) -> str:
    return result.as_numpy("text_output")[0].decode()


def test_grpc_stream_sends_one_response_per_word(triton_stream) -> None:
    client, results = triton_stream
    send_text(client, "tokens", "a b c", request_id="gs-1")
    send_text(client, "tokens", "d e", request_id="gs-2")
    collected = drain(client, results)
    assert [error for _, error in collected] == [None] * 5
    assert [word_of(result) for result, _ in collected] == ["a", " b", " c", "d", " e"]
    ids = [result.get_response().id for result, _ in collected]
    assert ids == ["gs-1"] * 3 + ["gs-2"] * 2


def test_grpc_stream_errors_are_in_band_and_the_stream_goes_on(triton_stream) -> None:
    client, results = triton_stream
    send_text(client, "ghost", "a")
    send_text(client, "tokens", "a explode c")
    send_text(client, "tokens", "b c")
    collected = drain(client, results)
    errors = [error for _, error in collected]
    assert isinstance(errors[0], InferenceServerException)
    assert "ghost" in errors[0].message()
    assert errors[1] is None and word_of(collected[1][0]) == "a"
    assert isinstance(errors[2], InferenceServerException)
    assert "exploded mid-stream" in errors[2].message()
    assert [word_of(result) for result, _ in collected[3:]] == ["b", " c"]
    assert len(collected) == 5


def test_grpc_server_keeps_serving_after_stream_errors(triton_stream, server) -> None:
    client, results = triton_stream
    send_text(client, "ghost", "a")
    send_text(client, "tokens", "explode")
    assert len(drain(client, results)) == 2
    other = triton.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    try:
        assert other.is_server_live()
        assert other.is_model_ready("tokens")
    finally:
        other.close()


def test_grpc_stream_of_a_model_without_predict_stream_answers_once_per_request(triton_stream) -> None:
    client, results = triton_stream
    send_text(client, "echo", "a", request_id="e-1")
    send_text(client, "echo", "b", request_id="e-2")
    collected = drain(client, results)
    assert [error for _, error in collected] == [None, None]
    assert [result.as_numpy("text")[0] for result, _ in collected] == [b"a", b"b"]
    assert [result.get_response().id for result, _ in collected] == ["e-1", "e-2"]


def test_grpc_stream_marks_each_request_s_last_response_when_asked(triton_stream) -> None:
    # Triton's decoupled-model convention, used by perf_analyzer and genai-perf:
    # with `enable_empty_final_response`, every response says whether it is the
    # last of its request, and an empty response with the flag true ends it.
    client, results = triton_stream
    for model, text, request_id in (
        ("tokens", "a b", "f-1"),
        ("echo", "c", "f-2"),
        ("tokens", "explode", "f-3"),
    ):
        request_input = triton.InferInput("text", [1], "BYTES")
        request_input.set_data_from_numpy(np.array([text.encode()], dtype=object))
        client.async_stream_infer(
            model, [request_input], request_id=request_id, enable_empty_final_response=True
        )
    send_text(client, "tokens", "d", request_id="f-4")  # without: no marker
    collected = drain(client, results)

    def final_flag(result: Any) -> bool | None:
        parameters = result.get_response().parameters
        return (
            parameters["triton_final_response"].bool_param if "triton_final_response" in parameters else None
        )

    answered = [
        (result.get_response().id, final_flag(result), len(result.get_response().outputs))
        for result, error in collected
        if error is None
    ]
    assert answered == [
        ("f-1", False, 1),
        ("f-1", False, 1),
        ("f-1", True, 0),
        ("f-2", False, 2),
        ("f-2", True, 0),
        ("f-4", None, 1),
    ]
    final = collected[2][0].get_response()
    assert final.model_name == "tokens" and not final.raw_output_contents
    errors = [error for _, error in collected if error is not None]
    assert len(errors) == 1 and "exploded mid-stream" in errors[0].message()
