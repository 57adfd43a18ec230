"""Per-model-version inference counters (Triton's statistics extension).

Updated on the event loop only, so plain integer fields need no lock; the
hot path costs a few additions and two clock reads."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


class InferenceStatistics:
    __slots__ = (
        "batched",
        "compute_count",
        "compute_ns",
        "execution_count",
        "fail_count",
        "fail_ns",
        "inference_count",
        "last_inference_ns",
        "success_count",
        "success_ns",
    )

    def __init__(self) -> None:
        self.success_count = self.success_ns = 0
        self.fail_count = self.fail_ns = 0
        self.compute_count = self.compute_ns = 0
        self.inference_count = self.execution_count = 0
        self.last_inference_ns = 0  # wall clock, since the epoch
        # Set by core.batching: executions are then counted per batch.
        self.batched = False

    def succeeded(self, total_ns: int, compute_ns: int, inferences: int) -> None:
        """A request answered: `total_ns` from its arrival in the dataplane,
        `compute_ns` in the model call, `inferences` its batch size."""
        self.success_count += 1
        self.success_ns += total_ns
        self.compute_count += 1
        self.compute_ns += compute_ns
        if not self.batched:  # else counted by `executed`, once per batch
            self.execution_count += 1
        self.inference_count += inferences
        self.last_inference_ns = time.time_ns()

    def executed(self) -> None:
        """A batch of requests ran as one successful model execution."""
        self.execution_count += 1

    def failed(self, total_ns: int) -> None:
        self.fail_count += 1
        self.fail_ns += total_ns
        self.last_inference_ns = time.time_ns()

    @classmethod
    def combined(cls, parts: Iterable[InferenceStatistics]) -> InferenceStatistics:
        """The sum of several counters (the replicas of one model version)."""
        total = cls()
        for part in parts:
            for field in cls.__slots__:
                if field == "last_inference_ns":
                    total.last_inference_ns = max(total.last_inference_ns, part.last_inference_ns)
                else:
                    setattr(total, field, getattr(total, field) + getattr(part, field))
        return total

    def report(self, name: str, version: str | None) -> dict[str, Any]:
        """Triton's `$model_stat` JSON object (also the source of the gRPC message)."""
        stat: dict[str, Any] = {"name": name}
        if version is not None:
            stat["version"] = version
        stat.update(
            last_inference=self.last_inference_ns // 1_000_000,
            inference_count=self.inference_count,
            execution_count=self.execution_count,
            inference_stats={
                "success": _duration(self.success_count, self.success_ns),
                "fail": _duration(self.fail_count, self.fail_ns),
                # The batcher's queue time is not split out yet (it counts in
                # compute_infer), nor is decoding, which happens inside the
                # model call.
                "queue": _duration(0, 0),
                "compute_input": _duration(0, 0),
                "compute_infer": _duration(self.compute_count, self.compute_ns),
                "compute_output": _duration(0, 0),
            },
        )
        return stat


def _duration(count: int, ns: int) -> dict[str, int]:
    return {"count": count, "ns": ns}
