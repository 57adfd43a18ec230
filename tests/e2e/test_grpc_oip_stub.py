"""Wire compatibility with the official Open Inference Protocol proto: a plain
stub compiled here with grpc_tools.protoc, sending typed `contents` (not the
raw form tritonclient uses) and reading `raw_output_contents`.

The stub runs in a subprocess: its messages have the same full names as
tritonclient's (package `inference`), and protobuf's default descriptor pool,
which generated modules register in, refuses a second definition."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
OIP_PROTO = ROOT.parent / "shared" / "spec" / "open-inference-protocol" / "open_inference_grpc.proto"

CLIENT = """
import json, struct, sys
import grpc
import numpy as np
import open_inference_grpc_pb2 as pb
import open_inference_grpc_pb2_grpc as pb_grpc

url, rows = sys.argv[1], np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(url))
out = {"live": stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live}

request = pb.ModelInferRequest(model_name="iris", id="oip-1")
tensor = request.inputs.add(name="input-0", datatype="FP32", shape=list(rows.shape))
tensor.contents.fp32_contents.extend(rows.ravel().tolist())
request.outputs.add(name="predict")
request.outputs.add(name="predict_proba")
response = stub.ModelInfer(request, timeout=10)
out["id"] = response.id
out["outputs"] = {
    o.name: {"datatype": o.datatype, "shape": list(o.shape), "typed": len(o.contents.ListFields()),
             "raw": response.raw_output_contents[i].hex()}
    for i, o in enumerate(response.outputs)
}

def code(request):
    try:
        stub.ModelInfer(request, timeout=10)
    except grpc.RpcError as error:
        return [error.code().name, error.details()]
    return ["OK", ""]

mixed = pb.ModelInferRequest()
mixed.CopyFrom(request)
mixed.raw_input_contents.append(rows.tobytes())
out["mixed"] = code(mixed)

narrow = pb.ModelInferRequest(model_name="iris")
narrow.inputs.add(name="small", datatype="INT8", shape=[2]).contents.int_contents.extend([1, 300])
out["out_of_range"] = code(narrow)

wrong_field = pb.ModelInferRequest(model_name="iris")
wrong_field.inputs.add(name="input-0", datatype="FP32", shape=[1]).contents.fp64_contents.append(1.0)
out["wrong_field"] = code(wrong_field)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def oip_answers(server, iris, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not OIP_PROTO.is_file():
        pytest.skip(f"the official OIP proto is not at {OIP_PROTO} (shared/ beside the clone)")
    out = tmp_path_factory.mktemp("oip_stub")
    args = ["grpc_tools.protoc", f"-I{OIP_PROTO.parent}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main([*args, str(OIP_PROTO)]) == 0
    rows = iris.features[::30]
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, f"127.0.0.1:{server.grpc_port}", json.dumps(rows.tolist())],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return {"rows": rows, **json.loads(done.stdout)}


def test_typed_fp32_in_raw_out(oip_answers: dict[str, Any], iris) -> None:
    rows, outputs = oip_answers["rows"], oip_answers["outputs"]
    assert oip_answers["live"] is True
    assert oip_answers["id"] == "oip-1"
    assert outputs["predict"]["datatype"] == "INT64" and outputs["predict"]["shape"] == [len(rows)]
    assert outputs["predict"]["typed"] == 0  # answers come in raw_output_contents only
    predict = np.frombuffer(bytes.fromhex(outputs["predict"]["raw"]), dtype="<i8")
    np.testing.assert_array_equal(predict, iris.classifier.predict(rows))
    proba = np.frombuffer(bytes.fromhex(outputs["predict_proba"]["raw"]), dtype="<f8")
    np.testing.assert_allclose(
        proba.reshape(outputs["predict_proba"]["shape"]), iris.classifier.predict_proba(rows)
    )


def test_raw_and_typed_contents_cannot_be_mixed(oip_answers: dict[str, Any]) -> None:
    code, details = oip_answers["mixed"]
    assert code == "INVALID_ARGUMENT" and "mixed" in details


def test_typed_contents_are_checked(oip_answers: dict[str, Any]) -> None:
    code, details = oip_answers["out_of_range"]
    assert code == "INVALID_ARGUMENT" and "out of range for INT8" in details
    code, details = oip_answers["wrong_field"]
    assert code == "INVALID_ARGUMENT" and "takes fp32_contents, got fp64_contents" in details
