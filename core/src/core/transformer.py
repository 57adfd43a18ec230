"""Transformer mode, as KServe's: a model whose settings name a predictor
(`predictor_url`) forwards each request, once its `preprocess` has run, to
that OIP server through `core.client`, and hands the answer to its
`postprocess`. The predictor may be any OIP server (core, KServe, MLServer,
Triton), over REST (http://, https://) or gRPC (grpc://, grpcs://).

Errors: a predictor that refuses the request (a 4xx) has its status and
message passed on; one that cannot be reached, answers too slowly or fails
(5xx) is a 502 (a 503 or 504 when it said so), each naming its address."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .deadlines import Deadline
from .errors import BadGateway, CoreError, DeadlineExceeded, ModelNotReady, UpstreamError
from .settings import PREDICTOR_SCHEMES, ModelSettings
from .types import InferenceRequest, InferenceResponse
from .types.dataplane import parameters_dict

if TYPE_CHECKING:
    from .client import AsyncGRPCClient, AsyncRESTClient, ClientError

# The request headers forwarded to the predictor: KServe's (the request id,
# Zipkin's trace id, the caller's credentials), and W3C trace context.
FORWARDED_HEADERS = ("x-request-id", "x-b3-traceid", "authorization", "traceparent", "tracestate")

# gRPC status codes of HTTP 4xx statuses, for a REST predictor's refusal
# passed on over gRPC.
_GRPC_CODE_OF_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    431: "RESOURCE_EXHAUSTED",
}


class Predictor:
    """The client of a transformer's predictor: made at the model's load
    (on the event loop that serves it), closed at its unload."""

    def __init__(self, settings: ModelSettings) -> None:
        # Imported here: only transformers need the client.
        from .client import AsyncGRPCClient, AsyncRESTClient

        url = settings.predictor_url
        if not url:
            raise ValueError(f"model '{settings.name}' has no predictor_url")
        self.url = url
        self.name = settings.name
        self.version = settings.version
        self.model = settings.predictor_model or settings.name
        self.timeout = settings.predictor_timeout
        self._client: AsyncRESTClient | AsyncGRPCClient
        if PREDICTOR_SCHEMES[url.partition("://")[0].lower()] == "grpc":
            self._client = AsyncGRPCClient(url, timeout=self.timeout)  # grpcs://: TLS
        else:
            self._client = AsyncRESTClient(url, timeout=self.timeout)

    async def infer(self, payload: InferenceRequest) -> InferenceResponse:
        """The predictor's answer to `payload`, as this model's (its name
        and version), within `predictor_timeout` (retries of a refused
        connection included)."""
        from .client import ClientError

        request, headers = forwarded(payload)
        try:
            with Deadline.after(self.timeout, "its predictor_timeout", self.name):
                answer = await self._client.infer(self.model, request, headers=headers)
        except ClientError as error:
            raise self._error(error) from None
        except DeadlineExceeded:
            raise DeadlineExceeded(
                f"model '{self.name}': the predictor at {self.url} did not answer within "
                f"predictor_timeout of {self.timeout:g} s"
            ) from None
        response: InferenceResponse = answer.to_inference_response()
        # The transformer's answer, not the predictor's model's version.
        response.model_name, response.model_version = self.name, self.version
        return response

    async def close(self) -> None:
        await self._client.close()

    def _error(self, error: ClientError) -> CoreError:
        """The answer to a request the predictor failed."""
        status = error.status
        where = f"the predictor at {self.url}"
        if status is None:
            return BadGateway(f"model '{self.name}': {where} did not answer: {error.message}")
        if 400 <= status < 500:
            code = error.code or _GRPC_CODE_OF_STATUS.get(status, "INVALID_ARGUMENT")
            return UpstreamError(f"{error.message} (from {where})", status, code)
        if status == 503:
            return ModelNotReady(f"model '{self.name}': {where} is unavailable: {error.message}")
        if status == 504:
            return DeadlineExceeded(f"model '{self.name}': {where} timed out: {error.message}")
        return BadGateway(f"model '{self.name}': {where} failed ({error.code or status}): {error.message}")


def forwarded(payload: InferenceRequest) -> tuple[InferenceRequest, dict[str, str]]:
    """The request to send the predictor, and its headers: those of
    `FORWARDED_HEADERS` the request came with. The transport headers the
    server put in the request's parameters stay here."""
    parameters = payload.parameters
    if parameters is None or parameters.headers is None:
        return payload, {}
    incoming = parameters.headers
    headers = {name: incoming[name] for name in FORWARDED_HEADERS if name in incoming}
    kept = parameters.model_copy(update={"headers": None})
    return payload.model_copy(update={"parameters": kept if parameters_dict(kept) else None}), headers
