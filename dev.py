#!/usr/bin/env python3
"""One-command set-up for this repository, needing only Python 3 and pip.

    python3 dev.py example   # set up .venv, then serve examples/iris on :8080
    python3 dev.py test      # set up .venv, then run the whole test suite

Both create .venv (once) and install the packages of this repository into it
in editable mode, with what the tests need. Extra arguments go to pytest (or
to `core start` for `example`)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"

PACKAGES = [
    *("-e", "core[pandas,tracing]"),
    *("-e", "plugins/sklearn", "-e", "plugins/xgboost", "-e", "plugins/lightgbm"),
    *("-e", "plugins/huggingface", "-e", "plugins/mlflow"),
    # core-huggingface needs torch: this exact version installs a CPU build
    # (on this project's machines, from local disk); an open range would
    # take a CUDA build of several GB.
    "torch==2.13.0",
]
TEST_TOOLS = [
    "pytest>=8",
    "httpx>=0.27",
    "tritonclient[http,grpc]>=2.40",
    "build>=1.0",
    "hatchling>=1.21",
    # compiles the official OIP proto in the wire-compatibility test; the same
    # range as core's build requirement
    "grpcio-tools>=1.81.1,<1.82",
    # packs the real custom environment of the environment tests (tests/conftest.py)
    "venv-pack>=0.2",
    # the official client, against core-huggingface's OpenAI-compatible endpoints
    "openai>=1.40",
    # MLflow 3 saves scikit-learn models in the skops format by default
    "skops>=0.10",
]


def _requirements_signature() -> str:
    """Changes when any package's dependencies change, so set-up reruns pip."""
    files = [ROOT / "dev.py", ROOT / "core/pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]
    return "".join(str(path.stat().st_mtime_ns) for path in sorted(files))


def setup() -> None:
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    signature = _requirements_signature()
    if STAMP.exists() and STAMP.read_text() == signature:
        return
    print("installing packages into .venv", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([*pip, *PACKAGES, *TEST_TOOLS], check=True, cwd=ROOT)
    STAMP.write_text(signature)


def example(args: list[str]) -> int:
    iris = ROOT / "examples" / "iris"
    if not (iris / "model.joblib").exists():
        subprocess.run([str(PYTHON), str(iris / "train.py")], check=True)
    command = [str(PYTHON), "-m", "core", "start", str(iris), "--http-port", "8080", *args]
    print("serving examples/iris on http://127.0.0.1:8080 (Ctrl+C stops)", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


def test(args: list[str]) -> int:
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)


def main() -> int:
    commands = {"example": example, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    setup()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
