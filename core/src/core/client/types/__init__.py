"""Client-side tensors, requests and responses, named and built as KServe's
`kserve.protocol.infer_type` so that KServe users recognise them, on core's
own wire code (`core.types.raw`, `core.grpc.tensors`, `core.grpc.converters`).

The hot path (set_data_from_numpy, to_rest, to_grpc, from_bytes, from_rest,
from_grpc, as_numpy) stays off pydantic and copies no array it need not: an
array given to `set_data_from_numpy` is kept as it is, its raw form is one
`tobytes`, its JSON form a flat view that orjson writes directly, and a
binary output is decoded only when asked for, as a read-only view of the
response body. Only the codec helpers (encode, decode, as_dataframe,
from_/to_inference_*) go through `core.types`' pydantic models.

Bad data raises ValueError (TypeError for a wrong argument type) naming the
tensor; core's server-side errors from the reused helpers become ValueError.

Four modules: `tensors` (InferInput, InferOutput, RequestedOutput), `request`
(InferRequest), `response` (InferResponse) and `wire` (one tensor's data in
its raw, JSON and typed-contents forms, parameters, the tensor lists of REST
bodies and gRPC messages)."""

from __future__ import annotations

from .request import InferRequest
from .response import InferResponse
from .tensors import InferInput, InferOutput, RequestedOutput

__all__ = ["InferInput", "InferOutput", "InferRequest", "InferResponse", "RequestedOutput"]
