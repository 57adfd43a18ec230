"""The batch window (`parameters.extra.batch_size`, `batch_timeout`): the
rows of several requests run through the detector once, and every request
of the window gets that run's result (its own rows of the per-row outputs).

One server with two worker processes: a model with a window must run as
one instance, or concurrent requests would fill two half windows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from alibi_detect.cd import CVMDriftOnline, KSDrift
from alibi_detect.od import IForest

from core.testing import ServerProcess
from core_alibi_detect import load_detector

# Long enough that a window of these tests never closes by time unless the
# test means it to: a window that should close by size and does not makes
# the test wait this long, then fail.
NEVER = 30.0


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory, data: Any, write_model: Callable[..., Path]) -> Path:
    root = tmp_path_factory.mktemp("window")
    reference = data.continuous
    for name in ("ks-size", "ks-params", "ks-bad"):
        size = 20 if name == "ks-size" else 10
        write_model(
            root, name, KSDrift(reference, p_val=0.05), extra={"batch_size": size, "batch_timeout": NEVER}
        )
    write_model(
        root, "ks-timeout", KSDrift(reference, p_val=0.05), extra={"batch_size": 1000, "batch_timeout": 1}
    )
    write_model(root, "ks-plain", KSDrift(reference, p_val=0.05))
    forest = IForest(n_estimators=20)
    forest.fit(reference)
    forest.infer_threshold(reference, threshold_perc=90)
    write_model(root, "iforest-size", forest, extra={"batch_size": 20, "batch_timeout": NEVER})
    online = CVMDriftOnline(reference, ert=50, window_sizes=[10], n_bootstraps=300)
    write_model(root, "cvm-size", online, extra={"batch_size": 12, "batch_timeout": NEVER})
    return root


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[ServerProcess]:
    with ServerProcess(repository, "--parallel-workers", "2") as process:
        yield process


def post(http: httpx.Client, model: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v2/models/{model}/infer", json=body)


def at_once(server: ServerProcess, model: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bodies sent concurrently; their answers, in the same order, all 200."""
    with httpx.Client(base_url=server.url, timeout=60) as http, ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda body: post(http, model, body), bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses]
    return [r.json() for r in responses]


def outputs(answer: dict[str, Any]) -> dict[str, np.ndarray]:
    return {o["name"]: np.asarray(o["data"], dtype=float).reshape(o["shape"]) for o in answer["outputs"]}


def window_of(answer: dict[str, Any]) -> tuple[int, int]:
    return answer["parameters"]["window_rows"], answer["parameters"]["window_requests"]


def check_drift(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    """A drift detector's window-level outputs: those of the detector's own
    predict (`expected["data"]`), whole."""
    got = outputs(answer)
    wanted = {key: np.atleast_1d(value) for key, value in expected["data"].items() if value is not None}
    assert sorted(got) == sorted(wanted)
    for key, value in wanted.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=key)


def test_a_window_closed_by_size_gives_every_request_the_run_over_all_rows(
    server: ServerProcess, repository: Path, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    # Two parts like the reference, two shifted: drift shows only over all 20 rows together.
    parts = [
        data.continuous[:5],
        data.continuous_shifted[:5],
        data.continuous[5:10],
        data.continuous_shifted[5:10],
    ]
    answers = at_once(server, "ks-size", [infer_body(part) for part in parts])
    assert [window_of(answer) for answer in answers] == [(20, 4)] * 4
    # KS compares distributions: the rows' order within the window does not matter.
    expected = load_detector(repository / "ks-size").predict(np.concatenate(parts))
    for answer in answers:
        check_drift(answer, expected)
    # What each part would get alone differs: the answers really are the window's.
    alone = load_detector(repository / "ks-size").predict(parts[0])
    assert not np.allclose(alone["data"]["p_val"], expected["data"]["p_val"])


def test_per_row_outputs_of_a_window_are_each_request_s_own_rows(
    server: ServerProcess, repository: Path, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    parts = [
        data.continuous_shifted[:5],
        data.continuous[:5],
        data.continuous_shifted[5:10],
        data.continuous[5:10],
    ]
    answers = at_once(server, "iforest-size", [infer_body(part) for part in parts])
    forest = load_detector(repository / "iforest-size")
    outliers = 0
    for part, answer in zip(parts, answers, strict=True):
        assert window_of(answer) == (20, 4)
        got = outputs(answer)
        expected = forest.predict(part)["data"]
        assert got["instance_score"].shape == (5,)
        np.testing.assert_allclose(got["instance_score"], expected["instance_score"], rtol=1e-6)
        np.testing.assert_array_equal(got["is_outlier"], expected["is_outlier"])
        outliers += int(got["is_outlier"].sum())
    assert 0 < outliers < 20  # the rows are told apart, not all alike


def test_an_online_drift_detector_s_window_runs_row_by_row_in_arrival_order(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    parts = [data.continuous[index : index + 3] for index in range(0, 12, 3)]
    answers = at_once(server, "cvm-size", [infer_body(part) for part in parts])
    times = []
    for answer in answers:
        assert window_of(answer) == (12, 4)
        got = outputs(answer)
        # Every output of an online drift detector is per row: 3 each.
        assert {name: len(value) for name, value in got.items()} == dict.fromkeys(got, 3)
        time = [int(t) for t in got["time"]]
        # A request's rows ran one after the other, in the window's order.
        assert time == list(range(time[0], time[0] + 3))
        times.extend(time)
    assert sorted(times) == list(range(1, 13))


def test_a_lone_request_is_answered_when_its_window_times_out(
    server: ServerProcess, repository: Path, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    rows = data.continuous_shifted[:5]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = post(http, "ks-timeout", infer_body(rows))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert window_of(answer) == (5, 1)
    check_drift(answer, load_detector(repository / "ks-timeout").predict(rows))


def test_requests_with_different_parameters_go_to_different_windows(
    server: ServerProcess, repository: Path, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    plain = [data.continuous[:5], data.continuous[5:10]]
    asking = [data.continuous_shifted[:5], data.continuous_shifted[5:10]]
    bodies = [
        infer_body(plain[0]),
        infer_body(asking[0], return_distance=False),
        infer_body(plain[1]),
        infer_body(asking[1], return_distance=False),
    ]
    answers = at_once(server, "ks-params", bodies)
    assert [window_of(answer) for answer in answers] == [(10, 2)] * 4
    detector = load_detector(repository / "ks-params")
    with_distance = detector.predict(np.concatenate(plain))
    without_distance = detector.predict(np.concatenate(asking), return_distance=False)
    assert "distance" not in outputs(answers[1])
    for answer, expected in zip(answers, [with_distance, without_distance] * 2, strict=True):
        check_drift(answer, expected)


def test_a_bad_request_is_refused_without_breaking_the_window_of_others(
    server: ServerProcess, repository: Path, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    good = [data.continuous[:5], data.continuous_shifted[:5]]
    words = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}
    with httpx.Client(base_url=server.url, timeout=60) as http, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, http, "ks-bad", infer_body(good[0]))
        too_few = post(http, "ks-bad", infer_body(data.continuous[:5, :2]))
        not_numbers = post(http, "ks-bad", words)
        unknown = post(http, "ks-bad", infer_body(good[1], window="please"))
        # The first request still waits for its window to fill: the refused
        # ones neither ran it nor counted in it.
        assert not first.done()
        second = post(http, "ks-bad", infer_body(good[1]))
        answers = [first.result(), second]
    assert too_few.status_code == 400, too_few.text
    assert "3 features" in too_few.json()["error"]
    assert not_numbers.status_code == 400, not_numbers.text
    assert unknown.status_code == 400, unknown.text
    assert "unknown request parameter 'window'" in unknown.json()["error"]
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    expected = load_detector(repository / "ks-bad").predict(np.concatenate(good))
    for response in answers:
        assert window_of(response.json()) == (10, 2)
        check_drift(response.json(), expected)


def test_a_model_with_a_window_runs_as_one_instance(
    server: ServerProcess, data: Any, infer_body: Callable[..., dict[str, Any]]
) -> None:
    log = server.log()
    for name in ("ks-size", "ks-params", "ks-bad", "ks-timeout", "iforest-size", "cvm-size"):
        assert f"model '{name}': 1 replica(s), the most its runtime allows" in log
    # Without a window, a stateless detector is not limited, and answers each request alone.
    assert "model 'ks-plain': 1 replica(s)" not in log
    (answer,) = at_once(server, "ks-plain", [infer_body(data.continuous[:5])])
    assert "window_rows" not in answer["parameters"]
    assert "window_requests" not in answer["parameters"]
