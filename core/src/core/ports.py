"""Binding listening ports before anything starts serving on them, so that a
port in use stops the server with one clear error (PortUnavailable) instead
of a traceback from inside uvicorn."""

from __future__ import annotations

import socket

from .errors import PortUnavailable


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
