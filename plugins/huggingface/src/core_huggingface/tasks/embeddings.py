"""feature-extraction as embeddings: one FP32 vector per text, pooled from
the model's last hidden states with the attention mask, so padding in a
batch changes no text's vector."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from .base import TEXT_ALIASES, Task, TaskParameters, TensorSpec


class EmbeddingParameters(TaskParameters):
    # None: the model's settings (parameters.extra.pooling / normalize).
    pooling: Literal["mean", "cls"] | None = None
    normalize: bool | None = None
    truncation: bool = True


class FeatureExtraction(Task):
    name = "feature-extraction"
    inputs = (TensorSpec("inputs", "BYTES", aliases=TEXT_ALIASES[1:]),)
    outputs = (TensorSpec("embedding", "FP32", (-1, -1)), TensorSpec("prompt_tokens", "INT64"))
    parameters = EmbeddingParameters

    @property
    def dimension(self) -> int:
        return int(getattr(self.pipeline.model.config, "hidden_size", -1))

    def run(self, inputs: dict[str, list[Any]], parameters: Any) -> dict[str, Any]:
        texts = inputs["inputs"]
        encoded = self.tokenizer(texts, padding=True, truncation=parameters.truncation, return_tensors="pt")
        encoded = encoded.to(self.pipeline.model.device)
        with torch.inference_mode():
            hidden = self.pipeline.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"]
        if (parameters.pooling or self.settings.pooling) == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        normalize = parameters.normalize if parameters.normalize is not None else self.settings.normalize
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return {
            "embedding": pooled.float().cpu().numpy(),
            "prompt_tokens": mask.sum(dim=1).cpu().numpy().astype(np.int64),
        }
