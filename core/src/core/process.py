"""What every process that serves models takes from the server's settings
at start: the server process, each worker, and core-ray's replicas. The
executor and the tensor decoders see no Settings: their limits are set per
process, here."""

from __future__ import annotations

from . import executor
from .settings import Settings
from .types import limits as tensor_limits


def configure_process(settings: Settings, worker: bool = False) -> None:
    # In a worker, one framework call of a model at a time: the pool's
    # processes (or Ray's replicas) give the parallelism, while threads of one
    # process only contend for the GIL (a 200-tree forest's predict measured
    # 42 ms of CPU with 6 at once in one worker, 14 ms alone:
    # benchmarks/RESULTS.md).
    executor.configure(inline_budget=settings.inline_predict_budget, calls_per_model=1 if worker else None)
    tensor_limits.configure(settings.max_bytes_elements)
