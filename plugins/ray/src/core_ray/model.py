"""`RayModel`: what an ingress replica's registry holds for a model served
by a Ray Serve application of `ModelReplica`s. Loading deploys the
application (a no-op when it runs with the same settings) and waits for a
replica to have loaded the model; calls go to a replica through a
DeploymentHandle as the bytes the client sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError

from core import run_in_thread
from core.deadlines import call_deadline, expiring, model_timeout
from core.errors import CoreError, ModelLoadError, ModelNotReady
from core.remote import RemoteModel
from core.settings import ModelSettings
from core.statistics import InferenceStatistics
from core.types import InferenceRequest, InferenceResponse, MetadataModelResponse
from core.workers import protocol

from .cluster import Cluster
from .options import app_name, ray_options, runtime_env
from .replica import ModelReplica


class ReplicaUnavailable(CoreError):
    """The replica serving a request went away, or none runs: not answered."""

    status_code = 503
    grpc_code = "UNAVAILABLE"


class RayModel(RemoteModel):
    def __init__(self, settings: ModelSettings, cluster: Cluster) -> None:
        super().__init__(settings)
        self._cluster = cluster
        self.app = app_name(settings)
        self._handle: Any = None
        self._timeout = model_timeout(settings, cluster.settings)

    @property
    def ready(self) -> bool:
        return self._ready and self._cluster.running(self.app) > 0

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value

    # Lifecycle

    async def load(self) -> bool:
        options = ray_options(self.settings)
        model = self.settings.model_dump(mode="json")
        source = str(self.settings.source) if self.settings.source is not None else None
        server = self._cluster.settings.model_dump(mode="json")
        deployment = serve.deployment(ModelReplica).options(  # type: ignore[attr-defined]
            name=self.settings.name,
            num_replicas=options.num_replicas,
            autoscaling_config=options.autoscaling.model_dump() if options.autoscaling else None,
            max_ongoing_requests=options.max_ongoing_requests,
            ray_actor_options={
                "num_cpus": options.num_cpus,
                "num_gpus": options.num_gpus,
                "runtime_env": runtime_env(self.settings, options, self._cluster.env_vars),
            },
        )
        try:
            # Returns once the application runs: a replica has loaded the model.
            application = deployment.bind(model, source, server)
            await run_in_thread(lambda: serve.run(application, name=self.app, route_prefix=None))
        except RuntimeError as error:
            raise ModelLoadError(_deploy_failure(str(error))) from None
        self._handle = serve.get_app_handle(self.app)
        await self._cluster.watch(self.app, owner=self)
        return True

    async def unload(self) -> bool:
        """Deletes the application, unless a newer instance (a reload, which
        Ray rolled out over the same application) owns it now."""
        self._handle = None
        if self._cluster.unwatch(self.app, owner=self):
            await run_in_thread(serve.delete, self.app)
        return True

    # Calls to a replica

    async def _call(self, kind: str, *args: Any) -> Any:
        handle = self._handle
        if handle is None or not self.ready:
            raise self._no_replica()
        response = handle.call.remote(kind, *args)
        try:
            with expiring(call_deadline(self.name, self._timeout)):
                status, value = await response
        except asyncio.CancelledError:
            response.cancel()
            raise
        except (RayActorError, ActorUnavailableError):
            raise ReplicaUnavailable(
                f"the replica of model '{self.name}' serving the request exited before answering; try again"
            ) from None
        if status == protocol.ERROR:
            raise protocol.decode_error(value)
        return value

    def _no_replica(self) -> CoreError:
        if not self._ready:
            return ModelNotReady(f"model '{self.name}' is not loaded (unloading, or loading again)")
        return ReplicaUnavailable(
            f"model '{self.name}' has no running replica in Ray Serve (being restarted); try again"
        )

    async def infer_http(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        result: tuple[int, bytes, list[tuple[bytes, bytes]]] = await self._call(
            protocol.INFER_HTTP, dict(headers), body
        )
        return result

    async def infer_grpc(
        self, headers: Mapping[str, str], data: bytes
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        result: tuple[bytes, tuple[tuple[str, str], ...]] = await self._call(
            protocol.INFER_GRPC, dict(headers), data
        )
        return result

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return await self._call(protocol.CALL, "infer", (payload,))  # type: ignore[no-any-return]

    async def explain(self, payload: InferenceRequest) -> InferenceResponse:
        return await self._call(protocol.CALL, "explain", (payload,))  # type: ignore[no-any-return]

    async def metadata(self) -> MetadataModelResponse:
        return await self._call(protocol.CALL, "metadata", ())  # type: ignore[no-any-return]

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        async for payload in payloads:
            if self._handle is None or not self.ready:
                raise self._no_replica()
            async for status, value in self._handle.options(stream=True).stream.remote(payload):
                if status == protocol.ERROR:
                    raise protocol.decode_error(value)
                yield value

    async def collect_statistics(self) -> InferenceStatistics:
        """The statistics of the replica that answers (Ray Serve cannot
        address every replica of a deployment)."""
        statistics: InferenceStatistics = await self._call(protocol.CALL, "statistics", ())
        return statistics


def _deploy_failure(message: str) -> str:
    """The load error a replica raised, from Ray's report of the failed
    deployment (which quotes the replica's traceback), else the report."""
    for line in reversed(message.strip().splitlines()):
        if "ModelLoadError:" in line:
            return line.split("ModelLoadError:", 1)[1].strip()
    return message.strip().splitlines()[-1] if message.strip() else "the deployment failed"
