#!/usr/bin/env python3
"""Large inputs: how much of a 100k-row request's time is spent outside the
framework's predict call, and whether the array reaching the framework is the
decoded one (no copy), for the sklearn, xgboost and lightgbm runtimes.

    .venv/bin/python benchmarks/large_input.py            # ~1 min
    .venv/bin/python benchmarks/large_input.py --markdown --output results.json

Method (see benchmarks/README.md, "Large inputs"):

- Train one classifier per framework on 100k x 16 random FP32 features:
  scikit-learn LogisticRegression, XGBClassifier (20 trees, depth 4),
  LGBMClassifier (20 trees); save them as users do (joblib, JSON, text).
- Start `core start` on them in a subprocess of this script (`serve` mode,
  models in the server process) that first wraps, for measurement only:
  `EstimatorModel.decode_request` (the decoded array, decode time),
  `EstimatorModel.predict` (time in the runtime), each served method (time
  in the framework's predict call), and the function that hands the array to
  the framework's native code (sklearn `check_array`'s result, xgboost
  `array_interface`'s argument, lightgbm `_np2d_to_np1d`'s result), to check
  with `np.shares_memory` that it is the decoded array.
- For each model and body (JSON; binary tensor extension, binary output),
  send the same pre-encoded 100k-row request `--repeats` times (after 2
  warm-ups) with httpx, one at a time, and record the client's end-to-end
  latency and the server's timings of that request. Report medians.
- Also time the framework's own predict on the same array in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("sklearn", "xgboost", "lightgbm")


# Server side (`serve` mode): probes around the runtime and the frameworks.


def serve(folder: str, record_path: str, core_args: list[str]) -> int:
    import numpy as np

    from core.cli.main import main
    from core.estimator import EstimatorModel

    record = open(record_path, "a", buffering=1)  # noqa: SIM115  (lives as long as the server)
    state: dict[str, Any] = {}

    decode_request = EstimatorModel.decode_request

    def probed_decode_request(self: Any, payload: Any, default_codec: Any = None) -> Any:
        start = time.perf_counter()
        value = decode_request(self, payload, default_codec)
        state["decode_s"] = time.perf_counter() - start
        state["decoded"] = value
        return value

    predict = EstimatorModel.predict

    async def probed_predict(self: Any, payload: Any) -> Any:
        state.clear()
        start = time.perf_counter()
        response = await predict(self, payload)
        decoded = state.get("decoded")
        # The arrays of the input's size handed to native code (not, say, the
        # predicted class indices that LightGBM's label decoding checks).
        handed = [array for array in state.get("native_inputs", []) if array.size == decoded.size]
        line = {
            "model": self.name,
            "runtime_s": time.perf_counter() - start,
            "decode_s": state.get("decode_s"),
            "framework_s": state.get("framework_s"),
            "decoded_dtype": str(decoded.dtype),
            "native_input_dtype": ",".join(sorted({str(array.dtype) for array in handed})),
            "shares_memory": bool(handed) and all(np.shares_memory(decoded, array) for array in handed),
        }
        record.write(json.dumps(line) + "\n")
        return response

    serve_methods = EstimatorModel.serve_methods

    def probed_serve_methods(self: Any, methods: Any, missing: Any = None) -> None:
        def timed(method: Any) -> Any:
            def call(features: Any) -> Any:
                start = time.perf_counter()
                try:
                    return method(features)
                finally:
                    state["framework_s"] = time.perf_counter() - start

            return call

        serve_methods(self, {name: timed(method) for name, method in methods.items()}, missing)

    EstimatorModel.decode_request = probed_decode_request  # type: ignore[method-assign]
    EstimatorModel.predict = probed_predict  # type: ignore[method-assign]
    EstimatorModel.serve_methods = probed_serve_methods  # type: ignore[method-assign]
    _probe_native_inputs(state)
    profile_path = os.environ.get("LARGE_INPUT_PROFILE")
    if not profile_path:
        return main(["start", folder, *core_args])
    import cProfile

    profiler = cProfile.Profile()  # the event loop's thread: everything but the framework calls
    try:
        return profiler.runcall(main, ["start", folder, *core_args])
    finally:
        profiler.dump_stats(profile_path)


def _probe_native_inputs(state: dict[str, Any]) -> None:
    """Record the arrays each framework hands to its native code."""
    import lightgbm.basic
    import sklearn.utils.validation
    import xgboost.core

    check_array = sklearn.utils.validation.check_array

    def probed_check_array(*args: Any, **kwargs: Any) -> Any:
        result = check_array(*args, **kwargs)
        state.setdefault("native_inputs", []).append(result)
        return result

    array_interface = xgboost.core.array_interface

    def probed_array_interface(data: Any) -> Any:
        state.setdefault("native_inputs", []).append(data)
        return array_interface(data)

    np2d_to_np1d = lightgbm.basic._np2d_to_np1d

    def probed_np2d_to_np1d(mat: Any) -> Any:
        result = np2d_to_np1d(mat)
        state.setdefault("native_inputs", []).append(result[0])
        return result

    sklearn.utils.validation.check_array = probed_check_array
    xgboost.core.array_interface = probed_array_interface
    lightgbm.basic._np2d_to_np1d = probed_np2d_to_np1d


# Client side.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train(folder: Path, rows: int, features: int) -> dict[str, Any]:
    import joblib
    import lightgbm as lgb
    import numpy as np
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    models = {
        "sklearn": LogisticRegression(max_iter=200).fit(x, y),
        "xgboost": xgb.XGBClassifier(n_estimators=20, max_depth=4).fit(x, y),
        "lightgbm": lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y),
    }
    files = {"sklearn": "model.joblib", "xgboost": "model.json", "lightgbm": "model.joblib"}
    for name, model in models.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "model-settings.json").write_text(json.dumps({"name": name, "implementation": name}))
        if name == "xgboost":
            model.save_model(folder / name / files[name])
        else:
            joblib.dump(model, folder / name / files[name])
    return {"features": x, "models": models}


def bodies(features: Any) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The request, pre-encoded: JSON, and the binary tensor extension."""
    tensor = {"name": "input-0", "shape": list(features.shape), "datatype": "FP32"}
    as_json = json.dumps({"inputs": [{**tensor, "data": features.ravel().tolist()}]}).encode()
    raw = features.tobytes()
    header = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return {
        "json": (as_json, {"content-type": "application/json"}),
        "binary": (
            header + raw,
            {"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))},
        ),
    }


def framework_alone(model: Any, features: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(features)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "models"
        trained = train(folder, args.rows, args.features)
        record = Path(scratch) / "record.jsonl"
        record.touch()
        port = free_port()
        command = [
            sys.executable, __file__, "serve", str(folder), str(record), "--host", "127.0.0.1",
            "--http-port", str(port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
            "--log-level", "WARNING",
        ]  # fmt: skip
        env = {**os.environ, **({"LARGE_INPUT_PROFILE": str(args.profile)} if args.profile else {})}
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            _wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", server)
            results = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                for framework in args.only:
                    alone = framework_alone(trained["models"][framework], trained["features"], args.repeats)
                    for kind, (body, headers) in bodies(trained["features"]).items():
                        if kind not in args.bodies:
                            continue
                        results.append(
                            _measure_one(http, record, framework, kind, body, headers, alone, args)
                        )
        finally:
            server.terminate()
            server.wait(30)
    return {
        "method": {"rows": args.rows, "features": args.features, "dtype": "FP32", "repeats": args.repeats},
        "raw_copy_ms": _raw_copy(trained["features"], args.repeats) * 1e3,
        "environment": {"cpus": os.cpu_count(), "platform": platform.platform(), "versions": _versions()},
        "results": results,
    }


def _measure_one(
    http: Any,
    record: Path,
    framework: str,
    kind: str,
    body: bytes,
    headers: dict[str, str],
    alone: float,
    args: Any,
) -> dict[str, Any]:
    latencies, lines = [], []
    for attempt in range(args.repeats + 2):
        seen = len(record.read_text().splitlines())
        start = time.perf_counter()
        response = http.post(f"/v2/models/{framework}/infer", content=body, headers=headers)
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.text[:500]
        if attempt >= 2:  # warm-ups: the thread pool, the inline budget's first measure
            latencies.append(elapsed)
            lines.append(json.loads(record.read_text().splitlines()[seen]))
    e2e = statistics.median(latencies)
    framework_s = statistics.median(line["framework_s"] for line in lines)
    return {
        "framework": framework,
        "body": kind,
        "body_mb": round(len(body) / 1e6, 1),
        "e2e_ms": e2e * 1e3,
        "server_runtime_ms": statistics.median(line["runtime_s"] for line in lines) * 1e3,
        "decode_ms": statistics.median(line["decode_s"] for line in lines) * 1e3,
        "framework_ms": framework_s * 1e3,
        "framework_alone_ms": alone * 1e3,
        "outside_framework_ms": (e2e - framework_s) * 1e3,
        "decoded_dtype": lines[-1]["decoded_dtype"],
        "native_input_dtype": lines[-1]["native_input_dtype"],
        "shares_memory": all(line["shares_memory"] for line in lines),
    }


def _raw_copy(features: Any, repeats: int) -> float:
    """The copy core's binary tensor decoder makes (core.types.raw.decode_raw:
    a writable array, independent of the request buffer), timed here."""
    from core.types.datatypes import Datatype
    from core.types.raw import decode_raw

    raw = features.tobytes()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        decode_raw("input-0", Datatype.FP32, list(features.shape), raw)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = [
        "core",
        "numpy",
        "scikit-learn",
        "xgboost-cpu",
        "lightgbm",
        "core-sklearn",
        "core-xgboost",
        "core-lightgbm",
    ]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except Exception:
            found[name] = "-"
    return found


def report(results: dict[str, Any], markdown: bool) -> str:
    columns = [
        ("framework", "framework"), ("body", "body"), ("body_mb", "MB"), ("e2e_ms", "end-to-end ms"),
        ("server_runtime_ms", "in runtime ms"), ("framework_ms", "framework ms"),
        ("framework_alone_ms", "framework alone ms"), ("outside_framework_ms", "outside framework ms"),
        ("native_input_dtype", "dtype to native code"), ("shares_memory", "no copy"),
    ]  # fmt: skip
    rows = [
        [f"{row[key]:.1f}" if isinstance(row[key], float) else str(row[key]) for key, _ in columns]
        for row in results["results"]
    ]
    heads = [head for _, head in columns]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(head), *(len(row[i]) for row in rows)) for i, head in enumerate(heads)]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in [heads, *rows]
    )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        return serve(sys.argv[2], sys.argv[3], sys.argv[4:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--only", type=lambda text: text.split(","), default=list(FRAMEWORKS))
    parser.add_argument("--bodies", type=lambda text: text.split(","), default=["json", "binary"])
    parser.add_argument("--profile", type=Path, help="write the server's cProfile statistics there")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    results = measure(args)
    print(report(results, args.markdown))
    copy = results["raw_copy_ms"]
    print(f"\ncore's binary tensor decoder copies the {args.rows}-row tensor once: {copy:.1f} ms")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    failures = [row for row in results["results"] if not row["shares_memory"]]
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
