"""The codec contract. Input codecs turn one tensor into a Python value and
back; request codecs turn a whole request or response into one value and back.
Both work on the server (decode requests, encode responses) and on the client
(encode requests, decode responses)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import CodecError
from ..types import InferenceRequest, InferenceResponse, Parameters, RequestInput, ResponseOutput


class InputCodec:
    ContentType: ClassVar[str] = ""
    TypeHint: ClassVar[Any] = None

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return False

    @classmethod
    def encode_output(cls, name: str, payload: Any, **kwargs: Any) -> ResponseOutput:
        raise NotImplementedError

    @classmethod
    def decode_output(cls, response_output: ResponseOutput) -> Any:
        raise NotImplementedError

    @classmethod
    def encode_input(cls, name: str, payload: Any, **kwargs: Any) -> RequestInput:
        raise NotImplementedError

    @classmethod
    def decode_input(cls, request_input: RequestInput) -> Any:
        raise NotImplementedError


class RequestCodec:
    ContentType: ClassVar[str] = ""
    TypeHint: ClassVar[Any] = None

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return False

    @classmethod
    def encode_response(
        cls, model_name: str, payload: Any, model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        raise NotImplementedError

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> Any:
        raise NotImplementedError

    @classmethod
    def encode_request(cls, payload: Any, **kwargs: Any) -> InferenceRequest:
        raise NotImplementedError

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> Any:
        raise NotImplementedError


class SingleInputRequestCodec(RequestCodec):
    """A request with one input (a response with one output) as the value its
    input codec gives. Subclasses name the codec in `InputCodec`."""

    InputCodec: ClassVar[type[InputCodec]]

    @classmethod
    def can_encode(cls, payload: Any) -> bool:
        return cls.InputCodec.can_encode(payload)

    @classmethod
    def encode_response(
        cls, model_name: str, payload: Any, model_version: str | None = None, **kwargs: Any
    ) -> InferenceResponse:
        output = cls.InputCodec.encode_output(kwargs.get("output_name", "output-0"), payload)
        return InferenceResponse(
            model_name=model_name,
            model_version=model_version,
            parameters=Parameters(content_type=cls.ContentType),
            outputs=[output],
        )

    @classmethod
    def decode_response(cls, response: InferenceResponse) -> Any:
        if len(response.outputs) != 1:
            raise CodecError(f"{cls.ContentType} response codec needs 1 output, got {len(response.outputs)}")
        return cls.InputCodec.decode_output(response.outputs[0])

    @classmethod
    def encode_request(cls, payload: Any, **kwargs: Any) -> InferenceRequest:
        request_input = cls.InputCodec.encode_input(kwargs.get("input_name", "input-0"), payload)
        return InferenceRequest(parameters=Parameters(content_type=cls.ContentType), inputs=[request_input])

    @classmethod
    def decode_request(cls, request: InferenceRequest) -> Any:
        if len(request.inputs) != 1:
            raise CodecError(
                f"{cls.ContentType} request codec needs exactly 1 input, got {len(request.inputs)}; "
                "send one tensor, or several columns with content_type 'pd'"
            )
        return cls.InputCodec.decode_input(request.inputs[0])


Codec = type[InputCodec] | type[RequestCodec]


def content_type_of(tensor: Any) -> str | None:
    """The content type named in a tensor's or request's parameters, if any."""
    parameters = tensor.parameters
    return parameters.content_type if parameters is not None else None
