"""The FastAPI application on its own, in process, without the ASGI fast
path in front of it: its infer route must answer exactly as the fast path."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np

from core import Model, ModelSettings, Server, Settings
from core.codecs import NumpyCodec, NumpyRequestCodec
from core.types import InferenceRequest, InferenceResponse


class Doubler(Model):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        doubled = NumpyRequestCodec.decode_request(payload) * 2
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("twice", doubled)])


def test_fastapi_infer_route_matches_the_fast_path(tmp_path) -> None:
    async def main() -> None:
        server = Server(Settings(model_repository_root=str(tmp_path), max_request_body_size=200))
        await server.dataplane.add_model(Doubler(ModelSettings(name="doubler")))
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            body = {"id": "r1", "inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2]}]}
            response = await client.post("/v2/models/doubler/infer", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["id"] == "r1"
            assert np.array_equal(response.json()["outputs"][0]["data"], [2, 4])

            malformed = await client.post("/v2/models/doubler/infer", content=b"{nope")
            assert malformed.status_code == 400
            assert malformed.json()["error"].startswith("malformed JSON")

            too_big = await client.post("/v2/models/doubler/infer", content=b" " * 500)
            assert too_big.status_code == 413

            unknown = await client.post("/v2/models/nope/infer", json=body)
            assert unknown.status_code == 404
            assert unknown.json() == {"error": "model 'nope' not found"}

            # The binary extension, both ways.
            header = {
                "inputs": [
                    {"name": "x", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}}
                ],
                "parameters": {"binary_data_output": True},
            }
            text = json.dumps(header).encode()
            framed = await client.post(
                "/v2/models/doubler/infer",
                content=text + np.array([3, 4], dtype="<i4").tobytes(),
                headers={"Inference-Header-Content-Length": str(len(text))},
            )
            assert framed.status_code == 200, framed.text
            assert framed.headers["content-type"] == "application/octet-stream"
            length = int(framed.headers["inference-header-content-length"])
            assert json.loads(framed.content[:length])["outputs"][0]["parameters"]["binary_data_size"] == 8
            assert np.frombuffer(framed.content[length:], dtype="<i4").tolist() == [6, 8]

    asyncio.run(main())
