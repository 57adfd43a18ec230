"""Serve one package's tiny model from an installed wheel, and check it.

Run by the release check (and the compatibility test) with the python of a
fresh venv that holds the wheels, in isolated mode (`python -I`: nothing of
the repository on its path), so it imports only what the venv has: the
standard library, core and the package with their dependencies.

    python -I serve_smoke.py PACKAGE WORKDIR [README]

It trains or builds PACKAGE's tiny model with the package's own framework,
writes it with the model-settings.json of the package's README (and sends
the README's request; core has its own Echo model, the README's custom
runtime), runs `core start` on loopback ports, waits for /v2/health/ready,
sends the request over REST and compares the answer with the framework's
own prediction. Exit status 0 when they match; the server's log otherwise.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

READY_TIMEOUT = 300.0  # seconds: loading a model may import a big framework
REQUEST_TIMEOUT = 120.0
Expected = dict[str | None, Any]  # output name (None: the only output) -> values

# core's own model: the custom runtime of the repository's README.
CORE_MODELS_PY = """
import numpy as np
from core import Model, decode_args


class Echo(Model):
    async def load(self) -> bool:
        return True

    @decode_args
    async def predict(self, text: list[str]) -> np.ndarray:
        return np.array([len(item) for item in text])
"""
CORE_SETTINGS = {"name": "echo", "implementation": "models.Echo"}
CORE_REQUEST = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "core"]}]}


def readme_examples(readme: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The README's model-settings.json (the ```json block with
    "implementation") and request (the one with "inputs")."""
    blocks = re.findall(r"```json\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    settings = [json.loads(block) for block in blocks if '"implementation"' in block]
    requests = [json.loads(block) for block in blocks if '"inputs"' in block]
    if len(settings) != 1 or len(requests) != 1:
        raise SystemExit(f"{readme}: expected one model-settings example and one request, got {blocks}")
    return settings[0], requests[0]


def features(request: dict[str, Any], dtype: Any = np.float32) -> np.ndarray:
    tensor = request["inputs"][0]
    return np.asarray(tensor["data"], dtype=dtype).reshape(tensor["shape"])


def requested(request: dict[str, Any]) -> list[str]:
    return [output["name"] for output in request.get("outputs", [])]


def artifact(folder: Path, settings: dict[str, Any]) -> Path:
    return folder / settings["parameters"]["uri"]


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris  # bundled with scikit-learn: no download

    data, labels = load_iris(return_X_y=True)
    return data, labels


def make_core(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    (folder / "models.py").write_text(CORE_MODELS_PY)
    return {None: [len(text) for text in request["inputs"][0]["data"]]}


def make_sklearn(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    import joblib
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(*iris())
    joblib.dump(model, artifact(folder, settings))
    return {name: getattr(model, name)(features(request)) for name in requested(request)}


def make_xgboost(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2).fit(*iris())
    model.save_model(artifact(folder, settings))
    return {name: getattr(model, name)(features(request)) for name in requested(request)}


def make_lightgbm(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    import joblib
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=4, verbose=-1).fit(*iris())
    joblib.dump(model, artifact(folder, settings))
    return {name: getattr(model, name)(features(request)) for name in requested(request)}


def make_mlflow(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    """A pyfunc model (no other framework needed) that sums the request's
    columns, with a signature naming them (written out: mlflow's
    infer_signature needs scipy, which mlflow-skinny does not bring)."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    class RowTotal(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            # no annotations: mlflow would read them as a signature
            return model_input.sum(axis=1).to_numpy()

    columns = {tensor["name"]: tensor["data"] for tensor in request["inputs"]}
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in columns]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]),
    )
    mlflow.pyfunc.save_model(
        artifact(folder, settings),
        python_model=RowTotal(),
        signature=signature,
        pip_requirements=["mlflow-skinny"],  # not inferred: that would import-scan this script
    )
    return {None: pd.DataFrame(columns, dtype="float64").sum(axis=1).to_numpy()}


def make_alibi_detect(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    """The README's detector: KSDrift on a seeded normal reference."""
    from alibi_detect.cd import KSDrift

    from core_alibi_detect import save_detector

    reference = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    detector = KSDrift(reference, p_val=0.05)
    save_detector(detector, artifact(folder, settings))
    result = detector.predict(features(request))["data"]
    return {"is_drift": result["is_drift"], "p_val": result["p_val"]}


def make_huggingface(folder: Path, settings: dict[str, Any], request: dict[str, Any]) -> Expected:
    """A tiny text classifier built from a small config (no hub), the one
    core-huggingface's own tests use."""
    from transformers import pipeline

    from core_huggingface.testing import build_text_classifier

    checkpoint = build_text_classifier(artifact(folder, settings))
    task = settings["parameters"]["extra"]["task"]
    answers = pipeline(task, model=str(checkpoint))(list(request["inputs"][0]["data"]))
    return {
        "label": [answer["label"] for answer in answers],
        "score": [answer["score"] for answer in answers],
    }


MAKERS: dict[str, Callable[[Path, dict[str, Any], dict[str, Any]], Expected]] = {
    "core": make_core,
    "core-sklearn": make_sklearn,
    "core-xgboost": make_xgboost,
    "core-lightgbm": make_lightgbm,
    "core-mlflow": make_mlflow,
    "core-alibi-detect": make_alibi_detect,
    "core-huggingface": make_huggingface,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(server: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"core start exited with {server.returncode} before it was ready")
        try:
            if get(url + "/v2/health/ready")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"not ready within {READY_TIMEOUT:.0f} s")


def compare(outputs: dict[str, Any], expected: Expected) -> list[str]:
    problems = []
    for name, values in expected.items():
        if name is None:
            if len(outputs) != 1:
                problems.append(f"expected one output, got {sorted(outputs)}")
                continue
            (name,) = outputs
        if name not in outputs:
            problems.append(f"no output {name!r} (got {sorted(outputs)})")
            continue
        got = np.asarray(outputs[name]["data"]).ravel()
        want = np.asarray(values).ravel()
        if want.dtype.kind in "USO":
            matched = got.tolist() == want.tolist()
        else:
            matched = got.shape == want.shape and np.allclose(got, want, rtol=1e-5, atol=1e-6)
        if not matched:
            problems.append(f"output {name!r}: served {got.tolist()}, the framework says {want.tolist()}")
    return problems


def main(argv: list[str]) -> int:
    package, workdir = argv[0], Path(argv[1])
    if package == "core":
        settings, request = CORE_SETTINGS, CORE_REQUEST
    else:
        settings, request = readme_examples(Path(argv[2]))
    models = workdir / "models"
    folder = models / settings["name"]
    folder.mkdir(parents=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))
    try:
        expected = MAKERS[package](folder, settings, request)
    except Exception as error:  # the framework itself refuses the README's example
        print(f"making {package}'s model, or its own answer to the request, failed: {error!r}")
        return 1

    http_port = free_port()
    url = f"http://127.0.0.1:{http_port}"
    core = Path(sys.executable).with_name("core.exe" if os.name == "nt" else "core")
    command = [
        str(core), "start", str(models), "--host", "127.0.0.1", "--http-port", str(http_port),
        "--grpc-port", str(free_port()), "--metrics-port", str(free_port()),
    ]  # fmt: skip
    # No hub downloads: a model that needs one fails at once.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_ready(server, url)
            status, body = post(f"{url}/v2/models/{settings['name']}/infer", request)
        except (RuntimeError, OSError) as error:
            problems = [str(error)]
        else:
            if status != 200:
                problems = [f"infer answered {status}: {body.decode(errors='replace')}"]
            else:
                outputs = {output["name"]: output for output in json.loads(body)["outputs"]}
                problems = compare(outputs, expected)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    if problems:
        print("\n".join(problems), f"\n--- core start's log ---\n{log_path.read_text(errors='replace')}")
        return 1
    print(f"{package}: core start served {settings['name']!r}: ready, and its answer matched")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
