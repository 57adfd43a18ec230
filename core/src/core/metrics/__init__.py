"""Prometheus metrics: what core records (see `families`), the endpoint that
exposes them (`server`), and the API runtimes record their own with:

- `register(name, description, kind="histogram", labels=())`, `log(**values)`
  and `record(name, value, **labels)` (also `core.register`, `core.log`,
  `core.record`): see `custom`.
- `set_batch_request_queue(model_name, model_version, size)`: for the
  adaptive batcher, see `queues`.
"""

from .custom import MetricKind, log, record, register
from .queues import set_batch_request_queue

__all__ = ["MetricKind", "log", "record", "register", "set_batch_request_queue"]
