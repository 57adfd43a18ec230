"""Adaptive batching: the requests of a model instance whose settings have
`max_batch_size` > 1 run through its `predict` in batches (see `.batcher`
for when a batch runs, `.merge` for which requests merge and how).

Batching lives with the model instance, wherever the instance lives: who
holds a loaded local instance calls `attach(model)` once it has loaded and
`await detach(model)` before it unloads (the registry does; so do worker
processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .batcher import QUEUE_SIZE_PER_BATCH_SIZE, Batcher

if TYPE_CHECKING:
    from ..model import Model

__all__ = ["QUEUE_SIZE_PER_BATCH_SIZE", "Batcher", "attach", "batcher_of", "detach", "queue_sizes"]

_BATCHER = "_core_batcher"
_live: set[Batcher] = set()


def attach(model: Model) -> Batcher | None:
    """Batch the calls of `model.predict` when its settings ask for it
    (`max_batch_size` > 1; otherwise nothing changes and this returns None).
    Call it on the event loop that will serve the model's requests."""
    batcher = batcher_of(model)
    if batcher is not None or model.settings.max_batch_size <= 1:
        return batcher
    batcher = Batcher(model)
    _live.add(batcher)
    # An instance attribute in front of the class's predict: every caller of
    # `model.predict` (the dataplane, a worker) goes through the batcher,
    # which keeps the original bound method.
    vars(model)["predict"] = batcher.predict
    vars(model)[_BATCHER] = batcher
    model.statistics.batched = True
    return batcher


async def detach(model: Model) -> None:
    """Stop `model`'s batcher, if it has one: the requests it holds are run
    (new ones get 503) before this returns, and `predict` is the model's own
    again."""
    batcher = batcher_of(model)
    if batcher is None:
        return
    try:
        await batcher.stop()
    finally:
        _live.discard(batcher)
        vars(model).pop(_BATCHER, None)
        vars(model).pop("predict", None)
        model.statistics.batched = False


def batcher_of(model: Model) -> Batcher | None:
    batcher: Batcher | None = vars(model).get(_BATCHER)
    return batcher


def queue_sizes() -> dict[tuple[str, str | None], int]:
    """Requests waiting in the live batchers, by (model name, version): the
    source of MLServer's `batch_request_queue` metric. During a reload the
    old and new instances of a version both count."""
    sizes: dict[tuple[str, str | None], int] = {}
    for batcher in _live:
        key = (batcher.model_name, batcher.model_version)
        sizes[key] = sizes.get(key, 0) + batcher.queue_size
    return sizes
