"""The gRPC transport: `inference.GRPCInferenceService` (Open Inference
Protocol, plus Triton's model-repository RPCs), grpc.health.v1 and server
reflection. Messages come from proto/inference.proto, compiled at build time
into generated/ (see core/hatch_build.py)."""
