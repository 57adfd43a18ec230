"""Text tasks whose answer is labels and scores: text-classification,
token-classification, fill-mask, zero-shot-classification and, where the
installed transformers has it, question-answering."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from core.errors import BadRequest

from .base import TEXT_ALIASES, Task, TaskParameters, TensorSpec, labels_and_scores, padded

BYTES, FP32, INT64 = "BYTES", "FP32", "INT64"


class ClassificationParameters(TaskParameters):
    # None: the best label only (outputs of shape [n]); k: the k best ([n, k]).
    top_k: int | None = Field(default=None, ge=1)
    function_to_apply: Literal["sigmoid", "softmax", "none"] | None = None
    # Texts longer than the model's context are cut to it.
    truncation: bool = True


class TextClassification(Task):
    name = "text-classification"
    inputs = (
        TensorSpec("inputs", BYTES, aliases=TEXT_ALIASES[1:]),
        TensorSpec("text_pair", BYTES, required=False),
    )
    outputs = (TensorSpec("label", BYTES, (-1, -1)), TensorSpec("score", FP32, (-1, -1)))
    parameters = ClassificationParameters

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        texts: list[Any] = inputs["inputs"]
        if "text_pair" in inputs:
            texts = [
                {"text": text, "text_pair": pair}
                for text, pair in zip(texts, inputs["text_pair"], strict=True)
            ]
        options: dict[str, Any] = {"truncation": parameters.truncation}
        if parameters.function_to_apply is not None:
            options["function_to_apply"] = parameters.function_to_apply
        options["top_k"] = parameters.top_k if parameters.top_k is not None else 1
        results = self.pipeline(texts, batch_size=len(texts), **options)
        rows = [row if isinstance(row, list) else [row] for row in results]
        labels, scores = labels_and_scores(rows)
        if parameters.top_k is None:  # one label per text: [n]
            return {"label": [row[0] for row in labels], "score": scores[:, 0]}
        return {"label": labels, "score": scores}


class TokenClassificationParameters(TaskParameters):
    # The pipeline's: "none" labels each token, the others group them into entities.
    aggregation_strategy: Literal["none", "simple", "first", "average", "max"] | None = None
    ignore_labels: list[str] | None = None


class TokenClassification(Task):
    """Each text's entities, padded to the most any text has: `count` says
    how many of a row's are real; padding is "" / 0 / -1."""

    name = "token-classification"
    inputs = (TensorSpec("inputs", BYTES, aliases=TEXT_ALIASES[1:]),)
    outputs = (
        TensorSpec("label", BYTES, (-1, -1)),
        TensorSpec("score", FP32, (-1, -1)),
        TensorSpec("word", BYTES, (-1, -1)),
        TensorSpec("start", INT64, (-1, -1)),
        TensorSpec("end", INT64, (-1, -1)),
        TensorSpec("count", INT64, (-1,)),
    )
    parameters = TokenClassificationParameters

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        texts = inputs["inputs"]
        options = parameters.model_dump(exclude_none=True)
        results = self.pipeline(texts, batch_size=len(texts), **options)
        if texts and results and isinstance(results[0], dict):  # one text: its entities, unwrapped
            results = [results]
        rows = [list(row) for row in results]

        def column(key: str, fill: Any, kind: Any) -> Any:
            values = [[kind(entity.get(key, fill)) for entity in row] for row in rows]
            return list(padded(values, fill))

        label_key = (
            "entity_group" if rows and any("entity_group" in e for row in rows for e in row) else "entity"
        )
        width = max((len(row) for row in rows), default=0)
        return {
            "label": column(label_key, "", str),
            "score": np.array(column("score", 0.0, float), dtype=np.float32).reshape(len(rows), width),
            "word": column("word", "", str),
            "start": np.array(column("start", -1, _index), dtype=np.int64).reshape(len(rows), width),
            "end": np.array(column("end", -1, _index), dtype=np.int64).reshape(len(rows), width),
            "count": np.array([len(row) for row in rows], dtype=np.int64),
        }


def _index(value: Any) -> int:
    return -1 if value is None else int(value)


class FillMaskParameters(TaskParameters):
    top_k: int | None = Field(default=None, ge=1)
    targets: list[str] | None = None


class FillMask(Task):
    """The k best fillings of each text's one mask token: [n, k] each."""

    name = "fill-mask"
    inputs = (TensorSpec("inputs", BYTES, aliases=TEXT_ALIASES[1:]),)
    outputs = (
        TensorSpec("token_str", BYTES, (-1, -1)),
        TensorSpec("score", FP32, (-1, -1)),
        TensorSpec("token", INT64, (-1, -1)),
        TensorSpec("sequence", BYTES, (-1, -1)),
    )
    parameters = FillMaskParameters

    def check(self, inputs: dict[str, list[Any]], parameters: Any) -> None:
        mask = self.tokenizer.mask_token
        for index, text in enumerate(inputs["inputs"]):
            count = text.count(mask)
            if count != 1:
                raise BadRequest(
                    f"input 'inputs' element {index}: needs exactly one mask token {mask}, found {count}"
                )

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        texts = inputs["inputs"]
        results = self.pipeline(texts, batch_size=len(texts), **parameters.model_dump(exclude_none=True))
        if texts and results and isinstance(results[0], dict):  # one text: its fillings, unwrapped
            results = [results]
        rows = [list(row) for row in results]
        width = len(rows[0]) if rows else 0
        return {
            "token_str": [[str(item["token_str"]) for item in row] for row in rows],
            "score": np.array([[item["score"] for item in row] for row in rows], np.float32).reshape(
                -1, width
            ),
            "token": np.array([[item["token"] for item in row] for row in rows], np.int64).reshape(-1, width),
            "sequence": [[str(item["sequence"]) for item in row] for row in rows],
        }


class ZeroShotParameters(TaskParameters):
    hypothesis_template: str | None = None
    multi_label: bool | None = None


class ZeroShotClassification(Task):
    """Each text's candidate labels, best first: [n, labels] each."""

    name = "zero-shot-classification"
    inputs = (
        TensorSpec("sequences", BYTES, aliases=TEXT_ALIASES),
        TensorSpec("candidate_labels", BYTES, per_row=False),
    )
    outputs = (TensorSpec("label", BYTES, (-1, -1)), TensorSpec("score", FP32, (-1, -1)))
    parameters = ZeroShotParameters

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        texts = inputs["sequences"]
        results = self.pipeline(
            texts,
            candidate_labels=inputs["candidate_labels"],
            batch_size=len(texts),
            **parameters.model_dump(exclude_none=True),
        )
        if isinstance(results, dict):
            results = [results]
        rows = [
            [{"label": label, "score": score} for label, score in zip(r["labels"], r["scores"], strict=True)]
            for r in results
        ]
        labels, scores = labels_and_scores(rows)
        return {"label": labels, "score": scores}


class QuestionAnsweringParameters(TaskParameters):
    max_answer_len: int | None = Field(default=None, ge=1)
    handle_impossible_answer: bool | None = None


class QuestionAnswering(Task):
    """The best answer to each question in its context (transformers 4 only)."""

    name = "question-answering"
    inputs = (TensorSpec("question", BYTES), TensorSpec("context", BYTES))
    outputs = (
        TensorSpec("answer", BYTES),
        TensorSpec("score", FP32),
        TensorSpec("start", INT64),
        TensorSpec("end", INT64),
    )
    parameters = QuestionAnsweringParameters

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        results = self.pipeline(
            question=inputs["question"],
            context=inputs["context"],
            batch_size=len(inputs["question"]),
            **parameters.model_dump(exclude_none=True),
        )
        if isinstance(results, dict):
            results = [results]
        return {
            "answer": [str(r["answer"]) for r in results],
            "score": np.array([r["score"] for r in results], dtype=np.float32),
            "start": np.array([r["start"] for r in results], dtype=np.int64),
            "end": np.array([r["end"] for r in results], dtype=np.int64),
        }
