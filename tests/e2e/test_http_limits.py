"""The HTTP limits of the REST server, and the connection limits of the
gRPC port (docs/limits.md), against a real `core start` with small limits,
by raw socket clients that send too much, too slowly, or nothing at all.
Every socket has a timeout: a limit that does not hold fails its test
instead of hanging it. After each abuse the server
must still answer a normal request."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from core.testing import ServerProcess

BODY_LIMIT = 1000
BODY_TIMEOUT = 1.0
HEADER_TIMEOUT = 3.0
KEEP_ALIVE_TIMEOUT = 1.0
MAX_HEADER_SIZE = 4096
MAX_HEADERS = 20
MAX_CONNECTIONS = 20
GRPC_MAX_CONNECTIONS = 5
# How long any answer may take here: generous, as the machine may be busy.
PROMPT = 10.0


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_folder: Any, model_settings: Any, iris: Any
) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("http-limits")
    model_folder(root / "iris", model_settings("iris"), iris.classifier)
    env = {
        "CORE_PARALLEL_WORKERS": "0",
        "CORE_MAX_REQUEST_BODY_SIZE": str(BODY_LIMIT),
        "CORE_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "CORE_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "CORE_HTTP_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE_TIMEOUT),
        "CORE_HTTP_MAX_HEADER_SIZE": str(MAX_HEADER_SIZE),
        "CORE_HTTP_MAX_HEADERS": str(MAX_HEADERS),
        "CORE_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "CORE_GRPC_MAX_CONNECTIONS": str(GRPC_MAX_CONNECTIONS),
    }
    with ServerProcess(root, env=env) as process:
        yield process


@pytest.fixture(autouse=True)
def still_serving(server: ServerProcess) -> Iterator[None]:
    """After each test: the server is alive and answers an inference."""
    yield
    assert server.alive(), server.log()
    body = {
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
    }
    response = httpx.post(f"{server.url}/v2/models/iris/infer", json=body, timeout=PROMPT)
    assert response.status_code == 200, response.text
    assert "Exception in ASGI application" not in server.log()


def connect(server: ServerProcess, timeout: float = PROMPT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response: status, headers (lower-case names), body (by
    Content-Length). socket.timeout if it does not come."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a response body")
        body += chunk
    return int(status_line.split()[1]), headers, body


def assert_closed(sock: socket.socket) -> None:
    """The server closed the connection (EOF or reset), within the socket's timeout."""
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(65536) == b""


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def live_status(server: ServerProcess) -> int:
    return httpx.get(f"{server.url}/v2/health/live", timeout=PROMPT).status_code


# Bodies


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/models/iris/infer",
        "/v2/repository/models/iris/load",
        "/v2/models/iris/generate",
    ],
)
def test_content_length_over_the_limit_is_413_before_the_body(server: ServerProcess, path: str) -> None:
    with connect(server) as sock:
        # 1 GiB announced, not a byte of it sent: the answer cannot wait for it.
        sock.sendall(
            request_head("POST", path, "Content-Type: application/json", "Content-Length: 1073741824")
        )
        status, headers, body = read_response(sock)
        assert status == 413, body
        message = json.loads(body)["error"]
        assert str(BODY_LIMIT) in message and "max_request_body_size" in message, message
        # The body was never read: the connection cannot carry another request.
        assert headers.get("connection") == "close", headers
        assert_closed(sock)


def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:
    # The index route read its body whole, whatever its size (infer's is in test_errors.py).
    path = "/v2/repository/index"

    def chunks() -> Iterator[bytes]:
        yield b'{"ready": false}'
        for _ in range(5):
            yield b" " * 300  # valid JSON, whitespace: only its size is wrong

    response = httpx.post(f"{server.url}{path}", content=chunks(), timeout=PROMPT)
    assert response.status_code == 413, response.text
    assert str(BODY_LIMIT) in response.json()["error"]
    # Under the limit, the same route answers.
    small = httpx.post(f"{server.url}{path}", content=iter([b'{"ready": ', b"true}"]), timeout=PROMPT)
    assert small.status_code == 200, small.text
    assert [model["name"] for model in small.json()] == ["iris"]


def test_body_shorter_than_its_content_length_is_408(server: ServerProcess) -> None:
    # A body whose parts each arrive within the body timeout is read, however long the whole takes.
    body = json.dumps({"ready": True}).encode()
    with connect(server) as sock:
        sock.sendall(request_head("POST", "/v2/repository/index", f"Content-Length: {len(body)}"))
        for start in range(0, len(body), 4):
            sock.sendall(body[start : start + 4])
            time.sleep(BODY_TIMEOUT / 3)
        status, _, answer = read_response(sock)
        assert status == 200, answer
    # One whose next part does not arrive within it is answered 408.
    with connect(server) as sock:
        sock.sendall(
            request_head(
                "POST", "/v2/models/iris/infer", "Content-Type: application/json", "Content-Length: 500"
            )
        )
        sock.sendall(b'{"inputs":')  # and nothing more
        status, headers, body = read_response(sock)
        assert status == 408, body
        assert "http_body_timeout" in json.loads(body)["error"]
        assert headers.get("connection") == "close", headers
        assert_closed(sock)


# Headers


def test_headers_over_the_size_limit_are_431(server: ServerProcess) -> None:
    with connect(server) as sock:
        sock.sendall(request_head("GET", "/v2/health/live", "X-Big: " + "a" * 2 * MAX_HEADER_SIZE))
        status, headers, body = read_response(sock)
        assert status == 431, body
        assert "http_max_header_size" in json.loads(body)["error"]
        assert headers.get("connection") == "close"
        assert_closed(sock)
    # A header that never ends is refused as soon as it passes the limit.
    with connect(server) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sock.sendall(b"a" * 4 * MAX_HEADER_SIZE)
        status, _, body = read_response(sock)
        assert status == 431, body
        assert_closed(sock)


def test_too_many_headers_are_431(server: ServerProcess) -> None:
    with connect(server) as sock:
        many = [f"X-Header-{index}: {index}" for index in range(MAX_HEADERS + 5)]
        sock.sendall(request_head("GET", "/v2/health/live", *many))
        status, _, body = read_response(sock)
        assert status == 431, body
        assert "http_max_headers" in json.loads(body)["error"]
        assert_closed(sock)
    # As many as allowed are fine.
    headers = {f"x-header-{index}": str(index) for index in range(MAX_HEADERS - 5)}
    assert httpx.get(f"{server.url}/v2/health/live", headers=headers, timeout=PROMPT).status_code == 200


# Timeouts


def test_partial_headers_are_408_after_the_header_timeout(server: ServerProcess) -> None:
    with connect(server, timeout=HEADER_TIMEOUT + PROMPT) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status, headers, body = read_response(sock)
        assert status == 408, body
        assert "http_header_timeout" in json.loads(body)["error"]
        assert headers.get("connection") == "close"
        assert_closed(sock)


def test_silent_connection_is_closed_after_the_header_timeout(server: ServerProcess) -> None:
    with connect(server, timeout=HEADER_TIMEOUT + PROMPT) as sock:
        assert_closed(sock)  # without a response: no request was begun


def test_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(server: ServerProcess) -> None:
    # Well under uvicorn's own 5 s, so the setting is what closes it.
    with connect(server, timeout=KEEP_ALIVE_TIMEOUT + 2.0) as sock:
        for _ in range(2):  # the connection is kept alive between requests
            sock.sendall(request_head("GET", "/v2/health/live"))
            status, headers, _ = read_response(sock)
            assert status == 200
            assert headers.get("connection") != "close"
        assert_closed(sock)


def test_partial_headers_after_a_response_are_408(server: ServerProcess) -> None:
    with connect(server, timeout=HEADER_TIMEOUT + PROMPT) as sock:
        sock.sendall(request_head("GET", "/v2/health/live"))
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        status, _, body = read_response(sock)
        assert status == 408, body
        assert_closed(sock)


# Connections


def test_connections_over_the_limit_are_refused_at_once(server: ServerProcess) -> None:
    time.sleep(0.2)  # the server has seen the earlier tests' connections close
    held = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for _ in range(3):
            with connect(server) as extra:
                status, headers, body = read_response(extra)
                assert status == 503, body
                assert "connections" in json.loads(body)["error"]
                assert headers.get("connection") == "close"
                assert_closed(extra)
        # Liveness answers (refused too, while every connection is taken) without waiting.
        assert live_status(server) == 503
        # The held connections are open and waiting: none was answered or closed.
        readable, _, _ = select.select(held, [], [], 0.5)
        assert readable == []
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + PROMPT
    while live_status(server) != 200:
        assert time.monotonic() < deadline, "the closed connections were never released"
        time.sleep(0.05)


def grpc_live(server: ServerProcess) -> bool:
    """ServerLive over a new gRPC connection; False when it is refused."""
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
        try:
            call(b"", timeout=2)
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return False
        return True


def grpc_connection(server: ServerProcess) -> socket.socket | None:
    """A raw connection to the gRPC port, once the server has accepted it (it
    sends its HTTP/2 settings first); None when it is refused (closed)."""
    sock = socket.create_connection(("127.0.0.1", server.grpc_port), timeout=PROMPT)
    try:
        if sock.recv(65536):
            return sock
    except ConnectionResetError:
        pass
    sock.close()
    return None


def test_grpc_connections_over_the_limit_are_refused(server: ServerProcess) -> None:
    assert grpc_live(server)
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + PROMPT
        while len(held) < GRPC_MAX_CONNECTIONS:  # the closed channel above may still count a moment
            assert time.monotonic() < deadline, f"only {len(held)} gRPC connections accepted"
            sock = grpc_connection(server)
            if sock is None:
                time.sleep(0.1)
            else:
                held.append(sock)
        assert grpc_connection(server) is None  # refused: closed at once, nothing sent
        assert not grpc_live(server)
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + PROMPT
    while not grpc_live(server):
        assert time.monotonic() < deadline, "the closed gRPC connections were never released"
        time.sleep(0.1)


def test_silent_grpc_connection_is_closed_after_the_header_timeout(server: ServerProcess) -> None:
    # No HTTP/2 preface: dropped after the handshake timeout, as on the HTTP port.
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=HEADER_TIMEOUT + PROMPT) as sock:
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):  # the server's own HTTP/2 settings, then EOF
                pass
        assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5
