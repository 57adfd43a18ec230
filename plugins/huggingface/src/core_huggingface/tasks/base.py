"""What a task is over V2: its input and output tensors, the request
parameters it accepts, and how one call of the pipeline answers them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict
from transformers import Pipeline

from core.errors import BadRequest
from core.types import MetadataTensor, Parameters

from ..settings import HuggingFaceSettings

# How a BYTES input's elements reach the pipeline.
Kind = Literal["text", "image", "json"]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of a task. `shape` is its metadata shape
    (-1: any size); the first dimension of an input is its rows, one pipeline
    input each. `aliases` are other names an input is accepted under."""

    name: str
    datatype: str
    shape: tuple[int, ...] = (-1,)
    required: bool = True
    kind: Kind = "text"
    aliases: tuple[str, ...] = ()
    content_type: str | None = None
    # False: the whole tensor is one value shared by every row (zero-shot's
    # candidate labels), not one value per row.
    per_row: bool = True

    def metadata(self) -> MetadataTensor:
        parameters = Parameters(content_type=self.content_type) if self.content_type else None
        return MetadataTensor(
            name=self.name, datatype=self.datatype, shape=list(self.shape), parameters=parameters
        )


class TaskParameters(BaseModel):
    """Request parameters a task accepts; any other is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")


# Of the texts of one call: the main input every text task has, under the
# names clients use for it (the pipeline's, Triton's generate, MLServer's).
TEXT_ALIASES = ("inputs", "text_input", "text_inputs", "text", "args", "input-0")


class Task:
    """A pipeline task over V2. A subclass declares its tensors and
    parameters and implements `run`, which runs in a thread."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[TensorSpec, ...]]
    outputs: ClassVar[tuple[TensorSpec, ...]]
    parameters: ClassVar[type[TaskParameters]] = TaskParameters
    # Whether requests with different parameter values may share one call.
    batch_by_parameter_values: ClassVar[bool] = False

    def __init__(self, pipeline: Pipeline, settings: HuggingFaceSettings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        """The outputs, by name, for `inputs` (by spec name, one value per
        row; absent optional inputs are missing). Numeric outputs as numpy
        arrays, BYTES as nested lists of strings, rows first."""
        raise NotImplementedError

    def check(self, inputs: dict[str, list[Any]], parameters: Any) -> None:
        """Checks that need the tokenizer (lengths): run before `run`, on the
        request's own thread hop. A BadRequest names the problem."""

    @property
    def tokenizer(self) -> Any:
        return self.pipeline.tokenizer


def decode_element(spec: TensorSpec, element: Any) -> Any:
    """One BYTES element as its pipeline value: text, image bytes (base64 in
    JSON requests, raw in binary ones), or a JSON document."""
    if spec.kind == "image":
        if isinstance(element, str):
            element = element.encode()
        return _image_bytes(spec.name, element)
    text = element.decode("utf-8") if isinstance(element, bytes) else str(element)
    if spec.kind == "json":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise BadRequest(f"input '{spec.name}': each element must be a JSON document: {error}") from None
    return text


_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


def _image_bytes(name: str, data: bytes) -> bytes:
    """Encoded image bytes: as sent, or base64-decoded when they are not an image yet."""
    if data.startswith(_IMAGE_MAGIC):
        return data
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(
            f"input '{name}': elements must be encoded images (PNG, JPEG, ...), as bytes or base64"
        ) from None
    return decoded


def labels_and_scores(results: list[list[dict[str, Any]]], label: str = "label") -> tuple[list[Any], Any]:
    """Rows of `[{label, score}, ...]` (equal lengths) as a BYTES [n, k] list and an FP32 [n, k] array."""
    labels = [[str(item[label]) for item in row] for row in results]
    scores = np.array([[float(item["score"]) for item in row] for row in results], dtype=np.float32)
    return labels, scores.reshape(len(results), -1)


def padded(rows: list[list[Any]], fill: Any) -> Iterator[list[Any]]:
    """Ragged rows padded with `fill` to the longest one's length."""
    width = max((len(row) for row in rows), default=0)
    for row in rows:
        yield [*row, *([fill] * (width - len(row)))]
