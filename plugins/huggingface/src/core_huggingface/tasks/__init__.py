"""The pipeline tasks this runtime serves over V2, by task name."""

from __future__ import annotations

from .base import Task, TaskParameters, TensorSpec
from .embeddings import FeatureExtraction
from .generation import Text2TextGeneration, TextGeneration
from .images import ImageClassification
from .text import (
    FillMask,
    QuestionAnswering,
    TextClassification,
    TokenClassification,
    ZeroShotClassification,
)

TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (
        TextClassification,
        TokenClassification,
        FillMask,
        FeatureExtraction,
        ZeroShotClassification,
        TextGeneration,
        ImageClassification,
        QuestionAnswering,
        Text2TextGeneration,
    )
}

__all__ = ["TASKS", "Task", "TaskParameters", "TensorSpec"]
