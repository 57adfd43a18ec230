"""Binding listening ports before anything starts serving on them, so that a
port in use stops the server with one clear error (PortUnavailable) instead
of a traceback from inside uvicorn; and how many connections the ports may
hold between them, so that clients cannot take all the process's file
descriptors."""

from __future__ import annotations

import logging
import resource
import socket

from .errors import PortUnavailable
from .settings import Settings

logger = logging.getLogger(__name__)

# Largest number of descriptors the soft limit is raised to when the hard one is unlimited.
_UNLIMITED_TARGET = 1 << 20
# Most connections by default, whatever the descriptor limit: far above what one server answers.
_MAX_DEFAULT_CONNECTIONS = 16384


def bind(host: str, port: int, what: str) -> socket.socket:
    """A TCP socket bound to `host:port` (not listening yet: the server that
    takes it does that). `what` names the port in the error ("HTTP port")."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise PortUnavailable(f"{what} {host}:{port} cannot be bound: {error.strerror}") from None
    return sock


def raise_descriptor_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            logger.warning("cannot raise the file descriptor limit from %d to %d: %s", soft, target, error)
    return _UNLIMITED_TARGET if soft == resource.RLIM_INFINITY else soft


def connection_budget(descriptors: int) -> int:
    """The connections both ports may hold together, for a process allowed
    `descriptors` open files: a quarter of them (at least 256, at most half)
    is left for the workers' sockets and pipes, model files and logs."""
    reserve = max(min(256, descriptors // 2), descriptors // 4)
    return max(2, min(_MAX_DEFAULT_CONNECTIONS, descriptors - reserve))


def connection_limits(settings: Settings) -> tuple[int, int]:
    """The most open connections of the HTTP port and of the gRPC port, after
    raising the descriptor limit: `http_max_connections` and
    `grpc_max_connections`, by default three quarters and one quarter of the
    budget (gRPC clients multiplex their calls over few connections)."""
    descriptors = raise_descriptor_limit()
    budget = connection_budget(descriptors)
    http = settings.http_max_connections or budget - budget // 4
    grpc = settings.grpc_max_connections or max(1, budget // 4)
    if http + grpc > descriptors - 64:
        logger.warning(
            "http_max_connections (%d) and grpc_max_connections (%d) leave less than 64 of the %d file "
            "descriptors this process may open for everything else: past them, new connections and "
            "files fail",
            http,
            grpc,
            descriptors,
        )
    return http, grpc
