"""`Model`: the contract every runtime implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from .codecs.base import InputCodec, RequestCodec, content_type_of
from .codecs.decorator import encode_result
from .codecs.registry import find_input_codec, find_request_codec, input_codec_for, request_codec_for
from .errors import NotImplementedByModel
from .settings import ModelSettings
from .statistics import InferenceStatistics
from .types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    RequestOutput,
    ResponseOutput,
)

if TYPE_CHECKING:
    from .transformer import Predictor


class Model:
    """Subclass it, implement `load` and `predict`, and point `implementation`
    in model-settings.json at the subclass."""

    # Adaptive batching merges requests whose custom parameters have the same
    # names, each becoming a list of the requests' values. True: only requests
    # whose parameters are equal merge, and they keep their values (for a
    # model whose parameters set how the whole call runs, as generation's do).
    batch_by_parameter_values: ClassVar[bool] = False

    # Whether the class overrides `preprocess` / `postprocess`: found once,
    # when the class is defined (not for setting). The dataplane calls no
    # hook a class leaves as the base's no-op.
    runs_preprocess: ClassVar[bool] = False
    runs_postprocess: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.runs_preprocess = cls.preprocess is not Model.preprocess
        cls.runs_postprocess = cls.postprocess is not Model.postprocess

    @classmethod
    def replica_limit(cls, settings: ModelSettings) -> int | None:
        """The most instances of the model `settings` describes that may run
        at once, whatever its `replicas` and the server's `parallel_workers`
        say; None: no limit. A runtime whose instances hold state that two
        processes must not fork (an online drift detector) answers 1. Asked
        in a worker before the model's replicas are placed."""
        return None

    def __init__(self, settings: ModelSettings) -> None:
        self._settings = settings
        self._inputs = {tensor.name: tensor for tensor in settings.inputs}
        self._outputs = {tensor.name: tensor for tensor in settings.outputs}
        self.ready = False
        # Counted by the dataplane; a reloaded version starts from zero, as in Triton.
        self.statistics = InferenceStatistics()
        # A transformer's predictor (settings with `predictor_url`): opened at load.
        self._predictor: Predictor | None = None

    @property
    def settings(self) -> ModelSettings:
        return self._settings

    @property
    def name(self) -> str:
        return self._settings.name

    @property
    def version(self) -> str | None:
        return self._settings.version

    @property
    def inputs(self) -> list[MetadataTensor]:
        return self._settings.inputs

    @inputs.setter
    def inputs(self, value: list[MetadataTensor]) -> None:
        self._settings.inputs = value
        self._inputs = {tensor.name: tensor for tensor in value}

    @property
    def outputs(self) -> list[MetadataTensor]:
        return self._settings.outputs

    @outputs.setter
    def outputs(self, value: list[MetadataTensor]) -> None:
        self._settings.outputs = value
        self._outputs = {tensor.name: tensor for tensor in value}

    async def load(self) -> bool:
        """Load the artifact. Return True when the model can serve. A
        transformer (`predictor_url` in its settings) opens the client of
        its predictor here: one that overrides `load` calls `super().load()`
        (else the client opens at the first request)."""
        if self._settings.predictor_url:
            self._open_predictor()
        return True

    def check_request(self, payload: InferenceRequest) -> None:
        """Check one request on its own (raise a BadRequest), before adaptive
        batching merges it with others: a request refused here fails alone,
        not with its whole batch. Called only with batching on; `predict`
        sees every request either way. By default: nothing to check."""

    async def preprocess(self, payload: InferenceRequest, headers: dict[str, str]) -> InferenceRequest:
        """KServe's pre-processing hook: the request `predict` gets, made from
        the one the client sent (the same object, changed, or a new one).
        `headers` are the request's transport headers (lower-case names;
        gRPC metadata). Runs once per request, before adaptive batching
        merges it with others. By default: not called at all."""
        return payload

    async def postprocess(self, response: InferenceResponse, headers: dict[str, str]) -> InferenceResponse:
        """KServe's post-processing hook: the response the client gets, made
        from `predict`'s (with adaptive batching, from this request's part
        of the batch's response). By default: not called at all."""
        return response

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """One inference. A transformer (`predictor_url` in its settings)
        need not implement it: by default it forwards `payload` (after
        `preprocess`) to the predictor and returns its answer (to
        `postprocess`)."""
        predictor = self._predictor
        if predictor is None:
            if not self._settings.predictor_url:
                raise NotImplementedByModel(f"model '{self.name}' does not implement predict")
            predictor = self._open_predictor()
        return await predictor.infer(payload)

    async def predict_stream(
        self, payloads: AsyncIterator[InferenceRequest]
    ) -> AsyncIterator[InferenceResponse]:
        """Responses to a stream of requests. By default, `predict`'s one
        response to each: a model without streaming answers the streaming
        routes (`infer_stream`, `generate`, `generate_stream`, gRPC
        `ModelStreamInfer`) as Triton answers them for a model that is not
        decoupled. Override it to send several responses per request."""
        async for payload in payloads:
            yield await self.predict(payload)

    async def explain(self, payload: InferenceRequest) -> InferenceResponse:
        """An explanation of the predictions for `payload` (KServe V1 `:explain`).
        Optional: runtimes without one answer 501."""
        raise NotImplementedByModel(f"model '{self.name}' does not implement explain")

    async def unload(self) -> bool:
        """Free resources. A transformer closes its predictor's client here:
        one that overrides `unload` calls `super().unload()`."""
        predictor, self._predictor = self._predictor, None
        if predictor is not None:
            await predictor.close()
        return True

    def _open_predictor(self) -> Predictor:
        from .transformer import Predictor

        if self._predictor is None:
            self._predictor = Predictor(self._settings)
        return self._predictor

    async def metadata(self) -> MetadataModelResponse:
        settings = self._settings
        return MetadataModelResponse(
            name=self.name,
            versions=settings.versions,
            platform=settings.platform,
            inputs=settings.inputs,
            outputs=settings.outputs,
            parameters=(
                Parameters(content_type=settings.parameters.content_type)
                if settings.parameters.content_type
                else None
            ),
        )

    # Codec helpers. The content type comes from the request, then the
    # model's settings (`inputs`, `outputs`, `parameters.content_type`), then
    # the runtime's default codec.

    def decode(self, request_input: RequestInput, default_codec: type[InputCodec] | None = None) -> Any:
        codec = self._input_codec(request_input.name, content_type_of(request_input), self._inputs)
        codec = codec or default_codec
        return codec.decode_input(request_input) if codec else request_input.data

    def decode_request(
        self, payload: InferenceRequest, default_codec: type[RequestCodec] | None = None
    ) -> Any:
        content_type = content_type_of(payload) or self._settings.parameters.content_type
        codec = request_codec_for(content_type) if content_type else default_codec
        return codec.decode_request(payload) if codec else payload

    def encode(
        self,
        payload: Any,
        request_output: RequestOutput,
        default_codec: type[InputCodec] | None = None,
    ) -> ResponseOutput:
        codec = self._input_codec(request_output.name, content_type_of(request_output), self._outputs)
        codec = codec or default_codec or find_input_codec(payload=payload)
        if codec is None:
            return encode_result(self.name, self.version, payload).outputs[0]
        return codec.encode_output(request_output.name, payload)

    def encode_response(
        self, payload: Any, default_codec: type[RequestCodec] | None = None
    ) -> InferenceResponse:
        codec = default_codec if default_codec and default_codec.can_encode(payload) else None
        codec = codec or find_request_codec(payload=payload)
        if codec is None:
            return encode_result(self.name, self.version, payload)
        return codec.encode_response(self.name, payload, self.version)

    @staticmethod
    def _input_codec(
        name: str, content_type: str | None, metadata: dict[str, MetadataTensor]
    ) -> type[InputCodec] | None:
        if content_type is None and name in metadata:
            content_type = content_type_of(metadata[name])
        return input_codec_for(content_type) if content_type else None
