"""`EstimatorModel`: the base of runtimes whose outputs are methods of one
loaded framework object (`predict`, `predict_proba`, `transform`), as the
scikit-learn, XGBoost and LightGBM runtimes are."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .codecs import NumpyCodec, NumpyRequestCodec
from .errors import BadRequest
from .executor import BlockingCalls, run_in_thread
from .model import Model
from .storage import get_model_uri
from .types import InferenceRequest, InferenceResponse, RequestOutput

Method = Callable[[Any], Any]
# What `load_methods` returns: the outputs' methods, the first being the
# default output; and, per output name, why an output a user may expect is
# not there ("a regressor has no class probabilities").
Methods = tuple[Mapping[str, Method], Mapping[str, str]]


class EstimatorModel(Model):
    """A runtime that answers each requested output by calling the method of
    that name on its decoded input.

    A subclass names its `wellknown_artifacts` and implements `load_methods`:
    `load()` finds the artifact (`parameters.uri`, or the first well-known
    name next to model-settings.json), runs `load_methods(path)` in a thread
    and serves what it returns (a subclass with other needs may override
    `load()` and call `serve_methods` itself). `predict` then:
    decodes the request (`np` by default: one input, one array; or the request's
    or the settings' content type, such as `pd`); answers a `400` naming the
    available outputs for an output that is not one of them; calls every
    requested method in one blocking call (`core.executor.BlockingCalls`: on
    the event loop only when measured under the inline budget, else in a
    thread); turns `input_errors` (the framework's complaints about the input:
    wrong number of features, unknown columns) into a `400`; and encodes each
    result as the output of the method's name (`np` by default).

    The decoded input reaches the methods as it is: no conversion and no copy
    here (a method that needs another dtype or layout converts it itself)."""

    # Exceptions of the framework that mean "bad input": a 400, not a 500.
    input_errors: ClassVar[tuple[type[Exception], ...]] = (ValueError,)
    # File names looked for when parameters.uri names no file.
    wellknown_artifacts: ClassVar[tuple[str, ...]] = ()

    async def load(self) -> bool:
        path = get_model_uri(self.settings, self.wellknown_artifacts)
        methods, missing = await run_in_thread(self.load_methods, path)
        self.serve_methods(methods, missing)
        return True

    def load_methods(self, path: Path) -> Methods:
        """Load the artifact at `path` (in a thread): its outputs' methods,
        the first being the default output, and why outputs are missing."""
        raise NotImplementedError(f"{type(self).__name__} does not implement load_methods")

    def serve_methods(self, methods: Mapping[str, Method], missing: Mapping[str, str] | None = None) -> None:
        """Serve `methods` as outputs, the first being the default one.
        `missing` explains, per output name, why an output a user may expect
        is not there ("a regressor has no class probabilities")."""
        if not methods:
            raise ValueError(f"model '{self.name}': no outputs to serve")
        self._methods = dict(methods)
        self._missing = dict(missing or {})
        self._default_outputs = [RequestOutput(name=next(iter(self._methods)))]
        self._calls = BlockingCalls()

    @property
    def output_names(self) -> list[str]:
        return list(self._methods)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        requested = payload.outputs or self._default_outputs
        names = [output.name for output in requested]
        self._check_outputs(names)
        features = self.decode_request(payload, default_codec=NumpyRequestCodec)
        try:
            results = await self._calls.run(getattr(features, "size", 0), self._call, features, names)
        except self.input_errors as error:
            raise BadRequest(f"model '{self.name}': {error}") from None
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                self.encode(result, output, default_codec=NumpyCodec)
                for result, output in zip(results, requested, strict=True)
            ],
        )

    def _check_outputs(self, names: list[str]) -> None:
        unknown = [name for name in names if name not in self._methods]
        if not unknown:
            return
        reasons = [f" ({self._missing[name]})" for name in unknown if name in self._missing]
        raise BadRequest(
            f"model '{self.name}' has no output {', '.join(map(repr, unknown))}{''.join(reasons)}; "
            f"available outputs: {', '.join(self._methods)}"
        )

    def _call(self, features: Any, names: list[str]) -> list[np.ndarray]:
        # Every requested output in one call: one hand-off to a thread at most.
        return [np.asarray(self._methods[name](features)) for name in names]
