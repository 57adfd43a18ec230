"""Bare ASGI Open Inference Protocol V2 endpoint: the lower bound for our server.

No framework, no validation layer: read body, orjson, numpy, model.predict,
orjson.  Anything a real server does on top of this shows up as the gap between
this reference and `core` in benchmarks/rest_throughput.py.

Usage: python bare_asgi.py --model path/to/model.joblib --port 8080
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import joblib
import numpy as np
import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MODEL_NAME = "iris"
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
HEALTH_PATHS = frozenset({"/v2/health/ready", "/v2/health/live"})
DTYPES: dict[str, type[np.generic]] = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT32": np.int32,
    "INT64": np.int64,
}
JSON_HEADERS = [(b"content-type", b"application/json")]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


def _infer(model: Any, body: bytes) -> bytes:
    request = orjson.loads(body)
    tensor = request["inputs"][0]
    array = np.asarray(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])
    prediction = model.predict(array)
    # Same output layout as MLServer's sklearn runtime: a [n, 1] INT64 tensor.
    output = {
        "name": "predict",
        "shape": [len(prediction), 1],
        "datatype": "INT64",
        "data": prediction.astype(np.int64).tolist(),
    }
    response = {"model_name": MODEL_NAME, "id": request.get("id") or str(uuid.uuid4()), "outputs": [output]}
    return orjson.dumps(response)


def make_app(model: Any) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path in HEALTH_PATHS:
            await _respond(send, 200)
        elif method == "POST" and path == INFER_PATH:
            body = await _read_body(receive)
            try:
                payload = _infer(model, body)
            except (KeyError, IndexError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
                await _respond(send, 400, orjson.dumps({"error": str(exc)}))
            else:
                await _respond(send, 200, payload)
        else:
            await _respond(send, 404, b'{"error":"not found"}')

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="joblib model artifact")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    # Same uvicorn settings as core: uvloop + httptools, no access log, quiet logs.
    # Lifespan is off because a raw callable has nothing to set up at startup.
    uvicorn.run(
        make_app(joblib.load(args.model)),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
