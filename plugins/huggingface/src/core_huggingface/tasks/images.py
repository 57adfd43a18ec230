"""image-classification: encoded images (PNG, JPEG, ...) in a BYTES
tensor, raw in binary requests or base64 in JSON ones."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import Field

from core.errors import BadRequest

from .base import Task, TaskParameters, TensorSpec, labels_and_scores


class ImageClassificationParameters(TaskParameters):
    top_k: int | None = Field(default=None, ge=1)


class ImageClassification(Task):
    """The k best labels of each image (the pipeline's default k: 5, or
    fewer labels): [n, k] each."""

    name = "image-classification"
    inputs = (TensorSpec("inputs", "BYTES", kind="image", aliases=("images", "image", "input-0")),)
    outputs = (TensorSpec("label", "BYTES", (-1, -1)), TensorSpec("score", "FP32", (-1, -1)))
    parameters = ImageClassificationParameters

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        images = [_open(index, data) for index, data in enumerate(inputs["inputs"])]
        results = self.pipeline(images, batch_size=len(images), **parameters.model_dump(exclude_none=True))
        if images and results and isinstance(results[0], dict):  # one image: its labels, unwrapped
            results = [results]
        labels, scores = labels_and_scores([list(row) for row in results])
        return {"label": labels, "score": scores}


def _open(index: int, data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise BadRequest(f"input 'inputs' element {index}: not a readable image: {error}") from None
