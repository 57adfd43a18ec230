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

Usage: python bare_grpc.py --model path/to/model.joblib --port 8080 --grpc-port 8081
"""

from __future__ import annotations

import argparse
import uuid
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


async def serve(model: Any, host: str, port: int, grpc_port: int) -> None:
    async def model_infer(data: bytes, context: Any) -> bytes:
        try:
            return _infer(model, data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("context.abort returned") from exc  # it raises

    handler = grpc.unary_unary_rpc_method_handler(model_infer)  # bytes in, bytes out
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": handler}),))
    server.add_insecure_port(f"{host}:{grpc_port}")
    await server.start()
    config = uvicorn.Config(
        make_app(model),
        host=host,
        port=port,
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )
    try:
        await uvicorn.Server(config).serve()  # until SIGTERM
    finally:
        await server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="joblib model artifact")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="HTTP (readiness, REST reference)")
    parser.add_argument("--grpc-port", type=int, default=8081)
    args = parser.parse_args()
    uvloop.run(serve(joblib.load(args.model), args.host, args.port, args.grpc_port))


if __name__ == "__main__":
    main()
