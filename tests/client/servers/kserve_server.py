"""A KServe ModelServer (the `kserve` package) serving linear.py's models
over the V2 protocol, REST and gRPC. Run with KServe's venv's Python:

    python kserve_server.py --http_port P --grpc_port G

(ModelServer reads its own flags from sys.argv.) Models: "iris" and
"strings", and "spare" (iris again), which the repository extension can
unload and load again: load(name) makes any of the three anew."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import numpy as np
from kserve import InferRequest, InferResponse, Model, ModelServer
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferOutput
from kserve.utils.utils import from_np_dtype
from linear import NUMERIC_INPUT, STRING_INPUT, linear, shout


class _V2Model(Model):
    input_name: str
    input_type: dict
    outputs: tuple[tuple[str, str, list[int]], ...]  # name, datatype, shape

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.load()

    def load(self) -> bool:
        self.ready = True
        return self.ready

    def compute(self, array: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def get_input_types(self) -> list[dict]:
        return [self.input_type]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": name, "datatype": datatype, "shape": shape} for name, datatype, shape in self.outputs
        ]

    async def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        tensor = payload.get_input_by_name(self.input_name)
        if tensor is None or len(payload.inputs) != 1:
            raise InvalidInput(f"model {self.name} takes one input, {self.input_name!r}")
        try:
            results = self.compute(tensor.as_numpy())
        except ValueError as error:
            raise InvalidInput(str(error)) from error
        names = [output.name for output in payload.request_outputs or []] or list(results)
        unknown = [name for name in names if name not in results]
        if unknown:
            raise InvalidInput(f"model {self.name} has no output {unknown[0]!r}")
        binary = payload.use_binary_outputs
        outputs = []
        for name in names:
            array = results[name]
            output = InferOutput(name, list(array.shape), from_np_dtype(array.dtype))
            output.set_data_from_numpy(array, binary_data=binary)
            outputs.append(output)
        return InferResponse(
            # KServe's REST response model needs an id: as its own runtimes, make one
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=binary,
            requested_outputs=payload.request_outputs,
        )


class LinearModel(_V2Model):
    input_name = NUMERIC_INPUT
    input_type = {"name": NUMERIC_INPUT, "datatype": "FP32", "shape": [-1, 4]}
    outputs = (("scores", "FP32", [-1, 3]), ("predict", "INT64", [-1]))

    def compute(self, array: np.ndarray) -> dict[str, np.ndarray]:
        return linear(array)


class StringModel(_V2Model):
    input_name = STRING_INPUT
    input_type = {"name": STRING_INPUT, "datatype": "BYTES", "shape": [-1]}
    outputs = (("upper", "BYTES", [-1]), ("length", "INT64", [-1]))

    def compute(self, array: np.ndarray) -> dict[str, np.ndarray]:
        return shout(array)


MODELS: dict[str, Callable[[str], _V2Model]] = {
    "iris": LinearModel,
    "spare": LinearModel,
    "strings": StringModel,
}


class Repository(ModelRepository):
    """KServe's ModelRepository loads nothing by itself (load() is a stub):
    this one makes the named model anew, as a server with a models dir would."""

    def load(self, name: str) -> bool:
        if name not in MODELS:
            raise KeyError(f"no model {name!r} in this repository")
        self.update(MODELS[name](name))
        return True


def _loopback_only() -> None:
    """KServe binds 0.0.0.0 (uvicorn) and [::] (gRPC) with no option to
    change it: this test server listens on 127.0.0.1 only."""
    import uvicorn
    from grpc.aio import _server

    class LoopbackConfig(uvicorn.Config):
        def __init__(self, *args, **kwargs):
            kwargs["host"] = "127.0.0.1"
            super().__init__(*args, **kwargs)

    uvicorn.Config = LoopbackConfig
    add_insecure_port = _server.Server.add_insecure_port
    _server.Server.add_insecure_port = lambda self, address: add_insecure_port(
        self, address.replace("[::]", "127.0.0.1", 1)
    )


if __name__ == "__main__":
    _loopback_only()
    repository = Repository()
    ModelServer(registered_models=repository).start([factory(name) for name, factory in MODELS.items()])
