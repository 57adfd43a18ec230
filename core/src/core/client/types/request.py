"""InferRequest: an inference request, built, sent and read in KServe's
names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ...codecs import RequestCodec, find_input_codec, find_request_codec
from ...grpc.generated import inference_pb2 as pb
from ...types import Datatype, InferenceRequest, RequestInput, RequestOutput, to_ndarray
from .tensors import Codec, InferInput, RequestedOutput
from .wire import (
    _model_parameters,
    _parameters_dict,
    _parameters_from_proto,
    _parameters_to_proto,
    _set_raw,
    _split_body,
    _tensors_from_proto,
    _tensors_from_rest,
    _tensors_to_proto,
    _value_errors,
)


class InferRequest:
    """An inference request, for a model."""

    def __init__(
        self,
        model_name: str,
        infer_inputs: list[InferInput],
        request_id: str | None = None,
        raw_inputs: Sequence[bytes | memoryview] | None = None,
        from_grpc: bool = False,
        parameters: dict[str, Any] | None = None,
        request_outputs: list[RequestedOutput] | None = None,
        model_version: str | None = None,
    ) -> None:
        self.id = request_id
        self.model_name = model_name
        self.inputs = infer_inputs
        self.parameters = parameters
        # KServe's name for both this flag and the classmethod: the instance
        # attribute shadows the classmethod, as in KServe.
        self.from_grpc = from_grpc  # type: ignore[method-assign,assignment]
        self._from_grpc = from_grpc
        self._use_raw_outputs = bool(raw_inputs)
        if raw_inputs:
            _set_raw(infer_inputs, raw_inputs, "raw_inputs")
        self.request_outputs = request_outputs
        self.model_version = model_version

    @property
    def use_binary_outputs(self) -> bool:
        """Whether the outputs should go raw: gRPC requests sent raw, REST
        requests by their `binary_data_output` parameter (as KServe)."""
        if self._from_grpc:
            return self._use_raw_outputs
        return bool(self.parameters and self.parameters.get("binary_data_output", False))

    # Wire

    def to_rest(self) -> tuple[dict[str, Any] | bytes, int | None]:
        """The REST body: (dict, None) when every input goes as JSON, else
        (JSON header + raw bytes of the binary inputs in order, the header's
        length for `Inference-Header-Content-Length`). The dict may hold
        numpy arrays: serialise it with orjson.OPT_SERIALIZE_NUMPY."""
        inputs: list[dict[str, Any]] = []
        chunks: list[bytes | memoryview] = []
        for tensor in self.inputs:
            if not tensor._has_data():
                raise ValueError(f"input '{tensor.name}' has no data")
            entry, raw = tensor._rest_entry()
            inputs.append(entry)
            if raw is not None:
                chunks.append(raw)
        content: dict[str, Any] = {}
        if self.id is not None:
            content["id"] = self.id
        if self.parameters:
            content["parameters"] = self.parameters
        content["inputs"] = inputs
        if self.request_outputs:
            content["outputs"] = [output._rest_entry() for output in self.request_outputs]
        if not chunks:
            return content, None
        header = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        return b"".join((header, *chunks)), len(header)

    def to_grpc(self) -> pb.ModelInferRequest:
        """The gRPC message. Typed contents cannot be mixed with raw ones, so
        when any input is raw (or FP16/BF16, which have no typed field)
        every input goes in `raw_input_contents`."""
        message = pb.ModelInferRequest(
            model_name=self.model_name, model_version=self.model_version or "", id=self.id or ""
        )
        if self.parameters:
            _parameters_to_proto(self.parameters, message.parameters)
        _tensors_to_proto(self.inputs, message.inputs, message.raw_input_contents, force_raw=False)
        for output in self.request_outputs or ():
            tensor = message.outputs.add(name=output.name)
            if output.parameters:
                _parameters_to_proto(output.parameters, tensor.parameters)
        return message

    @classmethod
    def from_grpc(cls, request: pb.ModelInferRequest) -> InferRequest:
        raw = request.raw_input_contents
        inputs = _tensors_from_proto(InferInput, request.inputs, raw, "raw_input_contents")
        outputs = [
            RequestedOutput(output.name, _parameters_from_proto(f"output '{output.name}'", output.parameters))
            for output in request.outputs
        ]
        result = cls(
            request.model_name,
            inputs,
            request_id=request.id or None,
            from_grpc=True,
            parameters=_parameters_from_proto("request", request.parameters),
            request_outputs=outputs or None,
            model_version=request.model_version or None,
        )
        result._use_raw_outputs = bool(raw)
        return result

    @classmethod
    def from_bytes(cls, req_bytes: bytes, json_length: int, model_name: str) -> InferRequest:
        """A REST body with binary data: `json_length` bytes of JSON, then the
        inputs' raw bytes (kept as slices of `req_bytes`)."""
        content, tail = _split_body(req_bytes, json_length)
        return cls._from_content(content, _tensors_from_rest(InferInput, content, tail, "input"), model_name)

    @classmethod
    def from_rest(cls, request: dict[str, Any], model_name: str) -> InferRequest:
        return cls._from_content(request, _tensors_from_rest(InferInput, request, None, "input"), model_name)

    @classmethod
    def _from_content(
        cls, content: dict[str, Any], inputs: list[InferInput], model_name: str
    ) -> InferRequest:
        outputs = content.get("outputs")
        try:
            requested = [RequestedOutput(entry["name"], entry.get("parameters")) for entry in outputs or ()]
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed outputs in request: {error!r}") from None
        return cls(
            model_name,
            inputs,
            request_id=content.get("id"),
            parameters=content.get("parameters"),
            request_outputs=requested or None,
        )

    # Codecs

    @classmethod
    def from_inference_request(cls, request: InferenceRequest, model_name: str) -> InferRequest:
        inputs = [
            InferInput(
                tensor.name,
                tensor.shape,
                Datatype(tensor.datatype).value,
                tensor.data,
                _parameters_dict(tensor.parameters),
            )
            for tensor in request.inputs
        ]
        outputs = [
            RequestedOutput(output.name, _parameters_dict(output.parameters))
            for output in request.outputs or ()
        ]
        return cls(
            model_name,
            inputs,
            request_id=request.id,
            parameters=_parameters_dict(request.parameters),
            request_outputs=outputs or None,
        )

    def to_inference_request(self) -> InferenceRequest:
        with _value_errors():
            return InferenceRequest(
                id=self.id,
                parameters=_model_parameters(self.parameters),
                inputs=[tensor._pydantic(RequestInput) for tensor in self.inputs],
                outputs=[
                    RequestOutput(name=output.name, parameters=_model_parameters(output.parameters))
                    for output in self.request_outputs or ()
                ]
                or None,
            )

    @classmethod
    def encode(
        cls,
        model_name: str,
        payload: Any,
        codec: Codec | None = None,
        binary_data: bool = True,
        **kwargs: Any,
    ) -> InferRequest:
        """A request holding `payload`, encoded by `codec` or by the first
        registered codec that takes it (a request codec: a DataFrame becomes
        one input per column, content type "pd"; else an input codec, for an
        input named by `input_name`, "input-0" by default). `kwargs` go to
        the codec."""
        if codec is None:
            codec = find_request_codec(payload=payload) or find_input_codec(payload=payload)
            if codec is None:
                raise TypeError(f"no codec can encode a {type(payload).__name__}")
        with _value_errors():
            if issubclass(codec, RequestCodec):
                request = codec.encode_request(payload, **kwargs)
            else:
                name = kwargs.pop("input_name", "input-0")
                request = InferenceRequest(inputs=[codec.encode_input(name, payload, **kwargs)])
            result = cls.from_inference_request(request, model_name)
            if binary_data:
                for tensor, source in zip(result.inputs, request.inputs, strict=True):
                    tensor.set_data_from_numpy(to_ndarray(source), binary_data=True)
        return result

    def as_dataframe(self) -> Any:
        """The inputs as a pandas DataFrame, one column each (core's `pd` codec)."""
        from ...codecs.pandas import PandasCodec  # pandas is an optional extra

        with _value_errors():
            return PandasCodec.decode_request(self.to_inference_request())

    def get_input_by_name(self, name: str) -> InferInput | None:
        for tensor in self.inputs:
            if tensor.name == name:
                return tensor
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InferRequest):
            return False
        return (
            self.model_name == other.model_name
            and self.id == other.id
            and self.from_grpc == other.from_grpc
            and self.parameters == other.parameters
            and self.inputs == other.inputs
            and self.request_outputs == other.request_outputs
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_name": self.model_name,
            "inputs": [tensor.to_dict() for tensor in self.inputs],
            "parameters": self.parameters,
            "from_grpc": self.from_grpc,
        }

    def __repr__(self) -> str:
        return (
            f'"id": "{self.id}",'
            f'"model_name": "{self.model_name}",'
            f'"inputs": {self.inputs!r},'
            f'"parameters": {self.parameters},'
            f'"from_grpc": {self.from_grpc}'
        )
