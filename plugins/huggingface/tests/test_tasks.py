"""Every task over V2, REST and gRPC, against the pipeline's own answer for
the same tiny model, called here in the test process."""

from __future__ import annotations

import base64
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from PIL import Image
from transformers import pipeline

from core.testing import ServerProcess
from core_huggingface.testing import tiny_png

from .conftest import TASKS


@cache
def reference(task: str, folder: Path) -> Any:
    """The pipeline as a user would build it, outside the server."""
    return pipeline(task, model=str(folder))


def texts(name: str, values: list[str]) -> dict[str, Any]:
    return {"name": name, "shape": [len(values)], "datatype": "BYTES", "data": values}


def infer(client: httpx.Client, model: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post(f"/v2/models/{model}/infer", json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def outputs_of(answer: dict[str, Any]) -> dict[str, np.ndarray]:
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer["outputs"]}


SENTENCES = ["the cat sat on the mat", "a dog ran in the park"]


def test_metadata_names_each_task_s_typed_tensors(client: httpx.Client) -> None:
    expected = {
        "text-classification": (["inputs", "text_pair"], ["label", "score"]),
        "token-classification": (["inputs"], ["label", "score", "word", "start", "end", "count"]),
        "fill-mask": (["inputs"], ["token_str", "score", "token", "sequence"]),
        "feature-extraction": (["inputs"], ["embedding", "prompt_tokens"]),
        "zero-shot-classification": (["sequences", "candidate_labels"], ["label", "score"]),
        "text-generation": (
            ["text_inputs", "messages"],
            ["text_output", "finish_reason", "prompt_tokens", "completion_tokens"],
        ),
        "image-classification": (["inputs"], ["label", "score"]),
    }
    for task in TASKS:
        if task not in expected:
            continue
        metadata = client.get(f"/v2/models/{task}").json()
        assert metadata["parameters"]["task"] == task
        assert (
            [t["name"] for t in metadata["inputs"]],
            [t["name"] for t in metadata["outputs"]],
        ) == expected[task]
        datatypes = {t["name"]: t["datatype"] for t in metadata["outputs"]}
        assert {datatypes.get("label"), datatypes.get("score")} <= {"BYTES", "FP32", None}
    embedding = client.get("/v2/models/feature-extraction").json()["outputs"][0]
    assert (embedding["datatype"], embedding["shape"]) == ("FP32", [-1, 32])


def test_text_classification(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    folder = tiny_models["text-classification"]
    outputs = outputs_of(infer(client, "text-classification", {"inputs": [texts("inputs", SENTENCES)]}))
    expected = reference("text-classification", folder)(SENTENCES)
    assert outputs["label"].tolist() == [item["label"] for item in expected]
    np.testing.assert_allclose(outputs["score"], [item["score"] for item in expected], rtol=1e-5)
    # top_k: every label, best first, [n, k]; Triton's generate name for the input works too.
    body = {"inputs": [texts("text_input", SENTENCES)], "parameters": {"top_k": 2}}
    ranked = outputs_of(infer(client, "text-classification", body))
    assert ranked["label"].shape == ranked["score"].shape == (2, 2)
    expected_ranked = reference("text-classification", folder)(SENTENCES, top_k=2)
    assert ranked["label"].tolist() == [[item["label"] for item in row] for row in expected_ranked]


def test_token_classification(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    outputs = outputs_of(infer(client, "token-classification", {"inputs": [texts("inputs", SENTENCES)]}))
    expected = reference("token-classification", tiny_models["token-classification"])(SENTENCES)
    for row, entities in enumerate(expected):
        count = int(outputs["count"][row])
        assert count == len(entities)
        assert outputs["label"][row][:count].tolist() == [e["entity"] for e in entities]
        assert outputs["word"][row][:count].tolist() == [e["word"] for e in entities]
        assert outputs["start"][row][:count].tolist() == [e["start"] for e in entities]
        np.testing.assert_allclose(outputs["score"][row][:count], [e["score"] for e in entities], rtol=1e-5)
        assert set(outputs["label"][row][count:].tolist()) <= {""}  # padding


def test_fill_mask(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    masked = ["the cat [MASK] on the mat"]
    outputs = outputs_of(infer(client, "fill-mask", {"inputs": [texts("inputs", masked)]}))
    expected = reference("fill-mask", tiny_models["fill-mask"])(masked[0])
    assert outputs["token_str"].tolist() == [[e["token_str"] for e in expected]]
    assert outputs["token"].tolist() == [[e["token"] for e in expected]]
    assert outputs["sequence"].tolist() == [[e["sequence"] for e in expected]]
    np.testing.assert_allclose(outputs["score"], [[e["score"] for e in expected]], rtol=1e-5)


def test_feature_extraction_gives_one_pooled_vector_per_text(
    client: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    batch = ["the cat sat on the mat", "dog"]  # different lengths: padding must not change a vector
    outputs = outputs_of(infer(client, "feature-extraction", {"inputs": [texts("inputs", batch)]}))
    assert outputs["embedding"].shape == (2, 32)
    extractor = reference("feature-extraction", tiny_models["feature-extraction"])
    for row, text in enumerate(batch):
        tokens = np.array(extractor(text)[0])  # [tokens, 32]
        np.testing.assert_allclose(outputs["embedding"][row], tokens.mean(axis=0), rtol=1e-4, atol=1e-5)
        assert outputs["prompt_tokens"][row] == len(tokens)
    normalized = infer(
        client, "feature-extraction", {"inputs": [texts("inputs", batch)], "parameters": {"normalize": True}}
    )
    np.testing.assert_allclose(np.linalg.norm(outputs_of(normalized)["embedding"], axis=1), [1, 1], rtol=1e-5)


def test_zero_shot_classification(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    labels = ["animals", "cars", "weather"]
    body = {"inputs": [texts("sequences", SENTENCES), texts("candidate_labels", labels)]}
    outputs = outputs_of(infer(client, "zero-shot-classification", body))
    expected = reference("zero-shot-classification", tiny_models["zero-shot-classification"])(
        SENTENCES, candidate_labels=labels
    )
    assert outputs["label"].tolist() == [row["labels"] for row in expected]
    np.testing.assert_allclose(outputs["score"], [row["scores"] for row in expected], rtol=1e-4)


def test_text_generation_of_several_prompts_matches_the_pipeline_one_by_one(
    client: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    # Prompts of different lengths share one call with left padding (pad id 0 here).
    prompts = ["the cat", "a dog ran in the", "hello"]
    body = {
        "inputs": [texts("text_inputs", prompts)],
        "parameters": {"max_new_tokens": 6, "do_sample": False},
    }
    outputs = outputs_of(infer(client, "text-generation", body))
    generator = reference("text-generation", tiny_models["text-generation"])
    for row, prompt in enumerate(prompts):
        expected = generator(prompt, max_new_tokens=6, do_sample=False, return_full_text=False)
        assert outputs["text_output"][row] == expected[0]["generated_text"]
        assert outputs["prompt_tokens"][row] == len(generator.tokenizer(prompt)["input_ids"])
    assert outputs["finish_reason"].tolist() == ["length"] * 3
    assert outputs["completion_tokens"].tolist() == [6, 6, 6]


def test_chat_messages_go_through_the_chat_template(
    client: httpx.Client, tiny_models: dict[str, Path]
) -> None:
    chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat"}]
    body = {
        "inputs": [{**texts("messages", [json.dumps(chat)]), "parameters": {"content_type": "hf"}}],
        "parameters": {"max_new_tokens": 5, "temperature": 0},
    }
    outputs = outputs_of(infer(client, "text-generation", body))
    generator = reference("text-generation", tiny_models["text-generation"])
    expected = generator(chat, max_new_tokens=5, do_sample=False, return_full_text=False)
    assert outputs["text_output"].tolist() == [expected[0]["generated_text"]]
    prompt = generator.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert outputs["prompt_tokens"].tolist() == [len(generator.tokenizer(prompt)["input_ids"])]


def test_stop_strings_end_the_text_before_them(client: httpx.Client) -> None:
    body = {
        "inputs": [texts("text_inputs", ["the cat"])],
        "parameters": {"max_new_tokens": 12, "temperature": 0},
    }
    full = outputs_of(infer(client, "text-generation", body))["text_output"][0]
    stop = full[3:5]
    assert stop
    body["parameters"]["stop"] = [stop]
    cut = outputs_of(infer(client, "text-generation", body))
    assert cut["text_output"][0] == full[: full.index(stop)]
    assert cut["finish_reason"][0] == "stop"


def _png(color: tuple[int, int, int]) -> bytes:
    return tiny_png(color)


def test_image_classification_from_base64_in_json(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    images = [_png((255, 0, 0)), _png((0, 0, 255))]
    encoded = [base64.b64encode(image).decode() for image in images]
    outputs = outputs_of(infer(client, "image-classification", {"inputs": [texts("inputs", encoded)]}))
    classifier = reference("image-classification", tiny_models["image-classification"])
    for row, image in enumerate(images):
        expected = classifier(Image.open(io.BytesIO(image)))
        assert outputs["label"][row].tolist() == [e["label"] for e in expected]
        np.testing.assert_allclose(outputs["score"][row], [e["score"] for e in expected], rtol=1e-4)


def test_image_classification_from_binary_bytes_with_tritonclient(
    server: ServerProcess, tiny_models: dict[str, Path]
) -> None:
    image = _png((0, 255, 0))
    expected = reference("image-classification", tiny_models["image-classification"])(
        Image.open(io.BytesIO(image))
    )
    http = triton_http.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    tensor = triton_http.InferInput("inputs", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([image], dtype=object), binary_data=True)
    labels = http.infer("image-classification", [tensor]).as_numpy("label")
    assert [label.decode() for label in labels[0]] == [e["label"] for e in expected]
    grpc = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    tensor = triton_grpc.InferInput("inputs", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([image], dtype=object))
    labels = grpc.infer("image-classification", [tensor]).as_numpy("label")
    assert [label.decode() for label in labels[0]] == [e["label"] for e in expected]
    grpc.close()


def test_grpc_text_classification_with_tritonclient(
    server: ServerProcess, tiny_models: dict[str, Path]
) -> None:
    grpc = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    tensor = triton_grpc.InferInput("inputs", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([s.encode() for s in SENTENCES], dtype=object))
    result = grpc.infer("text-classification", [tensor])
    expected = reference("text-classification", tiny_models["text-classification"])(SENTENCES)
    assert [label.decode() for label in result.as_numpy("label")] == [e["label"] for e in expected]
    assert result.as_numpy("score").dtype == np.float32
    assert grpc.get_model_metadata("text-generation").outputs[0].name == "text_output"
    grpc.close()


# Bad input: a clear 400 naming the problem, and the server goes on.


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (
            "text-classification",
            {"inputs": [{"name": "inputs", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
            "input 'inputs' must be BYTES, got FP32",
        ),
        ("text-classification", {"inputs": [texts("question", ["hi"])]}, "has no input 'question'"),
        (
            "zero-shot-classification",
            {"inputs": [texts("sequences", ["hi"])]},
            "needs input 'candidate_labels'",
        ),
        (
            "text-generation",
            {"inputs": [texts("text_inputs", ["hi"])], "parameters": {"beam_me_up": 1}},
            "unknown parameter 'beam_me_up' (accepted: max_new_tokens",
        ),
        (
            "text-generation",
            {"inputs": [texts("text_inputs", ["hi"])], "parameters": {"temperature": -1}},
            "parameter 'temperature': Input should be greater than or equal to 0",
        ),
        (
            "text-generation",
            {"inputs": [texts("text_inputs", ["word " * 80])], "parameters": {"max_new_tokens": 4}},
            "more than the model's context of 64 tokens",
        ),
        (
            "text-generation",
            {"inputs": [texts("text_inputs", ["the cat"])], "parameters": {"max_new_tokens": 100}},
            "plus max_new_tokens 100: more than the model's context of 64 tokens",
        ),
        (
            "text-generation",
            {"inputs": [{**texts("messages", ['[{"role": 1}]'])}]},
            "input 'messages' element 0: must be a non-empty JSON list",
        ),
        ("fill-mask", {"inputs": [texts("inputs", ["no mask here"])]}, "needs exactly one mask token [MASK]"),
        ("image-classification", {"inputs": [texts("inputs", ["bm90IGFuIGltYWdl"])]}, "not a readable image"),
        ("image-classification", {"inputs": [texts("inputs", ["%%%"])]}, "must be encoded images"),
        (
            "text-classification",
            {"inputs": [texts("inputs", ["hi"])], "outputs": [{"name": "logits"}]},
            "has no output 'logits'; outputs: label, score",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(
    any_server: ServerProcess, model: str, body: dict[str, Any], message: str
) -> None:
    with httpx.Client(base_url=any_server.url, timeout=60) as http:
        response = http.post(f"/v2/models/{model}/infer", json=body)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]
        assert http.post(f"/v2/models/{model}/ready").status_code in (200, 405)
        good = http.post("/v2/models/text-classification/infer", json={"inputs": [texts("inputs", ["ok"])]})
        assert good.status_code == 200
    assert any_server.alive()


def test_bad_input_over_grpc_is_invalid_argument(server: ServerProcess) -> None:
    grpc = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
    tensor = triton_grpc.InferInput("inputs", [1], "FP32")
    tensor.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    with pytest.raises(Exception, match="must be BYTES") as raised:
        grpc.infer("text-classification", [tensor])
    assert "INVALID_ARGUMENT" in str(raised.value.status())  # type: ignore[attr-defined]
    grpc.close()


# Tasks transformers 5 removed: served where the installed transformers has them.

needs_transformers_4 = pytest.mark.skipif(
    "question-answering" not in TASKS,
    reason="transformers 5 has no question-answering nor text2text-generation",
)


@needs_transformers_4
def test_question_answering(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    questions, contexts = ["who sat?", "where did the dog run?"], SENTENCES
    body = {"inputs": [texts("question", questions), texts("context", contexts)]}
    outputs = outputs_of(infer(client, "question-answering", body))
    answerer = reference("question-answering", tiny_models["question-answering"])
    for row, (question, context) in enumerate(zip(questions, contexts, strict=True)):
        expected = answerer(question=question, context=context)
        assert outputs["answer"][row] == expected["answer"]
        assert (outputs["start"][row], outputs["end"][row]) == (expected["start"], expected["end"])
        assert outputs["score"][row] == pytest.approx(expected["score"], rel=1e-4)


@needs_transformers_4
def test_text2text_generation(client: httpx.Client, tiny_models: dict[str, Path]) -> None:
    prompts = ["translate: the house is blue", "the cat"]
    body = {"inputs": [texts("inputs", prompts)], "parameters": {"max_new_tokens": 5, "temperature": 0}}
    outputs = outputs_of(infer(client, "text2text-generation", body))
    generator = reference("text2text-generation", tiny_models["text2text-generation"])
    for row, prompt in enumerate(prompts):
        expected = generator(prompt, max_new_tokens=5, do_sample=False)
        assert outputs["text_output"][row] == expected[0]["generated_text"]
    assert outputs["completion_tokens"].tolist() == [5, 5]
