"""The adaptive batcher on in-process models: when batches run, the queue
bound, errors, unloading. The model waits at a gate the test opens, so every
batch is decided by the order of events, never by timing."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from core import Model, ModelParameters, ModelSettings
from core.batching import attach, batcher_of, detach, queue_sizes
from core.errors import BadRequest, BatchQueueFull, CoreError, InferenceError, ModelNotReady
from core.registry import ModelRegistry
from core.types import InferenceRequest, InferenceResponse, RequestInput, ResponseOutput, to_ndarray


class Gated(Model):
    """Answers input*2 for every input (booleans as they are), after the gate
    opens; records the requests it was called with."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        self.calls: list[InferenceRequest] = []
        self.gate = asyncio.Event()
        self.error: Exception | None = None

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        self.calls.append(payload)
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        outputs = []
        for tensor in payload.inputs:
            array = to_ndarray(tensor)
            doubled = array if array.dtype == bool else array * 2
            outputs.append(
                ResponseOutput(name=tensor.name, shape=tensor.shape, datatype=tensor.datatype, data=doubled)
            )
        return InferenceResponse(model_name=self.name, outputs=outputs)

    def seen(self) -> list[tuple[str, int]]:
        """(first input name, its rows) of each call."""
        return [
            (call.inputs[0].name, call.inputs[0].shape[0] if call.inputs[0].shape else 0)
            for call in self.calls
        ]


def gated(max_batch_size: int, max_batch_time: float = 60.0, **fields: Any) -> Gated:
    settings = ModelSettings(
        name="m",
        max_batch_size=max_batch_size,
        max_batch_time=max_batch_time,
        parameters=ModelParameters(version="1"),
        **fields,
    )
    return Gated(settings)


def serving(max_batch_size: int, max_batch_time: float = 60.0, **fields: Any) -> Gated:
    """A gated model with its gate open and its batcher attached."""
    model = gated(max_batch_size, max_batch_time, **fields)
    model.gate.set()
    attach(model)
    return model


def x(value: float, name: str = "x", id: str | None = None) -> InferenceRequest:
    return InferenceRequest(
        id=id, inputs=[RequestInput(name=name, shape=[1, 2], datatype="FP64", data=[value, -value])]
    )


def asynchronous(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run the coroutine test on an event loop of its own, for 30 s at most."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 30))

    return run


async def settle() -> None:
    """Let every ready task run (requests reach the queue, batches start)."""
    for _ in range(10):
        await asyncio.sleep(0)


def start(model: Model, payload: InferenceRequest) -> asyncio.Task[InferenceResponse]:
    return asyncio.ensure_future(model.predict(payload))


@asynchronous
async def test_batching_is_on_above_one() -> None:
    for size in (0, 1):
        model = gated(size)
        assert attach(model) is None
        assert "predict" not in vars(model)
    model = gated(2)
    batcher = attach(model)
    assert batcher is not None
    assert attach(model) is batcher  # once per instance
    await detach(model)


@asynchronous
async def test_full_batches_run_at_once_and_each_caller_gets_its_rows() -> None:
    model = gated(4)  # max_batch_time 60 s: only full batches run
    batcher = attach(model)
    assert batcher is not None
    first = [start(model, x(i, id=f"r{i}")) for i in range(4)]
    await settle()
    assert model.seen() == [("x", 4)]
    later = [start(model, x(i, id=f"r{i}")) for i in range(4, 12)]
    await settle()
    # While the model runs, the others wait for the next batches.
    assert batcher.queue_size == 8
    assert queue_sizes() == {("m", "1"): 8}
    model.gate.set()
    responses = await asyncio.gather(*first, *later)
    assert model.seen() == [("x", 4)] * 3
    for i, response in enumerate(responses):
        assert response.id == f"r{i}"
        assert response.outputs[0].shape == [1, 2]
        assert to_ndarray(response.outputs[0]).tolist() == [[2 * i, -2 * i]]
    assert model.statistics.execution_count == 3
    await detach(model)
    assert queue_sizes() == {}


class Checked(Gated):
    """Refuses requests whose first value is negative, before batching."""

    def check_request(self, payload: InferenceRequest) -> None:
        if to_ndarray(payload.inputs[0]).ravel()[0] < 0:
            raise BadRequest("negative")


@asynchronous
async def test_a_request_the_model_refuses_fails_alone_before_joining_a_batch() -> None:
    model = Checked(ModelSettings(name="m", max_batch_size=3, max_batch_time=60.0))
    model.gate.set()
    attach(model)
    good = [start(model, x(i)) for i in (1, 2)]
    with pytest.raises(BadRequest, match="negative"):
        await model.predict(x(-1))
    third = start(model, x(3))  # the batch fills with good requests only
    responses = await asyncio.gather(*good, third)
    assert model.seen() == [("x", 3)]
    assert [to_ndarray(r.outputs[0]).tolist() for r in responses] == [[[2, -2]], [[4, -4]], [[6, -6]]]
    await detach(model)


@asynchronous
async def test_a_batch_runs_after_max_batch_time_whatever_its_size() -> None:
    model = serving(64, max_batch_time=0.01)
    response = await model.predict(x(3))
    assert model.seen() == [("x", 1)]
    assert to_ndarray(response.outputs[0]).tolist() == [[6, -6]]
    await detach(model)


@asynchronous
async def test_requests_that_cannot_merge_run_in_separate_batches() -> None:
    model = gated(8, max_batch_time=0)
    attach(model)
    blocker = start(model, x(0, name="first"))
    await settle()
    scalar = InferenceRequest(inputs=[RequestInput(name="s", shape=[], datatype="FP64", data=[5.0])])
    tasks = [
        start(model, x(1, name="a")),
        start(model, x(2, name="b")),
        start(model, scalar),
        start(model, x(3, name="a")),
        start(model, x(4, name="b")),
        start(model, x(5, name="a")),
    ]
    await settle()
    model.gate.set()
    a1, b2, alone, a3, b4, a5 = await asyncio.gather(*tasks)
    await blocker
    # Oldest first: all the a's, then all the b's, then the scalar as sent.
    assert model.seen() == [("first", 1), ("a", 3), ("b", 2), ("s", 0)]
    assert model.calls[-1] is scalar
    assert [to_ndarray(r.outputs[0]).tolist() for r in (a1, a3, a5)] == [
        [[2, -2]],
        [[6, -6]],
        [[10, -10]],
    ]
    assert [to_ndarray(r.outputs[0]).tolist() for r in (b2, b4)] == [[[4, -4]], [[8, -8]]]
    assert to_ndarray(alone.outputs[0]).tolist() == 10
    await detach(model)


@asynchronous
async def test_a_full_queue_answers_503_at_once() -> None:
    model = gated(2, max_batch_queue_size=2)
    attach(model)
    running = [start(model, x(i)) for i in range(2)]
    await settle()  # out of the queue, into the model
    waiting = [start(model, x(i)) for i in range(2, 4)]
    await settle()
    with pytest.raises(BatchQueueFull) as raised:
        await model.predict(x(9))
    assert raised.value.status_code == 503
    assert raised.value.grpc_code == "UNAVAILABLE"
    assert raised.value.message == (
        "model 'm' is overloaded: its batch queue is full (2 requests waiting); retry later"
    )
    model.gate.set()
    responses = await asyncio.gather(*running, *waiting)
    assert [to_ndarray(r.outputs[0]).tolist() for r in responses] == [[[2 * i, -2 * i]] for i in range(4)]
    await asyncio.gather(model.predict(x(1)), model.predict(x(2)))  # serving again
    await detach(model)


@asynchronous
async def test_the_default_queue_bound_is_a_multiple_of_the_batch_size() -> None:
    model = gated(4)
    batcher = attach(model)
    assert batcher is not None
    assert batcher.max_queue_size == 32
    await detach(model)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("boom"), InferenceError("model 'm' failed: ValueError: boom")),
        (BadRequest("model 'm': bad rows"), BadRequest("model 'm': bad rows")),
    ],
)
@asynchronous
async def test_a_model_error_fails_every_request_of_the_batch(error: Exception, expected: CoreError) -> None:
    model = serving(3)
    model.error = error
    results = await asyncio.gather(*(model.predict(x(i)) for i in range(3)), return_exceptions=True)
    assert len(model.calls) == 1
    for result in results:
        assert type(result) is type(expected)
        assert isinstance(result, CoreError)
        assert result.message == expected.message
    assert model.statistics.execution_count == 0
    await detach(model)


class Summing(Model):
    """Answers one sum over all its rows: an output without the batch dimension."""

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        total = float(to_ndarray(payload.inputs[0]).sum())
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="sum", shape=[], datatype="FP64", data=[total])],
        )


@asynchronous
async def test_an_output_without_the_batch_rows_fails_every_request() -> None:
    model = Summing(ModelSettings(name="summing", max_batch_size=2, max_batch_time=60))
    attach(model)
    results = await asyncio.gather(model.predict(x(1)), model.predict(x(2)), return_exceptions=True)
    for result in results:
        assert isinstance(result, InferenceError)
        assert result.message.startswith("model 'summing' returned output 'sum' of shape []")
    await detach(model)


@asynchronous
async def test_a_caller_that_goes_away_leaves_the_others_their_answers() -> None:
    model = gated(4, max_batch_time=0)
    attach(model)
    blocker = start(model, x(0))
    await settle()
    leaving, staying = start(model, x(1)), start(model, x(2))
    await settle()
    leaving.cancel()
    model.gate.set()
    assert to_ndarray((await staying).outputs[0]).tolist() == [[4, -4]]
    await blocker
    assert model.seen() == [("x", 1), ("x", 1)]
    await detach(model)


@asynchronous
async def test_detach_runs_the_queued_requests_and_refuses_new_ones() -> None:
    model = gated(4)  # the last two would wait 60 s for company
    attach(model)
    running = [start(model, x(i)) for i in range(4)]
    queued = [start(model, x(i)) for i in range(4, 6)]
    await settle()
    detaching = asyncio.ensure_future(detach(model))
    await settle()
    with pytest.raises(ModelNotReady, match="model 'm' is unloading"):
        await model.predict(x(9))
    model.gate.set()
    await detaching
    responses = await asyncio.gather(*running, *queued)
    assert [to_ndarray(r.outputs[0]).tolist() for r in responses] == [[[2 * i, -2 * i]] for i in range(6)]
    assert model.seen() == [("x", 4), ("x", 2)]
    assert batcher_of(model) is None
    assert "predict" not in vars(model)  # the class's own again
    assert model.statistics.batched is False


@asynchronous
async def test_the_registry_attaches_on_load_and_detaches_on_unload() -> None:
    registry = ModelRegistry()
    old = gated(2)
    assert await registry.load(old.settings, old)
    assert batcher_of(old) is not None
    queued = start(registry.get("m"), x(1))  # waits for a second request
    await settle()
    # A reload: the old instance's queued request is answered, not lost.
    new = gated(2)
    new.gate.set()
    old.gate.set()
    assert await registry.load(new.settings, new)
    assert to_ndarray((await queued).outputs[0]).tolist() == [[2, -2]]
    assert batcher_of(old) is None
    assert registry.get("m") is new
    assert batcher_of(new) is not None
    await registry.unload("m")
    assert batcher_of(new) is None
    assert queue_sizes() == {}


@asynchronous
async def test_values_of_each_datatype_come_back_unchanged() -> None:
    model = serving(3)
    cases = [("FP16", [1.5, 2.0]), ("INT8", [-3, 4]), ("BOOL", [True, False]), ("UINT64", [2**62, 1])]
    for datatype, values in cases:
        payloads = [
            InferenceRequest(inputs=[RequestInput(name="v", shape=[1, 2], datatype=datatype, data=values)])
            for _ in range(3)
        ]
        responses = await asyncio.gather(*(model.predict(payload) for payload in payloads))
        array = to_ndarray(payloads[0].inputs[0])
        expected = (array if datatype == "BOOL" else array * 2).ravel().tolist()
        for response in responses:
            assert response.outputs[0].datatype == datatype
            assert to_ndarray(response.outputs[0]).ravel().tolist() == expected
    await detach(model)
