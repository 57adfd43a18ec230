"""Codecs by content type. Filled from the plugins' `core_codecs` hook (the
built-in codecs arrive the same way) the first time a codec is looked up."""

from __future__ import annotations

from typing import Any, cast

from ..errors import CodecError
from .base import InputCodec, RequestCodec

_input_codecs: dict[str, type[InputCodec]] = {}
_request_codecs: dict[str, type[RequestCodec]] = {}
_loaded = False


def register_codec(codec: type[InputCodec] | type[RequestCodec]) -> None:
    """Register a codec under its content type; a later one replaces an earlier one."""
    if issubclass(codec, RequestCodec):
        _request_codecs[codec.ContentType] = codec
    elif issubclass(codec, InputCodec):
        _input_codecs[codec.ContentType] = codec
    else:
        raise TypeError(f"{codec!r} is neither an InputCodec nor a RequestCodec")


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from ..plugins.manager import get_plugin_manager

    for codec in get_plugin_manager().codecs():
        # Codecs registered by hand before the first look-up win over plugins'.
        table: dict[str, Any] = _request_codecs if issubclass(codec, RequestCodec) else _input_codecs
        table.setdefault(codec.ContentType, codec)


def _find(table: dict[str, Any], content_type: str | None, type_hint: Any, payload: Any) -> Any:
    _ensure_loaded()
    if content_type is not None:
        return table.get(content_type)
    for codec in table.values():
        if type_hint is not None and codec.TypeHint == type_hint:
            return codec
        if payload is not None and codec.can_encode(payload):
            return codec
    return None


def find_input_codec(
    content_type: str | None = None, type_hint: Any = None, payload: Any = None
) -> type[InputCodec] | None:
    """The input codec for a content type, a type hint or a payload to encode."""
    return cast("type[InputCodec] | None", _find(_input_codecs, content_type, type_hint, payload))


def find_request_codec(
    content_type: str | None = None, type_hint: Any = None, payload: Any = None
) -> type[RequestCodec] | None:
    return cast("type[RequestCodec] | None", _find(_request_codecs, content_type, type_hint, payload))


def input_codec_for(content_type: str) -> type[InputCodec]:
    """The input codec of a content type a request or settings named; a 400
    naming the known ones when there is none."""
    codec = find_input_codec(content_type)
    if codec is None:
        raise CodecError(
            f"unknown content type '{content_type}' (input codecs: {', '.join(sorted(_input_codecs))})"
        )
    return codec


def request_codec_for(content_type: str) -> type[RequestCodec]:
    codec = find_request_codec(content_type)
    if codec is None:
        raise CodecError(
            f"unknown content type '{content_type}' (request codecs: {', '.join(sorted(_request_codecs))})"
        )
    return codec


def input_codecs() -> dict[str, type[InputCodec]]:
    _ensure_loaded()
    return dict(_input_codecs)


def request_codecs() -> dict[str, type[RequestCodec]]:
    _ensure_loaded()
    return dict(_request_codecs)
