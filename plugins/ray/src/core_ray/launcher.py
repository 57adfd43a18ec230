"""`core start FOLDER --on ray`: serve a model repository on Ray Serve.

Joins the cluster at RAY_ADDRESS (Ray's own variable), or starts a local
one. Ray Serve's HTTP proxy listens on the server's host and http_port (and
its gRPC proxy on grpc_port); behind it, the `core` application's ingress
runs core's REST app, and each model is an application `core-NAME` of
replicas. This process serves the metrics endpoint of every replica on
this node (core's multiprocess collection) and, on SIGINT/SIGTERM, deletes
the applications it deployed."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

import ray
from ray import serve
from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE
from ray.serve.config import HTTPOptions, gRPCOptions

from core.errors import PortUnavailable
from core.metrics.server import MetricsServer
from core.observability import Observability
from core.ports import bind
from core.settings import Settings

from .grpc_proxy import SERVICER_FUNCTION
from .ingress import CoreIngress
from .options import cluster_env_vars

logger = logging.getLogger(__name__)

INGRESS_APP = "core"


def run(settings: Settings) -> int:
    try:
        _check_ports(settings)
    except PortUnavailable as error:
        print(f"core: {error.message}", file=sys.stderr)
        return 1
    return _serve(settings)


def _check_ports(settings: Settings) -> None:
    """Fail before Ray starts, as `core start` does, when a port is taken
    (Ray's proxies would fail later, with their own traceback). Ray's gRPC
    proxy listens on every interface."""
    ports = [(settings.host, settings.http_port, "HTTP port"), ("::", settings.grpc_port, "gRPC port")]
    if settings.metrics_endpoint is not None:
        ports.append((settings.host, settings.metrics_port, "metrics port"))
    for host, port, what in ports:
        bind(host, port, what).close()


def _serve(settings: Settings) -> int:
    # Replicas take the place of worker processes; like workers, the model
    # replicas and the ingress write their metrics to the folder this process
    # prepares (its `metrics_dir`, or a temporary one), which needs a
    # parallel_workers above 0.
    settings = settings.model_copy(update={"parallel_workers": max(1, settings.parallel_workers)})
    observability = Observability(settings)
    env_vars = cluster_env_vars()
    address = os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
    # Serve already running on the cluster keeps its own proxies' ports.
    serve_was_running = _serve_running()
    if serve_was_running:
        logger.warning("Ray Serve runs on this cluster already: its HTTP proxy's host and port stay")
    try:
        serve.start(
            http_options=HTTPOptions(host=settings.host, port=settings.http_port),
            grpc_options=gRPCOptions(port=settings.grpc_port, grpc_servicer_functions=[SERVICER_FUNCTION]),
        )
        ingress = serve.deployment(serve.ingress()(CoreIngress)).options(  # type: ignore[attr-defined]
            name="CoreIngress",
            num_replicas=1,
            ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env_vars}},
            max_ongoing_requests=1000,
        )
        serve.run(
            ingress.bind(settings.model_dump(mode="json"), env_vars), name=INGRESS_APP, route_prefix="/"
        )
        logger.info("serving on Ray Serve: http://%s:%d", settings.host, settings.http_port)
        asyncio.run(_serve_metrics(settings, observability))
    finally:
        _delete_applications()
        if not serve_was_running:
            serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    return 0


async def _serve_metrics(settings: Settings, observability: Observability) -> None:
    """The metrics endpoint, until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics: Any = None
    if observability.metrics_enabled and observability.store is not None:
        observability.store.expose()
        metrics = MetricsServer(observability.store, settings)
        await metrics.start()
    try:
        await stop.wait()
        logger.info("shutting down: deleting core's Ray Serve applications")
    finally:
        if metrics is not None:
            await metrics.stop()


def _delete_applications() -> None:
    """The ingress, then the models' applications, which it deployed."""
    try:
        names = list(serve.status().applications)
    except Exception:
        return
    for name in [INGRESS_APP, *sorted(n for n in names if n.startswith("core-"))]:
        if name in names:
            try:
                serve.delete(name)
            except Exception as error:
                logger.warning("could not delete Ray Serve application '%s': %s", name, error)


def _serve_running() -> bool:
    try:
        ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    except ValueError:
        return False
    return True
