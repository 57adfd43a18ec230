"""The client's tensors: InferInput and InferOutput (what they share is
`_Tensor`), and RequestedOutput."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from ...codecs import InputCodec, NumpyCodec, RequestCodec, find_input_codec
from ...types import Datatype, RequestInput, ResponseOutput, to_datatype
from ...types.raw import encode_raw
from .wire import (
    _CONTENTS_FIELDS,
    _DATATYPES,
    _data_array,
    _datatype,
    _json_data,
    _model_parameters,
    _parameters_to_proto,
    _raw_array,
    _same_data,
    _TensorT,
    _text,
    _value_errors,
    _without_framing,
)

_Pydantic = TypeVar("_Pydantic", RequestInput, ResponseOutput)
Codec = type[InputCodec] | type[RequestCodec]


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
        from .request import InferRequest  # which builds its inputs from these

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
