"""An MLServer custom runtime (mlserver.MLModel) serving linear.py's
models. MLServer imports it by the "implementation" of the model-settings.json
files that independent_servers.py writes (with this folder on PYTHONPATH):
`mlserver_runtime.LinearRuntime` ("iris", "spare") and
`mlserver_runtime.StringRuntime` ("strings"). predict_stream answers each
request of the stream with one response, as predict does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
from linear import NUMERIC_INPUT, STRING_INPUT, linear, shout
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput

DATATYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}  # fmt: skip


def _as_array(tensor: RequestInput) -> np.ndarray:
    """The tensor as numpy, in its datatype and shape. (mlserver.codecs.NumpyCodec
    would do, but for BYTES it wants one buffer per tensor, not per element.)"""
    data = getattr(tensor.data, "root", tensor.data)
    if tensor.datatype == "BYTES":
        elements = [
            e if isinstance(e, bytes) else str(e).encode() for e in np.array(data, dtype=object).ravel()
        ]
        return np.array(elements, dtype=object).reshape(tensor.shape)
    if tensor.datatype not in DATATYPES:
        raise MLServerError(f"unsupported datatype {tensor.datatype}")
    return np.array(data, dtype=DATATYPES[tensor.datatype]).reshape(tensor.shape)


def _as_output(name: str, array: np.ndarray) -> ResponseOutput:
    """The array as a response output of its own shape. (NumpyCodec.encode_output
    turns a 1-D array into a [N, 1] column.)"""
    if array.dtype == object:
        return ResponseOutput(name=name, shape=list(array.shape), datatype="BYTES", data=list(array.ravel()))
    datatype = next(name for name, dtype in DATATYPES.items() if np.dtype(dtype) == array.dtype)
    return ResponseOutput(name=name, shape=list(array.shape), datatype=datatype, data=array.ravel().tolist())


class _Runtime(MLModel):
    input_name: str

    def compute(self, array: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    async def load(self) -> bool:
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1 or payload.inputs[0].name != self.input_name:
            raise MLServerError(f"model {self.name} takes one input, {self.input_name!r}")
        try:
            results = self.compute(_as_array(payload.inputs[0]))
        except ValueError as error:
            raise MLServerError(str(error)) from error
        names = [output.name for output in payload.outputs or []] or list(results)
        unknown = [name for name in names if name not in results]
        if unknown:
            raise MLServerError(f"model {self.name} has no output {unknown[0]!r}")
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[_as_output(name, results[name]) for name in names],
        )

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            yield await self.predict(payload)


class LinearRuntime(_Runtime):
    input_name = NUMERIC_INPUT

    def compute(self, array: np.ndarray) -> dict[str, np.ndarray]:
        return linear(array)


class StringRuntime(_Runtime):
    input_name = STRING_INPUT

    def compute(self, array: np.ndarray) -> dict[str, np.ndarray]:
        return shout(array)
