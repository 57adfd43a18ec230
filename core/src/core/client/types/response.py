"""InferResponse: an inference response, read, decoded and written in
KServe's names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from ...codecs import InputCodec, find_request_codec
from ...grpc.generated import inference_pb2 as pb
from ...types import Datatype, InferenceResponse, ResponseOutput
from .tensors import Codec, InferOutput, RequestedOutput
from .wire import (
    _model_parameters,
    _parameters_dict,
    _parameters_from_proto,
    _parameters_to_proto,
    _raw_array,
    _set_raw,
    _split_body,
    _tensors_from_proto,
    _tensors_from_rest,
    _tensors_to_proto,
    _value_errors,
)


class InferResponse:
    """An inference response, from a model."""

    def __init__(
        self,
        response_id: str | None,
        model_name: str,
        infer_outputs: list[InferOutput],
        model_version: str | None = None,
        raw_outputs: Sequence[bytes | memoryview] | None = None,
        from_grpc: bool = False,
        parameters: dict[str, Any] | None = None,
        use_binary_outputs: bool = False,
        requested_outputs: list[RequestedOutput] | None = None,
    ) -> None:
        self.id = response_id
        self.model_name = model_name
        self.model_version = model_version
        self._outputs: list[InferOutput] | None = infer_outputs
        # A gRPC message whose outputs are read on first use (from_grpc).
        self._message: pb.ModelInferResponse | None = None
        self.parameters = parameters
        self.from_grpc = from_grpc  # type: ignore[method-assign,assignment]  # as InferRequest's
        self._requested_outputs = requested_outputs
        self._use_binary_outputs = use_binary_outputs
        if raw_outputs:
            _set_raw(infer_outputs, raw_outputs, "raw_outputs")

    @property
    def outputs(self) -> list[InferOutput]:
        if self._outputs is None:
            message = self._message
            assert message is not None
            self._outputs = _tensors_from_proto(
                InferOutput, message.outputs, message.raw_output_contents, "raw_output_contents"
            )
        return self._outputs

    @outputs.setter
    def outputs(self, value: list[InferOutput]) -> None:
        self._outputs = value

    # Wire

    @classmethod
    def from_grpc(cls, response: pb.ModelInferResponse) -> InferResponse:
        """From raw_output_contents, or typed contents. As tritonclient's
        InferResult, the message is kept and its outputs read when first
        asked for: `as_numpy` of a raw output reads it straight from the
        message."""
        result = cls(
            response.id or None,
            response.model_name,
            None,  # type: ignore[arg-type]  # read from the message on first use
            model_version=response.model_version or None,
            from_grpc=True,
            parameters=_parameters_from_proto("response", response.parameters),
        )
        result._message = response
        return result

    @classmethod
    def from_bytes(cls, res_bytes: bytes, json_length: int) -> InferResponse:
        """A REST body with binary data: `json_length` bytes of JSON, then the
        raw bytes of the outputs that have `binary_data_size`, in order; they
        are decoded only by as_numpy, as views of `res_bytes`."""
        content, tail = _split_body(res_bytes, json_length)
        return cls._from_content(content, _tensors_from_rest(InferOutput, content, tail, "output"))

    @classmethod
    def from_rest(cls, response: dict[str, Any]) -> InferResponse:
        return cls._from_content(response, _tensors_from_rest(InferOutput, response, None, "output"))

    @classmethod
    def _from_content(cls, content: dict[str, Any], outputs: list[InferOutput]) -> InferResponse:
        return cls(
            content.get("id"),
            content.get("model_name", ""),
            outputs,
            model_version=content.get("model_version"),
            parameters=content.get("parameters"),
        )

    def to_rest(self) -> tuple[dict[str, Any] | bytes, int | None]:
        """The REST body, as InferRequest.to_rest. An output goes raw when
        its requested output's `binary_data` says so, else when the
        response's `use_binary_outputs` does; with requested outputs, only
        those are returned."""
        default = self._use_binary_outputs
        chosen: list[tuple[InferOutput, bool]] = []
        for requested in self._requested_outputs or ():
            output = self.get_output_by_name(requested.name)
            if output is None:
                raise ValueError(f"model '{self.model_name}' has no output '{requested.name}'")
            binary = requested.binary_data
            chosen.append((output, default if binary is None else binary))
        if not self._requested_outputs:
            chosen = [(output, default) for output in self.outputs]
        outputs: list[dict[str, Any]] = []
        chunks: list[bytes | memoryview] = []
        for output, binary in chosen:
            entry, raw = output._rest_entry(binary)
            outputs.append(entry)
            if raw is not None:
                chunks.append(raw)
        content: dict[str, Any] = {"model_name": self.model_name}
        if self.model_version is not None:
            content["model_version"] = self.model_version
        if self.id is not None:
            content["id"] = self.id
        if self.parameters:
            content["parameters"] = self.parameters
        content["outputs"] = outputs
        if not chunks:
            return content, None
        header = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        return b"".join((header, *chunks)), len(header)

    def to_grpc(self) -> pb.ModelInferResponse:
        """The gRPC message: raw contents when `use_binary_outputs`, or when
        any output is raw or FP16/BF16 (never mixed with typed contents)."""
        message = pb.ModelInferResponse(
            model_name=self.model_name, model_version=self.model_version or "", id=self.id or ""
        )
        if self.parameters:
            _parameters_to_proto(self.parameters, message.parameters)
        _tensors_to_proto(
            self.outputs, message.outputs, message.raw_output_contents, self._use_binary_outputs
        )
        return message

    # Codecs

    @classmethod
    def from_inference_response(cls, response: InferenceResponse) -> InferResponse:
        outputs = [
            InferOutput(
                tensor.name,
                tensor.shape,
                Datatype(tensor.datatype).value,
                tensor.data,
                _parameters_dict(tensor.parameters),
            )
            for tensor in response.outputs
        ]
        return cls(
            response.id,
            response.model_name,
            outputs,
            model_version=response.model_version,
            parameters=_parameters_dict(response.parameters),
        )

    def to_inference_response(self) -> InferenceResponse:
        with _value_errors():
            return InferenceResponse(
                model_name=self.model_name,
                model_version=self.model_version,
                id=self.id,
                parameters=_model_parameters(self.parameters),
                outputs=[output._pydantic(ResponseOutput) for output in self.outputs],
            )

    def get_output_by_name(self, name: str) -> InferOutput | None:
        for output in self.outputs:
            if output.name == name:
                return output
        return None

    def as_numpy(self, name: str) -> np.ndarray | None:
        """The output's data, as tritonclient's InferResult.as_numpy: None
        when the response has no output of that name."""
        message = self._message
        if self._outputs is None and message is not None:
            raw = message.raw_output_contents
            if raw and len(raw) == len(message.outputs):
                for tensor, contents in zip(message.outputs, raw, strict=True):
                    if tensor.name == name:
                        return _raw_array(name, tensor.datatype, tensor.shape[:], contents)
                return None
        output = self.get_output_by_name(name)
        return None if output is None else output.as_numpy()

    def as_dataframe(self) -> Any:
        """The outputs as a pandas DataFrame, one column each (core's `pd` codec)."""
        from ...codecs.pandas import PandasCodec  # pandas is an optional extra

        with _value_errors():
            return PandasCodec.decode_response(self.to_inference_response())

    def decode(self, codec: Codec | None = None) -> Any:
        """The response decoded by `codec`, or by the request codec of its
        `content_type` parameter. Without one, a single output is decoded
        by its own content type (an array when it has none), several
        outputs give {name: decoded output}."""
        if codec is None:
            content_type = (self.parameters or {}).get("content_type")
            if content_type is None:
                if len(self.outputs) == 1:
                    return self.outputs[0].decode()
                return {output.name: output.decode() for output in self.outputs}
            codec = find_request_codec(content_type)
            if codec is None:
                raise ValueError(f"no request codec for the response's content type '{content_type}'")
        if issubclass(codec, InputCodec):
            if len(self.outputs) != 1:
                raise ValueError(
                    f"input codec {codec.__name__} decodes 1 output, the response has {len(self.outputs)}"
                )
            return self.outputs[0].decode(codec)
        with _value_errors():
            return codec.decode_response(self.to_inference_response())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InferResponse):
            return False
        return (
            self.model_name == other.model_name
            and self.model_version == other.model_version
            and self.id == other.id
            and self.from_grpc == other.from_grpc
            and self.parameters == other.parameters
            and self.outputs == other.outputs
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_name": self.model_name,
            "outputs": [output.to_dict() for output in self.outputs],
            "parameters": self.parameters,
            "from_grpc": self.from_grpc,
        }

    def __repr__(self) -> str:
        return (
            f'"id": "{self.id}",'
            f'"model_name": "{self.model_name}",'
            f'"outputs": {self.outputs!r},'
            f'"parameters": {self.parameters},'
            f'"from_grpc": {self.from_grpc}'
        )
