"""docs/client.md's Python examples, run as written against a real server
(the iris example's addresses replaced by the test server's). The examples
about servers that are not there (a hosted LLM, TLS at example.com) are only
compiled."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from core.testing import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
ELSEWHERE = ("example.com", "my-llm")


def test_the_page_has_its_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(server: ServerProcess, index: int) -> None:
    code = BLOCKS[index]
    compiled = compile(code, f"{DOC.name}[{index}]", "exec")
    if any(text in code for text in ELSEWHERE):
        return
    code = code.replace("http://127.0.0.1:8080", server.url).replace(
        "127.0.0.1:8081", f"127.0.0.1:{server.grpc_port}"
    )
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, f"{DOC.name}[{index}]", "exec"), {"__name__": "__main__"})
    assert compiled is not None
    if "except ClientError" in code:
        assert output.getvalue().startswith("400 ")
