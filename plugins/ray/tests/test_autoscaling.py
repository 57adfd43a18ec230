"""A model that takes 0.3 s a request, autoscaled between 1 and 2 replicas:
a bounded load scales it up, and it scales back down once the load stops.
And adaptive batching inside a replica."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.testing import ServerProcess

from .conftest import ray_server
from .test_serving import replica_pids

SLOW_RUNTIME = """
import asyncio

import numpy as np

from core import Model, decode_args


class Slow(Model):
    @decode_args
    async def predict(self, x: np.ndarray) -> np.ndarray:
        await asyncio.sleep(0.3)
        return x


class Rows(Model):
    # Answers each row with the number of rows its predict call got.

    @decode_args
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), len(x), dtype=np.int64)
"""
AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 0,
    "downscale_delay_s": 2,
    "look_back_period_s": 1,
    "metrics_interval_s": 0.5,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ray_address: str) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("models") / "slow"
    folder.mkdir()
    (folder / "models.py").write_text(textwrap.dedent(SLOW_RUNTIME))
    ray = {"autoscaling": AUTOSCALING, "num_cpus": 0.25}
    settings = {"name": "slow", "implementation": "models.Slow", "parameters": {"extra": {"ray": ray}}}
    (folder / "model-settings.json").write_text(json.dumps(settings))
    rows = folder.parent / "rows"
    rows.mkdir()
    (rows / "models.py").write_text(textwrap.dedent(SLOW_RUNTIME))
    batched = {
        "name": "rows",
        "implementation": "models.Rows",
        "max_batch_size": 8,
        "max_batch_time": 0.5,
        "parameters": {"extra": {"ray": {"num_replicas": 1, "num_cpus": 0.25}}},
    }
    (rows / "model-settings.json").write_text(json.dumps(batched))
    process = ray_server(folder.parent, ray_address).start()
    yield process
    assert process.stop(timeout=60) == 0, process.log()


def wait_for_replicas(count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(replica_pids("core-slow")) != count:
        assert time.monotonic() < deadline, f"{len(replica_pids('core-slow'))} replicas, not {count}"
        time.sleep(0.5)


def test_scales_from_one_replica_to_two_under_load_and_back(server: ServerProcess) -> None:
    wait_for_replicas(1, 30)
    stop = threading.Event()
    statuses: list[int] = []
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                statuses.append(client.post(f"{server.url}/v2/models/slow/infer", json=body).status_code)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for_replicas(2, 60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert statuses and set(statuses) == {200}, set(statuses)
    wait_for_replicas(1, 60)
    assert httpx.post(f"{server.url}/v2/models/slow/infer", json=body, timeout=30).status_code == 200


def test_adaptive_batching_runs_in_the_replica(server: ServerProcess) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}

    def one() -> list[int]:
        response = httpx.post(f"{server.url}/v2/models/rows/infer", json=body, timeout=30)
        assert response.status_code == 200, response.text
        data: list[int] = response.json()["outputs"][0]["data"]
        return data

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: one(), range(8)))
    # Each caller got its own row, computed in a call that held several.
    assert all(len(answer) == 1 for answer in answers)
    assert max(answer[0] for answer in answers) > 1, answers
