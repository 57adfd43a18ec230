"""The bounds on a request's tensors that every input form goes through (REST
JSON, REST binary, gRPC typed and raw contents), checked from the declared
shapes before any data is split or converted:

- at most `MAX_DIMENSIONS` dimensions per tensor (numpy's own limit: a shape
  with more is a 400, not a numpy error);
- at most `max_bytes_elements` BYTES elements per request (413): each one
  becomes a Python bytes object of ~40 bytes plus its data, so a raw body of
  4-byte empty elements would otherwise grow memory and time tenfold.

The decoders see no Settings: `configure` sets the limit once per process at
start (the server's and each worker's), as `core.executor.configure` does."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..errors import BadRequest, PayloadTooLarge, shorten

# numpy arrays have at most 64 dimensions (NPY_MAXDIMS, numpy >= 2).
MAX_DIMENSIONS = 64
DEFAULT_MAX_BYTES_ELEMENTS = 1_000_000

_max_bytes_elements = DEFAULT_MAX_BYTES_ELEMENTS


def configure(max_bytes_elements: int) -> None:
    """This process's limit on the BYTES elements of one request (Settings.max_bytes_elements)."""
    global _max_bytes_elements
    if max_bytes_elements <= 0:
        raise ValueError(f"max_bytes_elements must be positive, got {max_bytes_elements}")
    _max_bytes_elements = max_bytes_elements


def max_bytes_elements() -> int:
    return _max_bytes_elements


def element_count(name: str, shape: Sequence[int], datatype: str | None = None) -> int:
    """The elements `shape` holds: 400 for more than MAX_DIMENSIONS
    dimensions or a negative one, 413 for a BYTES tensor (`datatype`) of more
    elements than the per-request limit."""
    if len(shape) > MAX_DIMENSIONS:
        raise BadRequest(
            f"tensor '{shorten(name)}': shape has {len(shape)} dimensions, "
            f"more than the limit of {MAX_DIMENSIONS}"
        )
    if shape and min(shape) < 0:
        raise BadRequest(f"tensor '{shorten(name)}': shape {shorten(list(shape))} has a negative dimension")
    count = math.prod(shape)
    if datatype == "BYTES":
        check_bytes_elements(count)
    return count


def check_bytes_elements(count: int) -> None:
    if count > _max_bytes_elements:
        raise PayloadTooLarge(
            f"request declares {count} BYTES elements, more than the limit of "
            f"{_max_bytes_elements} (max_bytes_elements)"
        )


class DeclaredTensor(Protocol):
    """A tensor as a request declares it: a RequestInput, or a gRPC message's input."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> Any: ...
    @property
    def shape(self) -> Sequence[int]: ...


def check_request(tensors: Iterable[DeclaredTensor]) -> None:
    """Every tensor's number of dimensions, and the BYTES elements of all of
    them together, as declared: before any data is decoded. (Negative
    dimensions are reported where each tensor is converted.)"""
    total = 0
    for tensor in tensors:
        if tensor.datatype == "BYTES":
            total += element_count(tensor.name, tensor.shape)
        elif len(tensor.shape) > MAX_DIMENSIONS:
            element_count(tensor.name, tensor.shape)  # raises, naming the limit
    if total > _max_bytes_elements:
        check_bytes_elements(total)
