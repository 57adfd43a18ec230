"""Fixtures shared by every test folder under tests/.

`packed_environment` builds a real packed environment, as a user makes one
for `parameters.environment_tarball`, once per session and only when a test
asks for it: mark such tests `slow`. Building it took 16 to 19 s on 2 cores
with pip's cache warm (about 10 s of CPU; up to 45 s on a busy machine)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The library installed in the packed environment at a version the server's
# venv does not have (the first of these that differs from the server's).
PACKED_LIBRARY = "packaging"
PACKED_VERSIONS = ("23.2", "23.1")


@dataclass(frozen=True)
class PackedEnvironment:
    tarball: Path  # a venv-pack .tar.gz
    library: str  # installed in it at `version`...
    version: str  # ...which is not the version the server's venv has
    seconds: float  # how long building it took


def _run(command: list[str]) -> None:
    # Nothing of the source tree on the new environment's path.
    env = {**os.environ, "PYTHONPATH": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def packed_environment(tmp_path_factory: pytest.TempPathFactory) -> PackedEnvironment:
    """A venv of the interpreter below the test's, holding `core` (a wheel
    built from this checkout, not editable) with its dependencies, and
    `packaging` at a version other than the server's, packed with venv-pack
    into a .tar.gz. Its bin/python links to the base interpreter by an
    absolute path, as venv-pack packs every venv."""
    started = time.monotonic()
    folder = tmp_path_factory.mktemp("packed-environment")
    server_version = importlib.metadata.version(PACKED_LIBRARY)
    version = next(v for v in PACKED_VERSIONS if v != server_version)
    # The wheel, built with the dev venv's hatchling and grpcio-tools (no
    # isolated build environment to set up: seconds, not a minute).
    wheels = folder / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps",
          "--wheel-dir", str(wheels), str(ROOT / "core")])  # fmt: skip
    (wheel,) = wheels.glob("core-*.whl")
    venv = folder / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    _run([base, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # The dev venv's pip installs into it (--python): no pip of its own to set up.
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          str(wheel), f"{PACKED_LIBRARY}=={version}"])  # fmt: skip
    tarball = folder / "environment.tar.gz"
    _run([sys.executable, "-m", "venv_pack", "--prefix", str(venv), "--output", str(tarball),
          "--compress-level", "1", "--quiet"])  # fmt: skip
    return PackedEnvironment(tarball, PACKED_LIBRARY, version, time.monotonic() - started)
