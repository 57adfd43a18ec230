"""alibi-detect detectors served by a server that cannot import alibi-detect.

alibi-detect pins numpy<2, while the server's environment (this test's,
`.venv`) runs numpy 2 without it. The detectors' model-settings.json name
`parameters.environment_path`: `.venvs/alibi-detect` (made by `python3 dev.py
test`), which has core, core-alibi-detect and alibi-detect on numpy 1.26. The
detectors are fitted and saved there too, in a subprocess, which also writes
down what they predict for the test data; the server, started here with two
workers, must answer the same, keep the online detector's state in one
instance, count its runs on its own /metrics and refuse bad input with a 400."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.testing import ServerProcess, child_pids

ROOT = Path(__file__).resolve().parents[2]
ALIBI_VENV = ROOT / ".venvs" / "alibi-detect"
ALIBI_PYTHON = ALIBI_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

# Run with the alibi-detect environment's Python: argv[1] the model
# repository, argv[2] the environment's folder. Fits a KSDrift and a
# CVMDriftOnline on a seeded sample, saves each into a model folder, then
# writes expected.json: the test data and what the fitted detectors predict
# for it (the online one row by row, in the order the test sends the rows).
FIT = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import alibi_detect
    import numpy as np
    from alibi_detect.cd import CVMDriftOnline, KSDrift

    from core_alibi_detect import save_detector

    root, environment = Path(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(100, 2)).astype(np.float32)
    same = rng.normal(size=(30, 2)).astype(np.float32)
    shifted = (rng.normal(size=(30, 2)) + 1.0).astype(np.float32)
    stream = rng.normal(size=(12, 2)).astype(np.float32)

    detectors = {
        "drift": KSDrift(reference, p_val=0.05),
        "online": CVMDriftOnline(reference, ert=50, window_sizes=[10], n_bootstraps=300),
    }
    for name, detector in detectors.items():
        save_detector(detector, root / name)
        settings = {
            "name": name,
            "implementation": "alibi-detect",
            "parameters": {"environment_path": environment},
        }
        (root / name / "model-settings.json").write_text(json.dumps(settings))

    def plain(value):
        return None if value is None else np.asarray(value).tolist()

    ks = {
        label: {key: plain(value) for key, value in detectors["drift"].predict(x)["data"].items()}
        for label, x in (("same", same), ("shifted", shifted))
    }
    online = [detectors["online"].predict(row)["data"] for row in stream]
    expected = {
        "numpy": np.__version__,
        "alibi_detect": alibi_detect.__version__,
        "same": same.tolist(),
        "shifted": shifted.tolist(),
        "stream": stream.tolist(),
        "ks": ks,
        "online": {key: [plain(p[key]) for p in online] for key in ("time", "test_stat")},
    }
    (root / "expected.json").write_text(json.dumps(expected))
    """
)


def alibi_python() -> Path:
    """The alibi-detect environment's Python; the test fails without it
    (never skips: it would then check nothing, unnoticed)."""
    if not ALIBI_PYTHON.exists():
        pytest.fail(
            f"{ALIBI_VENV} is missing: `python3 dev.py test` creates it (core, core-sklearn and "
            "core-alibi-detect with alibi-detect, on numpy 1.26)",
            pytrace=False,
        )
    return ALIBI_PYTHON


def fit_detectors(python: Path, repository: Path) -> dict[str, Any]:
    script = repository.parent / "fit.py"
    script.write_text(FIT)
    # Nothing of the server's environment on the detectors' path.
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(python), str(script), str(repository), str(ALIBI_VENV.resolve())],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, f"fitting the detectors failed:\n{done.stdout}\n{done.stderr}"
    return dict(json.loads((repository / "expected.json").read_text()))


def infer_body(rows: list[list[float]]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "x",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP32",
                "data": [value for row in rows for value in row],
            }
        ]
    }


def infer(http: httpx.Client, model: str, rows: list[list[float]]) -> httpx.Response:
    return http.post(f"/v2/models/{model}/infer", json=infer_body(rows))


def outputs_of(response: httpx.Response) -> dict[str, np.ndarray]:
    assert response.status_code == 200, response.text
    return {
        # float: JSON has no NaN, an online detector's test_stat before its
        # window fills may come back as null.
        output["name"]: np.asarray(output["data"], dtype=float).reshape(output["shape"])
        for output in response.json()["outputs"]
    }


def environment_workers(server: ServerProcess) -> set[int]:
    """The server's child processes running the alibi-detect environment's Python."""
    assert server.process is not None
    found = set()
    for child in child_pids(server.process.pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:  # exited meanwhile
            continue
        if command and Path(command[0].decode()).is_relative_to(ALIBI_VENV.resolve()):
            found.add(child)
    return found


def counters(server: ServerProcess, name: str) -> dict[str, float]:
    """The samples `name` on the server's /metrics, summed by model."""
    response = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                model = sample.labels["model_name"]
                counts[model] = counts.get(model, 0.0) + sample.value
    return counts


def detections(server: ServerProcess) -> dict[str, float]:
    return counters(server, "alibi_detect_detections_total")


async def infer_at_once(url: str, model: str, requests: list[list[list[float]]]) -> list[httpx.Response]:
    """Send every request without waiting for the others' answers."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        bodies = [infer_body(rows) for rows in requests]
        return list(await asyncio.gather(*(http.post(f"/v2/models/{model}/infer", json=b) for b in bodies)))


def test_detectors_served_from_their_environment(tmp_path: Path) -> None:
    python = alibi_python()
    # The scenario is real: the server's environment (this one: ServerProcess
    # starts sys.executable) has numpy 2 and no alibi-detect.
    assert int(np.__version__.split(".")[0]) >= 2, np.__version__
    assert importlib.util.find_spec("alibi_detect") is None
    assert importlib.util.find_spec("core_alibi_detect") is None
    repository = tmp_path / "models"
    repository.mkdir()
    expected = fit_detectors(python, repository)
    assert expected["numpy"].startswith("1."), expected["numpy"]

    with (
        ServerProcess(repository, "--parallel-workers", "2", python=sys.executable, timeout=180) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        for model in ("drift", "online"):
            ready = http.get(f"/v2/models/{model}/ready")
            assert ready.status_code == 200, (model, ready.text)
        # The environment's own worker pool: two workers, its Python.
        assert len(environment_workers(server)) == 2

        # KSDrift: what the detector itself predicts, for data without and with drift.
        for label in ("same", "shifted"):
            response = infer(http, "drift", expected[label])
            served = outputs_of(response)
            own = expected["ks"][label]
            assert response.json()["parameters"]["name"] == "KSDrift"
            assert served["is_drift"].ravel().tolist() == [own["is_drift"]], label
            for key in ("p_val", "distance"):
                np.testing.assert_allclose(served[key], own[key], rtol=1e-6, err_msg=f"{label}: {key}")
        assert [expected["ks"][label]["is_drift"] for label in ("same", "shifted")] == [0, 1]

        # CVMDriftOnline: one instance however many workers. Sent one after
        # the other, requests go to the same replica anyway: its time counts
        # every row of every request, and its test statistics are those of
        # the detector fed the whole stream.
        stream = expected["stream"]
        served_online = [outputs_of(infer(http, "online", stream[i : i + 4])) for i in range(0, 12, 4)]
        times = np.concatenate([outputs["time"] for outputs in served_online]).ravel()
        assert times.tolist() == list(range(1, 13)) == expected["online"]["time"]
        test_stat = np.concatenate([outputs["test_stat"] for outputs in served_online])
        own_stat = np.asarray(expected["online"]["test_stat"], dtype=float)
        assert test_stat.shape == own_stat.shape == (12, 1, 2)
        assert not np.isnan(own_stat[-1]).any()  # the window filled
        np.testing.assert_allclose(test_stat, own_stat, rtol=1e-6, equal_nan=True)
        # Sent at once, requests would spread over replicas: there is one,
        # which runs them one after the other, each on its own rows.
        more = np.random.default_rng(1).normal(size=(4, 5, 2)).tolist()
        answers = asyncio.run(infer_at_once(server.url, "online", more))
        runs = sorted(outputs_of(answer)["time"].ravel().tolist() for answer in answers)
        assert runs == [list(range(start, start + 5)) for start in range(13, 33, 5)], runs
        log = server.log()
        assert "model 'online': 1 replica(s), the most its runtime allows" in log, log
        assert "model 'drift': 1 replica(s)" not in log, log
        # Runs counted on the server process's /metrics, from the environment's workers.
        assert detections(server) == {"drift": 2, "online": 7}
        assert counters(server, "alibi_detect_rows_total") == {"drift": 60, "online": 32}

        # A row of three features for a detector fitted on two: a 400 that says so.
        bad = infer(http, "drift", [[0.0, 1.0, 2.0]])
        assert bad.status_code == 400, bad.text
        assert "each instance must have shape [2]" in bad.json()["error"], bad.text
        # Still serving, the same answers; the refused request was no run.
        served = outputs_of(infer(http, "drift", expected["shifted"]))
        np.testing.assert_allclose(served["p_val"], expected["ks"]["shifted"]["p_val"], rtol=1e-6)
        assert detections(server) == {"drift": 3, "online": 7}
        assert server.alive()
