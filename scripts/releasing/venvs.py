"""Empty virtualenvs that wheels are installed into, as a user would install
them (dependencies from the package index), and the serve check run in one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SMOKE = Path(__file__).with_name("serve_smoke.py")
# Nothing from the environment may put the source tree on the venv's path.
CLEAN_ENV = {**os.environ, "PYTHONPATH": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


class InstallFailed(RuntimeError):
    pass


def create(folder: Path) -> Path:
    """An empty venv without pip of its own (this interpreter's pip installs
    into it); its python."""
    # From the interpreter below this one's venv, if it runs in one.
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, env=CLEAN_ENV)
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip_install(python: Path, *requirements: str | Path) -> None:
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    done = subprocess.run(
        [*command, *map(str, requirements)], capture_output=True, text=True, env=CLEAN_ENV, timeout=1800
    )
    if done.returncode != 0:
        raise InstallFailed(f"pip install {' '.join(map(str, requirements))} failed:\n{done.stderr}")


def serve_check(python: Path, package: str, readme: Path, workdir: Path) -> tuple[bool, str]:
    """serve_smoke.py for `package`, run by the venv's python; (passed, its output)."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(python), "-I", str(SMOKE), package, str(workdir), str(readme)]
    done = subprocess.run(command, capture_output=True, text=True, env=CLEAN_ENV, timeout=900)
    if done.returncode == 0:  # its one line; the frameworks' warnings only when it failed
        return True, done.stdout.strip()
    return False, (done.stdout + done.stderr).strip()
