"""Starting the server from Python: `core.Server(settings).run([model])`, and
stopping it gracefully with SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from core.testing import child_pids, free_port

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import core
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput


    class Echo(core.Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            tensor = payload.inputs[0]
            return InferenceResponse(
                model_name=self.name,
                outputs=[ResponseOutput(name="echo", shape=tensor.shape, datatype="INT32", data=tensor.data)],
            )

        async def unload(self) -> bool:
            Path(root, "echo-unloaded").write_text("yes")
            return True


    http_port, grpc_port, metrics_port, root = sys.argv[1:]
    settings = core.Settings(
        host="127.0.0.1", http_port=int(http_port), grpc_port=int(grpc_port),
        metrics_port=int(metrics_port), model_repository_root=root,
    )
    core.Server(settings).run([Echo(core.ModelSettings(name="echo"))])
    """
)


def test_server_started_from_a_script(tmp_path: Path) -> None:
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    empty = tmp_path / "no-models"
    empty.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(script), str(port), str(free_port()), str(free_port()), str(empty)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "programmatic server never became ready"
            time.sleep(0.05)

        assert httpx.get(f"{url}/v2/models/echo/ready").status_code == 200
        body = {
            "id": "p-1",
            "inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}],
        }
        response = httpx.post(f"{url}/v2/models/echo/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "model_name": "echo",
            "id": "p-1",
            "outputs": [{"name": "echo", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]}],
        }
        index = httpx.post(f"{url}/v2/repository/index", json={}).json()
        assert [(item["name"], item["state"]) for item in index] == [("echo", "READY")]
        # Models given in code run in the server process: no worker is started
        # for them, whatever parallel_workers is (1 here, the default).
        if Path("/proc").is_dir():
            assert child_pids(process.pid) == set()
    finally:
        process.terminate()  # SIGTERM, as Kubernetes sends
        try:
            returncode = process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("the server did not stop on SIGTERM") from None
    # A graceful stop: the model was unloaded, and the exit status is 0.
    assert (empty / "echo-unloaded").is_file()
    assert returncode == 0
