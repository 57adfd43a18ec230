"""Entry point of the `core-ray` plugin: `core start FOLDER --on ray`."""

from __future__ import annotations

from core.plugins import Launcher, hookimpl


@hookimpl
def core_launchers() -> list[Launcher]:
    return [
        Launcher(
            name="ray",
            run="core_ray.launcher:run",
            description="Ray Serve deployments, one per model (RAY_ADDRESS joins a cluster)",
        )
    ]
