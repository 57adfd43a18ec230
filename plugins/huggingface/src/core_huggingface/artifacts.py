"""Recognising a Hugging Face checkpoint on disk without importing
transformers, so `core start ./my-model-dir` finds its runtime."""

from __future__ import annotations

import json
from pathlib import Path

# Weights next to config.json that make the folder a checkpoint.
WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json")


def looks_like_checkpoint(config_json: Path) -> bool:
    """Whether `config.json` is a Hugging Face checkpoint's: it names a
    model type or architectures, and weights lie next to it. Cheap: no
    transformers import (the `Runtime.recognise` contract)."""
    try:
        config = json.loads(config_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or not ("model_type" in config or "architectures" in config):
        return False
    folder = config_json.parent
    return any(any(folder.glob(pattern)) for pattern in WEIGHTS)
