"""`RemoteModel`: what a registry holds for a model whose replicas run
elsewhere (core's worker processes, a Ray Serve deployment). Inference
requests travel to a replica as the bytes the client sent; the replica
parses them, runs the model (its batcher included) and writes the answer,
so this process neither decodes tensors nor batches, measures or traces
the model's calls: the replica does."""

from __future__ import annotations

from collections.abc import Mapping

from .model import Model
from .statistics import InferenceStatistics


class RemoteModel(Model):
    async def infer_http(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """A REST infer request's body -> (status, body, headers) of its answer."""
        raise NotImplementedError

    async def infer_grpc(
        self, headers: Mapping[str, str], data: bytes
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        """A serialised ModelInferRequest -> its serialised answer and trailing metadata."""
        raise NotImplementedError

    async def collect_statistics(self) -> InferenceStatistics:
        """The statistics of the replicas, added up."""
        raise NotImplementedError
