"""A model's Ray Serve options from its settings, and the launcher's checks
before Ray starts (no cluster needed)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from core_ray.options import app_name, ray_options, runtime_env

from core.errors import ConfigurationError
from core.settings import ModelParameters, ModelSettings


def settings(ray: object = None, **fields: object) -> ModelSettings:
    extra = {} if ray is None else {"ray": ray}
    return ModelSettings(name="iris", parameters=ModelParameters(extra=extra), **fields)


def test_replicas_come_from_extra_ray_else_the_models_replicas() -> None:
    assert ray_options(settings()).num_replicas == 1
    assert ray_options(settings(replicas=3)).num_replicas == 3
    assert ray_options(settings({"num_replicas": 2}, replicas=3)).num_replicas == 2
    scaled = ray_options(settings({"autoscaling": {"max_replicas": 4, "upscale_delay_s": 0}}))
    assert scaled.num_replicas is None
    assert scaled.autoscaling is not None
    assert scaled.autoscaling.model_dump() == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 2.0,
        "upscale_delay_s": 0,  # Ray's other fields pass through
    }


@pytest.mark.parametrize(
    ("ray", "message"),
    [
        ({"num_replicas": 2, "autoscaling": {}}, "sets both num_replicas and autoscaling"),
        ({"num_replica": 2}, "field 'parameters.extra.ray.num_replica': Extra inputs are not permitted"),
        (
            {"num_cpus": -1},
            "field 'parameters.extra.ray.num_cpus': Input should be greater than or equal to 0",
        ),
        (
            {"autoscaling": {"max_replicas": 0}},
            "field 'parameters.extra.ray.autoscaling.max_replicas': "
            "Input should be greater than or equal to 1",
        ),
    ],
)
def test_bad_options_are_a_load_error_naming_the_field(ray: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ray_options(settings(ray))
    assert "model 'iris'" in raised.value.message and message in raised.value.message


def test_runtime_env_from_the_environment_path_and_extra_ray(tmp_path: Path) -> None:
    ray = {"runtime_env": {"env_vars": {"B": "2"}, "pip": ["x"]}}
    model = ModelSettings(
        name="iris", parameters=ModelParameters(environment_path="envs/iris", extra={"ray": ray})
    )
    model._source = tmp_path / "iris" / "model-settings.json"
    assert runtime_env(model, ray_options(model), {"A": "1"}) == {
        "env_vars": {"A": "1", "B": "2"},
        "py_executable": str(tmp_path / "iris" / "envs" / "iris" / "bin" / "python"),
        "pip": ["x"],
    }


def test_application_names() -> None:
    assert app_name(ModelSettings(name="iris")) == "core-iris"
    assert (
        app_name(ModelSettings(name="my model", parameters=ModelParameters(version="v1")))
        == "core-my_model-v1"
    )


def test_a_taken_port_fails_before_ray_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "core", "start", str(tmp_path), "--on", "ray"]
        done = subprocess.run(
            [*command, "--host", "127.0.0.1", "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        f"core: HTTP port 127.0.0.1:{port} cannot be bound: Address already in use"
    )
