"""JSON responses serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import JSONResponse as StarletteJSONResponse


def _default(value: Any) -> Any:
    # BYTES tensor elements: JSON carries them as UTF-8 text.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    if isinstance(content, BaseModel):
        content = content.model_dump(exclude_none=True)
    return orjson.dumps(content, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
