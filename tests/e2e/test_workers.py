"""The worker pool: placement of replicas, least-busy routing, reloads, a
worker killed under load, a model whose load kills its worker, and
shutdown. (Every other end-to-end test also runs against a server with two
workers: see the `server` fixture.)"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from core.testing import ServerProcess, child_pids

from .conftest import wait_until_loaded

WORKER_MODELS_PY = textwrap.dedent(
    '''
    import asyncio
    import os

    from core import Model
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput, to_ndarray


    class Pid(Model):
        """Answers the id of the process it runs in, after sleeping for the
        seconds given in its input `sleep` (when there is one)."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            if payload.inputs:
                await asyncio.sleep(float(to_ndarray(payload.inputs[0]).ravel()[0]))
            pid = ResponseOutput(name="pid", shape=[1], datatype="INT64", data=[os.getpid()])
            return InferenceResponse(model_name=self.name, outputs=[pid])


    class OneInstance(Pid):
        """Its runtime allows one instance, as a stateful one would."""

        @classmethod
        def replica_limit(cls, settings):
            return 1


    class RefusesToCount(Pid):
        @classmethod
        def replica_limit(cls, settings):
            raise ValueError("cannot tell how many replicas")


    class KillsWorkerOnLoad(Model):
        async def load(self) -> bool:
            os._exit(3)
    '''
)


def write(root: Path, name: str, implementation: str, **settings: Any) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "models.py").write_text(WORKER_MODELS_PY)
    (folder / "model-settings.json").write_text(
        json.dumps({"name": name, "implementation": implementation, **settings})
    )


def sleep_request(seconds: float) -> dict[str, Any]:
    return {"inputs": [{"name": "sleep", "shape": [1], "datatype": "FP64", "data": [seconds]}]}


def pid_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["outputs"][0]["data"][0])


def worker_pids(server: ServerProcess) -> set[int]:
    assert server.process is not None
    return child_pids(server.process.pid)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workers")
    write(root, "everywhere", "models.Pid")
    write(root, "solo-a", "models.Pid", replicas=1)
    write(root, "solo-b", "models.Pid", replicas=1)
    return root


@pytest.fixture(scope="module")
def pool_server(repository: Path) -> Iterator[ServerProcess]:
    with ServerProcess(repository, "--parallel-workers", "2") as process:
        yield process


@pytest.fixture(scope="module")
def client(pool_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pool_server.url, timeout=30) as http:
        yield http


def infer(client: httpx.Client, model: str, seconds: float | None = None) -> httpx.Response:
    body = sleep_request(seconds) if seconds is not None else {"inputs": []}
    return client.post(f"/v2/models/{model}/infer", json=body)


def test_models_run_in_worker_processes(client: httpx.Client, pool_server: ServerProcess) -> None:
    workers = worker_pids(pool_server)
    assert len(workers) == 2
    assert pid_of(infer(client, "everywhere")) in workers


def test_one_replica_models_are_spread_over_the_workers(
    client: httpx.Client, pool_server: ServerProcess
) -> None:
    # Placement goes to the worker holding the fewest replicas.
    a, b = pid_of(infer(client, "solo-a")), pid_of(infer(client, "solo-b"))
    assert a != b
    assert {a, b} == worker_pids(pool_server)
    # A one-replica model always answers from its one worker.
    assert {pid_of(infer(client, "solo-a")) for _ in range(5)} == {a}


def test_a_runtime_s_replica_limit_holds_whatever_the_workers(tmp_path: Path) -> None:
    write(tmp_path, "one", "models.OneInstance")
    write(tmp_path, "asked-for-two", "models.OneInstance", replicas=2)
    write(tmp_path, "broken", "models.RefusesToCount")
    with (
        ServerProcess(tmp_path, "--parallel-workers", "2", wait_for="/v2/health/live") as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        wait_until_loaded(server.url, {"one", "asked-for-two", "broken"})
        for name in ("one", "asked-for-two"):
            # Concurrent slow requests would spread over two replicas: all
            # come from the one instance.
            with ThreadPoolExecutor(4) as pool:
                pids = set(pool.map(lambda model: pid_of(infer(http, model, 0.3)), [name] * 4))
            assert len(pids) == 1
        ready = http.get("/v2/models/broken/ready")
        assert ready.status_code != 200
        index = {entry["name"]: entry for entry in http.post("/v2/repository/index", json={}).json()}
        assert "cannot tell how many replicas" in index["broken"]["reason"]
        assert len(worker_pids(server)) == 2


def test_requests_go_to_the_least_busy_replica(client: httpx.Client, pool_server: ServerProcess) -> None:
    # The first slow request occupies one worker; the second goes to the idle one.
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(infer, client, "everywhere", 1.5)
        time.sleep(0.3)
        second = pool.submit(infer, client, "everywhere", 0.1)
        pids = {pid_of(first.result()), pid_of(second.result())}
    assert pids == worker_pids(pool_server)


def test_reload_keeps_serving_the_old_instance_until_the_new_one_is_ready(client: httpx.Client) -> None:
    statuses: list[int] = []
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            statuses.append(infer(client, "everywhere").status_code)

    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(traffic)
        slow = pool.submit(infer, client, "everywhere", 1.0)  # in flight across the reload
        time.sleep(0.2)
        loaded = client.post("/v2/repository/models/everywhere/load")
        time.sleep(0.2)
        done.set()
        running.result()
        assert slow.result().status_code == 200
    assert loaded.status_code == 200
    assert statuses and set(statuses) == {200}


def test_statistics_add_up_the_replicas(client: httpx.Client) -> None:
    before = client.get("/v2/models/everywhere/stats").json()["model_stats"][0]["inference_count"]
    for _ in range(4):
        assert infer(client, "everywhere").status_code == 200
    after = client.get("/v2/models/everywhere/stats").json()["model_stats"][0]["inference_count"]
    assert after - before == 4


def test_model_errors_come_back_with_their_message(client: httpx.Client) -> None:
    bad = {"inputs": [{"name": "sleep", "shape": [1], "datatype": "BYTES", "data": ["soon"]}]}
    response = client.post("/v2/models/everywhere/infer", json=bad)
    assert response.status_code == 500
    assert "could not convert string to float" in response.json()["error"]
    assert infer(client, "everywhere").status_code == 200


def wait_for(check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def test_a_killed_worker_fails_its_requests_at_once_and_is_replaced(repository: Path) -> None:
    with (
        ServerProcess(repository, "--parallel-workers", "2") as server,
        httpx.Client(base_url=server.url, timeout=20) as http,
    ):
        victim = pid_of(infer(http, "solo-a"))
        survivor = pid_of(infer(http, "solo-b"))
        with ThreadPoolExecutor(4) as pool:
            # Both would sleep far past the client's timeout if they were left hanging.
            in_flight = [pool.submit(infer, http, "solo-a", 120.0) for _ in range(2)]
            time.sleep(0.5)
            os.kill(victim, signal.SIGKILL)
            failed = [future.result() for future in in_flight]
        for response in failed:
            assert response.status_code == 503, (response.text, server.log())
            assert "exited before answering" in response.json()["error"]
        # The other worker's model serves all along.
        assert pid_of(infer(http, "solo-b")) == survivor
        # Until its replacement is ready, the model answers 503 at once, never hangs.
        statuses = set()

        def replaced() -> int | None:
            response = infer(http, "solo-a")
            statuses.add(response.status_code)
            return pid_of(response) if response.status_code == 200 else None

        new_pid = wait_for(replaced)
        assert new_pid != victim
        assert statuses <= {200, 503}
        assert worker_pids(server) == {new_pid, survivor}
        assert server.alive()


def test_a_model_whose_load_kills_its_worker_ends_failed(tmp_path: Path) -> None:
    write(tmp_path, "fine", "models.Pid")
    write(tmp_path, "killer", "models.KillsWorkerOnLoad", replicas=1)
    with ServerProcess(tmp_path, "--parallel-workers", "1", wait_for="/v2/health/live") as server:
        wait_until_loaded(server.url, {"fine", "killer"})
        index = {item["name"]: item for item in httpx.post(f"{server.url}/v2/repository/index").json()}
        assert index["killer"]["state"] == "FAILED"
        assert "exited while loading" in index["killer"]["reason"]
        # The worker exits twice: at the first load, which may have been any
        # model's doing, then when the suspect loads alone in its
        # replacement. It is not restarted again: the failed model is not
        # placed on the newest worker.
        workers = wait_for(lambda: worker_pids(server) or None)
        with httpx.Client(base_url=server.url, timeout=20) as http:
            pid = wait_for(lambda: (r := infer(http, "fine")).status_code == 200 and pid_of(r))
            assert pid in workers
            time.sleep(1.0)
            assert pid_of(infer(http, "fine")) == pid
        assert server.log().count("exited (exit code 3)") == 2


def test_sigterm_finishes_in_flight_requests_then_stops_the_workers(repository: Path) -> None:
    server = ServerProcess(repository, "--parallel-workers", "2").start()
    workers = worker_pids(server)
    with httpx.Client(base_url=server.url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        slow = pool.submit(infer, http, "everywhere", 2.0)
        time.sleep(0.5)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert slow.result().status_code == 200
    assert server.process.wait(30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()


def test_grpc_infer_goes_to_the_workers(pool_server: ServerProcess) -> None:
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{pool_server.grpc_port}")
    sleep = triton_grpc.InferInput("sleep", [1], "FP64")
    sleep.set_data_from_numpy(np.array([0.0]))
    result = client.infer("everywhere", [sleep])
    assert int(result.as_numpy("pid")[0]) in worker_pids(pool_server)
