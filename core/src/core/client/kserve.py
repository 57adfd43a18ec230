"""KServe's client classes, on core's clients: code written for
`kserve.InferenceRESTClient` / `kserve.InferenceGRPCClient` runs by
changing the import to `core.client.kserve`. The signatures are KServe's
(kserve/inference_client.py); what differs is what KServe's own lack:
`retries` is applied (connect errors, 503, UNAVAILABLE), health checks go by
status code, and every error is a `core.client.ClientError`."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import httpx
import orjson

from .base import USE_CLIENT_DEFAULT
from .errors import http_error
from .grpc import AsyncGRPCClient
from .rest import AsyncRESTClient, read_infer_response, request_body
from .types import InferRequest, InferResponse


class RESTConfig:
    """KServe's REST client configuration: `protocol` "v1" (the default, as
    in KServe) or "v2"."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        protocol: str = "v1",
        retries: int = 3,
        http2: bool = False,
        timeout: float | None = 60,
        cert: Any = None,
        verify: str | bool | ssl.SSLContext = True,
        auth: Any = None,
        verbose: bool = False,
    ) -> None:
        protocol = getattr(protocol, "value", protocol)
        if protocol not in ("v1", "v2"):
            raise ValueError(f"unsupported protocol {protocol!r}: 'v1' or 'v2'")
        self.transport = transport
        self.protocol = protocol
        self.retries = retries
        self.http2 = http2
        self.timeout = timeout
        self.cert = cert
        self.verify = verify
        self.auth = auth
        self.verbose = verbose


class InferenceRESTClient:
    """KServe's asynchronous REST client: the server's base URL goes with
    each call, as in KServe."""

    def __init__(self, config: RESTConfig | None = None) -> None:
        self._config = config or RESTConfig()
        self._clients: dict[str, AsyncRESTClient] = {}

    def _client(self, base_url: httpx.URL | str) -> AsyncRESTClient:
        url = str(base_url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise httpx.InvalidURL("Base url should have 'http://' or 'https://' protocol")
        client = self._clients.get(url)
        if client is None:
            config = self._config
            client = self._clients[url] = AsyncRESTClient(
                url,
                timeout=config.timeout,
                retries=config.retries,
                verify=config.verify,
                cert=config.cert,
                auth=config.auth,
                http2=config.http2,
                transport=config.transport,
                binary=False,  # as KServe: JSON unless the InferRequest holds binary inputs
            )
        return client

    async def infer(
        self,
        base_url: httpx.URL | str,
        data: InferRequest | dict[str, Any],
        model_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
        is_graph_endpoint: bool = False,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> InferResponse | dict[str, Any]:
        """V2: an InferResponse; V1, an inference graph, or a dict sent as
        is: the JSON answer as a dict."""
        client = self._client(base_url)
        if is_graph_endpoint:
            return await self._post(client, "", data, headers, response_headers, timeout, _json)
        if model_name is None:
            raise ValueError("model_name should not be 'None'")
        if self._config.protocol == "v1":
            path = f"/v1/models/{model_name}:predict"
            return await self._post(client, path, data, headers, response_headers, timeout, _json)
        path = f"/v2/models/{model_name}/infer"
        return await self._post(client, path, data, headers, response_headers, timeout, read_infer_response)

    async def explain(
        self,
        base_url: httpx.URL | str,
        model_name: str,
        data: dict[str, Any],
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> dict[str, Any]:
        if self._config.protocol != "v1":
            raise ValueError(f"explain is a V1 call; this client uses {self._config.protocol}")
        client = self._client(base_url)
        path = f"/v1/models/{model_name}:explain"
        result = await self._post(client, path, data, headers, None, timeout, _json)
        assert isinstance(result, dict)
        return result

    async def _post(
        self,
        client: AsyncRESTClient,
        path: str,
        data: InferRequest | dict[str, Any],
        headers: Mapping[str, str] | None,
        response_headers: dict[str, str] | None,
        timeout: Any,
        read: Callable[[httpx.Response, str], Any],
    ) -> InferResponse | dict[str, Any]:
        """POST `data` (an InferRequest in JSON or the binary extension, or a
        dict as JSON), and read the answer; as KServe, not retried unless the
        connection was refused or the answer a 503."""
        if isinstance(data, InferRequest):
            content, framing = request_body(data)
        else:
            content, framing = (
                orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
                {"content-type": "application/json"},
            )
        response = await client.request(
            "POST", path, content=content, headers={**framing, **(headers or {})}, timeout=timeout
        )
        if response_headers is not None:
            response_headers.update(response.headers)
        result: InferResponse | dict[str, Any] = read(response, str(response.url))
        return result

    async def is_server_ready(
        self,
        base_url: httpx.URL | str,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> bool:
        ready: bool = await self._client(base_url).is_server_ready(headers=headers, timeout=timeout)
        return ready

    async def is_server_live(
        self,
        base_url: httpx.URL | str,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> bool:
        client = self._client(base_url)
        if self._config.protocol == "v1":
            response: httpx.Response = await client.request("GET", "/", headers=headers, timeout=timeout)
            return response.is_success
        live: bool = await client.is_server_live(headers=headers, timeout=timeout)
        return live

    async def is_model_ready(
        self,
        base_url: httpx.URL | str,
        model_name: str,
        headers: Mapping[str, str] | None = None,
        timeout: Any = USE_CLIENT_DEFAULT,
    ) -> bool:
        client = self._client(base_url)
        if self._config.protocol == "v1":
            answer: httpx.Response = await client.request(
                "GET", f"/v1/models/{model_name}", headers=headers, timeout=timeout
            )
            return answer.is_success
        ready: bool = await client.is_model_ready(model_name, headers=headers, timeout=timeout)
        return ready

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def __aenter__(self) -> InferenceRESTClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class InferenceGRPCClient:
    """KServe's asynchronous gRPC client. `retries` counts attempts in
    KServe's (its gRPC service config's maxAttempts); here they are the
    retries of core's policy. Create it inside the event loop that uses it."""

    def __init__(
        self,
        url: str,
        verbose: bool = False,
        use_ssl: bool = False,
        root_certificates: str | None = None,
        private_key: str | None = None,
        certificate_chain: str | None = None,
        creds: grpc.ChannelCredentials | None = None,
        channel_args: Sequence[tuple[str, Any]] | None = None,
        timeout: float | None = 60,
        retries: int | None = 3,
    ) -> None:
        self._client = AsyncGRPCClient(
            url,
            timeout=timeout,
            retries=retries,
            ssl=use_ssl,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            creds=creds,
            channel_args=channel_args,
        )

    async def infer(
        self,
        infer_request: InferRequest,
        timeout: Any = USE_CLIENT_DEFAULT,
        headers: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> InferResponse:
        if not isinstance(infer_request, InferRequest):
            raise TypeError(f"infer takes an InferRequest, not {type(infer_request).__name__}")
        result: InferResponse = await self._client.infer(
            infer_request.model_name, infer_request, headers=_headers(headers), timeout=timeout
        )
        return result

    async def is_server_ready(self, timeout: Any = USE_CLIENT_DEFAULT, headers: Any = None) -> bool:
        ready: bool = await self._client.is_server_ready(headers=_headers(headers), timeout=timeout)
        return ready

    async def is_server_live(self, timeout: Any = USE_CLIENT_DEFAULT, headers: Any = None) -> bool:
        live: bool = await self._client.is_server_live(headers=_headers(headers), timeout=timeout)
        return live

    async def is_model_ready(
        self, model_name: str, timeout: Any = USE_CLIENT_DEFAULT, headers: Any = None
    ) -> bool:
        ready: bool = await self._client.is_model_ready(
            model_name, headers=_headers(headers), timeout=timeout
        )
        return ready

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> InferenceGRPCClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _json(response: httpx.Response, url: str) -> Any:
    if not response.is_success:
        raise http_error(response.status_code, response.content, response.reason_phrase, url)
    return orjson.loads(response.content)


def _headers(headers: Sequence[tuple[str, str]] | Mapping[str, str] | None) -> dict[str, str] | None:
    """gRPC metadata as KServe takes it (pairs, or grpc.aio.Metadata) as a dict."""
    if headers is None or isinstance(headers, Mapping):
        return dict(headers) if headers else None
    return {key: value for key, value in headers}
