"""Open Inference Protocol types."""

from .dataplane import (
    TRANSPORT_PARAMETERS,
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    model_parameters,
)
from .datatypes import NUMPY_DTYPES, Datatype, to_datatype, to_dtype
from .repository import (
    RepositoryIndexRequest,
    RepositoryIndexResponse,
    RepositoryIndexResponseItem,
    State,
)
from .tensors import to_ndarray

__all__ = [
    "NUMPY_DTYPES",
    "TRANSPORT_PARAMETERS",
    "Datatype",
    "InferenceErrorResponse",
    "InferenceRequest",
    "InferenceResponse",
    "MetadataModelResponse",
    "MetadataServerResponse",
    "MetadataTensor",
    "Parameters",
    "RepositoryIndexRequest",
    "RepositoryIndexResponse",
    "RepositoryIndexResponseItem",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "State",
    "model_parameters",
    "to_datatype",
    "to_dtype",
    "to_ndarray",
]
