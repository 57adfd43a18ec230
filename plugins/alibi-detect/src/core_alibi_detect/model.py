"""`AlibiDetectModel`: an alibi-detect detector served as a model. A request
is a batch of instances (one tensor, `[rows, features]`, or a `pd` request);
the response holds the detector's `data` as typed tensors and its `meta` in
the parameters, and every run is published as Prometheus metrics."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from core import Model, run_in_thread
from core.codecs import NumpyRequestCodec
from core.errors import BadRequest, ConfigurationError
from core.settings import ModelSettings
from core.types import InferenceRequest, InferenceResponse, model_parameters

from . import metrics
from .artifact import STATEFUL, detector_folder, detector_name
from .results import Detection, response, snapshot
from .serialisation import load_detector
from .settings import detector_settings
from .state import DetectorState
from .window import BatchWindow

logger = logging.getLogger(__name__)
# alibi-detect logs some 30 INFO lines per detector it loads.
logging.getLogger("alibi_detect").setLevel(logging.WARNING)


class AlibiDetectModel(Model):
    @classmethod
    def replica_limit(cls, settings: ModelSettings) -> int | None:
        """One instance for a detector with state (an online detector's, or
        a batch window's): two processes would each hold half of it."""
        if detector_settings(settings).batch_size is not None:
            return 1
        return 1 if detector_name(detector_folder(settings)) in STATEFUL else None

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        # One detector call at a time: detectors are not thread-safe, and
        # stateful ones must see their updates in order.
        self._calls = asyncio.Lock()
        self._state: DetectorState | None = None
        self._window: BatchWindow | None = None

    async def load(self) -> bool:
        settings = self._detector_settings = detector_settings(self.settings)
        if self.settings.max_batch_size > 1:
            raise ConfigurationError(
                f"model '{self.name}': adaptive batching (max_batch_size) would run unrelated requests as "
                f"one detection; a detector batches with parameters.extra.batch_size and batch_timeout"
            )
        timeout = self.settings.timeout
        if settings.batch_size is not None and timeout and settings.batch_timeout >= timeout:
            raise ConfigurationError(
                f"model '{self.name}': parameters.extra.batch_timeout ({settings.batch_timeout} s) must be "
                f"below the model's timeout ({timeout} s): a window's requests wait for it to close"
            )
        folder = detector_folder(self.settings)
        # Some detectors compute their thresholds at load (seconds): off the event loop.
        try:
            detector = await run_in_thread(load_detector, folder, settings.enable_unsafe_loading)
        except ConfigurationError as error:
            raise ConfigurationError(f"model '{self.name}': {error.message}") from None
        self._detector = detector
        if getattr(detector, "threshold", 0) is None:
            raise ConfigurationError(
                f"model '{self.name}': the {type(detector).__name__} detector has no threshold: "
                f"call its infer_threshold (or set threshold) before saving it"
            )
        self._meta: dict[str, Any] = dict(getattr(detector, "meta", {}) or {})
        self._accepted = _predict_keywords(detector)
        self._check_parameters(
            settings.predict_parameters, ConfigurationError, "parameters.extra.predict_parameters"
        )
        self._row_by_row = bool(self._meta.get("online")) and self._meta.get("detector_type") == "drift"
        self._features = _feature_shape(detector)
        if type(detector).__name__ in STATEFUL:
            state_folder = Path(settings.state_path) if settings.state_path else Path("state")
            if not state_folder.is_absolute():
                state_folder = folder / state_folder
            self._state = DetectorState(detector, state_folder, settings.state_save_freq)
            await run_in_thread(self._state.restore)
        if settings.batch_size is not None:
            self._window = BatchWindow(settings.batch_size, settings.batch_timeout, self._detect)
        metrics.register()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        instances = self._instances(payload)
        # A list (SpectralResidual's timestamps `t`) as the array predict expects.
        overrides = {
            key: np.asarray(value) if isinstance(value, list) else value
            for key, value in model_parameters(payload.parameters).items()
        }
        self._check_parameters(overrides, BadRequest, "request parameter")
        parameters = {**self._detector_settings.predict_parameters, **overrides}
        extra: dict[str, Any] = {}
        if self._window is None:
            detection = await self._detect(instances, parameters)
            data = detection.data
        else:
            key = json.dumps(parameters, sort_keys=True, default=_plain)
            share = await self._window.add(instances, parameters, key)
            detection = share.detection
            data = detection.rows_of(share.start, share.stop)
            extra = {"window_rows": detection.rows, "window_requests": share.requests}
        return response(self.name, self.version, data, {**detection.meta, **extra})

    async def unload(self) -> bool:
        # Open windows run now: their requests get answers, the state its updates.
        if self._window is not None:
            await self._window.drain()
        if self._state is not None:
            async with self._calls:
                await run_in_thread(self._state.save)
        return True

    async def _detect(self, instances: np.ndarray, parameters: dict[str, Any]) -> Detection:
        async with self._calls:
            detection = await run_in_thread(self._run, instances, parameters)
            if self._state is not None and self._state.updated(detection.rows):
                await run_in_thread(self._state.save)
        metrics.publish(detection, self._detector_settings.feature_names)
        return detection

    def _run(self, instances: np.ndarray, parameters: dict[str, Any]) -> Detection:
        predict = self._detector.predict
        try:
            if self._row_by_row:
                return Detection.stacked([snapshot(predict(row, **parameters)) for row in instances])
            return Detection.of(predict(instances, **parameters), len(instances))
        except (ValueError, TypeError, IndexError) as error:
            raise BadRequest(f"model '{self.name}': the detector refused the input: {error}") from None

    def _instances(self, payload: InferenceRequest) -> np.ndarray:
        """The request's instances as one numeric array, `[rows, ...]`."""
        if not payload.inputs:
            raise BadRequest(f"model '{self.name}': the request has no inputs")
        decoded = self.decode_request(payload, default_codec=NumpyRequestCodec)
        if hasattr(decoded, "to_numpy"):  # a pd request: one column per feature
            decoded = decoded.to_numpy()
        array = np.asarray(decoded)
        if array.dtype.kind not in "biuf":
            raise BadRequest(
                f"model '{self.name}': detectors take numbers, not {array.dtype} data "
                f"(send an INT*, UINT*, FP* or BOOL tensor)"
            )
        if array.ndim == 0 or len(array) == 0:
            raise BadRequest(
                f"model '{self.name}': the request holds no instances (its first dimension is 0)"
            )
        if self._features is None:  # a detector saved before any update learns it from the first
            self._features = _feature_shape(self._detector)
        expected = self._features
        if expected is not None and tuple(array.shape[1:]) != expected:
            raise BadRequest(
                f"model '{self.name}': each instance must have shape {list(expected)} "
                f"({_count(expected)} features), not {list(array.shape[1:])}"
            )
        return array

    def _check_parameters(self, parameters: dict[str, Any], error: type[Exception], what: str) -> None:
        unknown = sorted(set(parameters) - self._accepted)
        if unknown:
            accepted = ", ".join(sorted(self._accepted)) or "none"
            raise error(
                f"model '{self.name}': unknown {what} {', '.join(map(repr, unknown))}: "
                f"{type(self._detector).__name__}.predict accepts {accepted}"
            )


def _predict_keywords(detector: Any) -> set[str]:
    """The keyword arguments of the detector's predict, beyond its data."""
    parameters = list(inspect.signature(detector.predict).parameters.values())
    return {p.name for p in parameters[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _feature_shape(detector: Any) -> tuple[int, ...] | None:
    """The shape of one instance, as the detector was fitted; None when it
    does not say (the detector then judges the input itself)."""
    reference = getattr(detector, "x_ref", None)
    if (
        isinstance(reference, np.ndarray)
        and reference.ndim >= 1
        and not getattr(detector, "preprocess_fn", None)
    ):
        return tuple(reference.shape[1:])
    forest = getattr(detector, "isolationforest", None)
    if forest is not None and hasattr(forest, "n_features_in_"):
        return (int(forest.n_features_in_),)
    mean = getattr(detector, "mean", None)
    if isinstance(mean, np.ndarray) and mean.ndim == 1:
        return (len(mean),)
    return None


def _count(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape)) if shape else 1


def _plain(value: Any) -> Any:
    """A JSON value for an array parameter (a window's key)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
