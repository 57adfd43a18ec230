"""Entry point of the `core-huggingface` plugin. Imported by every core
process: nothing here imports torch or transformers."""

from __future__ import annotations

from typing import Any

from core.plugins import Runtime, hookimpl

from .artifacts import looks_like_checkpoint
from .codec import HuggingFaceCodec, HuggingFaceRequestCodec


@hookimpl
def core_runtimes() -> list[Runtime]:
    return [
        Runtime(
            alias="huggingface",
            implementation="core_huggingface.HuggingFaceModel",
            description="Hugging Face transformers pipelines (a folder with config.json and weights)",
            artifacts=("config.json",),
            recognise=looks_like_checkpoint,
            claims_folder=True,
        )
    ]


@hookimpl
def core_codecs() -> list[Any]:
    return [HuggingFaceCodec, HuggingFaceRequestCodec]


@hookimpl
def core_rest_routers(dataplane: Any, settings: Any) -> list[Any]:
    from .openai.routes import openai_router

    return [openai_router(dataplane)]
