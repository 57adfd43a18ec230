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
copies start HTTP only once every copy's gRPC server is up, so a readiness
check that succeeds means the gRPC load reaches all of them.

Usage: python bare_grpc.py --model path/to/model.joblib --port 8080 --grpc-port 8081 [--processes N]
"""

from __future__ import annotations

import argparse
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


async def serve(model: Any, host: str, port: int, grpc_port: int, after_grpc: Callable[[], None]) -> None:
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
    after_grpc()
    config = uvicorn.Config(
        make_app(model),
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
    try:
        await uvicorn.Server(config).serve(sockets=[_shared_socket(host, port)])  # until SIGTERM
    finally:
        await server.stop(None)


def _shared_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _fork_copies(count: int, run: Callable[[Callable[[], None]], None]) -> list[int]:
    """Fork `count` copies that each `run(after_grpc)`: report their gRPC
    server up, then wait for the word to start HTTP. Returns once all have
    reported: the pipes that give them the word."""
    go_writers = []
    for _ in range(count):
        up_read, up_write = os.pipe()
        go_read, go_write = os.pipe()
        if os.fork() == 0:
            os.close(up_read)
            os.close(go_write)
            run(functools.partial(_report_and_wait, up_write, go_read))
            os._exit(0)
        os.close(up_write)
        os.close(go_read)
        if os.read(up_read, 1) != b"1":
            raise SystemExit("a copy of the bare app exited before its gRPC server was up")
        os.close(up_read)
        go_writers.append(go_write)
    return go_writers


def _report_and_wait(up_write: int, go_read: int) -> None:
    os.write(up_write, b"1")
    os.read(go_read, 1)


def _release(go_writers: list[int]) -> None:
    for fd in go_writers:
        os.write(fd, b"1")
        os.close(fd)


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

    def run(after_grpc: Callable[[], None]) -> None:
        uvloop.run(serve(model, args.host, args.port, args.grpc_port, after_grpc))

    # The copies fork before this process starts gRPC, which does not survive a fork.
    go_writers = _fork_copies(args.processes - 1, run)
    run(functools.partial(_release, go_writers))


if __name__ == "__main__":
    main()
