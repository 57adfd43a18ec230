"""The codec contract. Input codecs turn one tensor into a Python value and
back; request codecs turn a whole request or response into one value and back.
Both work on the server (decode requests, encode responses) and on the client
(encode requests, decode responses)."""

from __future__ import annotations

from typing import Any, ClassVar

from ..types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput


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


Codec = type[InputCodec] | type[RequestCodec]


def content_type_of(tensor: Any) -> str | None:
    """The content type named in a tensor's or request's parameters, if any."""
    parameters = tensor.parameters
    return parameters.content_type if parameters is not None else None
