"""A transformers `pipeline` from a model's settings: where it comes from,
which task it runs, on which device and in which dtype. Runs in a thread:
everything here blocks."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, Pipeline, pipeline
from transformers.models.auto import modeling_auto
from transformers.pipelines import get_supported_tasks

from core.errors import ModelLoadError
from core.settings import ModelSettings

from .settings import HuggingFaceSettings

logger = logging.getLogger(__name__)

# Tasks transformers 5 removed; named in the error a model asking for one gets.
REMOVED_IN_TRANSFORMERS_5 = ("question-answering", "summarization", "translation", "text2text-generation")

# Which task a checkpoint's architecture serves, most specific first: the
# auto classes' tables of architectures (`MODEL_FOR_..._MAPPING_NAMES`).
_TASK_TABLES = (
    ("text-generation", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("text2text-generation", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("fill-mask", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("token-classification", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"),
    ("question-answering", "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"),
    ("text-classification", "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"),
    ("image-classification", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES"),
    ("feature-extraction", "MODEL_MAPPING_NAMES"),
)
# The same by class-name ending, for architectures outside those tables (remote code).
_TASK_SUFFIXES = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForMaskedLM", "fill-mask"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForSequenceClassification", "text-classification"),
    ("ForImageClassification", "image-classification"),
    ("Model", "feature-extraction"),
)
# Labels of a natural-language-inference classifier: served as zero-shot-classification.
_NLI_LABELS = {"entailment", "contradiction"}


def model_source(settings: ModelSettings, hf: HuggingFaceSettings) -> str:
    """What to load: `pretrained_model` (a hub id or folder), else the folder
    `parameters.uri` names (or holds: a config.json given as the artifact),
    else the folder of model-settings.json."""
    if hf.pretrained_model:
        return hf.pretrained_model
    uri = settings.parameters.uri
    path = settings.folder if uri is None else Path(uri).expanduser()
    if not path.is_absolute():
        path = settings.folder / path
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise ModelLoadError(f"model '{settings.name}': {path} is not a folder holding a Hugging Face model")
    return str(path)


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def read_config(name: str, source: str, hf: HuggingFaceSettings) -> Any:
    """The checkpoint's config (config.json only: the weights load once, in `pipeline`)."""
    try:
        return AutoConfig.from_pretrained(
            source, revision=hf.revision, trust_remote_code=hf.trust_remote_code
        )
    except (OSError, ValueError) as error:
        raise ModelLoadError(_not_loadable(name, source, error)) from None


def _not_loadable(name: str, source: str, error: BaseException) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if is_local(source):
        return f"model '{name}': cannot load the Hugging Face model in {source}: {reason}"
    return (
        f"model '{name}': cannot load '{source}': it is not a local folder, and the Hugging Face hub "
        f"could not provide it (offline, or no such model or revision): {reason}"
    )


def infer_task(config: Any) -> str | None:
    """The task a checkpoint's `architectures` serve, or None."""
    for architecture in getattr(config, "architectures", None) or ():
        for task, table in _TASK_TABLES:
            names = getattr(modeling_auto, table, {})
            if any(architecture == value or architecture in _as_tuple(value) for value in names.values()):
                return _refine(task, config)
        for suffix, task in _TASK_SUFFIXES:
            if architecture.endswith(suffix):
                return _refine(task, config)
    return None


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _refine(task: str, config: Any) -> str:
    labels = {str(label).lower() for label in (getattr(config, "id2label", None) or {}).values()}
    if task == "text-classification" and labels >= _NLI_LABELS:
        return "zero-shot-classification"
    return task


def check_task(name: str, task: str, served: tuple[str, ...]) -> str:
    """`task` (aliases resolved), or a ModelLoadError listing what can be served."""
    supported = set(get_supported_tasks())
    task = {"sentiment-analysis": "text-classification", "ner": "token-classification"}.get(task, task)
    available = ", ".join(sorted(t for t in served if t in supported))
    if task not in supported:
        removed = (
            f" (removed in transformers 5; this is transformers {transformers.__version__})"
            if task in REMOVED_IN_TRANSFORMERS_5
            else ""
        )
        raise ModelLoadError(
            f"model '{name}': task '{task}' is not available{removed}; tasks this runtime serves with "
            f"the installed transformers: {available}"
        )
    if task not in served:
        raise ModelLoadError(
            f"model '{name}': task '{task}' has no V2 mapping in this runtime; tasks it serves with "
            f"the installed transformers: {available}"
        )
    return task


def set_threads(hf: HuggingFaceSettings) -> None:
    if hf.intra_op_threads is not None:
        torch.set_num_threads(hf.intra_op_threads)
    if hf.inter_op_threads is not None:
        try:
            torch.set_num_interop_threads(hf.inter_op_threads)
        except RuntimeError:  # torch allows it once, before any parallel work
            logger.warning("inter_op_threads: torch's inter-op pool is already running; setting ignored")


def build_pipeline(name: str, task: str, source: str, hf: HuggingFaceSettings, config: Any) -> Pipeline:
    """The pipeline, loaded once (weights, tokenizer or processor) with the
    config `read_config` read."""
    kwargs: dict[str, Any] = {
        "task": task,
        "model": source,
        "config": config,
        "tokenizer": hf.pretrained_tokenizer,
        "revision": hf.revision,
        "trust_remote_code": hf.trust_remote_code,
        "model_kwargs": dict(hf.model_kwargs),
        **hf.pipeline_kwargs,
    }
    if hf.device == "auto":
        kwargs["device_map"] = "auto"
    else:
        kwargs["device"] = hf.device
    # transformers 4.56 renamed torch_dtype to dtype.
    dtype_name = "dtype" if "dtype" in inspect.signature(pipeline).parameters else "torch_dtype"
    kwargs[dtype_name] = hf.dtype if hf.dtype == "auto" else _dtype(name, hf.dtype)
    try:
        loaded = pipeline(**kwargs)
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        raise ModelLoadError(_not_loadable(name, source, error)) from None
    prepare_padding(loaded)
    return loaded


def _dtype(name: str, value: str) -> torch.dtype:
    dtype = getattr(torch, value, None)
    if not isinstance(dtype, torch.dtype):
        raise ModelLoadError(f"model '{name}': dtype '{value}' is not a torch dtype (float32, bfloat16, ...)")
    return dtype


def prepare_padding(loaded: Pipeline) -> None:
    """Give a tokenizer without a pad token one, so requests batch: its EOS
    token, else its UNK token (`is None` checks: id 0 is a token like any
    other). Decoder-only models pad on the left, so that generation
    continues right after each prompt."""
    tokenizer = loaded.tokenizer
    if tokenizer is None:
        return
    if tokenizer.pad_token_id is None:
        for token in (tokenizer.eos_token, tokenizer.unk_token):
            if token is not None:
                tokenizer.pad_token = token
                break
    model = loaded.model
    if not getattr(model.config, "is_encoder_decoder", False) and loaded.task == "text-generation":
        tokenizer.padding_side = "left"
    generation = getattr(model, "generation_config", None)
    if generation is not None and generation.pad_token_id is None and tokenizer.pad_token_id is not None:
        generation.pad_token_id = tokenizer.pad_token_id
