#!/usr/bin/env python3
"""The reference of ray_throughput.py: the least a Ray Serve app does to
serve the iris model over OIP's JSON, in core-ray's layout. An ingress
deployment behind Ray Serve's HTTP proxy parses the request with orjson and
calls a model deployment through a DeploymentHandle, which predicts with
scikit-learn; nothing is checked, no binary tensors, no batching, no
metrics. What core-ray costs beyond it is core's own share.

    python benchmarks/ray_bare_app.py --model model.joblib --port 8000 [--replicas 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

import joblib
import numpy as np
import orjson
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

MODEL = "iris"


@serve.deployment(ray_actor_options={"num_cpus": 1})
class Predictor:
    def __init__(self, artifact: str) -> None:
        self.estimator = joblib.load(artifact)

    async def predict(self, rows: list[float], shape: list[int]) -> list[int]:
        result: list[int] = self.estimator.predict(np.asarray(rows, dtype=np.float64).reshape(shape)).tolist()
        return result


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
class Ingress:
    def __init__(self, predictor: object) -> None:
        self.predictor = predictor

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":  # /v2/health/ready and the like
            return Response(b'{"ready":true}', media_type="application/json")
        tensor = orjson.loads(await request.body())["inputs"][0]
        labels = await self.predictor.predict.remote(tensor["data"], tensor["shape"])  # type: ignore[attr-defined]
        outputs = [{"name": "predict", "shape": [len(labels)], "datatype": "INT64", "data": labels}]
        return Response(
            orjson.dumps({"model_name": MODEL, "outputs": outputs}), media_type="application/json"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    ray.init(
        runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "0")}}
    )
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    predictor = Predictor.options(num_replicas=args.replicas).bind(os.path.abspath(args.model))
    serve.run(Ingress.bind(predictor), name="bare", route_prefix="/")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
