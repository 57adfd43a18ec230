"""`core dockerfile`, `core build` and deploy/docker/Dockerfile, without a
Docker daemon: the Dockerfiles are linted with hadolint (.hadolint.yaml),
and the slow test carries out a generated Dockerfile's steps on this
machine: its RUN lines (the real pip install, from wheels built here), its
COPY and ENV lines, into a folder standing for the image's root; then its
ENTRYPOINT with its ENV serves the iris example, and its HEALTHCHECK
command judges the server."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.cli.dockerfile import GENERATED, healthcheck_lines
from core.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).with_name("hadolint")
SERVER_DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
# The PATH of the official python images, which the Dockerfiles' ENV PATH extends.
IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def core(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def hadolint(dockerfile: Path) -> None:
    done = subprocess.run(
        [str(HADOLINT), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"hadolint on {dockerfile}:\n{done.stdout}{done.stderr}"


# Model folders.


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def iris(folder: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "iris", folder, ignore=shutil.ignore_patterns("model.joblib"))
    return folder


def with_requirements(folder: Path) -> Path:
    iris(folder)
    (folder / "requirements.txt").write_text("pandas>=2\n")
    return folder


def two_plugins(folder: Path) -> Path:
    write_json(folder / "iris" / "model-settings.json", {"name": "iris", "implementation": "sklearn"})
    write_json(
        folder / "boosted" / "model-settings.json",
        {"name": "boosted", "implementation": "core_xgboost.XGBoostModel"},
    )
    return folder


def custom_runtime(folder: Path) -> Path:
    write_json(folder / "model-settings.json", {"name": "scaled", "implementation": "models.Scaled"})
    (folder / "models.py").write_text(
        textwrap.dedent(
            """
            from core_sklearn import SKLearnModel


            class Scaled(SKLearnModel):
                pass
            """
        )
    )
    return folder


def conda_environment(folder: Path) -> Path:
    write_json(
        folder / "old-sklearn" / "model-settings.json",
        {"name": "old-sklearn", "implementation": "sklearn", "parameters": {"environment_path": "./env"}},
    )
    (folder / "old-sklearn" / "environment.yml").write_text(
        "name: old-sklearn\ndependencies:\n  - python=3.11\n  - pip\n  - scikit-learn=1.3.2\n"
    )
    write_json(
        folder / "packed" / "model-settings.json",
        {"name": "packed", "implementation": "sklearn", "parameters": {"environment_tarball": "env.tar.gz"}},
    )
    shutil.copy(folder / "old-sklearn" / "environment.yml", folder / "packed" / "environment.yml")
    write_json(folder / "iris" / "model-settings.json", {"name": "iris", "implementation": "xgboost"})
    return folder


FOLDERS = {
    "iris": iris,
    "requirements": with_requirements,
    "two-plugins": two_plugins,
    "custom-runtime": custom_runtime,
    "transformer-example": lambda folder: shutil.copytree(ROOT / "examples" / "transformer", folder),
    "environment-yml": conda_environment,
}


# Reading a Dockerfile.


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions (continuation
    lines joined, comments dropped, as Docker reads them)."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    logical = re.sub(r"\\\n", "", "\n".join(lines)).splitlines()
    stages: list[Stage] = []
    for line in filter(str.strip, logical):
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            image, _, name = arguments.partition(" AS ")
            stages.append(Stage(image.strip(), name.strip() or None))
        elif stages:
            stages[-1].instructions.append((instruction.upper(), arguments.strip()))
    return stages


def generated(folder: Path, *options: str) -> tuple[str, list[Stage]]:
    done = core("dockerfile", str(folder), "--include-dockerignore", *options)
    assert done.returncode == 0, done.stderr
    text = (folder / "Dockerfile").read_text()
    return text, parse_dockerfile(text)


def pip_requirements(stage: Stage) -> list[str]:
    """The quoted requirements of the stage's pip install lines."""
    return [
        requirement
        for run in stage.arguments("RUN")
        if "pip install" in run
        for requirement in re.findall(r'"([^"]+)"', run)
    ]


# The generated Dockerfiles.


@pytest.mark.parametrize("kind", list(FOLDERS))
def test_generated_dockerfile_passes_hadolint(kind: str, tmp_path: Path) -> None:
    folder = tmp_path / kind
    FOLDERS[kind](folder)
    text, stages = generated(folder)
    hadolint(folder / "Dockerfile")
    assert text.startswith(GENERATED)
    assert (folder / ".dockerignore").read_text().startswith(GENERATED)
    builder, runtime = stages[-2:]
    assert (builder.image, builder.name) == ("python:3.11-slim", "builder")
    assert (runtime.image, runtime.name) == ("python:3.11-slim", None)
    assert "--from=builder /opt/venv /opt/venv" in runtime.arguments("COPY")
    assert ". /models" in runtime.arguments("COPY")
    assert runtime.arguments("USER") == ["1000"]
    assert runtime.arguments("EXPOSE") == ["8080 8081 8082"]
    assert json.loads(runtime.arguments("ENTRYPOINT")[0]) == ["core", "start", "/models"]
    environment = shlex.split(" ".join(runtime.arguments("ENV")))
    assert {
        "CORE_HOST=0.0.0.0",
        "CORE_HTTP_PORT=8080",
        "CORE_GRPC_PORT=8081",
        "CORE_METRICS_PORT=8082",
    } <= set(environment)
    (healthcheck,) = runtime.arguments("HEALTHCHECK")
    assert "/v2/health/ready" in healthcheck and "CMD [" in healthcheck


def compatible(distribution: str) -> str:
    """The requirement of an installed distribution the image has by default."""
    return f"{distribution}~={importlib.metadata.version(distribution)}"


@pytest.mark.parametrize(
    ("kind", "server", "environments"),
    [
        ("iris", ["core", "core-sklearn"], []),
        ("two-plugins", ["core", "core-sklearn", "core-xgboost"], []),
        ("custom-runtime", ["core", "core-sklearn"], []),
        ("transformer-example", ["core"], []),
        ("environment-yml", ["core", "core-xgboost"], ["core", "core-sklearn", "core", "core-sklearn"]),
    ],
)
def test_what_the_image_installs(
    kind: str, server: list[str], environments: list[str], tmp_path: Path
) -> None:
    """core, and the plugins of the models' implementations: aliases, import
    paths, what a models.py imports; a model with an environment.yml gets
    its plugin in that environment, not in the server's venv."""
    folder = tmp_path / kind
    FOLDERS[kind](folder)
    _, stages = generated(folder)
    assert pip_requirements(stages[-2]) == [compatible(name) for name in server]
    conda = [stage for stage in stages if stage.name == "environments"]
    assert (pip_requirements(conda[0]) if conda else []) == [compatible(name) for name in environments]


def test_environment_yml_is_built_where_the_settings_say(tmp_path: Path) -> None:
    folder = conda_environment(tmp_path / "models")
    _, stages = generated(folder)
    conda, _, runtime = stages
    assert conda.image.startswith("condaforge/miniforge3:")
    runs = conda.arguments("RUN")
    # environment_path: made in place; environment_tarball: conda-packed there.
    assert any(run.startswith("conda env create --prefix /models/old-sklearn/env ") for run in runs), runs
    assert any("conda-pack --prefix" in run and "--output /models/packed/env.tar.gz" in run for run in runs)
    assert {
        "--from=environments /models/old-sklearn/env /models/old-sklearn/env",
        "--from=environments /models/packed/env.tar.gz /models/packed/env.tar.gz",
    } <= set(runtime.arguments("COPY"))
    ignored = (folder / ".dockerignore").read_text().splitlines()
    assert {"old-sklearn/env", "packed/env.tar.gz"} <= set(ignored)


def test_requirements_txt_is_installed_with_core(tmp_path: Path) -> None:
    folder = with_requirements(tmp_path / "iris")
    _, stages = generated(folder)
    builder = stages[-2]
    assert "requirements.txt /tmp/requirements.txt" in builder.arguments("COPY")
    (install,) = [run for run in builder.arguments("RUN") if "pip install" in run]
    assert install.endswith("-r /tmp/requirements.txt")


def test_settings_json_ports_are_exposed(tmp_path: Path) -> None:
    """settings.json wins over CORE_* variables: the image uses its ports."""
    folder = iris(tmp_path / "iris")
    write_json(folder / "settings.json", {"http_port": 9000, "host": "127.0.0.1"})
    done = core("dockerfile", str(folder))
    assert done.returncode == 0, done.stderr
    assert "settings.json sets host '127.0.0.1'" in done.stderr
    runtime = parse_dockerfile((folder / "Dockerfile").read_text())[-1]
    assert runtime.arguments("EXPOSE") == ["9000 8081 8082"]
    assert "CORE_HTTP_PORT=9000" in shlex.split(" ".join(runtime.arguments("ENV")))


def test_options_base_image_core_version_and_index(tmp_path: Path) -> None:
    folder = iris(tmp_path / "iris")
    done = core(
        "dockerfile", str(folder), "-o", "-", "--base-image", "python:3.12-slim", "--core-version", "0.1.0",
        "--index-url", "https://pypi.example/simple",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stages = parse_dockerfile(done.stdout)
    assert [stage.image for stage in stages] == ["python:3.12-slim", "python:3.12-slim"]
    assert pip_requirements(stages[0])[0] == "core==0.1.0"
    assert "--index-url https://pypi.example/simple" in stages[0].arguments("RUN")[-1]
    assert not (folder / "Dockerfile").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda folder: folder.mkdir(), "holds no model-settings.json"),
        (
            lambda folder: write_json(folder / "bad" / "model-settings.json", {"max_batch_size": "many"}),
            "field 'max_batch_size'",
        ),
        (
            lambda folder: (
                write_json(folder / "model-settings.json", {"name": "m", "implementation": "sklearn"}),
                (folder / "environment.yml").write_text("dependencies: [python=3.11, pip]\n"),
            ),
            "names no parameters.environment_path",
        ),
        (
            lambda folder: (
                write_json(folder / "m" / "model-settings.json", {"name": "m", "implementation": "sklearn"}),
                (folder / "environment.yml").write_text("dependencies: [python=3.11, pip]\n"),
            ),
            "put it beside that model's model-settings.json",
        ),
    ],
    ids=["empty", "bad-settings", "environment-without-path", "environment-at-the-top"],
)
def test_folders_that_cannot_be_served_are_refused(
    setup: Callable[[Path], object], message: str, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    setup(folder)
    done = core("dockerfile", str(folder))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (folder / "Dockerfile").exists()


def test_a_dockerfile_of_someone_else_is_not_overwritten(tmp_path: Path) -> None:
    folder = iris(tmp_path / "iris")
    (folder / "Dockerfile").write_text("FROM scratch\n")
    done = core("dockerfile", str(folder))
    assert done.returncode == 2 and "--force" in done.stderr, done.stderr
    assert (folder / "Dockerfile").read_text() == "FROM scratch\n"
    assert core("dockerfile", str(folder), "--force").returncode == 0
    # Its own output is written again without --force.
    assert core("dockerfile", str(folder)).returncode == 0
    assert (folder / "Dockerfile").read_text().startswith(GENERATED)


def test_wheels_that_are_missing_are_named(tmp_path: Path) -> None:
    folder = iris(tmp_path / "iris")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "core-0.1.0-py3-none-any.whl").write_bytes(b"")
    done = core("dockerfile", str(folder), "--wheels", str(tmp_path / "wheels"))
    assert done.returncode == 2
    assert "holds no wheel of core-sklearn" in done.stderr, done.stderr


# The server image of this repository.


def test_server_dockerfile_passes_hadolint() -> None:
    hadolint(SERVER_DOCKERFILE)


def test_server_dockerfile_matches_the_generated_images() -> None:
    """The same user, ports, variables and health check as `core dockerfile`'s."""
    builder, runtime = parse_dockerfile(SERVER_DOCKERFILE.read_text())
    assert builder.name == "builder" and runtime.image == builder.image == "${PYTHON_IMAGE}"
    assert "PLUGINS" in " ".join(builder.arguments("ARG"))
    assert runtime.arguments("USER") == ["1000"]
    assert runtime.arguments("EXPOSE") == ["8080 8081 8082"]
    (healthcheck,) = runtime.arguments("HEALTHCHECK")
    assert healthcheck == re.sub(r"\\\n", "", "\n".join(healthcheck_lines())).partition(" ")[2]
    assert json.loads(runtime.arguments("ENTRYPOINT")[0]) == ["core", "start"]
    assert json.loads(runtime.arguments("CMD")[0]) == ["/models"]


# core build, with no Docker daemon here.


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client here (the next test's case)")
def test_build_without_a_docker_daemon_says_so(tmp_path: Path) -> None:
    folder = iris(tmp_path / "iris")
    # A daemon address where none listens, whatever this machine runs.
    done = core(
        "build", str(folder), "-t", "iris:test", "--no-cache", env={"DOCKER_HOST": "unix:///nonexistent.sock"}
    )
    assert done.returncode == 2, done.stderr
    assert "cannot build: the Docker daemon is not reachable" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (folder / "Dockerfile").exists()


def test_build_without_docker_says_so(tmp_path: Path) -> None:
    folder = iris(tmp_path / "iris")
    done = core("build", str(folder), "-t", "iris:test", env={"PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 2, done.stderr
    assert "cannot build: no `docker` command" in done.stderr, done.stderr


def test_other_commands_still_refuse_unknown_arguments() -> None:
    done = core("plugins", "--no-cache")
    assert done.returncode == 2 and "unrecognized arguments: --no-cache" in done.stderr


# The Dockerfiles' steps, carried out here.


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of core and core-sklearn built from this checkout (with the dev
    venv's build backend: no isolated build environment to set up)."""
    out = tmp_path_factory.mktemp("wheels")
    for source in (ROOT / "core", ROOT / "plugins" / "sklearn"):
        done = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return out


class ImageRoot:
    """A folder standing for the image's root: the Dockerfile's absolute
    paths are made relative to it, its COPY lines copy into it, its RUN lines
    run in it with /bin/sh and the ARG and ENV values so far. The base
    image's `python` is this interpreter's base, in /usr/local/bin as in the
    official images; its other tools are this machine's."""

    def __init__(self, root: Path, context: Path, named_contexts: dict[str, Path] | None = None) -> None:
        self.root, self.context, self.named_contexts = root, context, named_contexts or {}
        (root / "usr/local/bin").mkdir(parents=True)
        (root / "tmp").mkdir()  # as in any base image
        base = getattr(sys, "_base_executable", None) or sys.executable
        (root / "usr/local/bin/python").symlink_to(base)
        ignored = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CORE_") and k not in ignored}
        self.env["PATH"] = f"{root}/usr/local/bin:{IMAGE_PATH}"

    def local(self, text: str) -> str:
        """`text` with the image's absolute paths under this root."""
        return re.sub(r"(?:(?<=[\s\"'=:])|^)/(?=\w)", f"{self.root}/", text)

    def carry_out(
        self, stage: Stage, build_args: dict[str, str] | None = None, skip_runs: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str] | None:
        """The stage's steps; the RUN that failed, if one did (the rest not taken)."""
        for instruction, arguments in stage.instructions:
            if instruction == "ARG":
                name, _, default = arguments.partition("=")
                self.env[name] = (build_args or {}).get(name, " ".join(shlex.split(default)))
            elif instruction == "ENV":
                for assignment in shlex.split(arguments):
                    key, _, value = assignment.partition("=")
                    value = self.local(value)
                    self.env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m[1], ""), value)
            elif instruction == "COPY":
                self._copy(arguments)
            elif instruction == "RUN" and not arguments.startswith(skip_runs):
                done = subprocess.run(
                    ["/bin/sh", "-c", self.local(arguments)],
                    cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600,
                )  # fmt: skip
                if done.returncode != 0:
                    return done
        return None

    def _copy(self, arguments: str) -> None:
        words = arguments.split()
        source_context = self.context
        if words[0].startswith("--from="):
            name = words.pop(0).removeprefix("--from=")
            if name not in self.named_contexts:
                return  # another stage's files: already in this root
            source_context = self.named_contexts[name]
        source, destination = source_context / words[0], self.root / words[1].lstrip("/")
        if source.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(source, destination, dirs_exist_ok=True, ignore=ignore)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)


def serve_iris(image: ImageRoot, runtime: Stage, models: Path) -> None:
    """Train the iris example into `models` with the image's scikit-learn,
    run the stage's ENTRYPOINT (and CMD) with its ENV, set to loopback and
    free ports as `docker run -e` would, check it with the stage's
    HEALTHCHECK command and an inference."""
    python = image.root / "opt/venv/bin/python"
    subprocess.run([str(python), str(models / "train.py")], env=image.env, check=True, timeout=120)
    features = [[5.1, 3.5, 1.4, 0.2], [6.0, 2.9, 4.5, 1.5], [6.9, 3.1, 5.4, 2.1]]
    script = "import joblib, json, sys; print(json.dumps(joblib.load(sys.argv[1]).predict(json.loads(sys.argv[2])).tolist()))"  # noqa: E501
    expected = json.loads(
        subprocess.run(
            [str(python), "-c", script, str(models / "model.joblib"), json.dumps(features)],
            capture_output=True, text=True, env=image.env, check=True,
        ).stdout
    )  # fmt: skip

    command = [
        *json.loads(runtime.arguments("ENTRYPOINT")[0]),
        *json.loads((runtime.arguments("CMD") or ["[]"])[0]),
    ]
    command = [image.local(word) for word in command]
    workdir = image.root / runtime.arguments("WORKDIR")[0].lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    (healthcheck,) = runtime.arguments("HEALTHCHECK")
    probe = json.loads(healthcheck.partition(" CMD ")[2])
    server = ServerProcess(models)
    env = {
        **image.env,
        "CORE_HOST": "127.0.0.1",
        "CORE_HTTP_PORT": str(server.http_port),
        "CORE_GRPC_PORT": str(server.grpc_port),
        "CORE_METRICS_PORT": str(server.metrics_port),
    }
    server.command = [shutil.which(command[0], path=env["PATH"]) or command[0], *command[1:]]
    server.env = env
    assert server.command[:3] == [str(image.root / "opt/venv/bin/core"), "start", str(models)]

    def health() -> int:
        return subprocess.run(probe, env=env, cwd=workdir, capture_output=True, timeout=60).returncode

    assert health() != 0  # nothing serves yet
    with server:
        assert health() == 0
        response = httpx.post(
            f"{server.url}/v2/models/iris/infer",
            json={"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [3, 4], "data": features}]},
            timeout=30,
        )
        metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    outputs = {output["name"]: output["data"] for output in response.json()["outputs"]}
    assert outputs["predict"] == expected
    assert metrics.status_code == 200


def installed_from(image: ImageRoot, *modules: str) -> list[Path]:
    script = f"import {', '.join(modules)}; print({', '.join(f'{m}.__file__' for m in modules)})"
    python = image.root / "opt/venv/bin/python"
    found = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=image.env)
    assert found.returncode == 0, found.stderr
    return [Path(path) for path in found.stdout.split()]


@pytest.mark.slow
def test_generated_dockerfile_installs_and_serves_iris(wheels: Path, tmp_path: Path) -> None:
    folder = iris(tmp_path / "iris")
    # Baked-in settings are defaults: serve_iris's CORE_*_PORT variables must win.
    (folder / "settings.json").write_text('{"http_port": 8080, "grpc_port": 8081, "metrics_port": 8082}')
    _, stages = generated(folder, "--wheels", str(wheels))
    builder, runtime = stages
    assert "CORE_ENVIRONMENT_OVER_FILES=true" in runtime.arguments("ENV")[0]
    assert pip_requirements(builder) == [
        compatible(name).replace("~=", "==") for name in ("core", "core-sklearn")
    ]
    image = ImageRoot(tmp_path / "image", folder, {"wheels": wheels})
    assert image.carry_out(builder) is None
    # The runtime stage's one RUN makes the server's user (root's business, not this test's).
    assert [run.split()[0] for run in runtime.arguments("RUN")] == ["useradd"]
    assert image.carry_out(runtime, skip_runs=("useradd",)) is None
    for path in installed_from(image, "core", "core_sklearn"):
        assert path.is_relative_to(image.root / "opt/venv"), path
    serve_iris(image, runtime, image.root / "models")


def test_server_dockerfile_refuses_an_unknown_plugin(tmp_path: Path) -> None:
    """Its builder's RUN takes each of PLUGINS (sklearn, then tensorflow) and
    stops, naming the plugins there are, at one that is not in plugins/."""
    builder, _ = parse_dockerfile(SERVER_DOCKERFILE.read_text())
    image = ImageRoot(tmp_path / "image", ROOT)
    failed = image.carry_out(builder, {"PLUGINS": "sklearn tensorflow"})
    assert failed is not None
    assert "PLUGINS: no plugin 'tensorflow' in plugins/ (there are: " in failed.stderr, failed.stderr
    assert "sklearn" in failed.stderr.partition("there are:")[2]
