"""core.client when things go wrong: a server that starts late, one that
answers 503, one that is too slow, one that is gone; which calls are
retried (and which are not, so a prediction is not made twice); TLS."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from core.client import AsyncGRPCClient, AsyncRESTClient, ClientError, GRPCClient, RESTClient, RetryPolicy
from core.grpc.generated import inference_pb2 as pb
from core.grpc.generated import inference_pb2_grpc
from core.testing import ServerProcess, free_port

# Models that count their calls by input name: `Flaky` answers 503
# (ModelNotReady) to its first two calls for a name; `Slow` sleeps on its
# first call for a name; `Count` only counts. Each returns the number of
# calls it has seen for the name as output `calls`; with parameter `peek`,
# it returns it without counting the call.
MODELS_PY = textwrap.dedent(
    '''
    import asyncio
    from collections import Counter

    from core import Model
    from core.errors import ModelNotReady
    from core.types import InferenceRequest, InferenceResponse, ResponseOutput

    CALLS = Counter()


    def answer(model, payload):
        calls = [CALLS[payload.inputs[0].name]]
        output = ResponseOutput(name="calls", shape=[1], datatype="INT64", data=calls)
        return InferenceResponse(model_name=model.name, outputs=[output])


    def count(payload):
        """The call's number for its input name; 0 for a peek."""
        if payload.parameters is not None and (payload.parameters.model_extra or {}).get("peek"):
            return 0
        CALLS[payload.inputs[0].name] += 1
        return CALLS[payload.inputs[0].name]


    class Flaky(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            if 0 < count(payload) <= 2:
                raise ModelNotReady("warming up")
            return answer(self, payload)


    class Slow(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            if count(payload) == 1:
                await asyncio.sleep(3)
            return answer(self, payload)


    class Headers(Model):
        """The request's authorization and x-request-id headers, as outputs."""

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            headers = (payload.parameters.headers if payload.parameters else None) or {}
            outputs = [
                ResponseOutput(name=name, shape=[1], datatype="BYTES", data=[headers.get(name, "")])
                for name in ("authorization", "x-request-id")
            ]
            return InferenceResponse(model_name=self.name, outputs=outputs)


    class Count(Model):
        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            count(payload)
            return answer(self, payload)
    '''
)
FAST_RETRIES = RetryPolicy(retries=3, backoff=0.05, max_backoff=0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("models")
    for name in ("Flaky", "Slow", "Count", "Headers"):
        folder = root / name.lower()
        folder.mkdir()
        (folder / "model-settings.json").write_text(
            f'{{"name": "{name.lower()}", "implementation": "models.{name}"}}'
        )
        (folder / "models.py").write_text(MODELS_PY)
    with ServerProcess(root) as process:
        yield process


def _client(kind: str, server: ServerProcess, **options: Any) -> Any:
    if kind == "rest":
        return RESTClient(server.url, **options)
    return GRPCClient(f"127.0.0.1:{server.grpc_port}", **options)


def _calls(client: Any, model: str, key: str) -> int:
    """How many calls `model` has seen for inputs named `key`."""
    response = client.infer(model, {key: np.zeros(1, dtype=np.int8)}, parameters={"peek": True})
    return int(response.as_numpy("calls")[0])


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_503_is_retried_until_the_model_answers(server: ServerProcess, kind: str) -> None:
    with _client(kind, server, retries=FAST_RETRIES) as client:
        response = client.infer("flaky", {f"retried-{kind}": np.zeros(1, dtype=np.int8)})
        assert response.as_numpy("calls").tolist() == [3]


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_503_without_retries_is_an_error(server: ServerProcess, kind: str) -> None:
    with _client(kind, server, retries=0) as client:
        with pytest.raises(ClientError) as raised:
            client.infer("flaky", {f"once-{kind}": np.zeros(1, dtype=np.int8)})
        assert raised.value.status == 503
        assert "warming up" in raised.value.message
        assert _calls(client, "flaky", f"once-{kind}") == 1


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_a_lost_infer_is_not_repeated_unless_idempotent(server: ServerProcess, kind: str) -> None:
    with _client(kind, server, retries=FAST_RETRIES, timeout=0.5) as client:
        with pytest.raises(ClientError) as raised:
            client.infer("slow", {f"lost-{kind}": np.zeros(1, dtype=np.int8)})
        assert raised.value.status in (None, 504)
        assert _calls(client, "slow", f"lost-{kind}") == 1  # sent once: it may have run
        # Said to be safe to repeat, it is tried again, and the second call is quick.
        response = client.infer("slow", {f"again-{kind}": np.zeros(1, dtype=np.int8)}, idempotent=True)
        assert response.as_numpy("calls").tolist() == [2]


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_a_server_that_starts_late(tmp_path: Path, kind: str) -> None:
    (tmp_path / "count").mkdir()
    (tmp_path / "count" / "model-settings.json").write_text(
        '{"name": "count", "implementation": "models.Count"}'
    )
    (tmp_path / "count" / "models.py").write_text(MODELS_PY)
    late = ServerProcess(tmp_path)
    patient = RetryPolicy(retries=200, backoff=0.05, max_backoff=0.2)
    with _client(kind, late, retries=patient, timeout=5) as client:
        starter = threading.Timer(0.5, late.start)
        starter.start()
        try:
            # infer is not idempotent, but a refused connection never reached a model.
            response = client.infer("count", {"late": np.zeros(1, dtype=np.int8)})
            assert response.as_numpy("calls").tolist() == [1]
        finally:
            starter.join()
            late.stop()


def test_a_kept_alive_connection_the_server_closed_is_reopened(tmp_path: Path) -> None:
    """A restarted server closed the client's idle connection: the next
    call, not retried by policy (retries=0), goes on a new one."""
    (tmp_path / "count").mkdir()
    (tmp_path / "count" / "model-settings.json").write_text(
        '{"name": "count", "implementation": "models.Count"}'
    )
    (tmp_path / "count" / "models.py").write_text(MODELS_PY)
    server = ServerProcess(tmp_path)
    with server, RESTClient(server.url, retries=0) as client:
        client.infer("count", {"before": np.zeros(1, dtype=np.int8)})
        server.stop()
        server.start()
        response = client.infer("count", {"after": np.zeros(1, dtype=np.int8)})
    assert response.as_numpy("calls").tolist() == [1]


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_nothing_listening(kind: str) -> None:
    port = free_port()
    client = (
        RESTClient(f"http://127.0.0.1:{port}", retries=2)
        if kind == "rest"
        else GRPCClient(f"127.0.0.1:{port}", retries=2)
    )
    with client, pytest.raises(ClientError) as raised:
        client.is_server_live()
    assert raised.value.status in (None, 503)
    assert str(port) in str(raised.value)


def test_async_clients_retry_too(server: ServerProcess) -> None:
    async def main() -> list[int]:
        answers = []
        async with AsyncRESTClient(server.url, retries=FAST_RETRIES) as rest:
            response = await rest.infer("flaky", {"async-rest": np.zeros(1, dtype=np.int8)})
            answers.append(int(response.as_numpy("calls")[0]))
        async with AsyncGRPCClient(f"127.0.0.1:{server.grpc_port}", retries=FAST_RETRIES) as grpc_client:
            response = await grpc_client.infer("flaky", {"async-grpc": np.zeros(1, dtype=np.int8)})
            answers.append(int(response.as_numpy("calls")[0]))
        return answers

    assert asyncio.run(main()) == [3, 3]


@pytest.mark.parametrize("kind", ["rest", "grpc"])
def test_auth_and_request_id_headers(server: ServerProcess, kind: str) -> None:
    with _client(kind, server, headers={"Authorization": "Bearer secret"}) as client:
        given = client.infer("headers", {"x": np.zeros(1, dtype=np.int8)}, request_id="abc")
        fresh = [client.infer("headers", {"x": np.zeros(1, dtype=np.int8)}) for _ in range(2)]
    assert given.as_numpy("authorization").tolist() == [b"Bearer secret"]
    assert given.as_numpy("x-request-id").tolist() == [b"abc"]
    ids = [response.as_numpy("x-request-id")[0] for response in fresh]
    assert all(len(value) == 32 for value in ids) and ids[0] != ids[1]  # a fresh one per call


# TLS: a server with a self-signed certificate, checked against it as the CA.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return folder / "cert.pem", folder / "key.pem"


def test_rest_over_tls(certificate: tuple[Path, Path]) -> None:
    import http.server

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/v2/health/ready" else 404)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    cert, key = certificate
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"https://localhost:{httpd.server_address[1]}"
        with RESTClient(url, verify=str(cert), retries=0) as client:
            assert client.is_server_ready() is True
        with RESTClient(url, retries=0) as untrusting, pytest.raises(ClientError) as raised:
            untrusting.is_server_ready()
        assert "certificate" in raised.value.message.lower() or "ssl" in raised.value.message.lower()
    finally:
        httpd.shutdown()


def test_grpc_over_tls(certificate: tuple[Path, Path]) -> None:
    class Servicer(inference_pb2_grpc.GRPCInferenceServiceServicer):
        def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=True)

    cert, key = certificate
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Servicer(), server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("localhost:0", credentials)
    server.start()
    try:
        with GRPCClient(f"grpcs://localhost:{port}", root_certificates=str(cert), retries=0) as client:
            assert client.is_server_ready() is True
    finally:
        server.stop(None)
