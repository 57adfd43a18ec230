"""`core start` in a subprocess on free loopback ports, for tests: a real
server, waited for until it is ready, stopped at the end.

    with ServerProcess(model_folder) as server:
        httpx.post(f"{server.url}/v2/models/m/infer", json=...)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> set[int]:
    """The processes `pid` started and that still run: a server's workers
    (Linux: read from /proc)."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


class ServerProcess:
    """`core start FOLDER` as a subprocess on 127.0.0.1 with free ports."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *args: str,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        wait_for: str = "/v2/health/ready",
        timeout: float = 60.0,
    ) -> None:
        # A URI (s3://..., https://...) is served as given; `folder` is then that string's Path.
        target = str(folder)
        self.folder = Path(folder)
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.command = [
            python, "-m", "core", "start", target, "--host", "127.0.0.1",
            "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
            "--metrics-port", str(self.metrics_port), *args,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.wait_for = wait_for
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the server)

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=self.env
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + self.wait_for, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server not ready at {self.url}{self.wait_for}:\n{self.log()}")

    def wait_for_models(self, names: Sequence[str]) -> None:
        """Wait until the models `names` are loaded, by the repository index
        (a server whose model fails to load is never ready: start it with
        `wait_for="/v2/health/live"` and call this to fail at once, with
        the model's reason)."""
        deadline = time.monotonic() + self.timeout
        while True:
            request = urllib.request.Request(f"{self.url}/v2/repository/index", data=b"{}", method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                index = {item["name"]: item for item in json.load(response)}
            states = {name: index.get(name, {}).get("state", "UNKNOWN") for name in names}
            if not any(state in ("UNKNOWN", "LOADING") for state in states.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"models still loading after {self.timeout} s: {states}\n{self.log()}")
            time.sleep(0.05)
        failed = {name: index[name].get("reason", "") for name, state in states.items() if state != "READY"}
        if failed:
            raise RuntimeError(f"models did not load: {failed}\nserver log:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        return None if self.process is None else stop_process(self.process, timeout)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL if `process` has not exited after `timeout`
    seconds; its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
