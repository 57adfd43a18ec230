"""Detectors whose predictions update them (online drift detectors, and
Mahalanobis' running mean and covariance): their state is saved every
`state_save_freq` rows and at shutdown, restored at load, and held by one
instance only, however many worker processes the server has."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from alibi_detect.cd import CVMDriftOnline
from alibi_detect.od import Mahalanobis

from core.testing import ServerProcess
from core_alibi_detect import load_detector

# Larger than any test sends: the state is then saved only at shutdown.
RARELY = 1000


def online(data: Any) -> CVMDriftOnline:
    return CVMDriftOnline(data.continuous, ert=50, window_sizes=[10], n_bootstraps=300)


def mahalanobis(data: Any) -> Mahalanobis:
    detector = Mahalanobis()
    detector.infer_threshold(data.continuous, threshold_perc=95)  # 200 updates of its running statistics
    return detector


def infer(server: ServerProcess, model: str, body: dict[str, Any]) -> dict[str, np.ndarray]:
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {
        o["name"]: np.asarray(o["data"], dtype=float).reshape(o["shape"]) for o in response.json()["outputs"]
    }


def times(outputs: dict[str, np.ndarray]) -> list[int]:
    return [int(t) for t in outputs["time"]]


def saved(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


# --- A restart: SIGTERM, then a new server on the same folder -----------------


@dataclass
class Restart:
    root: Path
    elsewhere: Path  # cvm-abs's state_path: absolute, outside the repository
    before: dict[str, dict[str, np.ndarray]]  # answers of the first server, by request
    files_before_stop: list[Path]
    exit_code: int | None
    first_log: str
    server: ServerProcess  # the second one, started on the same folder


@pytest.fixture(scope="module")
def restart(
    tmp_path_factory: pytest.TempPathFactory,
    data: Any,
    write_model: Callable[..., Path],
    infer_body: Callable[..., dict[str, Any]],
) -> Iterator[Restart]:
    root = tmp_path_factory.mktemp("restart")
    elsewhere = tmp_path_factory.mktemp("cvm-abs-state")
    write_model(root, "cvm", online(data), extra={"state_save_freq": RARELY})
    write_model(root, "cvm-rows", online(data), extra={"state_save_freq": RARELY})
    write_model(
        root, "cvm-abs", online(data), extra={"state_save_freq": RARELY, "state_path": str(elsewhere)}
    )
    extra = {"state_save_freq": RARELY, "state_path": "checkpoints/maha"}
    write_model(root, "maha", mahalanobis(data), extra=extra)
    # The default: one worker process, which saves the state when the server stops it.
    first = ServerProcess(root).start()
    try:
        before = {
            "cvm": infer(first, "cvm", infer_body(data.continuous[:5])),
            "cvm-rows": infer(first, "cvm-rows", infer_body(data.continuous[:5])),
            "cvm-abs": infer(first, "cvm-abs", infer_body(data.continuous[:4])),
            "maha-a": infer(first, "maha", infer_body(data.continuous_shifted[:10])),
            "maha-b": infer(first, "maha", infer_body(data.continuous[:10])),
        }
        files = sorted([*root.rglob("state.npz"), *elsewhere.rglob("state.npz")])
    finally:
        exit_code = first.stop(timeout=30)
    with ServerProcess(root) as second:
        yield Restart(root, elsewhere, before, files, exit_code, first.log(), second)


def test_the_state_is_saved_at_shutdown_where_configured(restart: Restart) -> None:
    assert restart.files_before_stop == []  # not before: state_save_freq is not reached
    assert restart.exit_code == 0, restart.first_log
    # The default place: `state` in the detector's folder.
    assert saved(restart.root / "cvm" / "state" / "state.npz")["t"] == 5
    # state_path relative to the detector's folder, and absolute.
    maha = restart.root / "maha" / "checkpoints" / "maha"
    assert saved(maha / "state.npz")["n"] == 200 + 20
    assert not (restart.root / "maha" / "state").exists()
    assert saved(restart.elsewhere / "state.npz")["t"] == 4
    # Saves write a scratch folder, then move its file in place: nothing left over.
    for folder in (restart.root / "cvm" / "state", maha, restart.elsewhere):
        assert sorted(path.name for path in folder.iterdir()) == ["state.npz"]


def test_an_online_drift_detector_s_time_continues_after_a_restart(
    restart: Restart, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    assert times(restart.before["cvm"]) == [1, 2, 3, 4, 5]
    assert times(infer(restart.server, "cvm", infer_body(data.continuous[5:6]))) == [6]
    assert times(infer(restart.server, "cvm", infer_body(data.continuous[6:7]))) == [7]
    assert times(restart.before["cvm-abs"]) == [1, 2, 3, 4]
    assert times(infer(restart.server, "cvm-abs", infer_body(data.continuous[4:5]))) == [5]


def test_after_a_restart_each_row_of_a_request_answers_its_own_time(
    restart: Restart, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    assert times(restart.before["cvm-rows"]) == [1, 2, 3, 4, 5]
    assert times(infer(restart.server, "cvm-rows", infer_body(data.continuous[5:8]))) == [6, 7, 8]


def test_mahalanobis_scores_continue_after_a_restart(
    restart: Restart, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    # The detector as saved (its running statistics after 200 rows), fed the same requests.
    reference = load_detector(restart.root / "maha")
    fresh = load_detector(restart.root / "maha")
    for key, rows in (("maha-a", data.continuous_shifted[:10]), ("maha-b", data.continuous[:10])):
        expected = reference.predict(rows)["data"]["instance_score"]
        np.testing.assert_allclose(restart.before[key]["instance_score"], expected, rtol=1e-6)
    rows = data.continuous[10:20]
    after = infer(restart.server, "maha", infer_body(rows))["instance_score"]
    np.testing.assert_allclose(after, reference.predict(rows)["data"]["instance_score"], rtol=1e-6)
    # Without the 20 updates of the first server, the scores would differ.
    assert not np.allclose(after, fresh.predict(rows)["data"]["instance_score"], rtol=1e-6)


# --- A crash ------------------------------------------------------------------


def test_a_crash_loses_only_the_updates_since_the_last_save(
    tmp_path: Path, data: Any, write_model: Callable[..., Path], infer_body: Callable[..., dict[str, Any]]
) -> None:
    write_model(tmp_path, "cvm", online(data), extra={"state_save_freq": 4})
    state = tmp_path / "cvm" / "state"
    # In-process: the server is the one process holding the detector.
    server = ServerProcess(tmp_path, "--parallel-workers", "0").start()
    try:
        answered = [times(infer(server, "cvm", infer_body(data.continuous[i : i + 1])))[0] for i in range(6)]
        assert answered == [1, 2, 3, 4, 5, 6]
        assert saved(state / "state.npz")["t"] == 4  # saved at 4; 5 and 6 not yet
        assert server.process is not None
        server.process.kill()  # SIGKILL: no unload, no save
        server.process.wait(30)
    finally:
        server.stop()
    assert sorted(path.name for path in state.iterdir()) == ["state.npz"]
    with ServerProcess(tmp_path, "--parallel-workers", "0") as again:
        assert times(infer(again, "cvm", infer_body(data.continuous[6:7]))) == [5]


# --- Two worker processes -----------------------------------------------------


@pytest.fixture(scope="module")
def pool(
    tmp_path_factory: pytest.TempPathFactory, data: Any, write_model: Callable[..., Path]
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("pool")
    write_model(root, "cvm-pool", online(data), extra={"state_save_freq": RARELY})
    write_model(root, "maha-pool", mahalanobis(data), extra={"state_save_freq": 1})
    write_model(root, "cvm-freq", online(data), extra={"state_save_freq": 4})
    with ServerProcess(root, "--parallel-workers", "2") as server:
        yield server


def test_with_two_workers_a_detector_with_state_runs_in_one(
    pool: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    # Concurrent requests would spread over two instances, each with a time of its own.
    parts = [data.continuous[index : index + 3] for index in range(0, 48, 3)]
    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(lambda part: infer(pool, "cvm-pool", infer_body(part)), parts))
    seen = []
    for answer in answers:
        time = times(answer)
        assert time == list(range(time[0], time[0] + 3))  # a request's rows, one after the other
        seen.extend(time)
    assert sorted(seen) == list(range(1, 49))  # one count of updates, none repeated
    # Mahalanobis saves after every request here: its last save counts every row sent.
    parts = [data.continuous[index : index + 5] for index in range(0, 40, 5)]
    with ThreadPoolExecutor(8) as threads:
        list(threads.map(lambda part: infer(pool, "maha-pool", infer_body(part)), parts))
    assert saved(pool.folder / "maha-pool" / "state" / "state.npz")["n"] == 200 + 40
    log = pool.log()
    for name in ("cvm-pool", "maha-pool", "cvm-freq"):
        assert f"model '{name}': 1 replica(s), the most its runtime allows" in log


def test_the_state_is_saved_every_state_save_freq_rows(
    pool: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    file = pool.folder / "cvm-freq" / "state" / "state.npz"
    sent = 0
    expected_saves = {3: None, 6: 6, 7: 6, 10: 10}  # rows sent so far -> t of the saved state
    for rows in (3, 3, 1, 3):
        infer(pool, "cvm-freq", infer_body(data.continuous[sent : sent + rows]))
        sent += rows
        expected = expected_saves[sent]
        if expected is None:
            assert not file.exists()
        else:
            assert saved(file)["t"] == expected, sent
