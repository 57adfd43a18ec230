"""Test helpers for runtimes and plugins, against a real server.

- `ServerProcess`, `free_port`, `child_pids` (core.testing.server): run
  `core start` on free loopback ports;
- `json_request`, `infer_every_way`, `check_outputs`, `readme_examples`,
  `check_readme_example`, `check_live_during` (core.testing.checks): checks
  of a served model (they need httpx and tritonclient);
- `core.testing.conformance.RuntimeConformance`: the conformance suite a
  runtime's tests subclass (with its parts: `bad_inputs`, `clients`,
  `expectations`). It needs pytest, so it is imported on its own:
  `from core.testing import ServerProcess` does not import pytest.
"""

from .checks import (
    check_live_during,
    check_outputs,
    check_readme_example,
    infer_every_way,
    json_request,
    readme_examples,
)
from .server import ServerProcess, child_pids, free_port, stop_process

__all__ = [
    "ServerProcess",
    "check_live_during",
    "check_outputs",
    "check_readme_example",
    "child_pids",
    "free_port",
    "infer_every_way",
    "json_request",
    "readme_examples",
    "stop_process",
]
