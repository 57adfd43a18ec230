"""`MLflowModel`: serves any MLflow model through pyfunc, typed by its
signature: metadata from it, inputs converted to it where nothing is lost,
request parameters checked against its params."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel, load_model

from core.codecs import DictRequestCodec, NumpyCodec, PandasCodec, StringCodec
from core.codecs.dict import decode_value
from core.codecs.json import JSONCodec, is_structured
from core.errors import BadRequest, ModelLoadError
from core.executor import BlockingCalls, run_in_thread
from core.model import Model
from core.settings import ModelSettings
from core.storage import get_model_uri
from core.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    Parameters,
    ResponseOutput,
    model_parameters,
)

from .signature import (
    PREDICTIONS,
    UNNAMED,
    convert_frame,
    convert_tensors,
    describe,
    is_columns,
    params_metadata,
    tensors_metadata,
)

logger = logging.getLogger(__name__)


class MLflowModel(Model):
    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.pyfunc: PyFuncModel | None = None
        self._calls = BlockingCalls()

    async def load(self) -> bool:
        path = get_model_uri(self.settings, ("MLmodel",))
        folder = path.parent if path.is_file() else path
        self.pyfunc = await run_in_thread(self._load, folder)
        signature = self.pyfunc.metadata.signature
        if signature is not None:
            if not self.settings.inputs:
                self.inputs = tensors_metadata(signature.inputs, UNNAMED)
            if not self.settings.outputs:
                self.outputs = tensors_metadata(signature.outputs, PREDICTIONS)
        return True

    def _load(self, folder: Path) -> PyFuncModel:
        try:
            return load_model(str(folder))
        except MlflowException as error:
            raise ModelLoadError(
                f"model '{self.name}': cannot load the MLflow model in {folder}: {error.message}"
            ) from None

    @property
    def signature(self) -> Any:
        return self._pyfunc.metadata.signature

    @property
    def _pyfunc(self) -> PyFuncModel:
        if self.pyfunc is None:
            raise ModelLoadError(f"model '{self.name}' is not loaded")
        return self.pyfunc

    async def metadata(self) -> MetadataModelResponse:
        metadata = await super().metadata()
        signature = self.signature
        extra: dict[str, Any] = {"signature": describe(signature)}
        params = params_metadata(signature.params if signature is not None else None)
        if params:
            extra["params"] = params
        base = metadata.parameters.model_dump(exclude_none=True) if metadata.parameters else {}
        metadata.parameters = Parameters(**base, **extra)
        return metadata

    async def unload(self) -> bool:
        self.pyfunc = None
        return True

    # Inference

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pyfunc = self._pyfunc
        data = self._data(payload)
        params = self._params(payload.parameters)
        try:
            predictions = await self._calls.run(_rows(data), _predict, pyfunc, data, params)
        except MlflowException as error:
            # The model's input checks (shapes, types, params): the client's mistake.
            raise BadRequest(f"model '{self.name}': {error.message}") from None
        return self._requested(self._response(predictions), payload)

    def _requested(self, response: InferenceResponse, payload: InferenceRequest) -> InferenceResponse:
        """Only the outputs the request names, in its order (all when it names
        none); a name the predictions do not have is a 400 naming those they do."""
        if not payload.outputs:
            return response
        outputs = {output.name: output for output in response.outputs}
        unknown = [output.name for output in payload.outputs if output.name not in outputs]
        if unknown:
            raise BadRequest(
                f"model '{self.name}' has no output '{unknown[0]}'; available outputs: {', '.join(outputs)}"
            )
        response.outputs = [outputs[output.name] for output in payload.outputs]
        return response

    def _data(self, payload: InferenceRequest) -> Any:
        """The request as the model takes it: a DataFrame for a column
        signature, an array (or a dict of them) for a tensor signature; by
        content type without a signature (`pd`, `np`, `dict`; several inputs:
        a DataFrame, one: an array)."""
        if not payload.inputs:
            raise BadRequest(f"model '{self.name}': the request has no inputs")
        signature = self.signature
        if signature is None or signature.inputs is None:
            return self._by_content_type(payload)
        if is_columns(signature.inputs):
            return self._named(convert_frame, PandasCodec.decode_request(payload), signature.inputs)
        specs = signature.inputs.inputs
        if len(specs) == 1 and not specs[0].name:
            content_type = payload.parameters.content_type if payload.parameters is not None else None
            if len(payload.inputs) > 1 or content_type == "pd":
                # Columns for a tensor: their values, as MLflow's server takes a DataFrame.
                values = PandasCodec.decode_request(payload).to_numpy()
                return self._named(convert_tensors, values, signature.inputs)
            return self._named(convert_tensors, decode_value(payload.inputs[0]), signature.inputs)
        tensors = DictRequestCodec.decode_request(payload)
        names = [spec.name for spec in specs]
        missing = [
            name for name, spec in zip(names, specs, strict=True) if spec.required and name not in tensors
        ]
        if missing:
            raise BadRequest(
                f"model '{self.name}': missing tensor '{missing[0]}'; tensors: {', '.join(names)}"
            )
        return self._named(convert_tensors, tensors, signature.inputs)

    def _named(self, conversion: Any, data: Any, schema: Any) -> Any:
        """`conversion(data, schema)`, its 400s naming the model."""
        try:
            return conversion(data, schema)
        except BadRequest as error:
            raise BadRequest(f"model '{self.name}': {error.message}") from None

    def _by_content_type(self, payload: InferenceRequest) -> Any:
        content_type = (
            payload.parameters.content_type if payload.parameters is not None else None
        ) or self.settings.parameters.content_type
        if content_type == "pd" or (content_type is None and len(payload.inputs) > 1):
            return PandasCodec.decode_request(payload)
        if content_type == "dict":
            return DictRequestCodec.decode_request(payload)
        if len(payload.inputs) != 1:
            raise BadRequest(
                f"model '{self.name}' has no signature: send one tensor, or columns with content type 'pd'"
            )
        return decode_value(payload.inputs[0])

    def _params(self, parameters: Parameters | None) -> dict[str, Any] | None:
        """The request's custom parameters, each one the signature's params
        name; MLflow fills in the defaults and checks the types."""
        given = model_parameters(parameters)
        if not given:
            return None
        schema = self.signature.params if self.signature is not None else None
        accepted = [param.name for param in schema.params] if schema is not None else []
        unknown = [name for name in given if name not in accepted]
        if unknown:
            takes = f"its params: {', '.join(accepted)}" if accepted else "it takes no params"
            raise BadRequest(f"model '{self.name}': unknown param '{unknown[0]}'; {takes}")
        return given

    def _response(self, predictions: Any) -> InferenceResponse:
        """Predictions as MLflow's scoring server writes them, in V2: a
        DataFrame's columns (`pd`), a dict's tensors (`dict`), else one output
        `predictions` (`np`, or `str` / `json` for text and documents)."""
        if isinstance(predictions, pd.DataFrame):
            return PandasCodec.encode_response(self.name, predictions, self.version)
        if isinstance(predictions, dict):
            return DictRequestCodec.encode_response(self.name, predictions, self.version)
        if isinstance(predictions, pd.Series):
            predictions = predictions.to_numpy()
        output = _predictions(predictions)
        content_type = output.parameters.content_type if output.parameters else None
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            parameters=Parameters(content_type=content_type),
            outputs=[output],
        )


def _predict(pyfunc: PyFuncModel, data: Any, params: dict[str, Any] | None) -> Any:
    return pyfunc.predict(data, params=params) if params else pyfunc.predict(data)


def _rows(data: Any) -> int:
    if isinstance(data, dict):
        return sum(np.size(value) for value in data.values())
    return int(np.size(data))


def _predictions(predictions: Any) -> ResponseOutput:
    if isinstance(predictions, (list, tuple)):
        if is_structured(list(predictions)):
            return JSONCodec.encode_output(PREDICTIONS, list(predictions))
        if predictions and all(isinstance(item, str) for item in predictions):
            return StringCodec.encode_output(PREDICTIONS, list(predictions))
    array = np.asarray(predictions)
    if array.dtype.kind in "US" or (array.dtype == object and all(isinstance(i, str) for i in array.ravel())):
        return StringCodec.encode_output(PREDICTIONS, [str(item) for item in array.ravel()])
    if array.dtype == object:
        return JSONCodec.encode_output(PREDICTIONS, array.tolist())
    return NumpyCodec.encode_output(PREDICTIONS, array)
