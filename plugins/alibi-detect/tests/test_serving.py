"""All ten detectors served by one real `core start` (default settings): each
answers what its own `predict` answers, over REST JSON, REST with binary
tensors (tritonclient.http) and gRPC (tritonclient.grpc), with the numpy
dtypes kept and the detector's meta in the response parameters; parameters
from the settings and the request; bad inputs are 400s naming the problem.

Stateful detectors (the online drift ones, Mahalanobis) change with every
prediction: each is compared with a second copy loaded from the same folder
before the server started, fed the same rows in the same order. Every test
that sends rows to one of them sends them to its copy too, so the tests stay
independent of their order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import alibi_detect
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from alibi_detect.cd import (
    ChiSquareDrift,
    CVMDrift,
    CVMDriftOnline,
    FETDrift,
    FETDriftOnline,
    KSDrift,
    TabularDrift,
)
from alibi_detect.od import IForest, Mahalanobis, SpectralResidual
from tritonclient.utils import np_to_triton_dtype, triton_to_np_dtype

from core.testing import ServerProcess
from core_alibi_detect import load_detector

# Reference rows (fitted on) and held-out rows (same distribution) of `data`.
REFERENCE = slice(0, 150)
HELD_OUT = slice(150, 200)

STATELESS = ["ks", "chi-square", "tabular", "cvm", "fet", "iforest", "spectral-residual"]
ONLINE = ["cvm-online", "fet-online"]


@dataclass
class Repository:
    root: Path  # the folder the server serves
    detectors: dict[str, Any]  # as fitted in the test
    copies: dict[str, Any]  # loaded with core_alibi_detect.load_detector before the server started
    requests: dict[str, np.ndarray]  # a request's rows, per stateless model


def mixed(data: Any, rows: slice) -> np.ndarray:
    """Two continuous columns and a categorical one, for TabularDrift."""
    return np.hstack([data.continuous[rows, :2], data.categorical[rows, :1]]).astype(np.float32)


@pytest.fixture(scope="module")
def repository(
    tmp_path_factory: pytest.TempPathFactory, data: Any, write_model: Callable[..., Path]
) -> Repository:
    root = tmp_path_factory.mktemp("detectors")
    reference = data.continuous[REFERENCE]
    # The online detectors' bootstraps draw from numpy's global generator.
    np.random.seed(0)
    iforest = IForest()
    iforest.fit(reference)
    iforest.infer_threshold(reference, threshold_perc=95)
    mahalanobis = Mahalanobis()
    # 150 updates of its running mean and covariance: served with them.
    mahalanobis.infer_threshold(reference, threshold_perc=95)
    detectors: dict[str, Any] = {
        "ks": KSDrift(reference),
        "chi-square": ChiSquareDrift(data.categorical[REFERENCE]),
        "tabular": TabularDrift(mixed(data, REFERENCE), categories_per_feature={2: None}),
        "cvm": CVMDrift(reference),
        "fet": FETDrift(data.binary[REFERENCE], alternative="greater"),
        "cvm-online": CVMDriftOnline(
            data.continuous, ert=50, window_sizes=[10], n_bootstraps=300, verbose=False
        ),
        # Its thresholds are simulated again at every load (unseeded), which
        # in alibi-detect 0.13 fails now and then for some sizes (a binomial
        # probability a hair above 1); these never failed in 1500 draws.
        "fet-online": FETDriftOnline(
            data.binary, ert=100, window_sizes=[10], n_bootstraps=300, verbose=False
        ),
        "iforest": iforest,
        "mahalanobis": mahalanobis,
        "spectral-residual": SpectralResidual(threshold=3.0, window_amp=10, window_local=10, n_est_points=5),
    }
    for name, detector in detectors.items():
        write_model(root, name, detector)
    write_model(root, "ks-feature", detectors["ks"], extra={"predict_parameters": {"drift_type": "feature"}})
    # Saved before any update: it learns the number of features from its first request.
    write_model(root, "mahalanobis-fresh", Mahalanobis(threshold=mahalanobis.threshold))
    outliers = data.continuous[HELD_OUT][:10] * 4.0
    requests = {
        "ks": data.continuous[HELD_OUT],
        "chi-square": data.categorical[HELD_OUT],
        "tabular": mixed(data, HELD_OUT),
        "cvm": data.continuous_shifted,
        "fet": data.binary[HELD_OUT],
        "iforest": np.vstack([data.continuous[HELD_OUT][:10], outliers]),
        "spectral-residual": data.series,
    }
    copies = {name: load_detector(root / name) for name in [*detectors, "ks-feature", "mahalanobis-fresh"]}
    return Repository(root, detectors, copies, requests)


@pytest.fixture(scope="module")
def server(repository: Repository) -> Iterator[ServerProcess]:
    with ServerProcess(repository.root, timeout=120) as served:
        yield served


# Helpers


@dataclass
class Answer:
    outputs: dict[str, np.ndarray]  # in the response's order, in the numpy dtype of each datatype
    parameters: dict[str, Any]


def rest(server: ServerProcess, model: str, rows: np.ndarray, **parameters: Any) -> Answer:
    """A REST request with a JSON body (httpx)."""
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "x",
                "shape": list(rows.shape),
                "datatype": np_to_triton_dtype(rows.dtype),
                "data": rows.ravel().tolist(),
            }
        ]
    }
    if parameters:
        body["parameters"] = parameters
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    outputs = {}
    for output in answer["outputs"]:
        dtype = triton_to_np_dtype(output["datatype"])
        # JSON has no NaN: it comes as null.
        values = [np.nan if value is None else value for value in output["data"]]
        outputs[output["name"]] = np.asarray(values, dtype=dtype).reshape(output["shape"])
    return Answer(outputs, answer.get("parameters", {}))


def binary(server: ServerProcess, model: str, rows: np.ndarray, **parameters: Any) -> Answer:
    """A REST request with binary tensors (tritonclient.http)."""
    tensor = triton_http.InferInput("x", list(rows.shape), np_to_triton_dtype(rows.dtype))
    tensor.set_data_from_numpy(rows, binary_data=True)
    with triton_http.InferenceServerClient(f"127.0.0.1:{server.http_port}") as client:
        result = client.infer(model, [tensor], parameters=parameters or None)
    response = result.get_response()
    for output in response["outputs"]:
        assert output["parameters"]["binary_data_size"] > 0, output  # binary in the answer too
    names = [output["name"] for output in response["outputs"]]
    return Answer({name: result.as_numpy(name) for name in names}, response.get("parameters", {}))


def grpc(server: ServerProcess, model: str, rows: np.ndarray, **parameters: Any) -> Answer:
    """A gRPC request (tritonclient.grpc: the tensor in raw_input_contents)."""
    tensor = triton_grpc.InferInput("x", list(rows.shape), np_to_triton_dtype(rows.dtype))
    tensor.set_data_from_numpy(rows)
    with triton_grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as client:
        result = client.infer(model, [tensor], parameters=parameters or None)
    response = result.get_response()
    assert len(response.raw_output_contents) == len(response.outputs)  # raw in the answer too
    names = [output.name for output in response.outputs]
    parameters_out = {key: _grpc_value(value) for key, value in response.parameters.items()}
    return Answer({name: result.as_numpy(name) for name in names}, parameters_out)


def _grpc_value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("parameter_choice"))


TRANSPORTS = {"rest": rest, "binary": binary, "grpc": grpc}


def predicted(
    detector: Any, rows: np.ndarray, online: bool = False, **parameters: Any
) -> dict[str, np.ndarray]:
    """What the detector's own predict says of `rows`, as the outputs the
    server should answer: its `data` without the None values, scalars as
    1-element arrays; an online drift detector fed one row at a time, each
    output stacked along a first axis."""
    if online:
        # Copied at once: a detector may update in place what it returned before.
        runs = [
            {name: None if value is None else np.array(value) for name, value in run["data"].items()}
            for run in (detector.predict(row, **parameters) for row in rows)
        ]
        names = [name for name, value in runs[0].items() if value is not None]
        return {name: np.stack([run[name] for run in runs]) for name in names}
    data = detector.predict(rows, **parameters)["data"]
    return {name: np.atleast_1d(np.asarray(value)) for name, value in data.items() if value is not None}


def assert_outputs(answer: Answer, expected: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> None:
    """Same names in the same order, and for each (but `skip`) the same
    dtype, shape and values."""
    assert list(answer.outputs) == list(expected)
    for name, value in expected.items():
        served = answer.outputs[name]
        assert (name, served.dtype, served.shape) == (name, value.dtype, value.shape)
        if name not in skip:
            np.testing.assert_allclose(served, value, rtol=1e-6, equal_nan=True, err_msg=name)


def verdicts(test_stat: np.ndarray, threshold: np.ndarray) -> set[int]:
    """The is_drift an online drift detector may answer for one row: 1 if
    the largest statistic over windows of a feature is above its threshold,
    0 if all are below; FETDriftOnline draws when one is equal."""
    with np.errstate(invalid="ignore"):
        largest = np.full(test_stat.shape[-1], -np.inf)
        if not np.isnan(test_stat).all():
            largest = np.nanmax(test_stat, axis=0)
    if (largest > threshold).any():
        return {1}
    return {0, 1} if (largest == threshold).any() else {0}


def meta(detector: Any) -> dict[str, Any]:
    """A detector's meta as the response parameters carry it (no nulls)."""
    return {key: value for key, value in detector.meta.items() if value is not None}


def error(server: ServerProcess, model: str, body: dict[str, Any]) -> str:
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 400, response.text
    return str(response.json()["error"])


# Tests


def test_every_detector_is_ready(server: ServerProcess, repository: Repository) -> None:
    index = httpx.post(f"{server.url}/v2/repository/index", json={}, timeout=10).json()
    assert {item["name"]: item["state"] for item in index} == {name: "READY" for name in repository.copies}, (
        index
    )


@pytest.mark.parametrize("model", STATELESS)
@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_a_stateless_detector_answers_its_own_predict(
    server: ServerProcess, repository: Repository, model: str, transport: str
) -> None:
    rows = repository.requests[model]
    answer = TRANSPORTS[transport](server, model, rows)
    assert_outputs(answer, predicted(repository.detectors[model], rows))
    assert answer.parameters == meta(repository.copies[model])
    assert answer.parameters["name"] == type(repository.detectors[model]).__name__


def test_output_datatypes_and_shapes(server: ServerProcess, repository: Repository) -> None:
    """Spelled out for three detectors: the datatypes are the numpy dtypes
    of the detector's values, is_drift a 1-element INT64."""
    response = httpx.post(
        f"{server.url}/v2/models/ks/infer",
        json={"inputs": [{"name": "x", "shape": [4, 3], "datatype": "FP32", "data": [0.5] * 12}]},
        timeout=60,
    ).json()
    assert [(o["name"], o["datatype"], o["shape"]) for o in response["outputs"]] == [
        ("is_drift", "INT64", [1]),
        ("distance", "FP32", [3]),
        ("p_val", "FP32", [3]),
        ("threshold", "FP64", [1]),
    ]
    assert response["parameters"] == {
        "name": "KSDrift",
        "online": False,
        "version": alibi_detect.__version__,
        "detector_type": "drift",
        "version_warning": False,
    }
    answer = rest(server, "fet", repository.requests["fet"])
    assert {name: value.dtype for name, value in answer.outputs.items()} == {
        "is_drift": np.int64,
        "distance": np.float64,
        "p_val": np.float64,
        "threshold": np.float64,
    }
    answer = rest(server, "iforest", repository.requests["iforest"])
    assert {name: (value.dtype, value.shape) for name, value in answer.outputs.items()} == {
        "instance_score": (np.float64, (20,)),
        "is_outlier": (np.int64, (20,)),
    }
    assert answer.parameters["detector_type"] == "outlier"
    assert answer.parameters["data_type"] == "tabular"


def test_ks_finds_drift_on_shifted_data_only(server: ServerProcess, data: Any) -> None:
    shifted = rest(server, "ks", data.continuous_shifted).outputs
    assert shifted["is_drift"].tolist() == [1]
    assert (shifted["p_val"] < shifted["threshold"]).all()
    alike = rest(server, "ks", data.continuous[HELD_OUT]).outputs
    assert alike["is_drift"].tolist() == [0]
    assert (alike["p_val"] > alike["threshold"]).all()


def test_iforest_and_spectral_residual_find_their_outliers(
    server: ServerProcess, repository: Repository
) -> None:
    iforest = rest(server, "iforest", repository.requests["iforest"]).outputs
    assert iforest["is_outlier"][10:].tolist() == [1] * 10  # the rows scaled by 4
    series = rest(server, "spectral-residual", repository.requests["spectral-residual"]).outputs
    assert np.flatnonzero(series["is_outlier"]).tolist() == [60]  # the spike


def test_spectral_residual_takes_timestamps_as_a_request_parameter(
    server: ServerProcess, repository: Repository, data: Any
) -> None:
    """`t`, a list in the JSON parameters, reaches predict as an array."""
    timestamps = np.arange(len(data.series)) * 2.0
    answer = rest(server, "spectral-residual", data.series, t=timestamps.tolist())
    detector = repository.detectors["spectral-residual"]
    assert_outputs(answer, predicted(detector, data.series, t=timestamps))


@pytest.mark.parametrize("model", ONLINE)
def test_an_online_drift_detector_runs_row_by_row_like_its_copy(
    server: ServerProcess, repository: Repository, data: Any, model: str
) -> None:
    """12 rows like the reference, then 8 drifted ones, over each transport
    in turn: every output has one entry per row. test_stat, time and ert
    equal the copy's; the thresholds are drawn by bootstrap at every load
    (so the copy's differ): they are NaN where the copy's are (before the
    window is full), and is_drift must agree with the served test_stat and
    threshold."""
    copy = repository.copies[model]
    if model == "cvm-online":
        batches = [data.continuous[:12], data.continuous_shifted[:8]]
    else:
        batches = [data.binary[:12], np.ones((8, 2), dtype=data.binary.dtype)]
    batches.append(batches[1])
    served = {}
    for (transport, send), rows in zip(TRANSPORTS.items(), batches, strict=True):
        answer = send(server, model, rows)
        expected = predicted(copy, rows, online=True)
        assert_outputs(answer, expected, skip=("is_drift", "threshold"))
        outputs = answer.outputs
        assert all(len(value) == len(rows) for value in outputs.values()), transport
        assert (np.isnan(outputs["threshold"]) == np.isnan(expected["threshold"])).all(), transport
        for stat, threshold, drift in zip(
            outputs["test_stat"], outputs["threshold"], outputs["is_drift"], strict=True
        ):
            assert drift in verdicts(stat, threshold), (transport, stat, threshold, drift)
        assert answer.parameters == meta(copy), transport
        served[transport] = outputs
    times = np.concatenate([outputs["time"] for outputs in served.values()])
    assert (np.diff(times) == 1).all(), times  # one update per row, in order
    stats = np.concatenate([outputs["test_stat"] for outputs in served.values()])
    full = times >= 10  # a window of 10 rows
    assert np.isfinite(stats[full]).all() and np.isnan(stats[~full]).all()
    assert full[-8:].all()
    if model == "cvm-online":
        assert served["grpc"]["is_drift"].any()  # a window of shifted rows


def test_mahalanobis_updates_like_its_copy(server: ServerProcess, repository: Repository, data: Any) -> None:
    copy = repository.copies["mahalanobis"]
    for (transport, send), rows in zip(
        TRANSPORTS.items(),
        [data.continuous[HELD_OUT][:20], data.continuous_shifted[:10], data.continuous[:5]],
        strict=True,
    ):
        answer = send(server, "mahalanobis", rows)
        assert_outputs(answer, predicted(copy, rows))
        assert answer.parameters == meta(copy), transport
    # Request parameters reach it too.
    rows = data.continuous_shifted[10:15] * 3
    answer = rest(server, "mahalanobis", rows, return_instance_score=False)
    expected = predicted(copy, rows, return_instance_score=False)
    assert list(expected) == ["is_outlier"]
    assert_outputs(answer, expected)
    assert answer.outputs["is_outlier"].tolist() == [1] * 5


def test_a_fresh_mahalanobis_then_expects_the_features_it_has_seen(
    server: ServerProcess, repository: Repository, data: Any
) -> None:
    """Saved before any update, Mahalanobis has no feature count (its mean
    is 0): its first request gives it one, which it then expects like any
    fitted detector, the same 400 naming the expected shape."""
    copy = repository.copies["mahalanobis-fresh"]
    rows = data.continuous[:30]
    assert_outputs(rest(server, "mahalanobis-fresh", rows), predicted(copy, rows))
    message = error(server, "mahalanobis-fresh", {"inputs": [tensor([2, 2], "FP64", [0.1, 0.2, 0.3, 0.4])]})
    assert "model 'mahalanobis-fresh': each instance must have shape [3] (3 features), not [2]" in message
    rows = data.continuous_shifted[:5]
    assert_outputs(rest(server, "mahalanobis-fresh", rows), predicted(copy, rows))  # not updated by the 400


def test_predict_parameters_from_settings_and_the_request(
    server: ServerProcess, repository: Repository, data: Any
) -> None:
    """ks-feature is `ks` with predict_parameters {"drift_type": "feature"}."""
    ks, rows = repository.detectors["ks"], data.continuous_shifted
    by_feature = rest(server, "ks-feature", rows)
    assert_outputs(by_feature, predicted(ks, rows, drift_type="feature"))
    assert by_feature.outputs["is_drift"].tolist() == [1, 1, 1]
    assert by_feature.outputs["threshold"].tolist() == [0.05]  # no Bonferroni correction by feature
    # The request's drift_type wins over the settings'.
    batch = rest(server, "ks-feature", rows, drift_type="batch")
    assert_outputs(batch, predicted(ks, rows, drift_type="batch"))
    assert batch.outputs["is_drift"].tolist() == [1]
    # A request parameter is added to the settings' ones: still by feature.
    partial = rest(server, "ks-feature", rows, return_p_val=False)
    assert_outputs(partial, predicted(ks, rows, drift_type="feature", return_p_val=False))
    assert list(partial.outputs) == ["is_drift", "distance"]
    assert partial.outputs["is_drift"].tolist() == [1, 1, 1]
    # The same through tritonclient's own request parameters, HTTP and gRPC.
    for send in (binary, grpc):
        answer = send(server, "ks-feature", rows, drift_type="batch", return_distance=False)
        assert_outputs(answer, predicted(ks, rows, drift_type="batch", return_distance=False))
        assert answer.outputs["is_drift"].tolist() == [1]


def test_request_parameters_reach_predict(server: ServerProcess, repository: Repository, data: Any) -> None:
    rows = data.continuous_shifted[:20]
    answer = rest(server, "ks", rows, drift_type="feature", return_distance=False)
    assert_outputs(
        answer, predicted(repository.detectors["ks"], rows, drift_type="feature", return_distance=False)
    )
    answer = rest(server, "iforest", repository.requests["iforest"], return_instance_score=False)
    assert list(answer.outputs) == ["is_outlier"]


def test_a_pd_request_is_one_column_per_feature(
    server: ServerProcess, repository: Repository, data: Any
) -> None:
    rows = data.continuous_shifted[:30]
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": name, "shape": [len(rows)], "datatype": "FP32", "data": rows[:, column].tolist()}
            for column, name in enumerate(["a", "b", "c"])
        ],
    }
    response = httpx.post(f"{server.url}/v2/models/ks/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    expected = predicted(repository.detectors["ks"], rows)
    assert list(outputs) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    ("model", "rows", "datatype"),
    [("chi-square", "categorical", np.int32), ("fet", "binary", np.bool_), ("ks", "continuous", np.float64)],
)
def test_any_numeric_datatype(
    server: ServerProcess, repository: Repository, data: Any, model: str, rows: str, datatype: type
) -> None:
    sent = getattr(data, rows)[HELD_OUT].astype(datatype)
    answer = binary(server, model, sent)
    assert_outputs(answer, predicted(repository.detectors[model], sent))


def tensor(shape: list[int], datatype: str, values: list[Any]) -> dict[str, Any]:
    return {"name": "x", "shape": shape, "datatype": datatype, "data": values}


BAD_REQUESTS = {
    "two features, not three": (
        "ks",
        {"inputs": [tensor([2, 2], "FP32", [0.1, 0.2, 0.3, 0.4])]},
        "model 'ks': each instance must have shape [3] (3 features), not [2]",
    ),
    "one instance without its batch axis": (
        "ks",
        {"inputs": [tensor([3], "FP32", [0.1, 0.2, 0.3])]},
        "model 'ks': each instance must have shape [3] (3 features), not []",
    ),
    "an online detector, four features": (
        "cvm-online",
        {"inputs": [tensor([1, 4], "FP32", [0.1, 0.2, 0.3, 0.4])]},
        "model 'cvm-online': each instance must have shape [3] (3 features), not [4]",
    ),
    "mahalanobis, two features": (
        "mahalanobis",
        {"inputs": [tensor([1, 2], "FP64", [0.1, 0.2])]},
        "model 'mahalanobis': each instance must have shape [3] (3 features), not [2]",
    ),
    "iforest, two features": (
        "iforest",
        {"inputs": [tensor([1, 2], "FP64", [0.1, 0.2])]},
        "model 'iforest': each instance must have shape [3] (3 features), not [2]",
    ),
    "text": (
        "ks",
        {"inputs": [tensor([1, 3], "BYTES", ["a", "b", "c"])]},
        "model 'ks': detectors take numbers, not object data",
    ),
    "an empty batch": (
        "ks",
        {"inputs": [tensor([0, 3], "FP32", [])]},
        "model 'ks': the request holds no instances (its first dimension is 0)",
    ),
    "an empty batch, online": (
        "fet-online",
        {"inputs": [tensor([0, 2], "INT64", [])]},
        "model 'fet-online': the request holds no instances (its first dimension is 0)",
    ),
    "an empty series": (
        "spectral-residual",
        {"inputs": [tensor([0], "FP64", [])]},
        "model 'spectral-residual': the request holds no instances (its first dimension is 0)",
    ),
    "no inputs": ("ks", {"inputs": []}, "model 'ks': the request has no inputs"),
    "two tensors": (
        "ks",
        {
            "inputs": [
                tensor([1, 3], "FP32", [0.1, 0.2, 0.3]),
                dict(tensor([1, 3], "FP32", [1, 2, 3]), name="y"),
            ]
        },
        "np request codec needs exactly 1 input, got 2",
    ),
    "an unknown parameter": (
        "ks",
        {"inputs": [tensor([1, 3], "FP32", [0.1, 0.2, 0.3])], "parameters": {"drift_typ": "feature"}},
        "model 'ks': unknown request parameter 'drift_typ': "
        "KSDrift.predict accepts drift_type, return_distance, return_p_val",
    ),
    "an unknown parameter, online": (
        "cvm-online",
        {"inputs": [tensor([1, 3], "FP32", [0.1, 0.2, 0.3])], "parameters": {"return_p_val": True}},
        "model 'cvm-online': unknown request parameter 'return_p_val': "
        "CVMDriftOnline.predict accepts return_test_stat",
    ),
    "a parameter value the detector refuses": (
        "ks",
        {"inputs": [tensor([1, 3], "FP32", [0.1, 0.2, 0.3])], "parameters": {"drift_type": "sideways"}},
        "model 'ks': the detector refused the input",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_is_a_400_naming_the_problem(
    server: ServerProcess, repository: Repository, data: Any, case: str
) -> None:
    model, body, message = BAD_REQUESTS[case]
    assert message in error(server, model, body)
    # The server, and the model, still answer. For a stateful detector the
    # copy gets the same rows: the refused request must not have updated it.
    rows = data.binary[:3] if model == "fet-online" else data.continuous[:3]
    if model == "spectral-residual":
        rows = data.series[:40]
    answer = rest(server, model, rows)
    if model in (*ONLINE, "mahalanobis"):
        expected = predicted(repository.copies[model], rows, online=model in ONLINE)
        assert_outputs(answer, expected, skip=("is_drift", "threshold") if model in ONLINE else ())
    else:
        assert_outputs(answer, predicted(repository.detectors[model], rows))
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
