"""Bare gRPC ModelInfer endpoint: the lower bound for our server's gRPC.

The transport core and MLServer both use (grpc.aio on uvloop, default server
options), and no framework on top: parse the request with the generated
protobuf class, np.frombuffer, model.predict inline, one raw INT64 output.
Whatever core adds (validation, codecs, data plane, statistics) shows up as
the gap between this reference and `core` in benchmarks/grpc_throughput.py;
whatever grpc.aio costs per call is in all three.

The HTTP port serves bare_asgi.py's app (the REST reference), which the
harness polls for readiness. Runs under core's python, which has the
generated `inference_pb2` module.

With `--processes N`, N copies of the app share both ports (SO_REUSEPORT;
the kernel spreads connections over them): the most that N processes doing
only this work can serve on the machine, whatever server they run. The
first process listens on HTTP only once the others serve, so readiness
means all of them are up.

Usage: python bare_grpc.py --model path/to/model.joblib --port 8080 --grpc-port 8081 [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import joblib
import numpy as np
import uvicorn
import uvloop
from bare_asgi import DTYPES, MODEL_NAME, make_app

from core.grpc.generated import inference_pb2 as pb

SERVICE = "inference.GRPCInferenceService"
TYPED_FIELDS = {"FP32": "fp32_contents", "FP64": "fp64_contents"}
TYPED_FIELDS |= {"INT32": "int_contents", "INT64": "int64_contents"}


def _infer(model: Any, data: bytes) -> bytes:
    request = pb.ModelInferRequest.FromString(data)
    tensor = request.inputs[0]
    dtype = np.dtype(DTYPES[tensor.datatype]).newbyteorder("<")
    if request.raw_input_contents:
        array = np.frombuffer(request.raw_input_contents[0], dtype=dtype)
    else:
        array = np.asarray(getattr(tensor.contents, TYPED_FIELDS[tensor.datatype]), dtype=dtype)
    prediction = model.predict(array.reshape(tensor.shape))
    # Same output layout as bare_asgi.py (MLServer's): a [n, 1] INT64 tensor.
    response = pb.ModelInferResponse(model_name=MODEL_NAME, id=request.id or str(uuid.uuid4()))
    response.outputs.add(name="predict", datatype="INT64", shape=[len(prediction), 1])
    response.raw_output_contents.append(prediction.astype("<i8").tobytes())
    return response.SerializeToString()


async def serve(
    model: Any, host: str, port: int, grpc_port: int, on_ready: Callable[[], None] | None = None
) -> None:
    async def model_infer(data: bytes, context: Any) -> bytes:
        try:
            return _infer(model, data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("context.abort returned") from exc  # it raises

    handler = grpc.unary_unary_rpc_method_handler(model_infer)  # bytes in, bytes out
    server = grpc.aio.server()  # grpc.aio sets SO_REUSEPORT by default
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": handler}),))
    server.add_insecure_port(f"{host}:{grpc_port}")
    await server.start()
    config = uvicorn.Config(
        make_app(model),
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
    http = uvicorn.Server(config)
    serving = asyncio.create_task(http.serve(sockets=[_shared_socket(host, port)]))
    while not http.started and not serving.done():
        await asyncio.sleep(0.01)
    if on_ready is not None:
        on_ready()
    try:
        await serving  # until SIGTERM
    finally:
        await server.stop(None)


def _shared_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _signal_ready(fd: int) -> None:
    os.write(fd, b"1")


def _start_copies(count: int, run: Callable[[Callable[[], None]], None]) -> None:
    """Fork `count` processes that each `run(on_ready)`, and wait until all are ready."""
    for _ in range(count):
        ready_read, ready_write = os.pipe()
        if os.fork() == 0:
            os.close(ready_read)
            run(functools.partial(_signal_ready, ready_write))
            os._exit(0)
        os.close(ready_write)
        if os.read(ready_read, 1) != b"1":
            raise SystemExit("a copy of the bare app exited before it was ready")
        os.close(ready_read)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="joblib model artifact")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="HTTP (readiness, REST reference)")
    parser.add_argument("--grpc-port", type=int, default=8081)
    parser.add_argument("--processes", type=int, default=1, help="copies sharing both ports")
    args = parser.parse_args()
    model = joblib.load(args.model)

    def run(on_ready: Callable[[], None] | None) -> None:
        uvloop.run(serve(model, args.host, args.port, args.grpc_port, on_ready))

    # The copies fork before any of them starts gRPC, which does not survive a fork.
    _start_copies(args.processes - 1, run)
    run(None)


if __name__ == "__main__":
    main()
