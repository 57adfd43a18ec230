"""A local Ray cluster (2 CPUs, no dashboard, no usage stats) started for the
test session by `ray start --head --block`, stopped by its PID; and the
`core start --on ray` servers the tests run on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.testing import ServerProcess, free_port
from core.testing.server import stop_process

RAY = str(Path(sys.executable).with_name("ray"))
# A loopback test cluster: no usage stats, no token authentication (Ray 2.5x
# turns it on for `ray start`; its clients would then need the token).
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    # Short: Ray's sockets live under it, and their paths have a length limit.
    temp = tmp_path_factory.mktemp("ray")
    command = [
        RAY, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
        "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
    ]  # fmt: skip
    log = temp / "ray-start.log"
    with log.open("wb") as output:
        head = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **QUIET})
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    status = [RAY, "status", f"--address={address}"]
    while subprocess.run(status, capture_output=True, env={**os.environ, **QUIET}).returncode != 0:
        if head.poll() is not None or time.monotonic() > deadline:
            stop_process(head)
            pytest.fail(f"the Ray head did not start:\n{log.read_text()}")
        time.sleep(1)
    yield address
    stop_process(head, timeout=30)


def ray_server(folder: Path, address: str) -> ServerProcess:
    """`core start FOLDER --on ray` joining the test's cluster."""
    env = {**QUIET, "RAY_ADDRESS": address}
    return ServerProcess(folder, "--on", "ray", env=env, timeout=180)
