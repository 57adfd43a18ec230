"""A transformer in front of the iris example: clients send one tensor per
measurement and get species names back; the predictor (examples/iris, any
OIP server holding an iris classifier) takes `input-0`, a [rows, 4] matrix,
and answers class indices. Only the hooks are written here: the base
class's `predict` forwards to `predictor_url` (see model-settings.json)."""

from __future__ import annotations

import numpy as np

from core import BadRequest, Model
from core.codecs import NumpyCodec, StringCodec
from core.types import InferenceRequest, InferenceResponse, RequestOutput

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SPECIES = np.array(["setosa", "versicolor", "virginica"])


class IrisSpecies(Model):
    async def preprocess(self, payload: InferenceRequest, headers: dict[str, str]) -> InferenceRequest:
        columns = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        missing = [name for name in FEATURES if name not in columns]
        if missing:
            raise BadRequest(f"missing inputs {missing}: send one tensor per measurement, {list(FEATURES)}")
        rows = np.column_stack([columns[name].astype(np.float32).ravel() for name in FEATURES])
        return InferenceRequest(
            inputs=[NumpyCodec.encode_input("input-0", rows)],
            outputs=[RequestOutput(name="predict")],
        )

    async def postprocess(self, response: InferenceResponse, headers: dict[str, str]) -> InferenceResponse:
        classes = NumpyCodec.decode_output(response.outputs[0]).astype(int)
        response.outputs = [StringCodec.encode_output("species", SPECIES[classes].tolist())]
        return response
