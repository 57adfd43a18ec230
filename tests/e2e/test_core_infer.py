"""`core infer`: batch inference from files of requests, CSV, Parquet and
arrays, over REST and gRPC, against a real server; results complete and in
input order (checked against scikit-learn's predictions on the same rows),
failures as error records, clear errors when the run cannot start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.client import batch
from core.testing import ServerProcess, free_port

CORE = str(Path(sys.executable).with_name("core"))
ROWS = 10_000

# A runtime whose answer takes the time its request asks for: requests
# finish out of order, and a server can be kept busy.
SLEEPY_PY = textwrap.dedent(
    '''
    import asyncio

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray


    class Sleepy(Model):
        """Sleeps input `delay` seconds, then answers it as output `delay`."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            delay = float(to_ndarray(payload.inputs[0]).ravel()[0])
            await asyncio.sleep(delay)
            output = ResponseOutput(name="delay", shape=[1], datatype="FP64", data=[delay])
            return InferenceResponse(model_name=self.name, outputs=[output])
    '''
)


def write_sleepy(folder: Path, model_folder: Any) -> None:
    model_folder(folder, {"name": "sleepy", "implementation": "models.Sleepy"})
    (folder / "models.py").write_text(SLEEPY_PY)


def run(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CORE, "infer", *args], capture_output=True, text=True, timeout=timeout, input=input, env=os.environ
    )


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def infer_server(
    tmp_path_factory: pytest.TempPathFactory, iris: Any, model_folder: Any, model_settings: Any
) -> Iterator[ServerProcess]:
    """The iris classifier and Sleepy, in the server process."""
    root = tmp_path_factory.mktemp("infer-models")
    model_folder(root / "iris", model_settings("iris"), iris.classifier)
    write_sleepy(root / "sleepy", model_folder)
    with ServerProcess(root, env={"CORE_PARALLEL_WORKERS": "0"}) as server:
        yield server


@pytest.fixture(scope="module")
def rows(iris: Any) -> np.ndarray:
    """ROWS iris rows (float32), drawn with repetition, in a fixed order."""
    return iris.features[np.random.default_rng(0).integers(0, len(iris.features), ROWS)]


@pytest.fixture(scope="module")
def expected(iris: Any, rows: np.ndarray) -> np.ndarray:
    return iris.classifier.predict(rows)


@pytest.fixture(scope="module")
def requests_file(tmp_path_factory: pytest.TempPathFactory, rows: np.ndarray) -> Path:
    """One JSON request a line, one row each."""
    path = tmp_path_factory.mktemp("infer-input") / "requests.jsonl"
    path.write_text("".join(json.dumps(one_row(row)) + "\n" for row in rows))
    return path


def one_row(row: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": row.tolist()}]}


def url_of(server: ServerProcess, transport: str) -> str:
    return server.url if transport == "rest" else f"127.0.0.1:{server.grpc_port}"


def predictions(found: list[dict[str, Any]]) -> np.ndarray:
    return np.concatenate([record["outputs"][0]["data"] for record in found])


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_a_file_of_requests_comes_back_complete_and_in_order(
    infer_server: ServerProcess, requests_file: Path, expected: np.ndarray, tmp_path: Path, transport: str
) -> None:
    output = tmp_path / "responses.jsonl"
    url = url_of(infer_server, transport)
    result = run(str(requests_file), "-m", "iris", "-u", url, "-t", transport, "-w", "8", "-o", str(output))
    assert result.returncode == 0, result.stderr
    found = records(output)
    assert [record["index"] for record in found] == list(range(ROWS))
    assert all(record["model_name"] == "iris" for record in found)
    np.testing.assert_array_equal(predictions(found), expected)
    assert f"{ROWS} succeeded, 0 failed, {ROWS} rows" in result.stderr
    assert "Traceback" not in result.stderr


def test_csv_rows_as_a_dataframe_per_request_into_csv(
    infer_server: ServerProcess, rows: np.ndarray, expected: np.ndarray, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    pd.DataFrame(rows, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"]).to_csv(
        source, index=False
    )
    output = tmp_path / "predictions.csv"
    result = run(str(source), "-m", "iris", "-u", infer_server.url, "-w", "8", "-b", "100", "-o", str(output))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(output)
    assert list(table.columns) == ["predict", "error"]  # one line per input row
    np.testing.assert_array_equal(table["predict"], expected)
    assert table["error"].isna().all()
    assert f"100 succeeded, 0 failed, {ROWS} rows" in result.stderr


def test_csv_columns_as_one_tensor_over_grpc(
    infer_server: ServerProcess, rows: np.ndarray, expected: np.ndarray, tmp_path: Path
) -> None:
    source = tmp_path / "rows.csv"
    pd.DataFrame(rows.astype(np.float64)).to_csv(source, index=False)
    output = tmp_path / "responses.jsonl"
    url = url_of(infer_server, "grpc")
    result = run(
        str(source), "-m", "iris", "-t", "grpc", "-u", url, "--input-name", "input-0", "--datatype", "fp32",
        "-b", "64", "-o", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = records(output)
    assert [record["index"] for record in found] == list(range(len(found)))
    assert found[1]["rows"] == [64, 128]
    assert found[-1]["rows"] == [ROWS - ROWS % 64, ROWS]
    np.testing.assert_array_equal(predictions(found), expected)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_an_npy_array_cut_along_its_rows(
    infer_server: ServerProcess,
    iris: Any,
    rows: np.ndarray,
    expected: np.ndarray,
    tmp_path: Path,
    transport: str,
) -> None:
    source = tmp_path / "rows.npy"
    np.save(source, rows)
    output = tmp_path / "responses.jsonl"
    url = url_of(infer_server, transport)
    result = run(
        str(source), "-m", "iris", "-u", url, "-t", transport, "-w", "8", "-b", "250",
        "--outputs", "predict,predict_proba", "-o", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = records(output)
    assert len(found) == ROWS // 250
    np.testing.assert_array_equal(predictions(found), expected)
    probabilities = np.concatenate(
        [np.reshape(record["outputs"][1]["data"], record["outputs"][1]["shape"]) for record in found]
    )
    np.testing.assert_allclose(probabilities, iris.classifier.predict_proba(rows), rtol=1e-6)


def test_parquet_in_and_out(
    infer_server: ServerProcess, rows: np.ndarray, expected: np.ndarray, tmp_path: Path
) -> None:
    source = tmp_path / "rows.parquet"
    pd.DataFrame(rows, columns=["a", "b", "c", "d"]).to_parquet(source)
    output = tmp_path / "predictions.parquet"
    result = run(
        str(source), "-m", "iris", "-u", infer_server.url, "--input-name", "input-0",
        "--outputs", "predict,predict_proba", "-o", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(output)
    assert list(table.columns) == [
        "predict",
        "predict_proba_0",
        "predict_proba_1",
        "predict_proba_2",
        "error",
    ]
    np.testing.assert_array_equal(table["predict"], expected)


@pytest.mark.parametrize(
    ("transport", "binary"), [("rest", "--binary"), ("rest", "--no-binary"), ("grpc", "--binary")]
)
def test_a_bad_request_is_an_error_record_and_the_rest_goes_on(
    infer_server: ServerProcess,
    rows: np.ndarray,
    expected: np.ndarray,
    tmp_path: Path,
    transport: str,
    binary: str,
) -> None:
    lines = [json.dumps(one_row(row)) for row in rows[:1000]]
    # Text where the model takes numbers: the model refuses it (a 400).
    lines[500] = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}
    )
    # FP32 data that is not numbers: refused before it is sent, or by the server.
    lines[700] = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}]}
    )
    lines[900] = "not JSON"
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "responses.jsonl"
    url = url_of(infer_server, transport)
    result = run(str(source), "-m", "iris", "-u", url, "-t", transport, binary, "-w", "8", "-o", str(output))
    assert result.returncode == 1, result.stderr
    found = records(output)
    assert [record["index"] for record in found] == list(range(1000))
    failed = {record["index"]: record for record in found if "error" in record}
    assert set(failed) == {500, 700, 900}
    assert failed[500]["status"] == 400
    assert "could not convert string to float" in failed[500]["error"]
    assert "not JSON" in failed[900]["error"] or "Invalid JSON" in failed[900]["error"]
    good = [record for record in found if "error" not in record]
    keep = np.setdiff1d(np.arange(1000), [500, 700, 900])
    np.testing.assert_array_equal(predictions(good), expected[keep])
    assert "997 succeeded, 3 failed, 1000 rows" in result.stderr


def test_results_stay_in_input_order_when_answers_come_out_of_order(
    infer_server: ServerProcess, tmp_path: Path
) -> None:
    delays = np.random.default_rng(1).uniform(0, 0.02, 300).round(4)
    source = tmp_path / "requests.jsonl"
    source.write_text(
        "".join(
            json.dumps({"inputs": [{"name": "delay", "shape": [1], "datatype": "FP64", "data": [delay]}]})
            + "\n"
            for delay in delays
        )
    )
    # Python, with a window of 20 results at most held back.
    summary = batch.run(
        source, "sleepy", url=infer_server.url, workers=16, window=20, output=tmp_path / "out.jsonl"
    )
    assert (summary.succeeded, summary.failed, summary.requests) == (300, 0, 300)
    found = records(tmp_path / "out.jsonl")
    assert [record["index"] for record in found] == list(range(300))
    np.testing.assert_array_equal([record["outputs"][0]["data"][0] for record in found], delays)


def test_standard_input_to_standard_output(
    infer_server: ServerProcess, rows: np.ndarray, expected: np.ndarray
) -> None:
    lines = "".join(json.dumps(one_row(row)) + "\n" + "\n" for row in rows[:50])  # blank lines are skipped
    result = run("-", "-m", "iris", "-u", infer_server.url, "-q", input=lines)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["index"] for record in found] == list(range(50))
    np.testing.assert_array_equal(predictions(found), expected[:50])


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_an_unreachable_server_is_a_clear_error(requests_file: Path, transport: str) -> None:
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}" if transport == "rest" else f"127.0.0.1:{port}"
    started = time.monotonic()
    result = run(str(requests_file), "-m", "iris", "-u", url, "-t", transport, timeout=60)
    assert result.returncode == 2
    assert "cannot reach the server" in result.stderr
    assert str(port) in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert time.monotonic() - started < 30


def test_a_model_that_is_not_there(infer_server: ServerProcess, requests_file: Path) -> None:
    result = run(str(requests_file), "-m", "ghost", "-u", infer_server.url)
    assert result.returncode == 2
    assert "model 'ghost' is not ready" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-H", "no colon"], "is not 'Name: value'"),
        (["--workers", "0"], "must be at least 1"),
        (["--input-format", "xml"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(requests_file: Path, arguments: list[str], message: str) -> None:
    result = run(str(requests_file), "-m", "iris", *arguments)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_missing_input_file(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.jsonl"), "-m", "iris")
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "nope.jsonl" in result.stderr


def test_a_server_that_goes_away_stops_the_run(tmp_path: Path, model_folder: Any) -> None:
    write_sleepy(tmp_path / "models" / "sleepy", model_folder)
    source = tmp_path / "requests.jsonl"
    line = json.dumps({"inputs": [{"name": "delay", "shape": [1], "datatype": "FP64", "data": [0.02]}]})
    source.write_text((line + "\n") * 2000)  # 10 s at 4 at a time
    output = tmp_path / "responses.jsonl"
    with ServerProcess(tmp_path / "models", env={"CORE_PARALLEL_WORKERS": "0"}) as server:
        command = [CORE, "infer", str(source), "-m", "sleepy", "-u", server.url, "-w", "4", "-o", str(output)]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while (not output.exists() or output.stat().st_size < 1000) and time.monotonic() < deadline:
                time.sleep(0.05)
            server.stop()
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1, stderr
    assert "got no answer" in stderr
    found = records(output)
    assert 0 < len(found) < 2000
    assert [record["index"] for record in found] == list(range(len(found)))
    assert "error" in found[-1] and found[-1]["status"] is None
