"""The plugin's whole test suite again, under transformers 4 (the plugin
supports 4.50 and later), where question-answering and text2text-generation
still exist. It runs in a venv of its own, `.venvs/transformers4`, set up
once (a minute or two) and again only when the packages' requirements
change."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import transformers

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venvs" / "transformers4"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
TRANSFORMERS = "transformers==4.57.6"
REQUIREMENTS = [
    TRANSFORMERS,
    "torch==2.13.0",  # the CPU build this project's machines hold (see dev.py)
    *("-e", f"{ROOT / 'core'}[pandas]", "-e", str(ROOT / "plugins" / "huggingface")),
    "pytest>=8",
    "httpx>=0.27",
    "tritonclient[http,grpc]>=2.40",
    "openai>=1.40",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(transformers.__version__.startswith("4."), reason="this is the transformers 4 run"),
]


def _signature() -> str:
    files = [
        Path(__file__),
        ROOT / "core" / "pyproject.toml",
        ROOT / "plugins" / "huggingface" / "pyproject.toml",
    ]
    return " ".join(REQUIREMENTS) + "".join(str(path.stat().st_mtime_ns) for path in files)


def _set_up() -> None:
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == _signature():
        return
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *REQUIREMENTS], check=True, cwd=ROOT, timeout=1200)
    stamp.write_text(_signature())


def test_the_plugin_s_tests_pass_under_transformers_4() -> None:
    _set_up()
    version = subprocess.run(
        [str(PYTHON), "-c", "import transformers; print(transformers.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert version == TRANSFORMERS.split("==")[1]
    tests = Path(__file__).parent
    run = subprocess.run(
        [str(PYTHON), "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider", "-rs"],
        capture_output=True, text=True, cwd=ROOT, timeout=1200,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    print(f"transformers {version}: {summary}", file=sys.stderr)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    # The tasks transformers 5 removed ran there, not skipped.
    assert "transformers 5 has no question-answering" not in run.stdout
