"""KServe's V1 protocol against a real server: framework runtimes answer V1
requests with no code of their own, a custom runtime answers `:explain`."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from core.testing import ServerProcess

ROWS = slice(0, 150, 7)  # rows from all three classes
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TEXTS = ["good great fine", "bad awful poor", "great good", "poor bad"]

MODELS_PY = textwrap.dedent(
    '''
    """A runtime with `explain`: each feature's contribution to a weighted sum."""

    import numpy as np

    from core import Model
    from core.codecs import NumpyCodec, NumpyRequestCodec
    from core.types import InferenceRequest, InferenceResponse

    WEIGHTS = np.array([1.0, -2.0, 3.0, -4.0])


    class WeightedSum(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            features = self.decode_request(payload, default_codec=NumpyRequestCodec)
            return self.encode_response(features @ WEIGHTS, default_codec=NumpyRequestCodec)

        async def explain(self, payload: InferenceRequest) -> InferenceResponse:
            features = self.decode_request(payload, default_codec=NumpyRequestCodec)
            return InferenceResponse(
                model_name=self.name,
                outputs=[NumpyCodec.encode_output("contributions", features * WEIGHTS)],
            )


    class Exploding(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            raise ValueError("boom")
    '''
)


@pytest.fixture(scope="module")
def frame_classifier(iris: Any) -> LogisticRegression:
    """Fitted on a DataFrame: it checks the column names of what it predicts on."""
    frame = pd.DataFrame(iris.features.astype(np.float64), columns=COLUMNS)
    return LogisticRegression(max_iter=1000).fit(frame, iris.labels)


@pytest.fixture(scope="module")
def text_classifier() -> object:
    return make_pipeline(CountVectorizer(), LogisticRegression()).fit(TEXTS, [1, 0, 1, 0])


@pytest.fixture(scope="module")
def v1_server(
    tmp_path_factory: pytest.TempPathFactory,
    model_folder: Any,
    iris: Any,
    frame_classifier: LogisticRegression,
    text_classifier: object,
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("v1-models")
    for name, estimator in (
        ("iris", iris.classifier),
        ("frame", frame_classifier),
        ("text", text_classifier),
    ):
        settings = {"name": name, "implementation": "sklearn", "parameters": {"uri": "./model.joblib"}}
        model_folder(root / name, settings, estimator)
    for name, implementation in (("weighted", "models.WeightedSum"), ("exploding", "models.Exploding")):
        folder = model_folder(root / name, {"name": name, "implementation": implementation})
        (folder / "models.py").write_text(MODELS_PY)
    with ServerProcess(root) as process:
        yield process


@pytest.fixture(scope="module")
def v1(v1_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=v1_server.url, timeout=30) as http:
        yield http


def predictions(response: httpx.Response) -> list[object]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["predictions"]
    result: list[object] = body["predictions"]
    return result


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_predict_equals_scikit_learn(v1: httpx.Client, iris: Any, key: str) -> None:
    rows = iris.features[ROWS]
    response = v1.post("/v1/models/iris:predict", json={key: rows.tolist()})
    assert predictions(response) == iris.classifier.predict(rows).tolist()


def test_predict_with_integer_instances(v1: httpx.Client, iris: Any) -> None:
    rows = np.rint(iris.features[ROWS]).astype(np.int64)
    response = v1.post("/v1/models/iris:predict", json={"instances": rows.tolist()})
    assert predictions(response) == iris.classifier.predict(rows).tolist()


def test_predict_with_row_records(v1: httpx.Client, iris: Any, frame_classifier: LogisticRegression) -> None:
    rows = iris.features[ROWS].astype(np.float64)
    records = [dict(zip(COLUMNS, row, strict=True)) for row in rows.tolist()]
    response = v1.post("/v1/models/frame:predict", json={"instances": records})
    expected = frame_classifier.predict(pd.DataFrame(rows, columns=COLUMNS))
    assert predictions(response) == expected.tolist()


def test_predict_with_strings(v1: httpx.Client, text_classifier: object) -> None:
    texts = ["good fine", "awful bad", "great"]
    response = v1.post("/v1/models/text:predict", json={"instances": texts})
    assert predictions(response) == text_classifier.predict(texts).tolist()  # type: ignore[attr-defined]


def test_explain(v1: httpx.Client) -> None:
    rows = [[1.0, 1.0, 1.0, 1.0], [0.5, 0.0, 2.0, 1.0]]
    response = v1.post("/v1/models/weighted:explain", json={"instances": rows})
    assert response.status_code == 200, response.text
    assert response.json() == {"explanations": [[1.0, -2.0, 3.0, -4.0], [0.5, -0.0, 6.0, -4.0]]}
    assert predictions(v1.post("/v1/models/weighted:predict", json={"instances": rows})) == [-2.0, 2.5]


def test_explain_of_a_model_without_it_is_501(v1: httpx.Client, iris: Any) -> None:
    response = v1.post("/v1/models/iris:explain", json={"instances": iris.features[:2].tolist()})
    assert response.status_code == 501
    assert "explain" in response.json()["error"]


def test_list_models(v1: httpx.Client) -> None:
    response = v1.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {"models": ["exploding", "frame", "iris", "text", "weighted"]}


def test_model_ready(v1: httpx.Client) -> None:
    response = v1.get("/v1/models/iris")
    assert response.status_code == 200
    assert response.json() == {"name": "iris", "ready": True}


def test_model_not_ready_is_503(limited_server) -> None:  # type: ignore[no-untyped-def]
    url = limited_server.process.url
    response = httpx.get(f"{url}/v1/models/load-raises")
    assert response.status_code == 503
    assert response.json() == {"name": "load-raises", "ready": False}
    response = httpx.post(f"{url}/v1/models/load-raises:predict", json={"instances": [[1, 2, 3, 4]]})
    assert response.status_code == 503
    assert "load-raises" in response.json()["error"]


V1_ERRORS: dict[str, tuple[str, bytes | object, int, list[str]]] = {
    "malformed JSON": ("iris", b'{"instances": [', 400, ["malformed JSON"]),
    "not an object": ("iris", [[1, 2, 3, 4]], 400, ["JSON object"]),
    "no instances": ("iris", {"rows": [[1, 2, 3, 4]]}, 400, ["instances"]),
    "instances not a list": ("iris", {"instances": 3}, 400, ["instances"]),
    "empty instances": ("iris", {"instances": []}, 400, ["instances"]),
    "ragged instances": ("iris", {"instances": [[1, 2, 3, 4], [1, 2]]}, 400, ["regular"]),
    "mixed instances": ("iris", {"instances": [1, "a"]}, 400, ["mix"]),
    "objects inside lists": ("iris", {"instances": [[{"a": 1}]]}, 400, ["numbers"]),
    "records with different keys": ("frame", {"instances": [{"a": 1}, {"b": 2}]}, 400, ["keys"]),
    "wrong number of features": ("iris", {"instances": [[1, 2, 3]]}, 400, ["features"]),
    "unknown model": ("nope", {"instances": [[1, 2, 3, 4]]}, 404, ["nope"]),
    "model raises": ("exploding", {"instances": [[1, 2]]}, 500, ["ValueError", "boom"]),
}


@pytest.mark.parametrize("case", V1_ERRORS, ids=list(V1_ERRORS))
def test_errors(v1: httpx.Client, iris: Any, case: str) -> None:
    name, body, status, words = V1_ERRORS[case]
    url = f"/v1/models/{name}:predict"
    response = v1.post(url, content=body) if isinstance(body, bytes) else v1.post(url, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert list(response.json()) == ["error"]
    assert "Traceback" not in error
    for word in words:
        assert word in error
    # And the server still serves.
    rows = iris.features[:3]
    response = v1.post("/v1/models/iris:predict", json={"instances": rows.tolist()})
    assert predictions(response) == iris.classifier.predict(rows).tolist()


def test_unknown_model_readiness_is_404(v1: httpx.Client) -> None:
    response = v1.get("/v1/models/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


def test_openapi_lists_the_v1_routes(v1: httpx.Client) -> None:
    paths = v1.get("/v2/docs/dataplane.json").json()["paths"]
    v1_paths = {
        "/v1/models": "get",
        "/v1/models/{name}": "get",
        "/v1/models/{name}:predict": "post",
        "/v1/models/{name}:explain": "post",
    }
    for path, method in v1_paths.items():
        operation = paths[path][method]
        assert operation["tags"] == ["v1"]
        assert "422" not in operation["responses"]
    body = paths["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "instances" in body["schema"]["properties"]
