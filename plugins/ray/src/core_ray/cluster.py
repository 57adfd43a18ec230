"""What an ingress replica knows of the cluster: the server's settings, and
how many replicas of each model's application run (Ray Serve's status,
polled), which is what makes a model ready."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ray import serve

from core import run_in_thread
from core.settings import Settings

logger = logging.getLogger(__name__)

# How often the replica counts are read from Ray Serve's controller.
STATUS_SECONDS = 0.5


class Cluster:
    def __init__(self, settings: Settings, env_vars: dict[str, str]) -> None:
        self.settings = settings
        # What every model replica's runtime_env sets (the metrics folder...).
        self.env_vars = env_vars
        self._running: dict[str, int] = {}
        # Application -> the RayModel that last deployed it.
        self._watched: dict[str, object] = {}
        self._polling: asyncio.Task[None] | None = None

    def running(self, app: str) -> int:
        """Replicas of `app` that have loaded their model and take requests."""
        return self._running.get(app, 0)

    async def watch(self, app: str, owner: object) -> None:
        self._watched[app] = owner
        await self.refresh()
        if self._polling is None or self._polling.done():
            self._polling = asyncio.create_task(self._poll())

    def unwatch(self, app: str, owner: object) -> bool:
        """Stop watching `app` if `owner` deployed it last; whether it did."""
        if self._watched.get(app) is not owner:
            return False
        del self._watched[app]
        self._running.pop(app, None)
        return True

    async def refresh(self) -> None:
        status = await run_in_thread(serve.status)
        self._running = {
            name: _running_replicas(application)
            for name, application in status.applications.items()
            if name in self._watched
        }

    async def _poll(self) -> None:
        while self._watched:
            await asyncio.sleep(STATUS_SECONDS)
            try:
                await self.refresh()
            except Exception as error:  # the controller restarting: keep the last counts
                logger.warning("cannot read Ray Serve's status: %s", error)

    async def close(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling


def _running_replicas(application: Any) -> int:
    return sum(deployment.replica_states.get("RUNNING", 0) for deployment in application.deployments.values())
