"""Adaptive batching: concurrent requests run as one padded pipeline call,
give each caller what it would get alone, and generation merges only
requests with equal parameters."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from core.testing import ServerProcess

PROMPTS = ["the cat", "a dog ran in the", "hello", "the park", "one", "on the mat", "sat", "ran"]


def body(name: str, text: str, **parameters: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"inputs": [{"name": name, "shape": [1], "datatype": "BYTES", "data": [text]}]}
    if parameters:
        request["parameters"] = parameters
    return request


def at_once(server: ServerProcess, model: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, timeout=60) as http, ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: http.post(f"/v2/models/{model}/infer", json=b), bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses]
    return [r.json() for r in responses]


def statistics(server: ServerProcess, model: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{server.url}/v2/models/{model}/stats").json()["model_stats"][0]
    return stats


def outputs(answer: dict[str, Any]) -> dict[str, Any]:
    return {o["name"]: o["data"] for o in answer["outputs"]}


@pytest.mark.parametrize("mode", ["server", "worker_server"])
def test_concurrent_classifications_share_calls_and_match_unbatched(
    request: pytest.FixtureRequest, mode: str
) -> None:
    server: ServerProcess = request.getfixturevalue(mode)
    before = statistics(server, "classifier-batched")
    batched = at_once(server, "classifier-batched", [body("inputs", text) for text in PROMPTS])
    alone = at_once(server, "text-classification", [body("inputs", text) for text in PROMPTS])
    for together, single in zip(batched, alone, strict=True):
        assert outputs(together)["label"] == outputs(single)["label"]
        assert outputs(together)["score"] == pytest.approx(outputs(single)["score"], rel=1e-4)
    after = statistics(server, "classifier-batched")
    executions = after["execution_count"] - before["execution_count"]
    inferences = after["inference_count"] - before["inference_count"]
    assert inferences == len(PROMPTS)
    assert executions < inferences  # more than one row per pipeline call


def test_concurrent_generations_share_calls_with_padding(server: ServerProcess) -> None:
    greedy = {"max_new_tokens": 5, "temperature": 0}
    before = statistics(server, "gpt2-batched")
    batched = at_once(server, "gpt2-batched", [body("text_inputs", text, **greedy) for text in PROMPTS])
    alone = [at_once(server, "text-generation", [body("text_inputs", text, **greedy)])[0] for text in PROMPTS]
    assert [outputs(a)["text_output"] for a in batched] == [outputs(a)["text_output"] for a in alone]
    assert [outputs(a)["completion_tokens"] for a in batched] == [[5]] * len(PROMPTS)
    after = statistics(server, "gpt2-batched")
    assert after["execution_count"] - before["execution_count"] < len(PROMPTS)


def test_generations_with_different_parameters_never_share_a_call(server: ServerProcess) -> None:
    before = statistics(server, "gpt2-batched")
    lengths = [2, 4] * 4
    answers = at_once(
        server,
        "gpt2-batched",
        [body("text_inputs", "the cat", max_new_tokens=n, temperature=0) for n in lengths],
    )
    assert [outputs(a)["completion_tokens"] for a in answers] == [[n] for n in lengths]
    after = statistics(server, "gpt2-batched")
    executions = after["execution_count"] - before["execution_count"]
    assert 2 <= executions < len(lengths)


def test_a_bad_request_fails_alone_and_its_batch_mates_are_answered(server: ServerProcess) -> None:
    bodies = [body("text_inputs", text, max_new_tokens=3, temperature=0) for text in PROMPTS[:4]]
    bodies.insert(2, body("text_inputs", "word " * 80, max_new_tokens=3, temperature=0))
    with httpx.Client(base_url=server.url, timeout=60) as http, ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: http.post("/v2/models/gpt2-batched/infer", json=b), bodies))
    assert [r.status_code for r in responses] == [200, 200, 400, 200, 200]
    assert "context of 64 tokens" in responses[2].json()["error"]
