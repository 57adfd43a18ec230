"""Failures the server survives with a bounded answer: a worker that freezes
(SIGSTOP), calls past their deadline (the model's, the client's), loads that
never return or that kill their worker, and shutdowns with requests in
flight, a hung worker, or a second signal. Every wait here is bounded."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from core.testing import ServerProcess, child_pids

from .conftest import wait_for, wait_until_loaded

FAILURE_MODELS_PY = textwrap.dedent(
    '''
    import asyncio
    import os
    import time

    from core import Model, run_in_thread
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray


    class Slow(Model):
        """Sleeps for the seconds of its input `sleep`, then answers its pid and
        `cancelled`: how many of its calls were cancelled before, their
        caller having given up."""

        cancelled = 0

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            seconds = float(to_ndarray(payload.inputs[0]).ravel()[0]) if payload.inputs else 0.0
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                type(self).cancelled += 1
                raise
            outputs = [
                ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()]),
                ResponseOutput(name="cancelled", shape=[1], datatype="INT64", data=[type(self).cancelled]),
            ]
            return InferenceResponse(model_name=self.name, outputs=outputs)


    class SlowLoad(Slow):
        async def load(self) -> bool:
            await asyncio.sleep(1.0)
            return True


    class SlowUnload(Slow):
        async def unload(self) -> bool:
            await asyncio.sleep(1.5)
            return True


    class HangsOnLoad(Model):
        async def load(self) -> bool:
            await asyncio.Event().wait()
            return True


    class HangsInThread(Model):
        async def load(self) -> bool:
            await run_in_thread(time.sleep, 3600)
            return True


    class ExitsOnLoad(Model):
        async def load(self) -> bool:
            await asyncio.sleep(0.3)
            os._exit(3)
    '''
)


def write(root: Path, name: str, implementation: str, **settings: Any) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "models.py").write_text(FAILURE_MODELS_PY)
    (folder / "model-settings.json").write_text(
        json.dumps({"name": name, "implementation": implementation, **settings})
    )


def sleep_request(seconds: float, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [{"name": "sleep", "shape": [1], "datatype": "FP64", "data": [seconds]}]
    }
    if parameters:
        body["parameters"] = parameters
    return body


def outputs(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {output["name"]: output["data"][0] for output in response.json()["outputs"]}


def workers_of(server: ServerProcess) -> set[int]:
    assert server.process is not None
    return child_pids(server.process.pid)


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: it runs no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def index(server: ServerProcess) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in httpx.post(f"{server.url}/v2/repository/index").json()}


def stop_within(server: ServerProcess, seconds: float) -> tuple[int, float]:
    """The exit status and how long the server took to exit after SIGTERM
    (killed, and the test failed, if it takes longer than `seconds`)."""
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(seconds)
    except Exception:
        server.process.kill()
        pytest.fail(f"the server did not exit within {seconds} s of SIGTERM:\n{server.log()}")
    return code, time.monotonic() - started


# Deadlines of calls: the model's and the client's, in process and in workers.


@pytest.fixture(scope="module", params=["0", "1"], ids=["in-process", "workers"])
def deadline_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("deadlines")
    write(root, "slow", "models.Slow")
    write(root, "slow-limited", "models.Slow", timeout=0.5)
    with ServerProcess(root, "--parallel-workers", request.param) as server:
        yield server


def cancelled(http: httpx.Client, model: str) -> int:
    return int(outputs(http.post(f"/v2/models/{model}/infer", json=sleep_request(0)))["cancelled"])


def test_a_model_past_its_timeout_is_504_naming_it(deadline_server: ServerProcess) -> None:
    with httpx.Client(base_url=deadline_server.url, timeout=20) as http:
        before = cancelled(http, "slow-limited")
        response = http.post("/v2/models/slow-limited/infer", json=sleep_request(5))
        assert response.status_code == 504, response.text
        assert response.json() == {"error": "model 'slow-limited' did not answer within its timeout of 0.5 s"}
        # The call was given up where the model runs too, not left running.
        assert wait_for(lambda: cancelled(http, "slow-limited") == before + 1, timeout=10)
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{deadline_server.grpc_port}")
    sleep = triton_grpc.InferInput("sleep", [1], "FP64")
    sleep.set_data_from_numpy(np.array([5.0]))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("slow-limited", [sleep])
    assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "model 'slow-limited' did not answer within its timeout of 0.5 s" in raised.value.message()


def test_the_timeout_request_parameter_is_honoured(deadline_server: ServerProcess) -> None:
    with httpx.Client(base_url=deadline_server.url, timeout=20) as http:
        before = cancelled(http, "slow")
        # Triton's schedule-policy parameter: microseconds.
        response = http.post("/v2/models/slow/infer", json=sleep_request(5, timeout=300_000))
        assert response.status_code == 504, response.text
        assert response.json()["error"] == "model 'slow' did not answer within the client's timeout of 0.3 s"
        assert wait_for(lambda: cancelled(http, "slow") == before + 1, timeout=10)
        # Within its timeout, a request is answered as usual.
        assert outputs(http.post("/v2/models/slow/infer", json=sleep_request(0.1, timeout=5_000_000)))
        bad = http.post("/v2/models/slow/infer", json=sleep_request(0, timeout="soon"))
        assert bad.status_code == 400
        assert "'timeout' must be a positive integer (microseconds)" in bad.json()["error"]


def test_the_grpc_deadline_is_honoured(deadline_server: ServerProcess) -> None:
    with httpx.Client(base_url=deadline_server.url, timeout=20) as http:
        before = cancelled(http, "slow")
        client = triton_grpc.InferenceServerClient(f"127.0.0.1:{deadline_server.grpc_port}")
        sleep = triton_grpc.InferInput("sleep", [1], "FP64")
        sleep.set_data_from_numpy(np.array([5.0]))
        with pytest.raises(InferenceServerException) as raised:
            client.infer("slow", [sleep], client_timeout=0.3)
        assert raised.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        # The server stopped the model's work when the client's deadline passed.
        assert wait_for(lambda: cancelled(http, "slow") == before + 1, timeout=10)


# A frozen worker


@pytest.fixture
def frozen_repository(tmp_path: Path) -> Path:
    write(tmp_path, "slow", "models.Slow")
    return tmp_path


def test_a_frozen_worker_is_504_then_unready_then_replaced(frozen_repository: Path) -> None:
    env = {"CORE_MODEL_TIMEOUT": "1", "CORE_WORKER_HEARTBEAT_TIMEOUT": "6"}
    with (
        ServerProcess(frozen_repository, "--parallel-workers", "1", env=env) as server,
        httpx.Client(base_url=server.url, timeout=20) as http,
    ):
        (frozen,) = workers_of(server)
        os.kill(frozen, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = http.post("/v2/models/slow/infer", json=sleep_request(0))
            assert response.status_code == 504, response.text
            assert response.json()["error"] == "model 'slow' did not answer within its timeout of 1 s"
            for path in ("/v2/models/slow", "/v2/models/slow/config"):
                answer = http.get(path)
                assert answer.status_code == 504, (path, answer.text)
            assert http.get("/v2/models/slow/stats").status_code in (200, 504)
            # Half the heartbeat timeout without an answer: unready, on both transports.
            wait_for(lambda: http.get("/v2/health/ready").status_code == 503, timeout=15)
            assert time.monotonic() - started < 6, "unready only once killed"
            unready = http.post("/v2/models/slow/infer", json=sleep_request(0))
            assert unready.status_code == 503
            assert "do not answer their heartbeat" in unready.json()["error"]
            # Then killed and replaced, its model loaded again.
            replacement = wait_for(
                lambda: (pids := workers_of(server)) and frozen not in pids and pids, timeout=30
            )
            assert len(replacement) == 1
            wait_for(lambda: http.get("/v2/health/ready").status_code == 200, timeout=30)
            assert outputs(http.post("/v2/models/slow/infer", json=sleep_request(0)))["pid"] in replacement
        finally:
            if not gone(frozen):
                os.kill(frozen, signal.SIGKILL)
        log = server.log()
        assert "has not answered its heartbeat for 3.0 s: unready" in log
        assert "has not answered its heartbeat for 6 s: killing it" in log


def test_the_other_replica_serves_while_a_worker_is_frozen(frozen_repository: Path) -> None:
    env = {"CORE_WORKER_HEARTBEAT_TIMEOUT": "2"}
    with (
        ServerProcess(frozen_repository, "--parallel-workers", "2", env=env) as server,
        httpx.Client(base_url=server.url, timeout=20) as http,
        ThreadPoolExecutor(4) as pool,
    ):
        frozen, survivor = sorted(workers_of(server))
        os.kill(frozen, signal.SIGSTOP)
        try:
            # Requests sent to the frozen worker fail when it is killed: never a hang.
            first = [pool.submit(http.post, "/v2/models/slow/infer", json=sleep_request(0)) for _ in range(4)]
            for future in first:
                response = future.result()
                assert response.status_code in (200, 503), response.text
                if response.status_code == 200:
                    assert outputs(response)["pid"] == survivor
                else:
                    assert "no heartbeat for 2 s" in response.json()["error"]
            # Once it is unready, every request goes to the other replica.
            for _ in range(5):
                assert outputs(http.post("/v2/models/slow/infer", json=sleep_request(0)))["pid"] in (
                    workers_of(server) - {frozen}
                )
            wait_for(lambda: len(workers_of(server) - {frozen}) == 2, timeout=30)
            assert frozen not in workers_of(server)
        finally:
            if not gone(frozen):
                os.kill(frozen, signal.SIGKILL)


def test_a_model_being_unloaded_says_so(tmp_path: Path) -> None:
    write(tmp_path, "slow-unload", "models.SlowUnload")
    with (
        ServerProcess(tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=20) as http,
        ThreadPoolExecutor(1) as pool,
    ):
        unloading = pool.submit(http.post, "/v2/repository/models/slow-unload/unload")
        wait_for(lambda: index(server)["slow-unload"]["state"] == "UNLOADING", timeout=10)
        response = http.post("/v2/models/slow-unload/infer", json=sleep_request(0))
        assert response.status_code == 503
        assert response.json() == {"error": "model 'slow-unload' is not ready (UNLOADING)"}
        assert unloading.result().status_code == 200


# Loads that never end, and loads that kill their worker


@pytest.mark.parametrize("workers", ["0", "1"], ids=["in-process", "workers"])
def test_a_hanging_load_fails_at_its_deadline_and_holds_no_other_model(tmp_path: Path, workers: str) -> None:
    write(tmp_path, "hangs", "models.HangsOnLoad")
    write(tmp_path, "hangs-in-thread", "models.HangsInThread")
    write(tmp_path, "fine", "models.Slow")
    env = {"CORE_MODEL_LOAD_TIMEOUT": "4"}
    with (
        ServerProcess(tmp_path, "--parallel-workers", workers, env=env, wait_for="/v2/health/live") as server,
        httpx.Client(base_url=server.url, timeout=20) as http,
    ):
        # The other model loads, unloads and loads again while the two hang.
        wait_for(lambda: index(server)["fine"]["state"] == "READY", timeout=30)
        states = index(server)
        assert states["hangs"]["state"] == states["hangs-in-thread"]["state"] == "LOADING"
        assert http.post("/v2/repository/models/fine/unload").status_code == 200
        assert http.post("/v2/repository/models/fine/load").status_code == 200
        assert http.get("/v2/health/ready").status_code == 503
        # At their deadline they fail with that reason, and the server is ready.
        wait_until_loaded(server.url, {"hangs", "hangs-in-thread"}, timeout=30)
        states = index(server)
        for name in ("hangs", "hangs-in-thread"):
            assert states[name]["state"] == "FAILED"
            assert states[name]["reason"] == f"model '{name}' did not load within its load_timeout of 4 s"
        wait_for(lambda: http.get("/v2/health/ready").status_code == 200, timeout=10)
        assert outputs(http.post("/v2/models/fine/infer", json=sleep_request(0)))


def test_sigterm_during_a_hanging_load_exits(tmp_path: Path) -> None:
    write(tmp_path, "hangs", "models.HangsOnLoad")
    write(tmp_path, "fine", "models.Slow")
    server = ServerProcess(tmp_path, wait_for="/v2/health/live").start()
    wait_for(lambda: index(server)["fine"]["state"] == "READY", timeout=30)
    workers = workers_of(server)
    code, _ = stop_within(server, 20)
    assert code == 0, server.log()
    assert all(gone(pid) for pid in workers)


def test_a_load_that_kills_its_worker_fails_alone(tmp_path: Path) -> None:
    write(tmp_path, "slow-load", "models.SlowLoad")
    write(tmp_path, "exits", "models.ExitsOnLoad")
    with ServerProcess(tmp_path, "--parallel-workers", "1", wait_for="/v2/health/live") as server:
        wait_until_loaded(server.url, {"slow-load", "exits"}, timeout=60)
        states = index(server)
        # slow-load was loading when its worker exited: loaded again in the replacement.
        assert states["slow-load"]["state"] == "READY", states
        assert states["exits"]["state"] == "FAILED"
        assert "exited while loading the model (exit code 3)" in states["exits"]["reason"]
        with httpx.Client(base_url=server.url, timeout=20) as http:
            assert outputs(http.post("/v2/models/slow-load/infer", json=sleep_request(0)))[
                "pid"
            ] in workers_of(server)


# Shutdown


@pytest.fixture
def slow_repository(tmp_path: Path) -> Path:
    write(tmp_path, "slow", "models.Slow")
    return tmp_path


def test_sigterm_stops_both_transports_at_once_and_drains_them(slow_repository: Path) -> None:
    server = ServerProcess(slow_repository, env={"CORE_GRACEFUL_SHUTDOWN_TIMEOUT": "20"}).start()
    workers = workers_of(server)
    grpc_url = f"127.0.0.1:{server.grpc_port}"
    sleep = triton_grpc.InferInput("sleep", [1], "FP64")
    sleep.set_data_from_numpy(np.array([2.0]))
    with httpx.Client(base_url=server.url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
        rest = pool.submit(http.post, "/v2/models/slow/infer", json=sleep_request(2))
        grpc = pool.submit(triton_grpc.InferenceServerClient(grpc_url).infer, "slow", [sleep])
        time.sleep(0.5)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # New work is refused on both transports while the old finishes.
        late = triton_grpc.InferenceServerClient(grpc_url)
        with pytest.raises(InferenceServerException) as raised:
            late.infer("slow", [sleep], client_timeout=5)
        assert raised.value.status() == "StatusCode.UNAVAILABLE"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/v2/health/live", timeout=5)
        assert outputs(rest.result())
        assert grpc.result().as_numpy("pid") is not None
    assert server.process.wait(20) == 0
    assert all(gone(pid) for pid in workers)


def test_the_drain_is_bounded_by_graceful_shutdown_timeout(slow_repository: Path) -> None:
    server = ServerProcess(slow_repository, env={"CORE_GRACEFUL_SHUTDOWN_TIMEOUT": "2"}).start()
    workers = workers_of(server)
    with httpx.Client(base_url=server.url, timeout=60) as http, ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(http.post, "/v2/models/slow/infer", json=sleep_request(50))
        time.sleep(0.5)
        code, _ = stop_within(server, 15)
        assert code == 0
        # The request in flight is answered or its connection closed: not left hanging.
        with contextlib.suppress(httpx.TransportError):
            assert stuck.result(timeout=5).status_code >= 500
    assert all(gone(pid) for pid in workers)


def test_a_second_signal_exits_at_once(slow_repository: Path) -> None:
    server = ServerProcess(slow_repository).start()  # graceful_shutdown_timeout: 30 s
    workers = workers_of(server)
    with httpx.Client(base_url=server.url, timeout=60) as http, ThreadPoolExecutor(1) as pool:
        pool.submit(http.post, "/v2/models/slow/infer", json=sleep_request(50))
        time.sleep(0.5)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.alive()  # draining
        server.process.send_signal(signal.SIGINT)
        server.process.wait(5)
    assert wait_for(lambda: all(gone(pid) for pid in workers), timeout=5)
    assert "second SIGINT: exiting now" in server.log()


def test_a_hung_worker_does_not_block_shutdown(slow_repository: Path) -> None:
    server = ServerProcess(slow_repository, env={"CORE_GRACEFUL_SHUTDOWN_TIMEOUT": "2"}).start()
    (worker,) = workers_of(server)
    os.kill(worker, signal.SIGSTOP)
    try:
        code, _ = stop_within(server, 15)
        assert code == 0
        assert wait_for(lambda: gone(worker), timeout=5)
    finally:
        if not gone(worker):
            os.kill(worker, signal.SIGKILL)
