"""A model's configuration in Triton's form (the model configuration
extension), built from its settings and the metadata it reports."""

from __future__ import annotations

from typing import Any

from .settings import ModelSettings
from .types import Datatype, MetadataModelResponse, MetadataTensor

# Triton's DataType enum names: TYPE_ plus the OIP name, except BYTES.
_TRITON_TYPES = {datatype: f"TYPE_{datatype.value}" for datatype in Datatype} | {
    Datatype.BYTES: "TYPE_STRING"
}


def triton_model_config(settings: ModelSettings, metadata: MetadataModelResponse) -> dict[str, Any]:
    """The JSON form of Triton's ModelConfig message, with the fields core knows."""
    batched = settings.max_batch_size > 0
    return {
        "name": metadata.name,
        "platform": metadata.platform,
        "backend": settings.implementation,
        "max_batch_size": settings.max_batch_size,
        "input": [_tensor(tensor, batched) for tensor in metadata.inputs],
        "output": [_tensor(tensor, batched) for tensor in metadata.outputs],
    }


def _tensor(tensor: MetadataTensor, batched: bool) -> dict[str, Any]:
    # With batching, Triton's dims leave out the batch dimension.
    dims = tensor.shape[1:] if batched else tensor.shape
    return {"name": tensor.name, "data_type": _TRITON_TYPES[tensor.datatype], "dims": list(dims)}
