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
tensor; core's server-side errors from the reused helpers become ValueError."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import orjson

from ..codecs import InputCodec, NumpyCodec, RequestCodec, find_input_codec, find_request_codec
from ..errors import CoreError
from ..grpc.converters import parameters_from_proto, parameters_to_proto
from ..grpc.generated import inference_pb2 as pb
from ..grpc.tensors import CONTENTS_FIELDS, decode_contents
from ..types import (
    NUMPY_DTYPES,
    Datatype,
    InferenceRequest,
    InferenceResponse,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    to_datatype,
    to_ndarray,
)
from ..types.raw import decode_raw, encode_raw

__all__ = ["InferInput", "InferOutput", "InferRequest", "InferResponse", "RequestedOutput"]

_DATATYPES = {datatype.value: datatype for datatype in Datatype}
# The typed `contents` field of each datatype (FP16 and BF16 have none).
_CONTENTS_FIELDS = {datatype.value: field for datatype, field in CONTENTS_FIELDS.items()}
# Raw numeric data as numpy reads it in place: explicitly little-endian.
_WIRE_DTYPES = {
    datatype.value: dtype.newbyteorder("<")
    for datatype, dtype in NUMPY_DTYPES.items()
    if datatype not in (Datatype.BYTES, Datatype.BF16)
}
# REST framing parameters of the binary extension: never model parameters,
# never sent over gRPC.
_FRAMING = frozenset({"binary_data_size", "binary_data", "binary_data_output"})

_TensorT = TypeVar("_TensorT", bound="_Tensor")
_Pydantic = TypeVar("_Pydantic", RequestInput, ResponseOutput)
Codec = type[InputCodec] | type[RequestCodec]


@contextmanager
def _value_errors() -> Iterator[None]:
    """core's server-side errors (BadRequest, CodecError...) as the plain
    ValueError a client raises, with the same message."""
    try:
        yield
    except CoreError as error:
        raise ValueError(error.message) from None


def _datatype(name: str, value: str) -> Datatype:
    found = _DATATYPES.get(value)
    if found is None:
        raise ValueError(f"tensor '{name}': unknown datatype '{value}' (one of {', '.join(_DATATYPES)})")
    return found


class _Tensor:
    """What InferInput and InferOutput share. The data is held in one of three
    forms: `_array` (the array given to set_data_from_numpy, as given), `_data`
    (JSON data: a list, or a flat array) and `_raw_data` (the raw layout:
    bytes, or a slice of a response body)."""

    def __init__(
        self,
        name: str,
        shape: Sequence[int],
        datatype: str,
        data: Any = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._shape = shape if type(shape) is list else list(shape)
        self._datatype = datatype.upper()
        self._data = data
        self._parameters = parameters
        self._raw_data: bytes | memoryview | None = None
        self._array: np.ndarray | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def datatype(self) -> str:
        return self._datatype

    @property
    def shape(self) -> list[int]:
        return self._shape

    @shape.setter
    def shape(self, shape: Sequence[int]) -> None:
        self._shape = list(shape)
        if self._array is not None and list(self._array.shape) != self._shape:
            self._array = self._array.reshape(self._shape)

    @property
    def data(self) -> Any:
        """The JSON data (a list, or a flat array); None when the tensor goes
        as raw bytes: read it with as_numpy()."""
        return self._data

    @data.setter
    def data(self, data: Any) -> None:
        self._data = data
        self._raw_data = self._array = None
        self._drop_binary_data_size()

    @property
    def parameters(self) -> dict[str, Any] | None:
        return self._parameters

    @parameters.setter
    def parameters(self, parameters: dict[str, Any] | None) -> None:
        self._parameters = parameters

    @classmethod
    def from_numpy(cls: type[_TensorT], name: str, array: np.ndarray, binary_data: bool = True) -> _TensorT:
        """A tensor of the array's shape and datatype, holding it."""
        if not isinstance(array, np.ndarray):
            raise TypeError(f"tensor '{name}': from_numpy takes a numpy array, got {type(array).__name__}")
        try:
            datatype = to_datatype(array.dtype)
        except ValueError as error:
            raise ValueError(f"tensor '{name}': {error}") from None
        tensor = cls(name, array.shape, datatype.value)
        tensor.set_data_from_numpy(array, binary_data)
        return tensor

    def set_data_from_numpy(self, array: np.ndarray, binary_data: bool = True) -> None:
        """Hold `array` (not copied: do not change it before the request is
        sent). With `binary_data` it travels as raw bytes (REST binary
        extension, gRPC raw contents), taken now with one `tobytes`;
        otherwise as JSON `data`, where BYTES elements must be UTF-8."""
        name = self._name
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"tensor '{name}': set_data_from_numpy takes a numpy array, got {type(array).__name__}"
            )
        try:
            found = to_datatype(array.dtype)
        except ValueError as error:
            raise ValueError(f"tensor '{name}': {error}") from None
        # BF16 has no numpy dtype: core holds it as float32.
        if found != self._datatype and not (self._datatype == "BF16" and found == Datatype.FP32):
            raise ValueError(
                f"tensor '{name}': got unexpected datatype {found.value} from numpy array, "
                f"expected {self._datatype}"
            )
        if list(array.shape) != self._shape:
            raise ValueError(
                f"tensor '{name}': got unexpected numpy array shape {list(array.shape)}, "
                f"expected {self._shape}"
            )
        self._array = array
        if binary_data:
            raw = encode_raw(_DATATYPES[self._datatype], array)
            self._raw_data, self._data = raw, None
            if self._parameters is None:
                self._parameters = {"binary_data_size": len(raw)}
            else:
                self._parameters["binary_data_size"] = len(raw)
        else:
            self._raw_data, self._data = None, _json_data(name, array)
            self._drop_binary_data_size()

    def as_numpy(self) -> np.ndarray:
        """The data as an array of the tensor's shape: the array given to
        set_data_from_numpy, a read-only view of raw data, or the JSON data
        converted (BYTES elements are bytes, whichever way they came)."""
        if self._array is not None:
            return self._array
        if self._raw_data is not None:
            return _raw_array(self._name, self._datatype, self._shape, self._raw_data)
        if self._data is not None:
            return _data_array(self._name, self._datatype, self._shape, self._data)
        raise ValueError(f"tensor '{self._name}' has no data")

    def as_string(self) -> list[str]:
        """A BYTES tensor's elements as UTF-8 text, flat in row-major order."""
        if self._datatype != "BYTES":
            raise ValueError(f"tensor '{self._name}' is {self._datatype}, not BYTES: it has no strings")
        return [_text(self._name, item) for item in self.as_numpy().ravel().tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype,
            "data": self.data,
            "parameters": self.parameters,
        }

    def __eq__(self, other: object) -> bool:
        # As KServe's, except that the data compares by value whatever its
        # form (raw, JSON, array) and the binary framing is not compared.
        if not isinstance(other, type(self)):
            return False
        return (
            self._name == other._name
            and self._shape == other._shape
            and self._datatype == other._datatype
            and _without_framing(self._parameters) == _without_framing(other._parameters)
            and _same_data(self, other)
        )

    def __repr__(self) -> str:
        return (
            f'"name": "{self.name}",'
            f'"shape": {self.shape},'
            f'"datatype": "{self.datatype}",'
            f'"data": {self.data},'
            f'"parameters": {self.parameters}'
        )

    # Wire forms

    def _has_data(self) -> bool:
        return self._raw_data is not None or self._data is not None or self._array is not None

    def _drop_binary_data_size(self) -> None:
        if self._parameters and "binary_data_size" in self._parameters:
            del self._parameters["binary_data_size"]

    def _set_raw(self, raw: bytes | memoryview) -> None:
        self._raw_data, self._data, self._array = raw, None, None

    def _rest_entry(self, binary: bool | None = None) -> tuple[dict[str, Any], bytes | memoryview | None]:
        """The tensor's JSON object and its raw bytes (None when its data goes
        in the JSON). `binary` None: as the tensor holds it."""
        entry: dict[str, Any] = {"name": self._name, "shape": self._shape, "datatype": self._datatype}
        parameters = self._parameters
        raw = self._raw_data
        if binary or (binary is None and raw is not None):
            if raw is None:
                raw = self._raw_bytes()
            if parameters is None or parameters.get("binary_data_size") != len(raw):
                parameters = {**(parameters or {}), "binary_data_size": len(raw)}
            entry["parameters"] = parameters
            return entry, raw
        if parameters:
            if "binary_data_size" in parameters:
                parameters = {key: value for key, value in parameters.items() if key != "binary_data_size"}
            if parameters:
                entry["parameters"] = parameters
        entry["data"] = self._json_value()
        return entry, None

    def _json_value(self) -> Any:
        """The data as orjson writes it (with OPT_SERIALIZE_NUMPY)."""
        data = self._data
        if data is None or isinstance(data, np.ndarray):
            return _json_data(self._name, self.as_numpy() if data is None else data)
        if self._datatype == "BYTES" and not all(type(item) is str for item in data):
            return _json_data(self._name, self.as_numpy())  # bytes elements, or nested lists
        return data

    def _raw_bytes(self) -> bytes:
        raw = self._raw_data
        if raw is None:
            with _value_errors():
                raw = encode_raw(_datatype(self._name, self._datatype), self.as_numpy())
        return raw if isinstance(raw, bytes) else bytes(raw)

    def _to_proto(self, tensors: Any, raw_contents: Any | None) -> None:
        """Add the tensor to a message's `inputs`/`outputs`, its data to
        `raw_contents` when given, else to its typed contents."""
        tensor = tensors.add(name=self._name, datatype=self._datatype, shape=self._shape)
        if self._parameters:
            _parameters_to_proto(self._parameters, tensor.parameters)
        if raw_contents is not None:
            raw_contents.append(self._raw_bytes())
            return
        values = self.as_numpy().ravel().tolist()
        if self._datatype == "BYTES":
            values = [item if isinstance(item, bytes) else str(item).encode("utf-8") for item in values]
        getattr(tensor.contents, _CONTENTS_FIELDS[self._datatype]).extend(values)

    def _pydantic(self, kind: type[_Pydantic]) -> _Pydantic:
        array = self.as_numpy()
        # to_ndarray takes an array as it is, but BYTES elements as a list.
        data = array.ravel().tolist() if self._datatype == "BYTES" else array
        return kind(
            name=self._name,
            shape=self._shape,
            datatype=self._datatype,
            parameters=_model_parameters(self._parameters),
            data=data,
        )


class InferInput(_Tensor):
    """An input tensor of a request."""

    @classmethod
    def encode(
        cls, name: str, payload: Any, codec: Codec | None = None, binary_data: bool = True, **kwargs: Any
    ) -> InferInput:
        """An input holding `payload`, encoded by one of core's codecs
        (`codec`, or the first that takes it): StringCodec for a list of
        str, DatetimeCodec for datetimes, Base64Codec, NumpyCodec...; its
        `content_type` parameter tells the server how to decode it."""
        request = InferRequest.encode("", payload, codec, binary_data, input_name=name, **kwargs)
        return request.inputs[0]


class InferOutput(_Tensor):
    """An output tensor of a response."""

    def decode(self, codec: type[InputCodec] | None = None) -> Any:
        """The output decoded by `codec`, or by the codec of its
        `content_type` parameter (a numpy array when it has none)."""
        if codec is None:
            content_type = (self._parameters or {}).get("content_type")
            codec = NumpyCodec if content_type is None else find_input_codec(content_type)
            if codec is None:
                raise ValueError(f"output '{self._name}': no codec for content type '{content_type}'")
        with _value_errors():
            return codec.decode_output(self._pydantic(ResponseOutput))


class RequestedOutput:
    """An output asked for by a request; `binary_data` asks for it as raw
    bytes (REST; gRPC outputs are raw anyway)."""

    def __init__(
        self, name: str, parameters: dict[str, Any] | None = None, binary_data: bool | None = None
    ) -> None:
        if binary_data is not None:
            parameters = {**(parameters or {}), "binary_data": binary_data}
        self._name = name
        self._parameters = parameters

    @property
    def name(self) -> str:
        return self._name

    @property
    def parameters(self) -> dict[str, Any] | None:
        return self._parameters

    @parameters.setter
    def parameters(self, parameters: dict[str, Any] | None) -> None:
        self._parameters = parameters

    @property
    def binary_data(self) -> bool | None:
        return self._parameters.get("binary_data") if self._parameters else None

    def _rest_entry(self) -> dict[str, Any]:
        if self._parameters:
            return {"name": self._name, "parameters": self._parameters}
        return {"name": self._name}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestedOutput):
            return False
        return self.name == other.name and self.parameters == other.parameters

    def __repr__(self) -> str:
        return f"RequestedOutput(name={self.name}, parameters={self.parameters})"


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
        from ..codecs.pandas import PandasCodec  # pandas is an optional extra

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
        self.outputs = infer_outputs
        self.parameters = parameters
        self.from_grpc = from_grpc  # type: ignore[method-assign,assignment]  # as InferRequest's
        self._requested_outputs = requested_outputs
        self._use_binary_outputs = use_binary_outputs
        if raw_outputs:
            _set_raw(infer_outputs, raw_outputs, "raw_outputs")

    # Wire

    @classmethod
    def from_grpc(cls, response: pb.ModelInferResponse) -> InferResponse:
        """From raw_output_contents, or typed contents."""
        outputs = _tensors_from_proto(
            InferOutput, response.outputs, response.raw_output_contents, "raw_output_contents"
        )
        return cls(
            response.id or None,
            response.model_name,
            outputs,
            model_version=response.model_version or None,
            from_grpc=True,
            parameters=_parameters_from_proto("response", response.parameters),
        )

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
        output = self.get_output_by_name(name)
        return None if output is None else output.as_numpy()

    def as_dataframe(self) -> Any:
        """The outputs as a pandas DataFrame, one column each (core's `pd` codec)."""
        from ..codecs.pandas import PandasCodec  # pandas is an optional extra

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


# Data forms


def _json_data(name: str, array: np.ndarray) -> Any:
    """An array's elements as JSON data: a flat array in native byte order
    and C order (the array itself, viewed flat, when it is both), which orjson
    writes directly; BYTES as a list of str, JSON having no bytes."""
    if array.dtype.kind in "OSU":
        return [_text(name, item) for item in array.ravel().tolist()]
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("=")).ravel()


def _text(name: str, item: Any) -> str:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"tensor '{name}': element {item[:40]!r} is not UTF-8, which JSON needs: "
                "send it as binary data (binary_data=True)"
            ) from None
    return item if isinstance(item, str) else str(item)


def _raw_array(name: str, datatype: str, shape: list[int], raw: bytes | memoryview) -> np.ndarray:
    wire = _WIRE_DTYPES.get(datatype)
    if wire is None:  # BYTES, BF16, or unknown
        with _value_errors():
            elements = decode_raw(name, _datatype(name, datatype), shape, raw, limited=False)
        array: np.ndarray = elements  # BF16: float32
        if isinstance(elements, list):  # BYTES
            array = np.empty(len(elements), dtype=object)
            array[:] = elements
        return array.reshape(shape)
    size = math.prod(shape) * wire.itemsize
    if len(raw) != size:
        raise ValueError(
            f"tensor '{name}': shape {shape} of {datatype} needs {size} bytes of raw data, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=wire).reshape(shape)


def _data_array(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """JSON or typed-contents data as an array. Lenient as tritonclient,
    unlike core's server-side `to_ndarray`: that one rejects float32's
    largest values in the shortest decimal form orjson writes them in."""
    kind = _datatype(name, datatype)
    try:
        if kind == Datatype.BYTES:
            items = np.asarray(data, dtype=object).ravel().tolist()
            array = np.empty(len(items), dtype=object)
            array[:] = [item.encode("utf-8") if isinstance(item, str) else item for item in items]
        else:
            array = np.asarray(data, dtype=NUMPY_DTYPES[kind])
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"tensor '{name}': data does not fit {datatype}: {error}") from None
    count = math.prod(shape)
    if array.size != count:
        raise ValueError(f"tensor '{name}': shape {shape} holds {count} elements but data has {array.size}")
    return array.reshape(shape)


def _same_data(one: _Tensor, other: _Tensor) -> bool:
    if not (one._has_data() and other._has_data()):
        return one._has_data() == other._has_data()
    try:
        return bool(np.array_equal(one.as_numpy(), other.as_numpy()))
    except ValueError:
        return False


# Parameters


def _parameters_dict(parameters: Parameters | None) -> dict[str, Any] | None:
    return (parameters.model_dump(exclude_none=True) or None) if parameters is not None else None


def _without_framing(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not parameters:
        return None
    return {key: value for key, value in parameters.items() if key not in _FRAMING} or None


def _model_parameters(parameters: Mapping[str, Any] | None) -> Parameters | None:
    values = _without_framing(parameters)
    return None if values is None else Parameters(**values)


def _parameters_to_proto(parameters: Mapping[str, Any], target: Any) -> None:
    """core's gRPC value rules, leaving out the REST framing parameters."""
    values = _without_framing(parameters)
    if values is not None:
        parameters_to_proto(Parameters.model_construct(**values), target)


def _parameters_from_proto(what: str, parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any] | None:
    if not parameters:
        return None
    with _value_errors():
        return _parameters_dict(parameters_from_proto(what, parameters))


# Tensor lists


def _set_raw(tensors: Sequence[_Tensor], raw: Sequence[bytes | memoryview], what: str) -> None:
    if len(raw) != len(tensors):
        raise ValueError(f"{what} has {len(raw)} entries for {len(tensors)} tensors")
    for tensor, chunk in zip(tensors, raw, strict=True):
        tensor._set_raw(chunk)


def _tensors_to_proto(tensors: Sequence[_Tensor], target: Any, raw_contents: Any, force_raw: bool) -> None:
    for tensor in tensors:
        if not tensor._has_data():
            raise ValueError(f"tensor '{tensor.name}' has no data")
    raw = force_raw or any(
        tensor._raw_data is not None or tensor.datatype not in _CONTENTS_FIELDS for tensor in tensors
    )
    for tensor in tensors:
        tensor._to_proto(target, raw_contents if raw else None)


def _tensors_from_proto(
    kind: type[_TensorT], tensors: Sequence[Any], raw: Sequence[bytes], field: str
) -> list[_TensorT]:
    """The tensors of a message, from its raw contents when it has any (what
    tritonclient reads too), else from their typed contents."""
    if raw and len(raw) != len(tensors):
        raise ValueError(f"{field} has {len(raw)} entries for {len(tensors)} tensors")
    result = []
    for index, tensor in enumerate(tensors):
        name = tensor.name
        parameters = tensor.parameters
        item = kind(
            name,
            tensor.shape[:],  # a list (faster than list() on upb containers)
            tensor.datatype,
            None,
            _parameters_from_proto(f"tensor '{name}'", parameters) if parameters else None,
        )
        if raw:
            item._raw_data = raw[index]
        else:
            with _value_errors():
                datatype = _datatype(name, item.datatype)
                item._data = decode_contents(name, datatype, tensor.contents, math.prod(item.shape))
        result.append(item)
    return result


def _split_body(body: bytes, json_length: int) -> tuple[dict[str, Any], memoryview]:
    """The JSON header of a binary REST body, and the raw bytes after it."""
    view = memoryview(body)
    if not 0 < json_length <= len(view):
        raise ValueError(f"JSON header length {json_length} does not fit a body of {len(view)} bytes")
    try:
        content = orjson.loads(view[:json_length])
    except orjson.JSONDecodeError as error:
        raise ValueError(f"invalid JSON header: {error}") from None
    if not isinstance(content, dict):
        raise ValueError(f"the JSON header is not an object: {type(content).__name__}")
    return content, view[json_length:]


def _tensors_from_rest(
    kind: type[_TensorT], content: dict[str, Any], tail: memoryview | None, what: str
) -> list[_TensorT]:
    """The tensors of a REST body (`what`: "input" or "output"), their raw
    data sliced from `tail` in order of appearance."""
    entries = content.get(f"{what}s")
    if not isinstance(entries, list):
        raise ValueError(f"the body has no '{what}s' list")
    tensors = []
    offset = 0
    for entry in entries:
        try:
            tensor = kind(
                entry["name"], entry["shape"], entry["datatype"], entry.get("data"), entry.get("parameters")
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed {what}: {error!r}") from None
        size = tensor._parameters.get("binary_data_size") if tensor._parameters else None
        if size is not None:
            if tail is None:
                raise ValueError(
                    f"{what} '{tensor.name}' has binary_data_size but the body has no binary data"
                )
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(tail):
                raise ValueError(
                    f"{what} '{tensor.name}': binary_data_size {size!r} does not fit the "
                    f"{len(tail) - offset} bytes of binary data left"
                )
            if tensor._data is not None:
                raise ValueError(f"{what} '{tensor.name}' has both data and binary_data_size")
            tensor._raw_data = tail[offset : offset + size]
            offset += size
        elif tensor._data is None:
            raise ValueError(f"{what} '{tensor.name}' has no data")
        tensors.append(tensor)
    if tail is not None and offset != len(tail):
        raise ValueError(
            f"{len(tail)} bytes of binary data follow the JSON header, but the {what}s' "
            f"binary_data_size add up to {offset}"
        )
    return tensors
