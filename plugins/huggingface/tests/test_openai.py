"""The OpenAI-compatible endpoints (/openai/v1), called with the official
`openai` client (sync and async) and httpx, on real `core start` servers:
one running the models in its own process, one in a worker process. The
answers are compared with what transformers' own pipelines give."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import transformers

from core.testing import ServerProcess
from core_huggingface.testing import build_feature_extractor, build_gpt2

PROMPT = "The cat sat on the"
# 46 tokens with the chat template: the answer fits in the 64-token context.
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, how are you today?"}]
TOKENS = 12
GREEDY: dict[str, Any] = {"max_tokens": TOKENS, "temperature": 0}
# The tiny GPT-2's context: prompt and answer together.
CONTEXT = 64
# Offline: nothing may reach for the hub.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
STOPPED = re.compile(r"generation stopped after \[(\d+)\] new tokens")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """gpt2 (a 64-token context), gpt2-long (1024 tokens: a generation long
    enough to be cut short for sure) and bert (embeddings), each a folder
    with its model-settings.json, all in one repository folder."""
    root = tmp_path_factory.mktemp("openai-models")
    builders: dict[str, Callable[[Path], Path]] = {
        "gpt2": build_gpt2,
        "gpt2-long": lambda folder: build_gpt2(folder, n_positions=1024),
        "bert": build_feature_extractor,
    }
    folders = {}
    for name, build in builders.items():
        folder = build(root / name)
        settings = {"name": name, "implementation": "huggingface", "parameters": {"uri": str(folder)}}
        (folder / "model-settings.json").write_text(json.dumps(settings))
        folders[name] = folder
    return folders


def _serve(checkpoints: dict[str, Path], workers: str) -> Iterator[ServerProcess]:
    repository = checkpoints["gpt2"].parent
    with ServerProcess(repository, "--parallel-workers", workers, env=OFFLINE, timeout=180) as server:
        yield server


@pytest.fixture(scope="module")
def openai_server(checkpoints: dict[str, Path]) -> Iterator[ServerProcess]:
    yield from _serve(checkpoints, "0")


@pytest.fixture(scope="module")
def openai_worker_server(checkpoints: dict[str, Path]) -> Iterator[ServerProcess]:
    yield from _serve(checkpoints, "1")


@pytest.fixture(params=["in-process", "worker"])
def either_server(request: pytest.FixtureRequest) -> ServerProcess:
    name = "openai_server" if request.param == "in-process" else "openai_worker_server"
    server: ServerProcess = request.getfixturevalue(name)
    return server


def client_of(server: ServerProcess) -> openai.OpenAI:
    # No retries: an error must show as it is.
    return openai.OpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0, timeout=60)


def async_client_of(server: ServerProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/openai/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def openai_client(openai_server: ServerProcess) -> Iterator[openai.OpenAI]:
    with client_of(openai_server) as opened:
        yield opened


@pytest.fixture(scope="module")
def generator(checkpoints: dict[str, Path]) -> Any:
    return transformers.pipeline("text-generation", model=str(checkpoints["gpt2"]))


def pipeline_text(generator: Any, prompt: Any, tokens: int = TOKENS) -> str:
    """What transformers' pipeline generates greedily for a prompt or a chat."""
    result = generator(prompt, max_new_tokens=tokens, do_sample=False, return_full_text=False)
    return str(result[0]["generated_text"])


def test_models_are_the_generation_and_embedding_models(openai_client: openai.OpenAI) -> None:
    models = openai_client.models.list()
    assert sorted(model.id for model in models.data) == ["bert", "gpt2", "gpt2-long"]
    assert all(model.object == "model" and model.owned_by and model.created > 0 for model in models.data)
    assert openai_client.models.retrieve("gpt2").id == "gpt2"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("nobody")


def test_greedy_completion_is_the_pipeline_s(
    openai_client: openai.OpenAI, generator: Any, checkpoints: dict[str, Path]
) -> None:
    completion = openai_client.completions.create(model="gpt2", prompt=PROMPT, **GREEDY)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == "gpt2"
    (choice,) = completion.choices
    assert choice.index == 0 and choice.logprobs is None
    assert choice.text == pipeline_text(generator, PROMPT)
    assert choice.finish_reason == "length"
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoints["gpt2"])
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == len(tokenizer(PROMPT)["input_ids"])
    assert usage.completion_tokens == TOKENS
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_list_of_prompts_has_one_choice_each(
    openai_client: openai.OpenAI, checkpoints: dict[str, Path]
) -> None:
    prompts = ["The cat", "A dog runs in the park"]
    completion = openai_client.completions.create(model="gpt2", prompt=prompts, max_tokens=3, temperature=0)
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert all(choice.finish_reason in ("stop", "length") for choice in completion.choices)
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoints["gpt2"])
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == sum(len(tokenizer(p)["input_ids"]) for p in prompts)


def test_chat_completion_is_the_pipeline_s_on_the_same_messages(
    openai_client: openai.OpenAI, generator: Any
) -> None:
    chat = openai_client.chat.completions.create(model="gpt2", messages=CHAT, **GREEDY)
    assert chat.object == "chat.completion" and chat.id.startswith("chatcmpl-")
    (choice,) = chat.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == pipeline_text(generator, CHAT)
    assert choice.finish_reason == "length"
    assert chat.usage is not None and chat.usage.completion_tokens == TOKENS
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + TOKENS
    # Content as a list of text parts is the parts joined; "developer" is "system";
    # max_completion_tokens is max_tokens.
    parts = [{"type": "text", "text": "Hello,"}, {"type": "text", "text": "how are you today?"}]
    joined = openai_client.chat.completions.create(
        model="gpt2",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": parts}],
        max_completion_tokens=TOKENS,
        temperature=0,
    )
    expected = [CHAT[0], {"role": "user", "content": "Hello,\nhow are you today?"}]
    assert joined.choices[0].message.content == pipeline_text(generator, expected)


def test_streamed_completion_joins_to_the_whole_text(openai_client: openai.OpenAI) -> None:
    whole = openai_client.completions.create(model="gpt2", prompt=PROMPT, **GREEDY)
    chunks = list(
        openai_client.completions.create(
            model="gpt2", prompt=PROMPT, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    texts = [chunk.choices[0].text for chunk in chunks if chunk.choices]
    assert len(texts) > 2  # in pieces, as generated
    assert "".join(texts) == whole.choices[0].text
    reasons = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert reasons[-1] == "length" and set(reasons[:-1]) == {None}
    assert not chunks[-1].choices and chunks[-1].usage == whole.usage
    assert len({chunk.id for chunk in chunks}) == 1


def test_a_stream_is_server_sent_events_ending_with_done(openai_server: ServerProcess) -> None:
    body = {"model": "gpt2", "messages": CHAT, "stream": True, **GREEDY}
    with (
        httpx.Client(base_url=openai_server.url, timeout=60) as http,
        http.stream("POST", "/openai/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(event.startswith("data: {") and "\n" not in event for event in events[:-2])


def test_streamed_chat_joins_to_the_whole_text(either_server: ServerProcess) -> None:
    async def chat() -> tuple[str, list[Any]]:
        async with async_client_of(either_server) as client:
            whole = await client.chat.completions.create(model="gpt2", messages=CHAT, **GREEDY)
            stream = await client.chat.completions.create(
                model="gpt2",
                messages=CHAT,
                stream=True,
                stream_options={"include_usage": True},
                **GREEDY,
            )
            return str(whole.choices[0].message.content), [chunk async for chunk in stream]

    whole, chunks = asyncio.run(chat())
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    first, *middle, last_choice, usage = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert "".join(str(chunk.choices[0].delta.content) for chunk in middle) == whole
    assert all(chunk.choices[0].finish_reason is None for chunk in middle)
    assert last_choice.choices[0].finish_reason == "length" and last_choice.choices[0].delta.content is None
    assert usage.choices == [] and usage.usage.completion_tokens == TOKENS


def test_stop_cuts_the_text_before_the_stop_string(openai_client: openai.OpenAI, generator: Any) -> None:
    expected = pipeline_text(generator, PROMPT)
    stop = expected.strip()[-2:]  # a string the greedy answer holds
    cut = expected[: expected.index(stop)]
    completion = openai_client.completions.create(model="gpt2", prompt=PROMPT, stop=[stop], **GREEDY)
    assert completion.choices[0].text == cut
    assert completion.choices[0].finish_reason == "stop"
    streamed = list(
        openai_client.completions.create(model="gpt2", prompt=PROMPT, stop=stop, stream=True, **GREEDY)
    )
    assert "".join(chunk.choices[0].text for chunk in streamed) == cut
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_embeddings_are_the_pipeline_s_mean_over_tokens(
    openai_client: openai.OpenAI, checkpoints: dict[str, Path]
) -> None:
    texts = ["The cat sat on the mat.", "Hello, how are you today?"]
    extractor = transformers.pipeline("feature-extraction", model=str(checkpoints["bert"]))
    expected = np.array([np.mean(extractor(text)[0], axis=0) for text in texts], dtype=np.float32)
    # The client asks for base64 by default and decodes it.
    encoded = openai_client.embeddings.create(model="bert", input=texts)
    floats = openai_client.embeddings.create(model="bert", input=texts, encoding_format="float")
    assert [item.index for item in floats.data] == [0, 1]
    np.testing.assert_allclose([item.embedding for item in floats.data], expected, rtol=1e-4, atol=1e-6)
    # The same float32 numbers: JSON writes each as the shortest text that reads back as it.
    np.testing.assert_array_equal(
        np.array([item.embedding for item in encoded.data], dtype=np.float32),
        np.array([item.embedding for item in floats.data], dtype=np.float32),
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoints["bert"])
    tokens = sum(len(tokenizer(text)["input_ids"]) for text in texts)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == tokens
    one = openai_client.embeddings.create(
        model="bert", input=texts[0], encoding_format="float", dimensions=32
    )
    np.testing.assert_allclose(one.data[0].embedding, expected[0], rtol=1e-4, atol=1e-6)


def test_base64_embeddings_are_little_endian_float32(openai_server: ServerProcess) -> None:
    body = {"model": "bert", "input": "The cat", "encoding_format": "base64"}
    answer = httpx.post(openai_server.url + "/openai/v1/embeddings", json=body, timeout=60).json()
    floats = httpx.post(
        openai_server.url + "/openai/v1/embeddings", json={**body, "encoding_format": "float"}, timeout=60
    ).json()
    vector = np.frombuffer(base64.b64decode(answer["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(vector, np.array(floats["data"][0]["embedding"], dtype=np.float32))
    assert answer["object"] == "list" and answer["model"] == "bert"


ERRORS: dict[str, tuple[type[openai.APIStatusError], str, Callable[[openai.OpenAI], Any]]] = {
    "unknown model": (
        openai.NotFoundError,
        "model 'nobody' not found",
        lambda c: c.completions.create(model="nobody", prompt="hi"),
    ),
    "n=2": (openai.BadRequestError, "n=1", lambda c: c.completions.create(model="gpt2", prompt="hi", n=2)),
    "embeddings of gpt2": (
        openai.BadRequestError,
        "model 'gpt2' is a text-generation model",
        lambda c: c.embeddings.create(model="gpt2", input="hi"),
    ),
    "chat with bert": (
        openai.BadRequestError,
        "model 'bert' is a feature-extraction model",
        lambda c: c.chat.completions.create(model="bert", messages=CHAT),
    ),
    "prompt over the context": (
        openai.BadRequestError,
        f"context of {CONTEXT} tokens",
        lambda c: c.completions.create(model="gpt2", prompt="word " * CONTEXT, max_tokens=2),
    ),
    "temperature out of range": (
        openai.BadRequestError,
        "temperature",
        lambda c: c.completions.create(model="gpt2", prompt="hi", temperature=5),
    ),
    "token arrays": (
        openai.BadRequestError,
        "token arrays are not supported",
        lambda c: c.completions.create(model="gpt2", prompt=[1, 2, 3]),
    ),
    "echo": (
        openai.BadRequestError,
        "echo: True is not supported",
        lambda c: c.completions.create(model="gpt2", prompt="hi", echo=True),
    ),
    "tools": (
        openai.BadRequestError,
        "tools",
        lambda c: c.chat.completions.create(
            model="gpt2", messages=CHAT, tools=[{"type": "function", "function": {"name": "f"}}]
        ),
    ),
    "wrong dimensions": (
        openai.BadRequestError,
        "dimensions",
        lambda c: c.embeddings.create(model="bert", input="hi", dimensions=3),
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_openai_errors(openai_client: openai.OpenAI, case: str) -> None:
    kind, message, call = ERRORS[case]
    with pytest.raises(kind) as raised:
        call(openai_client)
    body = raised.value.body
    assert isinstance(body, dict) and message in body["message"], body
    assert body["type"] in ("invalid_request_error", "not_found_error")
    assert set(body) == {"message", "type", "param", "code"}
    # Still serving.
    assert openai_client.completions.create(model="gpt2", prompt="hi", max_tokens=2).choices


BAD_BODIES = {
    b"{not json": "malformed JSON",
    b"[1, 2]": "must be a JSON object",
    b'{"model": "gpt2"}': "prompt: Field required",
    b'{"model": "gpt2", "prompt": "x", "x": 1}': "Unrecognized request argument supplied: x",
}


@pytest.mark.parametrize("content", list(BAD_BODIES))
def test_bad_bodies_are_400_in_openai_shape(openai_server: ServerProcess, content: bytes) -> None:
    # Never FastAPI's 422 with its {"detail"}.
    answer = httpx.post(
        openai_server.url + "/openai/v1/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and BAD_BODIES[content] in error["message"], error


def test_an_error_after_the_stream_started_is_one_error_event(openai_server: ServerProcess) -> None:
    # Streamed prompts are generated one after the other: the second one's error comes mid-stream.
    body = {"model": "gpt2", "prompt": ["The cat", "word " * CONTEXT], "max_tokens": 2, "stream": True}
    with (
        httpx.Client(base_url=openai_server.url, timeout=60) as http,
        http.stream("POST", "/openai/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert f"context of {CONTEXT} tokens" in last["error"]["message"]
    assert [json.loads(e)["choices"][0]["index"] for e in events[:-1]] == [0] * (len(events) - 1)
    with client_of(openai_server) as client, pytest.raises(openai.APIError, match="context"):
        list(client.completions.create(model="gpt2", stream=True, prompt=body["prompt"], max_tokens=2))


def test_a_client_that_goes_away_stops_the_generation(either_server: ServerProcess) -> None:
    tokens = 1000
    before = len(STOPPED.findall(either_server.log()))
    # The tiny random model answers "a" with letters, streamed token by token (to other prompts it
    # can answer bytes that never complete a character: the streamer holds those back to the end).
    body = {"model": "gpt2-long", "prompt": "a", "max_tokens": tokens, "temperature": 0, "stream": True}
    with (
        httpx.Client(base_url=either_server.url, timeout=60) as http,
        http.stream("POST", "/openai/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_lines()).startswith("data: ")
    deadline = time.monotonic() + 30
    while len(STOPPED.findall(either_server.log())) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = STOPPED.findall(either_server.log())[before:]
    assert len(stopped) == 1, either_server.log()[-3000:]
    assert int(stopped[0]) < tokens
    with client_of(either_server) as client:  # still serving
        assert client.completions.create(model="gpt2", prompt="hi", max_tokens=2).choices
