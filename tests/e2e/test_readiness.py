"""The server is ready only when every model configured at start is ready; a
model that fails to load is reported, and does not stop the others."""

from __future__ import annotations

import httpx
import numpy as np


def test_live_but_not_ready(limited_server) -> None:
    url = limited_server.process.url
    assert httpx.get(f"{url}/v2/health/live").status_code == 200
    response = httpx.get(f"{url}/v2/health/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False}


def test_index_shows_failed_models_with_reasons(limited_server) -> None:
    response = httpx.post(f"{limited_server.process.url}/v2/repository/index", json={})
    assert response.status_code == 200
    items = {item["name"]: item for item in response.json()}
    assert items["good"]["state"] == "READY"
    assert items["missing-artifact"]["state"] == "FAILED"
    assert "nope.joblib" in items["missing-artifact"]["reason"]
    assert items["load-raises"]["state"] == "FAILED"
    assert "cannot load on purpose" in items["load-raises"]["reason"]


def test_index_ready_filter(limited_server) -> None:
    url = f"{limited_server.process.url}/v2/repository/index"
    assert [item["name"] for item in httpx.post(url, json={"ready": True}).json()] == ["good"]
    not_ready = {item["name"] for item in httpx.post(url, json={"ready": False}).json()}
    assert not_ready == {"missing-artifact", "load-raises"}


def test_good_model_still_serves(limited_server, iris) -> None:
    url = limited_server.process.url
    rows = iris.features[::30]
    assert httpx.get(f"{url}/v2/models/good/ready").status_code == 200
    body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.tolist()}]}
    response = httpx.post(f"{url}/v2/models/good/infer", json=body)
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(response.json()["outputs"][0]["data"], iris.classifier.predict(rows))


def test_failed_model_is_503(limited_server) -> None:
    url = limited_server.process.url
    for name, reason in (("missing-artifact", "nope.joblib"), ("load-raises", "cannot load on purpose")):
        response = httpx.get(f"{url}/v2/models/{name}/ready")
        assert response.status_code == 503
        assert response.json() == {"name": name, "ready": False}
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
        response = httpx.post(f"{url}/v2/models/{name}/infer", json=body)
        assert response.status_code == 503
        assert reason in response.json()["error"]
        assert "Traceback" not in response.text


def test_loading_a_broken_model_again_reports_why(limited_server) -> None:
    url = limited_server.process.url
    response = httpx.post(f"{url}/v2/repository/models/load-raises/load")
    assert response.status_code >= 400
    assert "cannot load on purpose" in response.json()["error"]
    assert "Traceback" not in response.text
    assert httpx.get(f"{url}/v2/models/good/ready").status_code == 200
    assert limited_server.process.alive()
