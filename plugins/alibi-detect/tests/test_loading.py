"""Saving and loading detectors: core_alibi_detect's own format round trip
in process; `parameters.uri` as the detector's folder or a file in it;
`core start DETECTOR_FOLDER` without model-settings.json; every load error
(missing backend, pickles, settings) as the FAILED reason in the repository
index of a real server; and liveness while a slow detector loads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from alibi_detect.cd import CVMDriftOnline, KSDrift
from alibi_detect.od import IForest, Mahalanobis, SpectralResidual
from alibi_detect.saving import save_detector as alibi_save_detector

from core.errors import ConfigurationError
from core.testing import ServerProcess
from core_alibi_detect import load_detector, save_detector


def infer(server: ServerProcess, model: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    body = {
        "inputs": [
            {"name": "x", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}
        ]
    }
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def predicted(detector: Any, rows: np.ndarray) -> dict[str, np.ndarray]:
    data = detector.predict(rows)["data"]
    return {name: np.atleast_1d(np.asarray(value)) for name, value in data.items() if value is not None}


def assert_same(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(outputs) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-6, err_msg=name)


def index(server: ServerProcess) -> dict[str, dict[str, Any]]:
    items = httpx.post(f"{server.url}/v2/repository/index", json={}, timeout=10).json()
    return {item["name"]: item for item in items}


def settled(server: ServerProcess, timeout: float = 120) -> dict[str, dict[str, Any]]:
    """The repository index once no model is loading any more."""
    deadline = time.monotonic() + timeout
    while True:
        models = index(server)
        if models and all(item["state"] not in ("LOADING", "UNAVAILABLE") for item in models.values()):
            return models
        assert time.monotonic() < deadline, (models, server.log())
        time.sleep(0.1)


# --- core_alibi_detect.save_detector / load_detector, in process -------------


def test_iforest_round_trip(tmp_path: Path, data: Any) -> None:
    detector = IForest(n_estimators=20)
    detector.fit(data.continuous)
    detector.infer_threshold(data.continuous, threshold_perc=90)
    save_detector(detector, tmp_path / "iforest")
    assert sorted(p.name for p in (tmp_path / "iforest").iterdir()) == [
        "arrays.npz",
        "core-detector.json",
        "isolation_forest.skops",
    ]
    loaded = load_detector(tmp_path / "iforest")
    assert type(loaded) is IForest
    assert loaded.threshold == detector.threshold
    rows = np.vstack([data.continuous_shifted, data.continuous[:20]])
    assert_same(predicted(loaded, rows), predicted(detector, rows))
    assert loaded.meta == detector.meta
    # The file itself names the folder too.
    again = load_detector(tmp_path / "iforest" / "core-detector.json")
    assert_same(predicted(again, rows), predicted(detector, rows))


def test_mahalanobis_round_trip_carries_its_running_statistics(tmp_path: Path, data: Any) -> None:
    detector = Mahalanobis(n_components=2, std_clip=2, start_clip=50)
    detector.infer_threshold(data.continuous[:120], threshold_perc=95)  # 120 updates
    detector.predict(data.continuous_shifted[:10])  # and 10 more
    save_detector(detector, tmp_path / "mahalanobis")
    loaded = load_detector(tmp_path / "mahalanobis")
    assert (loaded.threshold, loaded.n_components, loaded.std_clip, loaded.start_clip) == (
        detector.threshold,
        2,
        2,
        50,
    )
    assert loaded.n == detector.n == 130
    assert isinstance(loaded.n, int)
    np.testing.assert_array_equal(loaded.mean, detector.mean)
    np.testing.assert_array_equal(loaded.C, detector.C)
    assert len(loaded.clip) == 2
    for mine, theirs in zip(loaded.clip, detector.clip, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    # Both continue alike: the same scores, the same updated statistics.
    for rows in (data.continuous[120:160], data.continuous_shifted[10:20]):
        assert_same(predicted(loaded, rows), predicted(detector, rows))
    assert loaded.n == detector.n == 180
    np.testing.assert_allclose(loaded.C, detector.C, rtol=1e-12)


def test_spectral_residual_round_trip(tmp_path: Path, data: Any) -> None:
    detector = SpectralResidual(
        threshold=None, window_amp=8, window_local=12, n_est_points=4, n_grad_points=3
    )
    detector.infer_threshold(data.series, threshold_perc=98)
    save_detector(detector, tmp_path / "spectral-residual")
    loaded = load_detector(tmp_path / "spectral-residual")
    assert (loaded.window_amp, loaded.window_local, loaded.n_est_points, loaded.n_grad_points) == (
        8,
        12,
        4,
        3,
    )
    assert loaded.threshold == detector.threshold
    assert_same(predicted(loaded, data.series), predicted(detector, data.series))
    assert 60 in np.flatnonzero(predicted(loaded, data.series)["is_outlier"])


def test_load_detector_refuses_a_pickle_unless_told(tmp_path: Path, data: Any) -> None:
    alibi_save_detector(KSDrift(data.continuous, preprocess_fn=np.negative), tmp_path / "pickled")
    with pytest.raises(ConfigurationError, match="enable_unsafe_loading") as refused:
        load_detector(tmp_path / "pickled")
    assert str(tmp_path / "pickled" / "preprocess_fn" / "function.dill") in refused.value.message
    loaded = load_detector(tmp_path / "pickled", enable_unsafe_loading=True)
    assert loaded.preprocess_fn is np.negative


# --- A server: detectors by uri, and every load error -------------------------


def write_settings(folder: Path, **settings: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


def hand_written(folder: Path, config: str, reference: np.ndarray) -> None:
    """A detector folder as alibi_detect.saving.save_detector writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "x_ref.npy", reference)
    (folder / "config.toml").write_text(config)


MMD = """name = "MMDDrift"
x_ref = "x_ref.npy"
backend = "{backend}"
p_val = 0.05
n_permutations = 100

[meta]
version = "0.13.0"
"""

# A KSDrift whose preprocessing is a PyTorch model: no backend, a model flavour.
KS_WITH_TORCH_MODEL = """name = "KSDrift"
x_ref = "x_ref.npy"
p_val = 0.05

[preprocess_fn]
src = "@cd.torch.preprocess.preprocess_drift"
batch_size = 32

[preprocess_fn.model]
src = "model"
flavour = "pytorch"

[meta]
version = "0.13.0"
"""


@dataclass
class Mixed:
    server: ServerProcess
    ks: Any
    iforest: Any
    trusted: Any  # the pickled KSDrift, loaded with enable_unsafe_loading
    models: dict[str, dict[str, Any]]  # the settled repository index


@pytest.fixture(scope="module")
def mixed(
    tmp_path_factory: pytest.TempPathFactory, data: Any, write_model: Callable[..., Path]
) -> Iterator[Mixed]:
    """Detectors saved outside the repository and named by `uri`, next to
    models whose loads fail."""
    top = tmp_path_factory.mktemp("mixed")
    saved, root = top / "saved", top / "repository"
    ks = KSDrift(data.continuous)
    save_detector(ks, saved / "ks")
    iforest = IForest(n_estimators=20)
    iforest.fit(data.continuous)
    iforest.infer_threshold(data.continuous, threshold_perc=95)
    save_detector(iforest, saved / "iforest")
    alibi = "alibi-detect"
    write_settings(
        root / "by-folder", name="by-folder", implementation=alibi, parameters={"uri": "../../saved/ks"}
    )
    write_settings(
        root / "by-file",
        name="by-file",
        implementation=alibi,
        parameters={"uri": "../../saved/iforest/arrays.npz"},  # any file of the folder
    )
    write_settings(
        root / "nested" / "by-config",
        name="by-config",
        implementation=alibi,
        parameters={"uri": "../../../saved/ks/config.toml"},
    )
    write_model(root, "adaptive-batching", ks, max_batch_size=4, max_batch_time=0.1)
    for backend in ("tensorflow", "pytorch", "keops"):
        hand_written(root / f"mmd-{backend}", MMD.format(backend=backend), data.continuous)
        write_settings(root / f"mmd-{backend}", name=f"mmd-{backend}", implementation=alibi)
    hand_written(root / "torch-model", KS_WITH_TORCH_MODEL, data.continuous)
    write_settings(root / "torch-model", name="torch-model", implementation=alibi)
    pickled = KSDrift(data.continuous, preprocess_fn=np.negative)  # dill-pickled by alibi-detect
    write_model(root, "pickled", pickled)
    write_model(root, "pickled-trusted", pickled, extra={"enable_unsafe_loading": True})
    for name, extra in (("legacy", {}), ("legacy-trusted", {"enable_unsafe_loading": True})):
        (root / name).mkdir()
        (root / name / "meta.dill").write_bytes(b"never read")
        write_settings(root / name, name=name, implementation=alibi, parameters={"extra": extra})
    write_model(root, "unknown-extra", ks, extra={"batch_sise": 10})
    write_model(root, "unknown-predict-parameter", ks, extra={"predict_parameters": {"drift_typ": "feature"}})
    write_settings(root / "no-detector", name="no-detector", implementation=alibi)
    unthresholded = IForest(n_estimators=5)
    unthresholded.fit(data.continuous)  # no infer_threshold: its threshold is None
    write_model(root, "no-threshold", unthresholded)
    write_model(root, "window-past-timeout", ks, timeout=5, extra={"batch_size": 10, "batch_timeout": 5})
    # A first save of the state cut short leaves an empty state folder,
    # which alibi-detect's loader would fail on.
    online = write_model(
        root, "empty-state", CVMDriftOnline(data.continuous, ert=50, window_sizes=[10], n_bootstraps=300)
    )
    (online / "state").mkdir()
    trusted = load_detector(root / "pickled-trusted", enable_unsafe_loading=True)
    with ServerProcess(root, wait_for="/v2/health/live", timeout=120) as server:
        yield Mixed(server, ks, iforest, trusted, settled(server))


def reason(mixed: Mixed, name: str) -> str:
    entry = mixed.models[name]
    assert entry["state"] == "FAILED", entry
    return str(entry["reason"])


@pytest.mark.parametrize("model", ["by-folder", "by-config", "by-file"])
def test_uri_names_the_folder_or_a_file_in_it(mixed: Mixed, data: Any, model: str) -> None:
    """Relative to model-settings.json: the folder, its config.toml, and
    another of its files (iforest's arrays.npz)."""
    assert mixed.models[model]["state"] == "READY", mixed.models[model]
    rows = np.vstack([data.continuous_shifted, data.continuous[:20]])
    detector = mixed.iforest if model == "by-file" else mixed.ks
    assert_same(infer(mixed.server, model, rows), predicted(detector, rows))


def test_a_failed_model_keeps_the_server_unready(mixed: Mixed) -> None:
    assert httpx.get(f"{mixed.server.url}/v2/health/live", timeout=10).status_code == 200
    assert httpx.get(f"{mixed.server.url}/v2/health/ready", timeout=10).status_code == 503
    ready = sorted(name for name, item in mixed.models.items() if item["state"] == "READY")
    assert ready == ["by-config", "by-file", "by-folder", "empty-state", "pickled-trusted"], mixed.models


def test_adaptive_batching_is_refused(mixed: Mixed) -> None:
    assert "adaptive batching (max_batch_size) would run unrelated requests as one detection" in reason(
        mixed, "adaptive-batching"
    )


@pytest.mark.parametrize(
    ("model", "framework", "extra"),
    [
        ("mmd-tensorflow", "tensorflow", "tensorflow"),
        ("mmd-pytorch", "pytorch", "torch"),
        ("mmd-keops", "keops", "keops"),
        ("torch-model", "pytorch", "torch"),
    ],
)
def test_a_missing_backend_names_the_extra_that_installs_it(
    mixed: Mixed, model: str, framework: str, extra: str
) -> None:
    text = reason(mixed, model)
    detector = "KSDrift" if model == "torch-model" else "MMDDrift"
    assert f"detector '{detector}' needs {framework}, which is not installed" in text
    assert f"pip install 'core-alibi-detect[{extra}]'" in text


def test_a_pickle_in_the_config_is_refused_naming_the_file_and_the_setting(mixed: Mixed) -> None:
    text = reason(mixed, "pickled")
    pickle = mixed.server.folder / "pickled" / "preprocess_fn" / "function.dill"
    assert f"{pickle}: KSDrift's config is pickled" in text
    assert "set parameters.extra.enable_unsafe_loading to true if the file is trusted" in text


def test_a_trusted_pickle_is_loaded_and_served(mixed: Mixed, data: Any) -> None:
    assert mixed.models["pickled-trusted"]["state"] == "READY", mixed.models["pickled-trusted"]
    rows = data.continuous_shifted
    assert_same(infer(mixed.server, "pickled-trusted", rows), predicted(mixed.trusted, rows))


def test_alibi_detect_s_legacy_format_is_refused_unless_trusted(mixed: Mixed) -> None:
    text = reason(mixed, "legacy")
    assert f"{mixed.server.folder / 'legacy' / 'meta.dill'}: alibi-detect's legacy format is pickled" in text
    assert "parameters.extra.enable_unsafe_loading" in text
    # Trusted, it still needs TensorFlow (alibi-detect loads it with it).
    assert "pip install 'core-alibi-detect[tensorflow]'" in reason(mixed, "legacy-trusted")


def test_an_unknown_setting_is_named(mixed: Mixed) -> None:
    text = reason(mixed, "unknown-extra")
    assert "model 'unknown-extra'" in text
    assert "parameters.extra.batch_sise" in text


def test_an_unknown_predict_parameter_in_the_settings_is_named(mixed: Mixed) -> None:
    assert reason(mixed, "unknown-predict-parameter") == (
        "model 'unknown-predict-parameter': unknown parameters.extra.predict_parameters 'drift_typ': "
        "KSDrift.predict accepts drift_type, return_distance, return_p_val"
    )


def test_an_outlier_detector_without_a_threshold_is_a_load_error(mixed: Mixed) -> None:
    assert reason(mixed, "no-threshold") == (
        "model 'no-threshold': the IForest detector has no threshold: "
        "call its infer_threshold (or set threshold) before saving it"
    )


def test_a_window_longer_than_the_model_s_timeout_is_a_load_error(mixed: Mixed) -> None:
    assert "parameters.extra.batch_timeout (5.0 s) must be below the model's timeout (5.0 s)" in reason(
        mixed, "window-past-timeout"
    )


def test_an_empty_state_folder_is_no_state(mixed: Mixed, data: Any) -> None:
    assert mixed.models["empty-state"]["state"] == "READY", mixed.models["empty-state"]
    assert infer(mixed.server, "empty-state", data.continuous[:2])["time"].tolist() == [1, 2]


def test_a_folder_without_a_detector(mixed: Mixed) -> None:
    text = reason(mixed, "no-detector")
    assert f"{mixed.server.folder / 'no-detector'}: no detector there: expected config.toml" in text
    assert "core-detector.json" in text


# --- core start DETECTOR_FOLDER, without model-settings.json ------------------


@pytest.fixture(scope="module")
def bare(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> Iterator[dict[str, tuple[ServerProcess, Any]]]:
    """Two servers, each started on a detector's folder itself: alibi-detect's
    format (config.toml) and core's (core-detector.json, next to a .skops
    file another runtime might claim)."""
    top = tmp_path_factory.mktemp("bare")
    ks = KSDrift(data.continuous)
    iforest = IForest(n_estimators=20)
    iforest.fit(data.continuous)
    iforest.infer_threshold(data.continuous, threshold_perc=95)
    detectors = {"drift-monitor": ks, "outlier-monitor": iforest}
    servers = {}
    for name, detector in detectors.items():
        save_detector(detector, top / name)
        servers[name] = ServerProcess(top / name, timeout=120)
    with ThreadPoolExecutor(len(servers)) as threads:
        try:
            for future in [threads.submit(server.start) for server in servers.values()]:
                future.result()
            yield {name: (servers[name], detectors[name]) for name in servers}
        finally:
            list(threads.map(ServerProcess.stop, servers.values()))


@pytest.mark.parametrize("name", ["drift-monitor", "outlier-monitor"])
def test_core_start_on_a_detector_folder_serves_it(
    bare: dict[str, tuple[ServerProcess, Any]], data: Any, name: str
) -> None:
    server, detector = bare[name]
    models = index(server)
    assert {model: item["state"] for model, item in models.items()} == {name: "READY"}, server.log()
    rows = np.vstack([data.continuous_shifted[:10], data.continuous[:10]])
    assert_same(infer(server, name, rows), predicted(detector, rows))
    assert not (server.folder / "model-settings.json").exists()


# --- Liveness while a slow detector loads -------------------------------------


def test_live_answers_while_an_online_detector_computes_its_thresholds(tmp_path: Path, data: Any) -> None:
    """CVMDriftOnline configures its thresholds by bootstrap when loaded:
    with many bootstraps that takes seconds, on a thread; the server (its
    models in the server process) answers /v2/health/live meanwhile."""
    folder = tmp_path / "slow"
    save_detector(
        CVMDriftOnline(data.continuous, ert=50, window_sizes=[10], n_bootstraps=300, verbose=False), folder
    )
    config = (folder / "config.toml").read_text()
    assert "n_bootstraps = 300\n" in config
    (folder / "config.toml").write_text(config.replace("n_bootstraps = 300\n", "n_bootstraps = 3000\n"))
    write_settings(folder, name="slow", implementation="alibi-detect")
    live_while_loading = 0  # live answered between two indexes that both said LOADING
    with ServerProcess(folder, "--parallel-workers", "0", wait_for="/v2/health/live", timeout=120) as server:
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=server.url) as client:
            # Not listed yet (None): the server has not found its models yet.
            while (state := index(server).get("slow", {}).get("state")) in (None, "LOADING"):
                live = client.get("/v2/health/live", timeout=1.0)
                assert live.status_code == 200, live.text
                if state == "LOADING" and index(server)["slow"]["state"] == "LOADING":
                    live_while_loading += 1
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.1)
        assert state == "READY", (index(server), server.log())
        outputs = infer(server, "slow", data.continuous[:12])
        assert outputs["time"].tolist() == list(range(1, 13))
    assert live_while_loading >= 1
